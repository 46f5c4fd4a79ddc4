//! `uninstall`: removes what install made, keeps data unless told, never half-done.

use crate::support::{ADMIN_SECRET, APP_SECRET, Cluster, NS, PVC};

const TLS_SECRET: &str = "auth-postgres-dev-postgresql-tls";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_keeps_the_volume_and_secrets_and_reinstall_keeps_the_passwords() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let secrets = (c.secret_data(ADMIN_SECRET), c.secret_data(APP_SECRET));
    let tls = c.secret_data(TLS_SECRET);
    let run = c.run(&["uninstall", "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = run.json();
    assert_eq!(j["deleted"].as_array().unwrap().len(), 12, "{j}");
    // The data and what opens it stay: the volume, the passwords, the CA and certificate, and the
    // record of the values it was installed with (where it is, its size and class).
    assert_eq!(
        c.fake.inventory(NS),
        vec![
            format!("PersistentVolumeClaim/{PVC}"),
            format!("Secret/{APP_SECRET}"),
            format!("Secret/{ADMIN_SECRET}"),
            format!("Secret/{ADMIN_SECRET}-ca"),
            format!("Secret/{TLS_SECRET}"),
            "Secret/auth-postgres-dev-values".to_string(),
        ]
    );
    // It waited for the pod's graceful termination too.
    assert!(c.fake.list("Pod", NS).is_empty());

    let report = c.install_ok(&[]).await;
    assert_eq!(report["passwords"], "existing");
    assert_eq!(
        (c.secret_data(ADMIN_SECRET), c.secret_data(APP_SECRET)),
        secrets
    );
    assert_eq!(report["tls"]["action"], "existing");
    assert_eq!(
        c.secret_data(TLS_SECRET),
        tls,
        "the certificate is kept like the passwords"
    );
    assert_eq!(
        crate::support::release_inventory(&c.fake),
        crate::support::expected_inventory()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_data_without_confirmation_deletes_nothing() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let before = c.versions();
    let run = c.run(&["uninstall", "--delete-data"]).await;
    assert_eq!(run.code, 2, "a usage error: the command line lacks --yes");
    assert!(
        run.error_line()
            .contains("needs confirmation, and there is no terminal to ask on"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("--yes"));
    assert_eq!(c.versions(), before, "nothing deleted, nothing touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_data_with_yes_removes_everything_and_the_next_install_starts_fresh() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let old = c.secret_data(ADMIN_SECRET);
    let run = c.run(&["uninstall", "--delete-data", "--yes"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        c.fake.inventory(NS).is_empty(),
        "{:?}",
        c.fake.inventory(NS)
    );
    let report = c.install_ok(&[]).await;
    assert_eq!(report["passwords"], "generated");
    assert_ne!(c.secret_data(ADMIN_SECRET), old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_of_nothing_says_so() {
    let c = Cluster::with_plan_class().await;
    let run = c.run(&["uninstall"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("nothing of release auth-postgres-dev to remove"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_without_delete_rights_deletes_nothing() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake.deny("delete", "", "configmaps");
    let before = c.versions();
    let run = c.run(&["uninstall"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.error_line(),
        "error: not allowed to delete configmaps in namespace phonebill-dev; nothing was deleted"
    );
    assert_eq!(c.versions(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_uninstall_needs_no_right_to_delete_data() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake.deny("delete", "", "secrets");
    c.fake.deny("delete", "", "persistentvolumeclaims");
    let run = c.run(&["uninstall"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = c.run(&["uninstall", "--delete-data", "--yes"]).await;
    assert_eq!(run.code, 1);
    assert!(run.error_line().contains("delete persistentvolumeclaims in namespace phonebill-dev; delete secrets in namespace phonebill-dev"), "{}", run.stderr);
    assert_eq!(
        c.fake.inventory(NS).len(),
        6,
        "claim and Secrets (the record's too) untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_uninstall_says_what_is_still_there_and_why() {
    // The node is lost: the pod stays terminating, nobody confirms it stopped.
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake.set_node_ready(false);
    let run = c.run(&["uninstall", "--timeout", "2s", "-o", "json"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["removed"], false, "{report}");
    let pod = report["stillThere"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["object"] == "Pod/auth-postgres-dev-postgresql-0")
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    assert!(
        pod["why"].as_str().unwrap().contains("which is NotReady"),
        "{pod}"
    );
    assert!(
        pod["hint"]
            .as_str()
            .unwrap()
            .contains("--grace-period=0 --force"),
        "{pod}"
    );
    assert!(
        run.error_line().contains("timed out after"),
        "{}",
        run.stderr
    );
    assert!(run.error_line().contains("NotReady"), "{}", run.stderr);
    assert!(run.hint_line().contains("--force"), "{}", run.stderr);
    let text = c.run(&["uninstall", "--timeout", "1s"]).await;
    assert!(
        !text
            .stdout
            .contains("auth-postgres-dev removed from namespace"),
        "never says removed:\n{}",
        text.stdout
    );
    assert!(text.stdout.contains("is NOT removed"), "{}", text.stdout);
    // The node comes back: the next uninstall finishes.
    c.fake.set_node_ready(true);
    let run = c.run(&["uninstall", "--timeout", "30s"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    // A claim held by someone else's finalizer.
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake
        .merge_patch(
            "PersistentVolumeClaim",
            NS,
            PVC,
            serde_json::json!({"metadata": {"finalizers": ["kubernetes.io/pvc-protection", "backup.example.com/hold"]}}),
        )
        .unwrap();
    let run = c
        .run(&["uninstall", "--delete-data", "--yes", "--timeout", "2s"])
        .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.error_line()
            .contains("held by the finalizer backup.example.com/hold"),
        "{}",
        run.stderr
    );
    assert!(
        run.hint_line().contains("patch persistentvolumeclaim"),
        "{}",
        run.stderr
    );
    assert!(c.fake.get("PersistentVolumeClaim", NS, PVC).is_some());
}

/// Off a terminal, each object is said once: in the table, not also as a progress line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_object_is_listed_once() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let run = c.run(&["uninstall"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(
        all.matches("auth-postgres-dev-snapshots").count(),
        // ServiceAccount, ConfigMap, CronJob, Role, RoleBinding of the schedule: one row each.
        5,
        "{all}"
    );
    assert!(!run.stderr.contains("deleted"), "{}", run.stderr);
}

/// The snapshots of the data uninstall --delete-data deletes: kept unless asked (and said), then
/// not mistaken for the next install's volume's — not `latest`, not in status's age, not pruned —
/// and restored only with --force-foreign; or deleted with --delete-snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_data_keeps_and_names_the_datas_snapshots_which_a_new_volume_does_not_take_for_its_own()
 {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let old = c.snapshot().await;
    let run = c
        .run(&["uninstall", "--delete-data", "--yes", "-o", "json"])
        .await;
    let report = run.ok_json();
    assert_eq!(
        report["snapshotsKept"],
        serde_json::json!([old]),
        "{report}"
    );
    let text = c.run(&["uninstall", "--delete-data", "--yes"]).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(c.fake.get("VolumeSnapshot", NS, &old).is_some(), "kept");

    // A new install: a new, empty volume of the same name.
    c.install_ok(&[]).await;
    let listed = c.run(&["backup", "--list", "-o", "json"]).await.ok_json();
    let row = &listed.as_array().unwrap()[0];
    assert_eq!(
        (row["name"].as_str(), row["currentData"].as_bool()),
        (Some(old.as_str()), Some(false)),
        "{listed}"
    );
    c.run(&["restore", "--snapshot", "latest", "--yes"])
        .await
        .refused(2, "has no ready snapshot to restore", "backup --list");
    c.run(&["restore", "--snapshot", &old, "--yes"])
        .await
        .refused(
            2,
            "holds the data of a volume that was deleted",
            "--force-foreign",
        );
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert!(
        status["snapshotSchedule"]["newestReadyAgeSeconds"].is_null(),
        "{status}"
    );
    // The schedule's retention keeps to the new data's snapshots (a second apart: newest first).
    let new = c.snapshot().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let kept = c
        .run(&["backup", "--snapshot", "--keep", "1", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(kept["pruned"], serde_json::json!([new]), "{kept}");
    assert!(c.fake.get("VolumeSnapshot", NS, &old).is_some());

    // Now asked to go too: the new data's snapshot goes, the old one (not of it) stays.
    let report = c
        .run(&[
            "uninstall",
            "--delete-data",
            "--delete-snapshots",
            "--yes",
            "-o",
            "json",
        ])
        .await
        .ok_json();
    let latest = kept["snapshot"].as_str().unwrap();
    assert_eq!(
        report["snapshotsDeleted"],
        serde_json::json!([latest]),
        "{report}"
    );
    assert!(c.fake.get("VolumeSnapshot", NS, latest).is_none());
    assert!(c.fake.get("VolumeSnapshot", NS, &old).is_some());
}
