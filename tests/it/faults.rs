//! Whole commands through API faults the fake injects: 429 with Retry-After, 500, 503, 504, a 409
//! Conflict on a plain write, connections closed before the answer. They complete, inside their
//! --timeout; a 403 still fails at once.

use fake_kube::Fault;

use crate::pg::Release;
use crate::support::{Cluster, NS, expected_inventory};

fn status(code: u16) -> Fault {
    Fault::Status {
        code,
        retry_after: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_and_uninstall_complete_through_transient_faults() {
    let c = Cluster::with_plan_class().await;
    let f = &c.fake;
    f.inject("/api/v1/namespaces", Some("POST"), 1, status(500));
    f.inject("/statefulsets", Some("GET"), 2, status(503));
    f.inject("/configmaps/", Some("PATCH"), 1, Fault::Reset);
    f.inject(
        "/pods",
        Some("GET"),
        1,
        Fault::Status {
            code: 429,
            retry_after: Some(1),
        },
    );
    f.inject("/secrets/", Some("GET"), 1, status(504));
    let started = std::time::Instant::now();
    let report = c.install_ok(&[]).await;
    assert_eq!(report["ready"], true);
    assert_eq!(f.faults_left(), 0, "every fault was met");
    assert!(
        started.elapsed().as_secs_f64() >= 1.0,
        "Retry-After was honoured"
    );
    assert_eq!(
        crate::support::release_inventory(&c.fake),
        expected_inventory()
    );
    // The apply that met a closed connection went through on the next try: the ConfigMap is there.
    assert!(f.requests_matching("PATCH /api/v1/namespaces/phonebill-dev/configmaps/") >= 2);

    f.inject("/statefulsets/", Some("DELETE"), 1, status(409));
    f.inject("/services", Some("GET"), 2, Fault::Reset);
    let run = c.run(&["uninstall", "--timeout", "60s"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(f.faults_left(), 0);
    assert!(
        c.fake
            .get("StatefulSet", NS, "auth-postgres-dev-postgresql")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expose_completes_through_transient_faults() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake.inject(
        "/services/auth-postgres-external",
        Some("PATCH"),
        1,
        status(503),
    );
    c.fake
        .inject("/networkpolicies/", Some("PATCH"), 1, Fault::Reset);
    c.fake.inject("/services", Some("GET"), 1, Fault::Reset);
    let r = c
        .run(&[
            "expose",
            "--allow",
            "203.0.113.0/24",
            "-o",
            "json",
            "--timeout",
            "60s",
        ])
        .await
        .ok_json();
    assert!(r["host"].as_str().unwrap().starts_with("20."), "{r}");
    assert_eq!(c.fake.faults_left(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_through_the_pod_complete_through_transient_faults() {
    let r = Release::new("faults").await;
    r.install().await;
    let applied = r.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    r.pg.generate_rows(&r.database, 20);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.dump").display().to_string();
    // exec's upgrade request answered 503, then a port-forward's connection closed; the pod list
    // throttled.
    r.cluster.fake.inject("/exec", None, 1, status(503));
    r.cluster.fake.inject("/portforward", None, 1, Fault::Reset);
    r.cluster.fake.inject(
        "/pods",
        Some("GET"),
        1,
        Fault::Status {
            code: 429,
            retry_after: None,
        },
    );
    let backup = r.run(&["backup", "--to", &file]).await;
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    assert_eq!(r.cluster.fake.faults_left(), 0);
    let before = r.psql("SELECT count(*) FROM auth_users");
    r.psql("DELETE FROM auth_users WHERE user_id LIKE 'gen-user-1%'");

    r.cluster.fake.inject("/exec", None, 2, status(502));
    r.cluster
        .fake
        .inject("/secrets/", Some("GET"), 1, Fault::Reset);
    let restore = r
        .run(&["restore", "--from", &file, "--yes", "--no-safety-backup"])
        .await;
    assert_eq!(restore.code, 0, "{}", restore.stderr);
    assert_eq!(r.cluster.fake.faults_left(), 0);
    assert_eq!(r.psql("SELECT count(*) FROM auth_users"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_fails_at_once_and_a_hint_for_a_4xx_never_says_retry() {
    let c = Cluster::with_plan_class().await;
    c.create_namespace();
    c.fake.inject("/statefulsets", Some("GET"), 5, status(403));
    let started = std::time::Instant::now();
    let run = c.run(&["install", "--timeout", "60s"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(started.elapsed().as_secs() < 10, "no retries for a 403");
    assert!(run.error_line().contains("403"), "{}", run.stderr);
    assert!(
        !run.hint_line().to_lowercase().contains("retry"),
        "{}",
        run.stderr
    );
    assert_eq!(
        c.fake
            .requests_matching("GET /apis/apps/v1/namespaces/phonebill-dev/statefulsets"),
        1,
        "asked once"
    );

    // A 409 AlreadyExists is final too (unlike a Conflict on a plain write).
    let c = Cluster::with_plan_class().await;
    c.fake
        .inject("/api/v1/namespaces", Some("POST"), 3, status(409));
    let run = c.run(&["install", "--timeout", "60s"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(c.fake.requests_matching("POST /api/v1/namespaces"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_that_outlast_the_timeout_end_it_with_the_servers_answer() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake
        .inject("/statefulsets", Some("GET"), 1000, status(503));
    let started = std::time::Instant::now();
    let run = c.run(&["install", "--timeout", "3s"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(started.elapsed().as_secs() < 15, "bounded by --timeout");
    assert!(run.error_line().contains("503"), "{}", run.stderr);
    assert!(run.hint_line().contains("retried until"), "{}", run.stderr);
    assert!(
        c.fake
            .requests_matching("GET /apis/apps/v1/namespaces/phonebill-dev/statefulsets")
            > 2
    );
}

/// A create the server committed whose answer was lost (the connection closed after the write):
/// its retry meets 409 AlreadyExists, and the object there is this create's — the namespace, a
/// VolumeSnapshot, the VolumeSnapshotClass. One of each, and the commands succeed. One of that
/// name that is not this command's is an error, not taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_not_a_conflict() {
    let c = Cluster::aks().await;
    let f = &c.fake;
    f.add_storage_class("managed-standard");
    f.inject("/api/v1/namespaces", Some("POST"), 1, Fault::AnswerLost);
    f.inject("/volumesnapshotclasses", Some("POST"), 1, Fault::AnswerLost);
    let report = c.install_ok(&["--create-snapshot-class"]).await;
    assert_eq!(report["namespaceCreated"], true);
    assert_eq!(report["snapshotClassCreated"], true);
    assert_eq!(f.faults_left(), 0, "the faults were met");
    assert_eq!(
        f.requests_matching("POST /api/v1/namespaces?"),
        2,
        "created, then retried"
    );

    f.inject("/volumesnapshots", Some("POST"), 1, Fault::AnswerLost);
    let taken = c
        .run(&["backup", "--snapshot", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(taken["readyToUse"], true, "{taken}");
    assert_eq!(f.faults_left(), 0);
    assert_eq!(c.fake.list("VolumeSnapshot", NS).len(), 1);
    assert_eq!(c.fake.list("VolumeSnapshotClass", "").len(), 1);

    // A snapshot of that name that another command made (another claim): refused, kept.
    let name = taken["snapshot"].as_str().unwrap().to_string();
    c.fake
        .merge_patch(
            "VolumeSnapshot",
            NS,
            &name,
            serde_json::json!({"metadata": {"labels": {"phonebill-db/origin": "someone"}}}),
        )
        .unwrap();
    let snapshot = c.fake.get("VolumeSnapshot", NS, &name).unwrap();
    let kube = c.kube().await;
    let api: kube::Api<phonebill_db::k8s::snapshot::VolumeSnapshot> =
        kube::Api::namespaced(kube.client.clone(), NS);
    let ours: phonebill_db::k8s::snapshot::VolumeSnapshot =
        serde_json::from_value(serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "labels": {"phonebill-db/origin": "manual"}},
        "spec": snapshot["spec"]}))
        .unwrap();
    let e = phonebill_db::k8s::client::create_once(&kube, &api, &ours, "creating it", |there| {
        there.metadata.labels == ours.metadata.labels
    })
    .await
    .unwrap_err();
    let said = phonebill_db::error::report(&e);
    assert!(
        said.error.contains(&format!(
            "VolumeSnapshot {name} exists already, and is not the one this command makes"
        )),
        "{}",
        said.error
    );
}
