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
    assert_eq!(j["deleted"].as_array().unwrap().len(), 7, "{j}");
    // The data and what opens it stay: the volume, the passwords, the CA and certificate.
    assert_eq!(
        c.fake.inventory(NS),
        vec![
            format!("PersistentVolumeClaim/{PVC}"),
            format!("Secret/{APP_SECRET}"),
            format!("Secret/{ADMIN_SECRET}"),
            format!("Secret/{ADMIN_SECRET}-ca"),
            format!("Secret/{TLS_SECRET}"),
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
    assert_eq!(c.fake.inventory(NS), crate::support::expected_inventory());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_data_without_confirmation_deletes_nothing() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let before = c.versions();
    let run = c.run(&["uninstall", "--delete-data"]).await;
    assert_eq!(run.code, 1);
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
    assert_eq!(c.fake.inventory(NS).len(), 5, "claim and Secrets untouched");
}
