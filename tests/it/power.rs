//! stop and start (runbook 10.1): through the real binary against the fake API server, with the
//! throwaway PostgreSQL behind the pod.

use serde_json::{Value, json};

use crate::backup::{fingerprint, loaded};
use crate::support::{NS, PVC, STS, job_command, run_as_role};

fn replicas(c: &crate::support::Cluster) -> i64 {
    c.fake.get("StatefulSet", NS, STS).expect("the StatefulSet")["spec"]["replicas"]
        .as_i64()
        .unwrap_or(1)
}

fn uid(c: &crate::support::Cluster, kind: &str, name: &str) -> Value {
    c.fake
        .get(kind, NS, name)
        .unwrap_or_else(|| panic!("{kind}/{name} is there"))["metadata"]["uid"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_then_start_keeps_every_row_and_the_same_volume() {
    let r = loaded("power", 20).await;
    let c = &r.cluster;
    let rows = fingerprint(&r);
    let (claim, admin_secret, service) = (
        uid(c, "PersistentVolumeClaim", PVC),
        uid(c, "Secret", "auth-postgres-dev-postgresql"),
        uid(c, "Service", "auth-postgres-dev-postgresql"),
    );

    // No terminal and no --yes: refused before anything changes.
    r.run(&["stop"])
        .await
        .refused(2, "needs confirmation", "--yes");
    assert_eq!(replicas(c), 1);

    let stopped = r.run(&["stop", "--yes", "-o", "json"]).await.ok_json();
    assert_eq!(stopped["alreadyStopped"], false);
    assert_eq!(stopped["checkpoint"]["status"], "pass", "{stopped}");
    assert_eq!(replicas(c), 0);
    assert!(
        c.fake
            .get("Pod", NS, "auth-postgres-dev-postgresql-0")
            .is_none(),
        "the pod is gone when stop returns"
    );
    // Through the scale subresource, by its own field manager.
    assert_eq!(
        c.fake
            .requests_with("/statefulsets/auth-postgres-dev-postgresql/scale")
            .iter()
            .filter(|r| r.starts_with("PATCH") && r.contains("fieldManager=phonebill-db-power"))
            .count(),
        1
    );
    assert_eq!(
        uid(c, "PersistentVolumeClaim", PVC),
        claim,
        "the same claim"
    );
    assert_eq!(
        uid(c, "Secret", "auth-postgres-dev-postgresql"),
        admin_secret
    );
    assert_eq!(uid(c, "Service", "auth-postgres-dev-postgresql"), service);

    let status = r.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["state"], "stopped", "{status}");
    assert!(status["findings"].as_array().unwrap().is_empty());
    let text = r.run(&["status"]).await;
    assert!(text.stdout.contains(": stopped"), "{}", text.stdout);
    assert!(
        text.stdout.contains("phonebill-db start"),
        "{}",
        text.stdout
    );

    // Stopping again changes nothing.
    let again = r.run(&["stop", "--yes", "-o", "json"]).await.ok_json();
    assert_eq!(again["alreadyStopped"], true);

    // What needs the pod says it is stopped and how to start it (exit 2), and changes nothing.
    let before = c.versions();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("x.dump");
    let dump = dump.to_str().unwrap();
    for args in [
        vec!["psql"],
        vec!["backup", "--to", dump],
        vec!["verify"],
        vec!["apply-schema"],
        vec!["logs"],
        vec!["connect", "--port", "0"],
        vec!["rotate-password", "--role", "app", "--yes"],
        vec!["install"],
        vec!["restore", "--snapshot", "latest", "--yes"],
        // resize and upgrade take no --values: the release as installed (its record).
        vec!["resize", "--storage", "30Gi", "--yes"],
        vec!["upgrade", "--major", "17", "--yes"],
    ] {
        let run = if ["resize", "upgrade"].contains(&args[0]) {
            c.run(&args).await
        } else {
            r.run(&args).await
        };
        assert_eq!(run.code, 2, "{args:?}: {}\n{}", run.stdout, run.stderr);
        let line = run.error_line();
        assert!(
            line.contains("release auth-postgres-dev is stopped"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.hint_line().contains("phonebill-db start"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(c.versions(), before, "the refusals changed nothing");

    // A snapshot of the stopped release's volume still works.
    let snap = r
        .run(&["backup", "--snapshot", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(snap["readyToUse"], true, "{snap}");

    let started = r.run(&["start", "-o", "json"]).await.ok_json();
    assert_eq!(started["alreadyRunning"], false);
    assert_eq!(started["passed"], true, "{started}");
    assert!(
        started["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "tables" && c["status"] == "pass"),
        "verify's database checks ran: {started}"
    );
    assert_eq!(replicas(c), 1);
    assert_eq!(
        uid(c, "PersistentVolumeClaim", PVC),
        claim,
        "the same claim"
    );
    assert_eq!(fingerprint(&r), rows, "every row is there");
    let status = r.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["state"], "ready");
    // Running already: start changes nothing, and checks.
    let again = r.run(&["start", "-o", "json"]).await.ok_json();
    assert_eq!(again["alreadyRunning"], true);
    assert_eq!(again["passed"], true);
    let verify = r.run(&["verify"]).await;
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_refuses_what_it_cannot_stop_and_a_slow_pod_is_a_timeout_that_a_rerun_finishes() {
    let r = crate::pg::Release::new("powerno").await;
    let c = &r.cluster;
    c.create_namespace();
    r.run(&["stop", "--yes"]).await.refused(
        2,
        "release auth-postgres-dev is not installed",
        "phonebill-db install",
    );
    r.run(&["start"]).await.refused(
        2,
        "release auth-postgres-dev is not installed",
        "phonebill-db install",
    );

    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    // An upgrade under way: a second StatefulSet of the release.
    let mut second = c.fake.get("StatefulSet", NS, STS).unwrap();
    second["metadata"] =
        json!({"name": format!("{STS}-pg17"), "labels": second["metadata"]["labels"]});
    second.as_object_mut().unwrap().remove("status");
    c.fake.create(NS, second).unwrap();
    r.run(&["stop", "--yes"])
        .await
        .refused(2, "has an upgrade under way", "upgrade --finalize");
    assert_eq!(replicas(c), 1);
    c.fake
        .delete("StatefulSet", NS, &format!("{STS}-pg17"))
        .unwrap();

    // The node is lost: the pod stays terminating; stop times out (exit 3) and says so.
    c.fake.set_node_ready(false);
    let run = r.run(&["stop", "--yes", "--timeout", "2s"]).await;
    run.failed_saying(3, &["scaled to 0", "was still there"]);
    assert!(run.hint_line().contains("run the same command again"));
    assert_eq!(replicas(c), 0);
    // Back: the same command waits for the rest.
    c.fake.set_node_ready(true);
    let done = r.run(&["stop", "--yes", "-o", "json"]).await.ok_json();
    assert_eq!(done["alreadyStopped"], true);
    assert!(
        c.fake
            .get("Pod", NS, "auth-postgres-dev-postgresql-0")
            .is_none()
    );

    // A start whose pod never becomes ready: a timeout with the diagnosis, as install gives it.
    c.fake.set_pods(fake_kube::PodBehavior::ProbeFailing);
    let run = r.run(&["start", "--timeout", "2s"]).await;
    run.failed_saying(
        3,
        &["timed out", "waiting for auth-postgres-dev-postgresql"],
    );
    c.fake.set_pods(fake_kube::PodBehavior::Ready {
        after: std::time::Duration::from_millis(100),
    });
    let started = r.run(&["start", "-o", "json"]).await.ok_json();
    assert_eq!(started["alreadyRunning"], true, "scaled by the first start");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_off_hours_jobs_stop_and_start_with_only_their_roles_rights() {
    let r = crate::pg::Release::new("offhours").await;
    let c = &r.cluster;
    let mut values = std::fs::read_to_string(&r.values).unwrap();
    values.push_str("offHours:\n  enabled: true\n  stopAt: \"19:30\"\n  startAt: \"07:45\"\n  weekdays: [mon, wed, fri]\n");
    std::fs::write(&r.values, values).unwrap();
    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);

    let stop = c.fake.get("CronJob", NS, "auth-postgres-dev-stop").unwrap();
    let start = c
        .fake
        .get("CronJob", NS, "auth-postgres-dev-start")
        .unwrap();
    assert_eq!(stop["spec"]["schedule"], "30 19 * * 1,3,5");
    assert_eq!(start["spec"]["schedule"], "45 7 * * 1,3,5");
    assert_eq!(stop["spec"]["timeZone"], "Asia/Seoul");
    let role = c
        .fake
        .get("Role", NS, "auth-postgres-dev-off-hours")
        .unwrap();
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["apps"], "resources": ["statefulsets"], "resourceNames": [STS], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "resourceNames": [STS], "verbs": ["get", "patch"]},
        ])
    );
    let status = r.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["offHours"]["installed"], true, "{status}");
    assert_eq!(status["offHours"]["weekdays"], json!(["mon", "wed", "fri"]));
    assert!(status["offHours"]["nextStop"].is_string(), "{status}");

    // The stop job, with only the Role's rights: stopped.
    let stop_args = job_command(c, "auth-postgres-dev-stop", "auth-postgres-dev-off-hours");
    let run = run_as_role(c, "auth-postgres-dev-off-hours", &stop_args).await;
    let stopped = run.ok_json();
    assert_eq!(stopped["alreadyStopped"], false);
    assert_eq!(stopped["checkpoint"]["status"], "skip");
    assert_eq!(replicas(c), 0);
    assert_eq!(
        r.run(&["status", "-o", "json"]).await.ok_json()["state"],
        "stopped"
    );

    // The snapshot schedule's job still works while the release is stopped.
    let snap_args = job_command(
        c,
        "auth-postgres-dev-snapshots",
        "auth-postgres-dev-snapshots",
    );
    let snap = run_as_role(c, "auth-postgres-dev-snapshots", &snap_args)
        .await
        .ok_json();
    assert_eq!(snap["readyToUse"], true, "{snap}");

    // The start job, with only the Role's rights: running again, and the data answers.
    let start_args = job_command(c, "auth-postgres-dev-start", "auth-postgres-dev-off-hours");
    let started = run_as_role(c, "auth-postgres-dev-off-hours", &start_args)
        .await
        .ok_json();
    assert_eq!(started["alreadyRunning"], false);
    assert_eq!(replicas(c), 1);
    let verify = r.run(&["verify"]).await;
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);

    // One right less and the job fails, saying what it was not allowed.
    for (drop_rule, what) in [(0, "statefulsets"), (1, "statefulsets/scale")] {
        let mut rules = role["rules"].clone();
        rules.as_array_mut().unwrap().remove(drop_rule);
        c.fake.allow_only(NS, rules);
        let args: Vec<&str> = stop_args.iter().map(String::as_str).collect();
        let run = c.run(&args).await;
        c.fake.allow_all();
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        assert!(run.error_line().contains(what), "{}", run.stderr);
        assert_eq!(replicas(c), 1, "nothing was stopped");
    }

    // Off again: a re-install prunes the CronJobs and their rights.
    let mut values = std::fs::read_to_string(&r.values).unwrap();
    values = values.replace("enabled: true", "enabled: false");
    std::fs::write(&r.values, values).unwrap();
    let report = c.install_ok(&["--values", &r.values]).await;
    let mut pruned = crate::support::pruned(&report);
    pruned.sort();
    assert_eq!(
        pruned,
        [
            "auth-postgres-dev-off-hours",
            "auth-postgres-dev-off-hours",
            "auth-postgres-dev-off-hours",
            "auth-postgres-dev-off-hours",
            "auth-postgres-dev-start",
            "auth-postgres-dev-stop"
        ]
    );
}
