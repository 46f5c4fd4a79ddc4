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

fn policy(c: &Cluster) -> Option<Value> {
    c.fake.get("NetworkPolicy", NS, SVC)
}

/// The ipBlock ranges expose's NetworkPolicy lets through to the PostgreSQL port.
fn policy_ranges(c: &Cluster) -> Vec<String> {
    let p = policy(c).expect("expose's NetworkPolicy");
    let rule = &p["spec"]["ingress"][0];
    assert_eq!(
        rule["ports"],
        serde_json::json!([{"port": 5432, "protocol": "TCP"}])
    );
    rule["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ipBlock"]["cidr"].as_str().unwrap().to_string())
        .collect()
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
    // The client's own address reaches the pod, where the NetworkPolicy lets exactly these in.
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(policy_ranges(&c), ["203.0.113.0/24", "198.51.100.7/32"]);
    assert_eq!(r["networkPolicy"], SVC);
    let p = policy(&c).unwrap();
    assert_eq!(
        p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "primary"
    );
    // TLS for developers' tools: verify-ca with the CA written here.
    assert_eq!(r["sslMode"], "verify-ca");
    assert_eq!(r["caFile"], "auth-postgres-dev-ca.crt");
    let written = std::fs::read_to_string(c.dir.path().join("auth-postgres-dev-ca.crt")).unwrap();
    assert_eq!(written, c.secret_text("auth-db-secret", "ca.crt"));

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
    assert_eq!(
        policy_ranges(&c),
        ["203.0.113.0/24"],
        "the policy narrows with it"
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
        service(&c).is_some() && policy(&c).is_some(),
        "install does not prune expose's service or policy"
    );
    let removed = c.run(&["expose", "--remove", "-o", "json"]).await.ok_json();
    assert_eq!(removed["removed"], true);
    assert_eq!(removed["networkPolicyRemoved"], true);
    assert!(service(&c).is_none());
    assert!(
        policy(&c).is_none(),
        "--remove takes the door out of the policy too"
    );
    assert!(
        c.fake
            .get("NetworkPolicy", NS, "auth-postgres-dev-postgresql")
            .is_some()
    );
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
    // Open to all only when said so: the ranges go. A public load balancer now: AKS moves the
    // Service to a public frontend and, for a while, still shows the internal address — expose
    // waits for the new one (it printed the stale address before).
    let any = c
        .run(&["expose", "--allow-any", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(any["change"], "configured");
    assert!(any["host"].as_str().unwrap().starts_with("20.41."), "{any}");
    assert_ne!(any["host"], r["host"]);
    // And back to internal: a new internal address, not the public one.
    let back = c
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
    assert!(
        back["host"].as_str().unwrap().starts_with("10.240."),
        "{back}"
    );
    c.run(&["expose", "--allow-any", "-o", "json"])
        .await
        .ok_json();
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
    assert_eq!(
        policy_ranges(&c),
        ["0.0.0.0/0", "::/0"],
        "--allow-any opens the policy too"
    );
    // It belongs to the release: uninstall takes it with the rest.
    let gone = c.run(&["uninstall", "--timeout", "30s"]).await;
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    assert!(service(&c).is_none(), "uninstall removes expose's service");
    assert!(policy(&c).is_none(), "and its policy");
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
        (vec!["expose", "--allow", "0.0.0.0/0"], "say --allow-any"),
        (vec!["expose", "--allow", "::/0"], "say --allow-any"),
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
        assert!(service(&c).is_none() && policy(&c).is_none(), "{args:?}");
    }
    // A CA file name that holds something else is not overwritten.
    let mine = c.dir.path().join("notes.txt");
    std::fs::write(&mine, "my notes").unwrap();
    let run = c
        .run(&[
            "expose",
            "--allow",
            "203.0.113.0/24",
            "--ca-out",
            mine.to_str().unwrap(),
        ])
        .await;
    run.refused(2, "exists and is not a certificate", "--ca-out");
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my notes");
    assert!(service(&c).is_none() && policy(&c).is_none());
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

#[tokio::test]
async fn without_the_release_policy_expose_adds_none_and_install_prunes_a_stale_one() {
    let c = installed().await;
    c.run(&["expose", "--allow", "203.0.113.0/24"]).await;
    assert!(policy(&c).is_some());
    // The release's policy switched off: expose's alone would shut the application tier out.
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "networkPolicy:\n  enabled: false\n").unwrap();
    let report = c.install_ok(&["--values", values.to_str().unwrap()]).await;
    let pruned = crate::support::pruned(&report);
    assert_eq!(pruned, ["auth-postgres-dev-postgresql", SVC], "{report}");
    assert!(service(&c).is_some(), "the service stays");
    let r = c
        .run(&[
            "expose",
            "--allow",
            "203.0.113.0/24",
            "-o",
            "json",
            "--values",
            values.to_str().unwrap(),
        ])
        .await
        .ok_json();
    assert_eq!(r["networkPolicy"], Value::Null);
    assert!(policy(&c).is_none());
}
