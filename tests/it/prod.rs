//! `--env prod`: the managed server of the prod physical architecture (Azure Database for
//! PostgreSQL Flexible Server),
//! played by the throwaway PostgreSQL with TLS on (its certificate is for `localhost`, signed by the
//! test CA) and an administrator that is NOT a superuser, as Azure's is not (CREATEDB CREATEROLE).
//! The fake API server holds only what install records: two Secrets.
//!
//! Where it cannot be Azure: Azure lets its administrator create the extensions its parameter
//! `azure.extensions` allows (pg_stat_statements among them); PostgreSQL lets a non-superuser create
//! only "trusted" ones. The test lends the administrator superuser for that one statement.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::backup::fingerprint_in;
use crate::pg::{Pg, stdout_or_stderr, unique};
use crate::support::{Cluster, Run, run_bin_env};

const NS: &str = "phonebill-prod";
const SERVER_SECRET: &str = "auth-postgres-prod-postgresql";
const APP_SECRET: &str = "auth-db-secret";

/// A prod environment of this test: its database and roles on the shared server, a values file
/// pointing the profile at it, and a fake cluster.
struct Prod {
    cluster: Cluster,
    pg: Pg,
    database: String,
    admin: String,
    admin_password: String,
    app: String,
    values: String,
}

impl Prod {
    async fn new(tag: &str) -> Prod {
        let pg = Pg::get();
        let cluster = Cluster::aks().await;
        let database = unique(tag);
        let (admin, app) = (format!("{database}_admin"), format!("{database}_app"));
        let admin_password = format!("Adm1n-{}", unique("pw"));
        // Azure's server administrator: may log in, create databases and roles; no superuser; and
        // like every login on Azure (require_secure_transport) refused without TLS (the throwaway
        // server's pg_hba.conf rejects members of tls_required without it).
        pg.psql(
            "postgres",
            &format!(
                "CREATE ROLE {admin} LOGIN CREATEDB CREATEROLE IN ROLE tls_required PASSWORD '{admin_password}'"
            ),
        );
        let values = cluster.dir.path().join("values.yaml");
        std::fs::write(
            &values,
            format!(
                "database: {database}\nadminUser: {admin}\nappUser: {app}\nmanaged:\n  host: localhost\n  port: {}\n",
                pg.port
            ),
        )
        .expect("write values");
        Prod {
            cluster,
            pg,
            database,
            admin,
            admin_password,
            app,
            values: values.display().to_string(),
        }
    }

    /// `phonebill-db --env prod ARGS` with this environment's values, CA and local tools;
    /// `env` adds variables (the rest is scrubbed).
    async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let kc = self.cluster.kubeconfig.display().to_string();
        let ca = self.pg.ca.display().to_string();
        let bin = self.pg.bin.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--env",
            "prod",
            "--values",
            &self.values,
            "--kubeconfig",
            &kc,
        ]);
        let mut vars = vec![
            ("PHONEBILL_CA_FILE", ca.as_str()),
            ("PHONEBILL_PG_BIN", bin.as_str()),
        ];
        vars.extend_from_slice(env);
        run_bin_env(self.cluster.dir.path(), &all, &vars).await
    }

    /// As an operator runs prod's commands: the administrator's password exported (the cluster
    /// does not keep it).
    async fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[("PHONEBILL_ADMIN_PASSWORD", &self.admin_password)])
            .await
    }

    async fn install(&self, args: &[&str]) -> Run {
        let mut all = vec!["install", "-o", "json"];
        all.extend(args);
        self.run_env(&all, &[("PHONEBILL_ADMIN_PASSWORD", &self.admin_password)])
            .await
    }

    fn secret(&self, name: &str, key: &str) -> Option<String> {
        let secret = self.cluster.fake.get("Secret", NS, name)?;
        let b64 = secret["data"][key].as_str()?;
        Some(String::from_utf8(STANDARD.decode(b64).expect("base64")).expect("utf8"))
    }

    fn database_exists(&self) -> bool {
        self.pg.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                self.database
            ),
        ) == "1"
    }

    /// Azure's `azure.extensions` allow-list, played: the administrator may create (and drop)
    /// pg_stat_statements while `on` is true. PostgreSQL has no such list, so the administrator is
    /// a superuser meanwhile.
    fn allow_extensions(&self, on: bool) {
        let attr = if on { "SUPERUSER" } else { "NOSUPERUSER" };
        self.pg
            .psql("postgres", &format!("ALTER ROLE {} {attr}", self.admin));
    }

    fn psql(&self, sql: &str) -> String {
        self.pg.psql(&self.database, sql)
    }
}

/// psql with the app's own URL, as a libpq client (not this tool) reads it: verify-full, CA given.
fn psql_with_url(pg: &Pg, url: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new(pg.bin.join("psql"))
        .args(["-X", "-tA", "-c", sql, url])
        .env("PGSSLROOTCERT", &pg.ca)
        .output()
        .expect("run psql");
    stdout_or_stderr(out)
}

#[tokio::test]
async fn install_records_only_the_secrets_and_the_app_url_is_verified_tls() {
    let p = Prod::new("prod_install").await;
    let r = p.install(&[]).await.ok_json();
    assert_eq!(r["databaseCreated"], true);
    assert_eq!(r["appConnects"], true);
    assert_eq!(r["passwords"], "generated");
    assert!(
        r["tlsVersion"].as_str().unwrap().starts_with("TLSv1."),
        "{r}"
    );
    assert!(p.database_exists());
    // Nothing of an in-cluster database: no StatefulSet, PVC, Service, ConfigMap.
    assert_eq!(
        p.cluster.fake.inventory(NS),
        [
            format!("Secret/{APP_SECRET}"),
            format!("Secret/{SERVER_SECRET}")
        ]
    );
    let app_password = p.secret(SERVER_SECRET, "password").unwrap();
    let url = p.secret(APP_SECRET, "database-url").unwrap();
    assert_eq!(
        url,
        format!(
            "postgresql://{}:{app_password}@localhost:{}/{}?sslmode=verify-full",
            p.app, p.pg.port, p.database
        )
    );
    assert_eq!(p.secret(SERVER_SECRET, "username").unwrap(), p.admin);
    assert_eq!(p.secret(SERVER_SECRET, "sslmode").unwrap(), "verify-full");
    // The server administrator's password is not in the cluster: whoever reads the namespace's
    // Secrets finds no key holding it, and a command without it is refused, nothing touched.
    let kept: Vec<String> = p
        .cluster
        .fake
        .list("Secret", NS)
        .iter()
        .flat_map(|s| {
            s["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, v)| {
                    String::from_utf8(STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !kept.iter().any(|v| v.contains(&p.admin_password)),
        "{kept:?}"
    );
    p.run_env(&["verify"], &[]).await.refused(
        1,
        "password of the server's administrator",
        "PHONEBILL_ADMIN_PASSWORD",
    );
    // libpq itself logs in with the app's URL, and (TLS-only like Azure) is refused without TLS.
    assert_eq!(
        psql_with_url(&p.pg, &url, "SELECT current_user").unwrap(),
        p.app
    );
    p.pg.psql("postgres", &format!("GRANT tls_required TO {}", p.app));
    let no_tls = url.replace("sslmode=verify-full", "sslmode=disable");
    let refused = psql_with_url(&p.pg, &no_tls, "SELECT 1").unwrap_err();
    assert!(refused.contains("no encryption"), "{refused}");

    // Again, without the administrator's password: the recorded one; nothing changes.
    let again = p.run(&["install", "-o", "json"]).await;
    let r = again.ok_json();
    assert_eq!(r["passwords"], "existing");
    assert_eq!(r["databaseCreated"], false);
    assert!(
        r["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["change"] == "unchanged"),
        "{r}"
    );
    assert_eq!(p.secret(APP_SECRET, "database-url").unwrap(), url);

    // A release an older version installed kept the password: used once, then removed by
    // install (its field manager's key, gone from what it applies).
    p.cluster
        .fake
        .merge_patch(
            "Secret",
            NS,
            SERVER_SECRET,
            serde_json::json!({ "data": { "postgres-password": STANDARD.encode(&p.admin_password) } }),
        )
        .unwrap();
    let old = p.run_env(&["status", "-o", "json"], &[]).await.ok_json();
    assert_eq!(old["database"]["reachable"], true, "{old}");
    let again = p.run_env(&["install"], &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("no longer kept in Secret"),
        "{}",
        again.stderr
    );
    assert_eq!(p.secret(SERVER_SECRET, "postgres-password"), None);

    // status: the Secrets and the server's answer; uninstall keeps the Secrets and the database.
    let s = p.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(s["state"], "ready");
    assert_eq!(s["database"]["reachable"], true, "{s}");
    let u = p.run(&["uninstall"]).await;
    assert_eq!(u.code, 0, "{}", u.stderr);
    assert!(u.stdout.contains("is untouched"), "{}", u.stdout);
    assert_eq!(p.cluster.fake.inventory(NS).len(), 2);
    let u = p.run(&["uninstall", "--delete-data", "--yes"]).await;
    assert_eq!(u.code, 0, "{}", u.stderr);
    assert!(p.cluster.fake.inventory(NS).is_empty());
    assert!(
        p.database_exists(),
        "uninstall never touches the managed server's database"
    );
}

#[tokio::test]
async fn apply_schema_verify_backup_and_restore_work_against_the_managed_server() {
    let p = Prod::new("prod_flow").await;
    p.install(&[]).await.ok_json();
    // The extensions as an Azure administrator makes them (owned by it); then no superuser again.
    p.allow_extensions(true);
    p.psql(&format!(
        "SET ROLE {}; CREATE EXTENSION pg_stat_statements",
        p.admin
    ));
    p.allow_extensions(false);
    let applied = p.run(&["apply-schema", "-o", "json"]).await.ok_json();
    let ids: Vec<&str> = applied["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.iter().any(|id| id.contains("sample")),
        "no sample accounts in prod: {ids:?}"
    );
    assert_eq!(p.psql("SELECT count(*) FROM auth_users"), "0");

    let v = p.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(v["passed"], true, "{v}");
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"app URL uses TLS"), "{names:?}");
    assert!(!names.contains(&"pod ready"), "no pod in prod: {names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("setting ")),
        "Azure sets the server's parameters: {names:?}"
    );

    // Some data, a backup, damage, and a restore that needs ENV/DATABASE typed.
    p.pg.generate_rows(&p.database, 50);
    let before: BTreeMap<&str, String> = fingerprint_in(&p.pg, &p.database);
    let file = p.cluster.dir.path().join("prod.dump");
    let file_arg = file.display().to_string();
    let b = p
        .run(&["backup", "--to", &file_arg, "-o", "json"])
        .await
        .ok_json();
    assert_eq!(b["database"], p.database.as_str());
    p.psql("DELETE FROM auth_users WHERE user_id LIKE 'gen-user-1%'");
    p.psql("UPDATE auth_services SET service_name = 'damaged'");
    let damaged = fingerprint_in(&p.pg, &p.database);
    assert_ne!(damaged, before);

    let no_terminal = p.run(&["restore", "--from", &file_arg, "--yes"]).await;
    no_terminal.refused(
        2,
        "needs confirmation",
        &format!("--confirm prod/{}", p.database),
    );
    let wrong = p
        .run(&[
            "restore",
            "--from",
            &file_arg,
            "--yes",
            "--confirm",
            &format!("dev/{}", p.database),
        ])
        .await;
    wrong.refused(2, "does not match", "--confirm prod/");
    assert_eq!(
        fingerprint_in(&p.pg, &p.database),
        damaged,
        "refusals change nothing"
    );
    assert!(
        !has_files_like(p.cluster.dir.path(), "before-restore"),
        "no safety backup either"
    );

    // A whole-database restore drops and re-creates the backup's extensions (pg_restore --clean):
    // pg_stat_statements is on Azure's allow-list, and untrusted in plain PostgreSQL.
    let confirm = format!("prod/{}", p.database);
    p.allow_extensions(true);
    let restored = p
        .run(&[
            "restore",
            "--from",
            &file_arg,
            "--confirm",
            &confirm,
            "-o",
            "json",
        ])
        .await;
    p.allow_extensions(false);
    let restored = restored.ok_json();
    assert_eq!(restored["passed"], true, "{restored}");
    // Restored beside the live database and swapped in (Azure allows the renames): the
    // database as it was is kept under its previous name.
    assert_eq!(restored["mode"], "shadow", "{restored}");
    assert!(restored["previousDatabase"].is_string(), "{restored}");
    assert_eq!(fingerprint_in(&p.pg, &p.database), before);
    // The restored objects belong to the administrator; the app keeps exactly its privileges.
    assert_eq!(
        p.psql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"),
        p.admin
    );
    let v = p.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(v["passed"], true, "{v}");
}

fn has_files_like(dir: &Path, part: &str) -> bool {
    std::fs::read_dir(dir).expect("dir").any(|e| {
        e.expect("entry")
            .file_name()
            .to_string_lossy()
            .contains(part)
    })
}

#[tokio::test]
async fn what_prod_has_no_place_for_is_refused_and_bad_credentials_change_nothing() {
    let p = Prod::new("prod_refusals").await;
    // No administrator password and no terminal: nothing recorded, nothing created.
    let run = p.run_env(&["install"], &[]).await;
    run.refused(
        1,
        "password of the server's administrator",
        "PHONEBILL_ADMIN_PASSWORD",
    );
    // A wrong password, and a server certificate from another CA.
    let run = p
        .run_env(&["install"], &[("PHONEBILL_ADMIN_PASSWORD", "wrong")])
        .await;
    run.refused(1, "password authentication failed", "does not match");
    let other = p.pg.other_ca.display().to_string();
    let run = p
        .run_env(
            &["install", "--ca-file", &other],
            &[("PHONEBILL_ADMIN_PASSWORD", &p.admin_password)],
        )
        .await;
    run.refused(1, "not signed by a trusted CA", "--ca-file");
    let run = p.install(&["--storage-class", "managed-csi"]).await;
    run.refused(2, "--storage-class", "in-cluster database");
    assert!(p.cluster.fake.inventory(NS).is_empty());
    assert!(!p.database_exists());

    p.install(&[]).await.ok_json();
    for args in [
        vec!["expose", "--allow", "203.0.113.0/24"],
        vec!["connect"],
        vec!["backup", "--snapshot"],
    ] {
        let run = p.run(&args).await;
        run.refused(2, "has no database in the cluster", "over TLS");
    }
    assert_eq!(
        p.cluster.fake.inventory(NS).len(),
        2,
        "no LoadBalancer, nothing else"
    );
    // Deleting the recorded Secrets asks first, like deleting a data volume.
    let run = p.run(&["uninstall", "--delete-data"]).await;
    run.refused(2, "needs confirmation", "--yes");
}

#[test]
fn a_bare_server_name_is_completed_with_the_azure_domain() {
    use phonebill_db::commands::install_managed::server_host;
    assert_eq!(
        server_host("phonebill-postgresql", "postgres.database.azure.com").unwrap(),
        "phonebill-postgresql.postgres.database.azure.com"
    );
    assert_eq!(
        server_host("db.example.org", "x").unwrap(),
        "db.example.org"
    );
    assert!(server_host("bad_name!", "postgres.database.azure.com").is_err());
}

#[tokio::test]
async fn rotating_the_app_password_on_the_managed_server_keeps_the_recorded_server() {
    let p = Prod::new("prod_rotate").await;
    p.install(&[]).await.ok_json();
    let old_url = p.secret(APP_SECRET, "database-url").unwrap();
    assert!(psql_with_url(&p.pg, &old_url, "SELECT 1").is_ok());
    let host = p.secret(SERVER_SECRET, "host").unwrap();

    let report = p
        .run(&["rotate-password", "--role", "app", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(
        report["secrets"],
        serde_json::json!([SERVER_SECRET, APP_SECRET])
    );
    let new_url = p.secret(APP_SECRET, "database-url").unwrap();
    assert_ne!(new_url, old_url);
    // The app's URL as a libpq client reads it (verify-full): the new one works, the old one not.
    assert_eq!(
        psql_with_url(&p.pg, &new_url, "SELECT current_user").unwrap(),
        p.app
    );
    assert!(psql_with_url(&p.pg, &old_url, "SELECT 1").is_err());
    // Only the password changed in what install recorded.
    assert_eq!(p.secret(SERVER_SECRET, "host").unwrap(), host);
    assert_eq!(
        p.secret(SERVER_SECRET, "password").unwrap(),
        p.secret(APP_SECRET, "auth-user-password").unwrap()
    );
    assert!(p.secret(SERVER_SECRET, "app-password-scram").is_none());
    // The administrator's is Azure's.
    p.run(&["rotate-password", "--role", "admin", "--yes"])
        .await
        .refused(2, "managed server", "--admin-password");
}
