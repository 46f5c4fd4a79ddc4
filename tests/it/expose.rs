//! `expose` against the fake API server, whose cloud controller gives LoadBalancer services an
//! address (or, when told, never does).

use serde_json::Value;

use crate::support::{Cluster, NS};

const SVC: &str = "auth-postgres-external";
const TWO_RANGES: [&str; 7] = [
    "expose",
    "--allow",
    "203.0.113.0/24",
    "--allow",
    "198.51.100.7",
    "-o",
    "json",
];

async fn installed() -> Cluster {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c
}

fn service(c: &Cluster) -> Option<Value> {
    c.fake.get("Service", NS, SVC)
}

#[tokio::test]
async fn expose_restricts_the_load_balancer_to_the_given_cidrs_and_prints_the_details() {
    let c = installed().await;
    let r = c.run(&TWO_RANGES).await.ok_json();
    assert_eq!(r["change"], "created");
    assert_eq!(
        r["allowed"],
        serde_json::json!(["203.0.113.0/24", "198.51.100.7/32"])
    );
    assert!(r["host"].as_str().unwrap().starts_with("20."), "{r}");
    assert_eq!(r["port"], 5432);
    assert_eq!(r["database"], "phonebill_auth");
    assert_eq!(r["users"][0]["user"], "auth_user");
    assert!(
        r["users"][0].get("password").is_none(),
        "no password unless asked"
    );
    let svc = service(&c).expect("the service");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(
        svc["spec"]["loadBalancerSourceRanges"],
        serde_json::json!(["203.0.113.0/24", "198.51.100.7/32"])
    );
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/component"],
        "primary"
    );
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/instance"],
        "auth-postgres-dev"
    );
    assert_eq!(svc["metadata"]["labels"]["purpose"], "external-access");

    // Again: nothing changes (server-side apply, same field manager).
    let rv = svc["metadata"]["resourceVersion"].clone();
    let again = c.run(&TWO_RANGES).await.ok_json();
    assert_eq!(again["change"], "unchanged");
    assert_eq!(service(&c).unwrap()["metadata"]["resourceVersion"], rv);

    // Narrowed to one range: the other goes.
    let one = c
        .run(&["expose", "--allow", "203.0.113.0/24", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(one["change"], "configured");
    assert_eq!(
        service(&c).unwrap()["spec"]["loadBalancerSourceRanges"],
        serde_json::json!(["203.0.113.0/24"])
    );

    // Passwords only when asked, from the Secrets.
    let shown = c
        .run(&[
            "expose",
            "--allow",
            "203.0.113.0/24",
            "--show-password",
            "-o",
            "json",
        ])
        .await
        .ok_json();
    assert!(!shown["users"][0]["password"].as_str().unwrap().is_empty());
    let text = c.run(&["expose", "--allow", "203.0.113.0/24"]).await;
    assert!(
        text.stdout.contains("add --show-password"),
        "{}",
        text.stdout
    );

    // install leaves it alone (it is not install's to prune); remove takes it away, twice is fine.
    c.install_ok(&[]).await;
    assert!(
        service(&c).is_some(),
        "install does not prune expose's service"
    );
    let removed = c.run(&["expose", "--remove", "-o", "json"]).await.ok_json();
    assert_eq!(removed["removed"], true);
    assert!(service(&c).is_none());
    let again = c.run(&["expose", "--remove", "-o", "json"]).await.ok_json();
    assert_eq!(again["removed"], false);
}

#[tokio::test]
async fn internal_and_open_load_balancers_are_explicit() {
    let c = installed().await;
    let r = c
        .run(&[
            "expose",
            "--allow",
            "10.0.0.0/8",
            "--internal",
            "-o",
            "json",
        ])
        .await
        .ok_json();
    assert!(r["host"].as_str().unwrap().starts_with("10.240."), "{r}");
    let svc = service(&c).unwrap();
    assert_eq!(
        svc["metadata"]["annotations"]["service.beta.kubernetes.io/azure-load-balancer-internal"],
        "true"
    );
    // Open to all only when said so: the ranges go.
    let any = c
        .run(&["expose", "--allow-any", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(any["change"], "configured");
    let svc = service(&c).unwrap();
    assert!(
        svc["spec"].get("loadBalancerSourceRanges").is_none(),
        "{svc}"
    );
    assert!(
        svc["metadata"].get("annotations").is_none_or(|a| a
            .get("service.beta.kubernetes.io/azure-load-balancer-internal")
            .is_none()),
        "{svc}"
    );
    // It belongs to the release: uninstall takes it with the rest.
    let gone = c.run(&["uninstall", "--timeout", "30s"]).await;
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    assert!(service(&c).is_none(), "uninstall removes expose's service");
}

#[tokio::test]
async fn bad_or_missing_ranges_are_refused_and_nothing_is_created() {
    let c = installed().await;
    for (args, says) in [
        (vec!["expose"], "--allow"),
        (
            vec!["expose", "--allow", "203.0.113.5/24"],
            "the network is 203.0.113.0/24",
        ),
        (vec!["expose", "--allow", "office-wifi"], "is not a CIDR"),
        (
            vec!["expose", "--allow", "10.0.0.0/8", "--allow-any"],
            "cannot be used with",
        ),
        (
            vec!["expose", "--remove", "--internal"],
            "cannot be used with",
        ),
    ] {
        let run = c.run(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(service(&c).is_none(), "{args:?}");
    }
    // Not installed: refused, nothing created.
    let empty = Cluster::with_plan_class().await;
    let run = empty.run(&["expose", "--allow", "203.0.113.0/24"]).await;
    run.refused(1, "is not installed", "phonebill-db install");
}

#[tokio::test]
async fn waiting_for_an_address_times_out_with_the_service_left_in_place() {
    let c = installed().await;
    c.fake
        .set_load_balancers(fake_kube::LoadBalancerBehavior::Never);
    let run = c
        .run(&["expose", "--allow", "203.0.113.0/24", "--timeout", "2s"])
        .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.error_line().contains("has no address after 2s"),
        "{}",
        run.stderr
    );
    assert!(
        run.hint_line().contains("describe service"),
        "{}",
        run.stderr
    );
    assert!(service(&c).is_some());
    // The cloud catches up: the next run finds the address.
    c.fake
        .set_load_balancers(fake_kube::LoadBalancerBehavior::Assign);
    let r = c
        .run(&["expose", "--allow", "203.0.113.0/24", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(r["change"], "unchanged");
    assert!(r["host"].as_str().unwrap().starts_with("20."), "{r}");
}
