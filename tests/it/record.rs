//! The release remembers what install applied: the next install (and every command on the
//! release) starts from it, `--reset-values` from the profile, `status` shows it.

use serde_json::json;

use crate::support::{Cluster, NS, PVC};

const RECORD: &str = "auth-postgres-dev-values";
const CONFIG: &str = "auth-postgres-dev-postgresql-configuration";

fn postgresql_conf(c: &Cluster) -> String {
    c.fake.get("ConfigMap", NS, CONFIG).unwrap()["data"]["postgresql.conf"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reinstall_after_choosing_a_storage_class_needs_no_flag_and_changes_nothing() {
    // Stock AKS: the plan's class is missing, the first install names one of AKS's.
    let c = Cluster::aks().await;
    c.install_ok(&["--storage-class", "managed-csi", "--create-snapshot-class"])
        .await;
    c.reinstall_changes_nothing().await;

    // status shows what was recorded, who and which version installed.
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    let installed = &status["installed"];
    assert_eq!(
        installed["values"],
        json!({"storage": {"className": "managed-csi"}})
    );
    assert_eq!(installed["installedBy"], "fake-user");
    assert_eq!(installed["toolVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(installed["environment"], "dev");
    let text = c.run(&["status"]).await;
    assert!(
        text.stdout.contains("installed by fake-user at ")
            && text
                .stdout
                .contains("values: storage.className=managed-csi"),
        "{}",
        text.stdout
    );
    // Nothing secret in the record.
    let record = c.fake.get("Secret", NS, RECORD).unwrap();
    let password = c.secret_text("auth-db-secret", "auth-user-password");
    assert!(!record.to_string().contains(&password));
    assert_eq!(
        record["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "phonebill-db"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_reused_merged_overridden_and_reset() {
    let c = Cluster::with_plan_class().await;
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "postgresql:\n  workMem: 8MB\n").unwrap();
    let values = values.to_str().unwrap();
    c.install_ok(&["--values", values]).await;
    assert!(postgresql_conf(&c).contains("work_mem = '8MB'"));

    // Without --values: the recorded 8MB stays (no change), and verify's expectations follow it.
    let report = c.install_ok(&[]).await;
    assert!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["change"] == "unchanged"),
        "{report}"
    );
    assert!(postgresql_conf(&c).contains("work_mem = '8MB'"));

    // Another file: its keys laid over the recorded ones; a key given again wins.
    let more = c.dir.path().join("more.yaml");
    std::fs::write(
        &more,
        "postgresql:\n  maxConnections: 50\n  workMem: 16MB\n",
    )
    .unwrap();
    c.install_ok(&["--values", more.to_str().unwrap()]).await;
    let conf = postgresql_conf(&c);
    assert!(
        conf.contains("work_mem = '16MB'") && conf.contains("max_connections = 50"),
        "{conf}"
    );
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(
        status["installed"]["values"],
        json!({"postgresql": {"maxConnections": 50, "workMem": "16MB"}})
    );

    // --reset-values: the profile again (and only what this install is given).
    let report = c.install_ok(&["--reset-values"]).await;
    assert!(postgresql_conf(&c).contains("work_mem = '4MB'"));
    assert!(postgresql_conf(&c).contains("max_connections = 100"));
    assert!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == RECORD && o["change"] == "configured"),
        "{report}"
    );
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["installed"]["values"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_value_this_version_refuses_is_named_and_reset_values_mends_it() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    // As if an older version had recorded a value this one no longer allows.
    c.fake
        .merge_patch(
            "Secret",
            NS,
            RECORD,
            json!({"stringData": {"values.yaml": "storage:\n  size: lots\n"}}),
        )
        .unwrap();
    let before = c.versions();
    let run = c.run(&["install"]).await;
    run.failed_saying(
        2,
        &[
            "the values recorded in Secret auth-postgres-dev-values",
            "--reset-values",
            "key `storage.size`",
        ],
    );
    assert_eq!(c.versions(), before, "nothing changed");
    // status still reports, with a warning.
    let status = c.run(&["status", "-o", "json"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.json()["installed"].is_null());
    let text = c.run(&["status"]).await;
    assert!(
        text.stderr
            .contains("warning: the recorded values are not used"),
        "{}",
        text.stderr
    );
    // Not YAML at all: the same refusal, the same way out.
    c.fake
        .merge_patch(
            "Secret",
            NS,
            RECORD,
            json!({"stringData": {"values.yaml": "storage: [\n"}}),
        )
        .unwrap();
    c.run(&["install"])
        .await
        .failed_saying(2, &["key values.yaml of Secret auth-postgres-dev-values"]);
    c.install_ok(&["--reset-values"]).await;
    assert_eq!(
        c.run(&["status", "-o", "json"]).await.ok_json()["installed"]["values"],
        json!({})
    );
    assert!(c.fake.get("PersistentVolumeClaim", NS, PVC).is_some());
}

/// Every command on the release sees it as installed: verify, run without the values file the
/// release was installed with, checks that release's database, roles and settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_the_release_use_what_install_recorded() {
    let r = crate::pg::Release::new("recorded").await;
    r.install().await;
    r.run(&["apply-schema", "-o", "json"]).await.ok_json();
    let run = r.cluster.run(&["verify", "-o", "json"]).await;
    let report = run.ok_json();
    assert_eq!(report["passed"], true, "{report}");
    let text = report.to_string();
    assert!(
        text.contains(&r.database) || text.contains(&r.app),
        "{report}"
    );
    // It says where the values came from.
    let run = r.cluster.run(&["verify", "-v"]).await;
    assert!(
        run.stderr
            .contains("using the values install recorded in Secret auth-postgres-dev-values")
            && run.stderr.contains(&format!("database={}", r.database)),
        "{}",
        run.stderr
    );
}
