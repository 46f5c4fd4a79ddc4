//! `rotate-password`: the database and the Secrets change together, the workloads that read the
//! Secret are found and restarted, and every refusal or failure leaves the old password working.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fake_kube::Fault;
use serde_json::{Value, json};

use crate::pg::Release;
use crate::support::{ADMIN_SECRET, APP_SECRET, Cluster, NS};

/// A new login as `user` with `password`, straight to the throwaway server (as an app would).
async fn logs_in(r: &Release, user: &str, password: &str) -> bool {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(r.pg.port)
        .user(user)
        .password(password)
        .dbname(&r.database)
        .connect_timeout(Duration::from_secs(5));
    match config.connect(tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client.simple_query("SELECT 1").await.is_ok()
        }
        Err(_) => false,
    }
}

fn deployment(name: &str, pod_spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "tier": "application"}}, "spec": pod_spec}}})
}

async fn installed(tag: &str) -> Release {
    let r = Release::new(tag).await;
    r.install().await;
    r.run(&["apply-schema", "-o", "json"]).await.ok_json();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_password_changes_in_the_database_and_its_secrets_at_once() {
    let r = installed("rotate").await;
    let old = r.secret(APP_SECRET, "auth-user-password");
    assert!(logs_in(&r, &r.app, &old).await);
    // The app tier: one Deployment reads the Secret as env, one as a volume, one not at all.
    let fake = &r.cluster.fake;
    fake.create(NS, deployment("auth-api", json!({"containers": [{"name": "api", "image": "phonebill/auth-api:1",
        "env": [{"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": APP_SECRET, "key": "database-url"}}}]}]})))
        .unwrap();
    fake.create(
        NS,
        deployment(
            "auth-worker",
            json!({"containers": [{"name": "worker", "image": "phonebill/auth-worker:1"}],
        "volumes": [{"name": "db", "secret": {"secretName": APP_SECRET}}]}),
        ),
    )
    .unwrap();
    fake.create(
        NS,
        deployment(
            "billing",
            json!({"containers": [{"name": "billing", "image": "phonebill/billing:1"}]}),
        ),
    )
    .unwrap();
    let generation = |name: &str| {
        fake.get("Deployment", NS, name).unwrap()["metadata"]["generation"]
            .as_i64()
            .unwrap()
    };
    let (api_before, billing_before) = (generation("auth-api"), generation("billing"));
    // A slow API server while the app's Secret is written: the new password is set in the
    // database but not committed, so logins with the Secret's password go on working.
    fake.inject(
        &format!("/secrets/{APP_SECRET}"),
        Some("PATCH"),
        1,
        Fault::Delay(Duration::from_millis(1500)),
    );

    // A probe logs in again and again with the password the Secret holds at that moment.
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let (done, r, old) = (done.clone(), &r, &old);
        async move {
            let mut attempts: Vec<(bool, bool)> = Vec::new(); // (old password, logged in)
            while !done.load(Ordering::SeqCst) {
                let now = r.secret(APP_SECRET, "auth-user-password");
                attempts.push((now == *old, logs_in(r, &r.app, &now).await));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            attempts
        }
    };
    let rotation = async {
        let run = r
            .run(&[
                "rotate-password",
                "--role",
                "app",
                "--restart",
                "--yes",
                "-o",
                "json",
            ])
            .await;
        done.store(true, Ordering::SeqCst);
        run
    };
    let (run, attempts) = tokio::join!(rotation, probe);
    let report = run.ok_json();

    let new = r.secret(APP_SECRET, "auth-user-password");
    assert_ne!(new, old);
    assert!(logs_in(&r, &r.app, &new).await, "the new password works");
    assert!(!logs_in(&r, &r.app, &old).await, "the old one is refused");
    // Both Secrets hold it, the URL too, and the verifier a new volume would start with.
    assert_eq!(r.secret(ADMIN_SECRET, "password"), new);
    let url = r.secret(APP_SECRET, "database-url");
    assert!(url.contains(&format!(":{new}@")), "{url}");
    assert!(
        r.secret(ADMIN_SECRET, "app-password-scram")
            .starts_with("SCRAM-SHA-256$4096:")
    );
    assert_ne!(r.secret(ADMIN_SECRET, "app-password-scram"), "");
    assert_eq!(report["secrets"], json!([ADMIN_SECRET, APP_SECRET]));
    assert_eq!(report["loginChecked"], true);
    assert_eq!(report["passwordFrom"], "generated");

    // Logins with the Secret's password of the moment failed at most at the switch itself.
    let old_attempts: Vec<bool> = attempts.iter().filter(|a| a.0).map(|a| a.1).collect();
    let new_attempts: Vec<bool> = attempts.iter().filter(|a| !a.0).map(|a| a.1).collect();
    assert!(
        old_attempts.len() >= 10,
        "the probe ran through the slow write: {attempts:?}"
    );
    let early = &old_attempts[..old_attempts.len() - 1];
    assert!(
        early.iter().all(|ok| *ok),
        "the old password worked until the Secret changed: {attempts:?}"
    );
    if let Some((_, later)) = new_attempts.split_first() {
        assert!(later.iter().all(|ok| *ok), "{attempts:?}");
    }
    eprintln!(
        "probe: {} logins with the old password, {} with the new, {} failed",
        old_attempts.len(),
        new_attempts.len(),
        attempts.iter().filter(|a| !a.1).count()
    );

    // The readers, found and restarted; the rest left alone.
    let readers: Vec<(&str, &Value)> = report["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), &r["via"]))
        .collect();
    assert_eq!(
        readers,
        [
            ("auth-api", &json!(["env DB_URL in container api"])),
            ("auth-worker", &json!(["volume db"]))
        ]
    );
    assert_eq!(report["restarted"], true);
    assert!(generation("auth-api") > api_before);
    assert_eq!(generation("billing"), billing_before);
    let api = fake.get("Deployment", NS, "auth-api").unwrap();
    assert!(
        api["spec"]["template"]["metadata"]["annotations"]["phonebill-db/restartedAt"].is_string(),
        "{api}"
    );
    // What uses the Secrets afterwards works with the new password: verify logs in as the app.
    let verify = r.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(verify["passed"], true, "{verify}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_password_from_the_environment_and_every_refusal_changes_nothing() {
    let r = installed("rotadm").await;
    let admin_before = r.secret(ADMIN_SECRET, "postgres-password");
    let app_before = r.secret(APP_SECRET, "auth-user-password");
    let secrets = || {
        (
            r.cluster.secret_data(ADMIN_SECRET),
            r.cluster.secret_data(APP_SECRET),
        )
    };
    let before = secrets();
    let kc = r.cluster.kubeconfig.display().to_string();
    let with_env = async |env: &[(&str, &str)], args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", &kc, "--values", r.values_for(args)]);
        crate::support::run_bin_env(r.cluster.dir.path(), &all, env).await
    };

    // Refused before anything is read or changed (exit 2).
    with_env(
        &[],
        &[
            "rotate-password",
            "--role",
            "app",
            "--password-from-env",
            "NOT_SET",
            "--yes",
        ],
    )
    .await
    .refused(2, "the variable is not set", "at least 16 characters");
    with_env(
        &[("NEW_PW", "short")],
        &[
            "rotate-password",
            "--role",
            "app",
            "--password-from-env",
            "NEW_PW",
            "--yes",
        ],
    )
    .await
    .refused(2, "shorter than 16 characters", "generate one");
    with_env(
        &[("NEW_PW", &app_before)],
        &[
            "rotate-password",
            "--role",
            "app",
            "--password-from-env",
            "NEW_PW",
            "--yes",
        ],
    )
    .await
    .refused(2, "is the one it has", "give another one");
    with_env(&[], &["rotate-password", "--role", "app"])
        .await
        .refused(2, "", "--yes");
    with_env(
        &[],
        &[
            "rotate-password",
            "--role",
            "admin",
            "--env",
            "prod",
            "--yes",
        ],
    )
    .await
    .refused(2, "managed server", "az postgres flexible-server update");
    assert_eq!(secrets(), before);

    // Not allowed to write Secrets: said before anything changes.
    r.cluster.fake.deny("patch", "", "secrets");
    r.run(&["rotate-password", "--role", "app", "--yes"])
        .await
        .failed_saying(1, &["not allowed to patch secrets", "nothing was changed"]);
    r.cluster.fake.allow_all();
    // The app's Secret cannot be written (the admin's was): the database rolls back, the
    // admin's Secret is put back.
    r.cluster.fake.inject(
        &format!("/secrets/{APP_SECRET}"),
        Some("PATCH"),
        1,
        Fault::Status {
            code: 403,
            retry_after: None,
        },
    );
    r.run(&["rotate-password", "--role", "app", "--yes"])
        .await
        .failed_saying(1, &["the Secrets were put back; nothing was changed"]);
    assert_eq!(secrets(), before);
    assert!(
        logs_in(&r, &r.app, &app_before).await,
        "the old password still works"
    );

    // Not installed in that namespace.
    let other = Cluster::with_plan_class().await;
    other.create_namespace();
    other
        .run(&["rotate-password", "--role", "app", "--yes"])
        .await
        .refused(1, "has no Secret", "phonebill-db install");

    // The admin's, from an environment variable.
    let new_admin = "a-new-admin-password-from-the-vault";
    let run = with_env(
        &[("NEW_PW", new_admin)],
        &[
            "rotate-password",
            "--role",
            "admin",
            "--password-from-env",
            "NEW_PW",
            "--yes",
            "-o",
            "json",
        ],
    )
    .await;
    let report = run.ok_json();
    assert_eq!(report["passwordFrom"], "environment variable NEW_PW");
    assert_eq!(report["secrets"], json!([ADMIN_SECRET]));
    assert_eq!(r.secret(ADMIN_SECRET, "postgres-password"), new_admin);
    assert!(logs_in(&r, &r.admin, new_admin).await);
    assert!(!logs_in(&r, &r.admin, &admin_before).await);
    assert_eq!(
        r.secret(APP_SECRET, "auth-user-password"),
        app_before,
        "the app's is untouched"
    );
    // The metrics exporter has a login of its own: the admin's rotation leaves it logged in, and
    // the report says what reads the admin password (the StatefulSet only at its volume's start).
    let metrics = format!("{}_metrics", r.database);
    let metrics_password = r.secret(ADMIN_SECRET, "metrics-password");
    assert!(logs_in(&r, &metrics, &metrics_password).await);
    let sts = r
        .cluster
        .fake
        .get("StatefulSet", crate::support::NS, crate::support::STS)
        .unwrap();
    let exporter = &sts["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(exporter["env"][1]["value"], metrics.as_str(), "{exporter}");
    let text = with_env(
        &[("NEW_PW", "and-another-admin-password-again")],
        &[
            "rotate-password",
            "--role",
            "admin",
            "--password-from-env",
            "NEW_PW",
            "--yes",
        ],
    )
    .await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout
            .contains("its metrics exporter has a login of its own and is not affected"),
        "{}",
        text.stdout
    );
    assert!(logs_in(&r, &metrics, &metrics_password).await);
    // The tool itself goes on with the new one (it reads it from the Secret).
    let verify = r.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(verify["passed"], true, "{verify}");
    assert_eq!(
        crate::support::check(&verify, "metrics login")["status"],
        "pass",
        "{verify}"
    );
}
