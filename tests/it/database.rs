//! apply-schema and verify against the real (throwaway) PostgreSQL: through the fake API server's
//! port-forward exactly as on a cluster, and through --database-url with and without TLS.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::pg::{Pg, Release, run_url};
use crate::support::{APP_SECRET, check};

fn failed_checks(v: &Value) -> BTreeSet<String> {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn detail<'a>(v: &'a Value, name: &str) -> &'a str {
    check(v, name)["detail"].as_str().unwrap_or_default()
}

fn status_of<'a>(v: &'a Value, name: &str) -> &'a str {
    check(v, name)["status"].as_str().unwrap_or_default()
}

fn applied_ids(v: &Value) -> Vec<String> {
    v["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

const ALL: [&str; 4] = [
    "0001_extensions",
    "0002_auth_tables",
    "0003_reference_data",
    "0100_dev_sample_accounts",
];

#[tokio::test]
async fn through_the_pod_install_apply_schema_verify_and_a_second_run_applies_nothing() {
    let r = Release::new("pod").await;
    r.install().await;

    let dry = r.run(&["apply-schema", "--dry-run", "-o", "json"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(applied_ids(&dry.json()), ALL);
    assert_eq!(
        r.psql("SELECT to_regclass('public.auth_users') IS NULL"),
        "t",
        "dry run changed nothing"
    );

    let first = r.run(&["apply-schema", "-o", "json"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.json();
    assert_eq!(applied_ids(&first), ALL);
    assert_eq!(first["role"]["passwordSynced"], true);
    assert!(
        first["target"].as_str().unwrap().contains("port-forward"),
        "{first}"
    );

    let verify = r.run(&["verify", "-o", "json"]).await;
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    let v = verify.json();
    assert_eq!(v["passed"], true);
    assert!(failed_checks(&v).is_empty());
    for name in [
        "pod ready",
        "data volume bound",
        "services have endpoints",
        "secrets present",
        "app role connects",
        "sample accounts",
    ] {
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .expect(name);
        assert_eq!(c["status"], "pass", "{c}");
    }
    assert_eq!(
        r.psql("SELECT user_id FROM auth_users ORDER BY 1"),
        "testuser01\ntestuser02\ntestuser03"
    );

    // status asks the database too (runbook 7.1): server, connections, size.
    let status = r.run(&["status", "-o", "json"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let db = &status.json()["database"];
    assert_eq!(db["name"], r.database.as_str());
    assert_eq!(db["reachable"], true, "{db}");
    assert!(
        db["server"].as_str().unwrap().starts_with("PostgreSQL "),
        "{db}"
    );
    assert!(db["connections"].as_i64().unwrap() >= 1, "{db}");
    let size: i64 = r
        .psql(&format!("SELECT pg_database_size('{}')", r.database))
        .parse()
        .unwrap();
    let reported = db["sizeBytes"].as_i64().unwrap();
    assert!(
        (reported - size).abs() < 1024 * 1024,
        "reported {reported}, catalog {size}"
    );

    let second = r.run(&["apply-schema", "-o", "json"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let second = second.json();
    assert!(applied_ids(&second).is_empty(), "{second}");
    assert_eq!(second["alreadyApplied"], 4);
    assert_eq!(
        r.psql("SELECT count(*) FROM phonebill_db.schema_migrations"),
        "4"
    );

    // The app role's password drifted from its Secret: verify says so, apply-schema puts it back.
    r.psql(&format!("ALTER ROLE {} PASSWORD 'drifted'", r.app));
    let drift = r.run(&["verify", "-o", "json"]).await;
    assert_eq!(drift.code, 4, "{}", drift.stderr);
    assert_eq!(
        failed_checks(&drift.json()),
        BTreeSet::from(["app role connects".to_string()])
    );
    assert!(detail(&drift.json(), "app role connects").contains("password authentication failed"));
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    let app_pw = r.secret(APP_SECRET, "auth-user-password");
    assert_eq!(
        r.pg.psql_as(&r.app, &app_pw, &r.database, "SELECT current_user")
            .unwrap(),
        r.app
    );
    assert_eq!(r.run(&["verify"]).await.code, 0);
}

#[tokio::test]
async fn through_the_pod_before_install_names_the_missing_pod() {
    let r = Release::new("nopod").await;
    r.cluster.create_namespace();
    let run = r.run(&["apply-schema"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.error_line()
            .contains("no database pod of release auth-postgres-dev"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("phonebill-db status"));
    // verify reports the cluster checks and skips the database ones, exit 4.
    let v = r.run(&["verify", "-o", "json"]).await;
    assert_eq!(v.code, 4, "{}", v.stderr);
    let v = v.json();
    assert!(failed_checks(&v).contains("pod ready"), "{v}");
    assert!(failed_checks(&v).contains("secrets present"), "{v}");
    assert_eq!(
        detail(&v, "database checks"),
        "the pod is not ready or a Secret is missing"
    );
}

#[tokio::test]
async fn port_forward_denied_by_rbac_is_one_line() {
    let r = Release::new("rbac").await;
    r.install().await;
    r.cluster.fake.deny("create", "", "pods/portforward");
    let run = r.run(&["apply-schema"]).await;
    assert_eq!(run.code, 1);
    let line = run.error_line();
    assert!(
        line.contains("port-forward") && line.contains("forbidden"),
        "{line}"
    );
}

/// Apply through --database-url (app password from the environment) and verify.
async fn apply_url(pg: &Pg, db: &str, app: &str) -> Value {
    let url = pg.url(db);
    let values = values_file(db, app);
    let run = run_url(
        &[
            "apply-schema",
            "-o",
            "json",
            "--database-url",
            &url,
            "--values",
            &values.1,
        ],
        &[("PHONEBILL_APP_PASSWORD", "app-secret-1")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

/// `verify` of `db` through a URL; `extra` flags after it (`--strict`).
async fn verify_url(pg: &Pg, db: &str, app: &str, extra: &[&str]) -> (i32, Value, String) {
    let values = values_file(db, app);
    let url = pg.url(db);
    let mut args = vec![
        "verify",
        "-o",
        "json",
        "--database-url",
        &url,
        "--values",
        &values.1,
    ];
    args.extend(extra);
    let run = run_url(&args, &[("PHONEBILL_APP_PASSWORD", "app-secret-1")]).await;
    let json = run.json();
    (run.code, json, run.stderr)
}

/// A values file naming this test's database and app role (its name is as unique as the database's).
fn values_file(db: &str, app: &str) -> ((), String) {
    let path = std::env::temp_dir().join(format!("{db}-values.yaml"));
    std::fs::write(&path, format!("database: {db}\nappUser: {app}\n")).expect("write values");
    ((), path.display().to_string())
}

#[tokio::test]
async fn through_a_url_apply_schema_verify_and_a_second_run_applies_nothing() {
    let pg = Pg::get();
    let db = pg.create_database("url");
    let app = format!("{db}_app");
    assert_eq!(applied_ids(&apply_url(&pg, &db, &app).await), ALL);
    let (code, v, stderr) = verify_url(&pg, &db, &app, &[]).await;
    assert_eq!(code, 0, "{v}\n{stderr}");
    assert_eq!(v["passed"], true);
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "pod ready")
    );
    let again = apply_url(&pg, &db, &app).await;
    assert!(applied_ids(&again).is_empty());
    assert_eq!(again["alreadyApplied"], 4);
    // The app role logs in with the password given, and is no superuser.
    assert_eq!(
        pg.psql_as(
            &app,
            "app-secret-1",
            &db,
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        .unwrap(),
        "f"
    );
    // "ALL TABLES IN SCHEMA public" reached pg_stat_statements' views: the app keeps no privilege
    // of its own on an extension's relations (PUBLIC's SELECT stays, as the extension made it).
    let own = pg.psql(
        &db,
        &format!(
            "SELECT count(*) FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
             WHERE c.relname LIKE 'pg_stat_statements%' AND a.grantee = '{app}'::regrole"
        ),
    );
    assert_eq!(own, "0");
    assert_eq!(
        pg.psql(
            &db,
            &format!("SELECT has_table_privilege('{app}', 'pg_stat_statements', 'SELECT')")
        ),
        "t"
    );
}

#[tokio::test]
async fn verify_names_exactly_what_is_wrong() {
    let pg = Pg::get();
    let damages: [(&str, &str, &str, &str); 7] = [
        (
            "DROP TABLE auth_permission_access_log",
            "tables",
            "table auth_permission_access_log missing",
            "auth_permission_access_log",
        ),
        (
            "DROP INDEX idx_auth_login_history_attempted_at",
            "indexes",
            "index auth_login_history(attempted_at) missing",
            "",
        ),
        (
            "DROP TRIGGER trg_auth_services_updated_at ON auth_services",
            "updated_at trigger",
            "trigger on auth_services (before update, auth_set_updated_at) missing",
            "",
        ),
        (
            "REVOKE DELETE ON auth_user_sessions FROM {app}",
            "app role privileges",
            "no DELETE on auth_user_sessions",
            "",
        ),
        (
            "GRANT INSERT, DELETE ON pg_stat_statements TO {app}",
            "app role privileges",
            "DELETE, INSERT on pg_stat_statements (an extension's, not the app's)",
            "",
        ),
        (
            "ALTER DATABASE {db} SET work_mem = '8MB'",
            "setting work_mem",
            "8MB, the profile says 4MB",
            "",
        ),
        (
            "ALTER TABLE auth_users DROP CONSTRAINT chk_auth_users_account_status",
            "constraints",
            "check auth_users.account_status in (ACTIVE, LOCKED, SUSPENDED, INACTIVE) missing",
            "",
        ),
    ];
    for (sql, check, want, _) in damages {
        let db = pg.create_database("damage");
        let app = format!("{db}_app");
        apply_url(&pg, &db, &app).await;
        pg.psql(&db, &sql.replace("{app}", &app).replace("{db}", &db));
        // The server's settings are a failure only with --strict on a URL (warn without it).
        if check.starts_with("setting ") {
            let (code, v, stderr) = verify_url(&pg, &db, &app, &[]).await;
            assert_eq!(code, 0, "{sql}: {stderr}");
            assert_eq!(status_of(&v, check), "warn", "{sql}: {v}");
            assert!(detail(&v, check).starts_with(want), "{sql}: {v}");
        }
        let (code, v, stderr) = verify_url(&pg, &db, &app, &["--strict"]).await;
        assert_eq!(code, 4, "{sql}: {stderr}");
        assert_eq!(
            failed_checks(&v),
            BTreeSet::from([check.to_string()]),
            "{sql}: {v}"
        );
        assert_eq!(detail(&v, check), want, "{sql}");
        assert!(
            stderr.contains(&format!(
                "1 of {} checks failed: {check}",
                v["checks"].as_array().unwrap().len()
            )),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn through_the_pod_a_missing_app_secret_is_named() {
    let r = Release::new("nosecret").await;
    r.install().await;
    r.cluster.fake.cluster().purge(
        fake_kube::store::info_of("Secret"),
        crate::support::NS,
        APP_SECRET,
    );
    let run = r.run(&["apply-schema"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.error_line()
            .contains("Secret auth-db-secret is missing in namespace phonebill-dev"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("phonebill-db install"));
    assert_eq!(
        r.psql("SELECT to_regclass('public.auth_users') IS NULL"),
        "t",
        "nothing applied"
    );
}

/// A release from before the exporter had a login of its own (its Secret without the key, its
/// server without the role): install adds the password and says to run apply-schema, verify fails
/// on the exporter's login until then, and apply-schema makes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_release_gets_the_exporters_login_from_apply_schema() {
    let r = Release::new("metrics_login").await;
    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    let metrics = format!("{}_metrics", r.database);
    // As it was before: no key in the Secret, no role on the server.
    let secret = r
        .cluster
        .fake
        .get("Secret", crate::support::NS, crate::support::ADMIN_SECRET)
        .unwrap();
    let mut data = secret["data"].clone();
    let obj = data.as_object_mut().unwrap();
    obj.remove("metrics-password");
    obj.remove("metrics-password-scram");
    {
        let mut c = r.cluster.fake.cluster();
        let mut s = secret.clone();
        s["data"] = data;
        c.system_write(fake_kube::store::info_of("Secret"), crate::support::NS, s);
    }
    r.psql(&format!(
        "REVOKE CONNECT ON DATABASE {} FROM {metrics}; DROP ROLE {metrics}",
        r.database
    ));
    let run = r.run(&["install", "--timeout", "30s"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("logs in as its own role {metrics}"))
            && run.stderr.contains("apply-schema"),
        "{}",
        run.stderr
    );
    let added = r.secret(crate::support::ADMIN_SECRET, "metrics-password");
    assert_eq!(added.len(), 32);
    let verify = r.run(&["verify", "-o", "json"]).await;
    assert_eq!(verify.code, 4, "{}", verify.stdout);
    let report = verify.json();
    assert_eq!(
        check(&report, "metrics login")["status"],
        "fail",
        "{report}"
    );
    assert!(
        verify.hint_line().contains("apply-schema"),
        "{}",
        verify.stderr
    );
    let applied = r.run(&["apply-schema", "-o", "json"]).await.ok_json();
    assert_eq!(
        applied["metricsRole"]["role"],
        metrics.as_str(),
        "{applied}"
    );
    let verify = r.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(verify["passed"], true, "{verify}");
    assert_eq!(
        r.psql(&format!(
            "SELECT pg_has_role('{metrics}', 'pg_monitor', 'MEMBER') AND NOT rolsuper FROM pg_roles WHERE rolname = '{metrics}'"
        )),
        "t"
    );
}
