//! `restore --snapshot`: the data volume back from a VolumeSnapshot, judged by the data. The fake
//! tells the test when a snapshot is cut and when a claim is made from one; the test makes its
//! stand-in for the volume — the release's database on the throwaway server — follow: a snapshot
//! copies the database (CREATE DATABASE … TEMPLATE, with its ACL), a claim from a snapshot puts the
//! copy back. Only then is the snapshot ready or the claim bound. A restore that did nothing would
//! leave the changed rows in place, and the tests would see them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::backup::fingerprint_in;
use crate::pg::{Pg, Release};
use crate::support::{NS, PVC, STS, put_snapshot, snapshot_labels};

/// Make the release's database follow its volume's snapshots and restores.
fn follow_data(r: &Release) {
    let (events, ack) = r.cluster.fake.volume_events();
    let db = r.database.clone();
    let owner = r.admin.clone();
    std::thread::spawn(move || {
        let pg = Pg::get();
        for event in events {
            match &event {
                fake_kube::VolumeEvent::Snapshot { snapshot, .. } => {
                    copy_database(&pg, &db, &copy_name(&db, snapshot), &owner);
                }
                fake_kube::VolumeEvent::Restore { snapshot, .. } => {
                    pg.psql(
                        "postgres",
                        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                    );
                    copy_database(&pg, &copy_name(&db, snapshot), &db, &owner);
                }
            }
            ack.done(&event);
        }
    });
}

/// The stand-in for a snapshot's disk: a database named after the volume's and the snapshot's.
fn copy_name(db: &str, snapshot: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(snapshot.as_bytes()));
    format!("{db}_s{}", &h[..8])
}

/// What a disk copy carries: every object and row, and the database's own privileges.
fn copy_database(pg: &Pg, from: &str, to: &str, owner: &str) {
    pg.psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{from}' AND pid <> pg_backend_pid()"),
    );
    pg.psql(
        "postgres",
        &format!("CREATE DATABASE {to} TEMPLATE {from} OWNER {owner}"),
    );
    pg.psql(
        "postgres",
        &format!("UPDATE pg_database SET datacl = (SELECT datacl FROM pg_database WHERE datname = '{from}') WHERE datname = '{to}'"),
    );
}

/// The reclaim policy of the release's StorageClass.
fn reclaim(r: &Release, policy: &str) {
    r.cluster
        .fake
        .merge_patch(
            "StorageClass",
            "",
            "managed-standard",
            json!({"reclaimPolicy": policy}),
        )
        .unwrap();
}

/// A release with the schema, some rows, the snapshot class, a Retain StorageClass (the plan's),
/// and data that follows its volume.
async fn release(tag: &str) -> Release {
    let r = Release::new(tag).await;
    reclaim(&r, "Retain");
    r.install().await;
    let applied = r.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    r.pg.generate_rows(&r.database, 30);
    follow_data(&r);
    r
}

fn fingerprint(r: &Release) -> BTreeMap<&'static str, String> {
    fingerprint_in(&r.pg, &r.database)
}

async fn snapshot_now(r: &Release) -> String {
    let taken = r
        .run(&["backup", "--snapshot", "-o", "json"])
        .await
        .ok_json();
    // Creation times have seconds: keep snapshots apart.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    taken["snapshot"].as_str().unwrap().to_string()
}

fn change(r: &Release) {
    r.psql("DELETE FROM auth_users WHERE user_id LIKE 'gen-user-1%'");
    r.psql("UPDATE auth_services SET service_name = 'changed after the snapshot'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_brings_back_the_rows_of_its_time_and_the_safety_snapshot_the_rows_after() {
    let r = release("sr_rows").await;
    let at_snapshot = fingerprint(&r);
    let snap = snapshot_now(&r).await;
    change(&r);
    let changed = fingerprint(&r);
    assert_ne!(changed, at_snapshot);
    let old_volume = r
        .cluster
        .fake
        .get("PersistentVolumeClaim", NS, PVC)
        .unwrap()["spec"]["volumeName"]
        .clone();

    let run = r
        .run(&["restore", "--snapshot", &snap, "--yes", "-o", "json"])
        .await;
    let report = run.ok_json();
    assert_eq!(
        fingerprint(&r),
        at_snapshot,
        "the rows of the snapshot's time are back"
    );
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["snapshot"], snap.as_str());
    assert_eq!(report["resumed"], false);
    // The new claim is made from the snapshot; the old volume stays, Released (Retain).
    let pvc = r
        .cluster
        .fake
        .get("PersistentVolumeClaim", NS, PVC)
        .unwrap();
    assert_eq!(pvc["spec"]["dataSource"]["name"], snap.as_str());
    assert_eq!(pvc["status"]["phase"], "Bound");
    assert_eq!(report["oldVolume"], old_volume);
    assert_eq!(report["oldVolumePhase"], "Released");
    assert_eq!(
        r.cluster
            .fake
            .get("PersistentVolume", "", old_volume.as_str().unwrap())
            .unwrap()["status"]["phase"],
        "Released"
    );
    assert_eq!(
        r.cluster.fake.get("StatefulSet", NS, STS).unwrap()["spec"]["replicas"],
        1
    );
    assert!(
        r.cluster.fake.get("StatefulSet", NS, STS).unwrap()["metadata"]["annotations"]
            .get("phonebill-db/restore")
            .is_none(),
        "the record is gone when done"
    );
    // The tool's own time, the waits aside, is reported per step.
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["step"] == "scale to 1"));
    assert!(report["toolSeconds"].as_f64().unwrap() <= report["seconds"].as_f64().unwrap());
    eprintln!(
        "restore --snapshot: {}s, the tool's own {}s",
        report["seconds"], report["toolSeconds"]
    );

    // The safety snapshot holds what was there before: restoring it brings the changes back.
    let safety = report["safetySnapshot"].as_str().unwrap().to_string();
    let listed = r.run(&["backup", "--list", "-o", "json"]).await.ok_json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == safety.as_str() && s["origin"] == "safety")
    );
    let back = r
        .run(&["restore", "--snapshot", &safety, "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(back["passed"], true);
    assert_eq!(fingerprint(&r), changed);

    // `latest`: the newest ready scheduled or manual snapshot (not a safety one).
    let run = r
        .run(&["restore", "--snapshot", "latest", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(run["snapshot"], snap.as_str());
    assert_eq!(fingerprint(&r), at_snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_changes_nothing() {
    let r = release("sr_refuse").await;
    let snap = snapshot_now(&r).await;
    let before = r.cluster.versions();
    let snapshots_before = r.cluster.fake.list("VolumeSnapshot", NS).len();
    let data = fingerprint(&r);
    let unchanged = |r: &Release, what: &str| {
        assert_eq!(
            r.cluster.versions(),
            before,
            "{what}: nothing in the namespace changed"
        );
        assert_eq!(
            r.cluster.fake.list("VolumeSnapshot", NS).len(),
            snapshots_before,
            "{what}: no snapshot taken"
        );
        assert_eq!(fingerprint(r), data, "{what}: the data is as it was");
    };

    let run = r
        .run(&["restore", "--snapshot", "no-such-snapshot", "--yes"])
        .await;
    run.refused(
        2,
        "VolumeSnapshot no-such-snapshot does not exist",
        "backup --list",
    );
    unchanged(&r, "missing");

    let run = r.run(&["restore", "--snapshot", &snap]).await;
    run.refused(2, "needs confirmation, and there is no terminal", "--yes");
    unchanged(&r, "no terminal");

    // Another release's snapshot, or someone's without labels.
    put_snapshot(
        &r.cluster.fake,
        "foreign",
        PVC,
        snapshot_labels("other-release", None),
    );
    let run = r.run(&["restore", "--snapshot", "foreign", "--yes"]).await;
    run.refused(
        2,
        "is not one of release auth-postgres-dev's",
        "--force-foreign",
    );

    // Not ready (a driver still at it), failed (the controller's error).
    r.cluster
        .fake
        .set_snapshots(fake_kube::SnapshotBehavior::Never);
    put_snapshot(
        &r.cluster.fake,
        "unready",
        PVC,
        snapshot_labels("auth-postgres-dev", Some("manual")),
    );
    let run = r.run(&["restore", "--snapshot", "unready", "--yes"]).await;
    run.refused(
        4,
        "VolumeSnapshot unready is not ready to use",
        "backup --list",
    );
    r.cluster
        .fake
        .set_snapshots(fake_kube::SnapshotBehavior::Failing(
            "disk snapshot quota exceeded",
        ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let run = r.run(&["restore", "--snapshot", "unready", "--yes"]).await;
    run.refused(
        4,
        "is not ready: disk snapshot quota exceeded",
        "backup --list",
    );
    r.cluster
        .fake
        .set_snapshots(fake_kube::SnapshotBehavior::Never);

    // No safety snapshot where the class deletes old volumes: it would be the only copy.
    reclaim(&r, "Delete");
    let run = r
        .run(&[
            "restore",
            "--snapshot",
            &snap,
            "--yes",
            "--no-safety-snapshot",
        ])
        .await;
    run.refused(
        2,
        "would be the only copy",
        "leave out --no-safety-snapshot",
    );
    // A class whose driver is not the snapshot's.
    r.cluster
        .fake
        .merge_patch(
            "StorageClass",
            "",
            "managed-standard",
            json!({"provisioner": "file.csi.azure.com", "reclaimPolicy": "Retain"}),
        )
        .unwrap();
    let run = r.run(&["restore", "--snapshot", &snap, "--yes"]).await;
    run.refused(2, "cannot make a volume from snapshot", "storage.className");
    // prod has no volume.
    let run = r
        .run(&["restore", "--env", "prod", "--snapshot", &snap, "--yes"])
        .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.error_line().contains("has no database in the cluster"),
        "{}",
        run.stderr
    );
    // Those objects were the test's own doing; the release's are untouched.
    let versions: Vec<(String, String)> = r
        .cluster
        .versions()
        .into_iter()
        .filter(|(id, _)| !id.starts_with("VolumeSnapshot/"))
        .collect();
    let before: Vec<(String, String)> = before
        .into_iter()
        .filter(|(id, _)| !id.starts_with("VolumeSnapshot/"))
        .collect();
    assert_eq!(versions, before);
    assert_eq!(fingerprint(&r), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_volume_that_cannot_be_made_ends_with_the_old_data_back() {
    let r = release("sr_fail").await;
    let snap = snapshot_now(&r).await;
    change(&r);
    let changed = fingerprint(&r);
    r.cluster.fake.fail_restore_from(Some(&snap));
    let run = r
        .run(&["restore", "--snapshot", &snap, "--yes", "--timeout", "5s"])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = run.error_line();
    assert!(
        line.contains(&format!("restoring from {snap} failed")),
        "{line}"
    );
    assert!(
        line.contains("the previous data is back from the safety snapshot"),
        "{line}"
    );
    assert!(
        line.contains("disk quota exceeded") || line.contains("not ready"),
        "{line}"
    );
    // The release runs on its previous data, from the safety snapshot.
    assert_eq!(fingerprint(&r), changed);
    let pvc = r
        .cluster
        .fake
        .get("PersistentVolumeClaim", NS, PVC)
        .unwrap();
    assert!(
        pvc["spec"]["dataSource"]["name"]
            .as_str()
            .unwrap()
            .contains("before-restore"),
        "{pvc}"
    );
    assert_eq!(pvc["status"]["phase"], "Bound");
    let verify = r.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(verify["passed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_part_way_then_the_same_command_finishes_it() {
    let r = release("sr_int").await;
    let at_snapshot = fingerprint(&r);
    let snap = snapshot_now(&r).await;
    change(&r);
    // A pod that takes its time to stop: the interrupt lands while the tool waits for it.
    r.cluster
        .fake
        .set_termination(std::time::Duration::from_secs(3));
    let home = tempfile::tempdir().unwrap();
    let kc = r.cluster.kubeconfig.display().to_string();
    let child = crate::support::bin_command(
        home.path(),
        &[
            "restore",
            "--snapshot",
            &snap,
            "--yes",
            "--kubeconfig",
            &kc,
            "--values",
            &r.values,
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the restore never scaled down"
        );
        let sts = r.cluster.fake.get("StatefulSet", NS, STS).unwrap();
        if sts["spec"]["replicas"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = crate::support::ctrl_c(child).await;
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let sts = r.cluster.fake.get("StatefulSet", NS, STS).unwrap();
    let record: Value = serde_json::from_str(
        sts["metadata"]["annotations"]["phonebill-db/restore"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["snapshot"], snap.as_str());
    // Another snapshot may not be restored meanwhile.
    let other = r
        .run(&["restore", "--snapshot", "latest-but-other", "--yes"])
        .await;
    other.refused(
        2,
        &format!("a restore from {snap} is under way"),
        &format!("restore --snapshot {snap}"),
    );
    // The same command finishes it.
    r.cluster
        .fake
        .set_termination(std::time::Duration::from_millis(200));
    let done = r
        .run(&["restore", "--snapshot", &snap, "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(done["resumed"], true);
    assert_eq!(done["safetySnapshot"], record["safety"]);
    assert_eq!(done["passed"], true);
    assert_eq!(fingerprint(&r), at_snapshot);
}
