//! `status`: one screen of the release, as text and JSON.

use std::time::Duration;

use fake_kube::PodBehavior;

use crate::support::{Cluster, NS, PVC, STS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_missing_release_says_so() {
    let c = Cluster::with_plan_class().await;
    let run = c.run(&["status", "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["state"], "not-installed");
    let run = c.run(&["status"]).await;
    assert!(run.stdout.contains("not installed"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_ready_release_shows_every_part() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let j = c.run(&["status", "-o", "json"]).await.json();
    assert_eq!(j["state"], "ready");
    assert_eq!(j["statefulSet"]["readyReplicas"], 1);
    assert_eq!(j["pods"][0]["status"], "Running");
    assert_eq!(j["pods"][0]["ready"], "2/2");
    assert_eq!(j["pvcs"][0]["name"], PVC);
    assert_eq!(j["pvcs"][0]["phase"], "Bound");
    assert_eq!(j["pvcs"][0]["capacity"], "20Gi");
    let services: Vec<&str> = j["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(services.len(), 3, "{services:?}");
    let svc = j["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == STS)
        .unwrap();
    assert!(
        svc["clusterIP"].as_str().unwrap().starts_with("10."),
        "the API server assigned a ClusterIP"
    );
    assert_eq!(j["secrets"].as_array().unwrap().len(), 2);
    // The fake's port-forward leads nowhere here: status reports that, and still succeeds.
    assert_eq!(j["database"]["name"], "phonebill_auth");
    assert_eq!(j["database"]["reachable"], false);
    assert!(
        j["database"]["error"]
            .as_str()
            .unwrap()
            .contains("connecting to database phonebill_auth"),
        "{j}"
    );
    // The server certificate install made: a year, renewed by install under 30 days.
    assert_eq!(j["serverCertificate"]["status"], "pass", "{j}");
    assert!(
        j["serverCertificate"]["detail"]
            .as_str()
            .unwrap()
            .contains("(365 days left)")
            || j["serverCertificate"]["detail"]
                .as_str()
                .unwrap()
                .contains("(364 days left)"),
        "{j}"
    );
    let text = c.run(&["status"]).await.stdout;
    assert!(
        text.lines()
            .any(|l| l.starts_with("Database ") && l.contains("UNREACHABLE")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("Certificate ")
            && l.contains("ok")
            && l.contains("valid until")),
        "{text}"
    );
    assert!(
        text.starts_with("release auth-postgres-dev in namespace phonebill-dev: ready\n"),
        "{text}"
    );
    let pvc_line: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("PVC "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        pvc_line,
        ["PVC", PVC, "Bound", "20Gi,", "managed-standard"],
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_half_ready_release_says_why() {
    let c = Cluster::with_plan_class().await;
    c.fake.set_pods(PodBehavior::ProbeFailing);
    let run = c.run(&["install", "--timeout", "1s"]).await;
    assert_eq!(run.code, 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let j = c.run(&["status", "-o", "json"]).await.json();
    assert_eq!(j["state"], "not-ready");
    assert_eq!(j["statefulSet"]["readyReplicas"], 0);
    assert_eq!(j["pods"][0]["ready"], "0/2");
    assert_eq!(j["pvcs"][0]["phase"], "Bound");
    assert_eq!(j["findings"][0]["problem"], "probe-failing");
}

/// The snapshot schedule's Job pods carry the release's labels: they are the Schedule row's, not
/// listed as the release's pods (a finished one is not "0/1 containers ready").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedules_job_pods_are_not_the_releases_pods() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let job = c.fake.cronjob_ran(NS, "auth-postgres-dev-snapshots", true);
    let job_uid = c.fake.get("Job", NS, &job).unwrap()["metadata"]["uid"].clone();
    c.fake
        .create(
            NS,
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{job}-x7k2p"),
                    "labels": {"app.kubernetes.io/instance": "auth-postgres-dev", "app.kubernetes.io/component": "snapshots"},
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": job_uid, "controller": true}]},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "snapshot", "image": "phonebill-db"}]}}),
        )
        .unwrap();
    let j = c.run(&["status", "-o", "json"]).await.ok_json();
    let pods: Vec<&str> = j["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(pods, ["auth-postgres-dev-postgresql-0"], "{j}");
    assert_eq!(j["state"], "ready");
}
