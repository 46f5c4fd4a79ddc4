//! The throwaway PostgreSQL that `scripts/test.sh` starts (see scripts/throwaway-pg.sh), and the
//! part of the `postgres` image the fake kubelet does not play: its entrypoint's first-start work.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::{ADMIN_SECRET, Cluster, NS, Run, run_bin_env};

pub struct Pg {
    pub port: u16,
    pub password: String,
    /// The server's programs and the client tools of its major version.
    pub bin: PathBuf,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    major: u32,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `bash scripts/test.sh`, which starts the throwaway PostgreSQL")
    })
}

impl Pg {
    pub fn get() -> Pg {
        Pg {
            port: var("PHONEBILL_TEST_PG_PORT")
                .parse()
                .expect("a port number"),
            password: var("PHONEBILL_TEST_PG_PASSWORD"),
            bin: var("PHONEBILL_TEST_PG_BIN").into(),
            ca: var("PHONEBILL_TEST_PG_CA").into(),
            other_ca: var("PHONEBILL_TEST_PG_OTHER_CA").into(),
            major: var("PHONEBILL_TEST_PG_MAJOR")
                .parse()
                .expect("a major version"),
        }
    }

    /// The older server (Debian's 15, initdb's defaults, no TLS) and its own tools: where a test
    /// needs a server, or a tool, older than the pod's.
    pub fn old() -> Pg {
        let bin: PathBuf = var("PHONEBILL_TEST_OLD_PG_BIN").into();
        let version = stdout_or_stderr(
            Command::new(bin.join("postgres"))
                .arg("--version")
                .output()
                .expect("postgres --version"),
        )
        .expect("postgres --version");
        Pg {
            port: var("PHONEBILL_TEST_OLD_PG_PORT")
                .parse()
                .expect("a port number"),
            major: major_of(&version),
            bin,
            ..Pg::get()
        }
    }

    /// The server's major version: 16 for the servers the tests share, as the pod runs.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The official image of this server's major version: what a release on it names, so that
    /// verify's version check compares like with like.
    pub fn image(&self) -> String {
        format!("docker.io/library/postgres:{}", self.major())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// The superuser's URL for a database (no TLS parameters: libpq's default, prefer).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// Run SQL with psql as `user` (superuser by default); stdout, unaligned, tuples only.
    pub fn psql_as(
        &self,
        user: &str,
        password: &str,
        db: &str,
        sql: &str,
    ) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                db,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-tA", "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "disable")
            .output()
            .expect("run psql");
        stdout_or_stderr(out)
    }

    /// `users` x 9 generated rows in database `db` (scripts/bench/generate-data.sql; after apply-schema).
    pub fn generate_rows(&self, db: &str, users: u32) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v"])
            .arg(format!("users={users}"))
            .args(["-f", "scripts/bench/generate-data.sql"])
            .arg(self.url(db))
            .env("PGSSLMODE", "disable")
            .output()
            .expect("psql");
        if let Err(e) = stdout_or_stderr(out) {
            panic!("generating rows: {e}");
        }
    }

    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.psql_as("postgres", &self.password, db, sql)
            .unwrap_or_else(|e| panic!("psql {sql}: {e}"))
    }

    /// A new, empty database (UTF8) with a unique name starting with `tag`.
    pub fn create_database(&self, tag: &str) -> String {
        let name = unique(tag);
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }
}

/// The major version in a `--version` line ("postgres (PostgreSQL) 15.18 (Debian …)" → 15).
pub fn major_of(version: &str) -> u32 {
    version
        .split_whitespace()
        .find_map(|w| {
            w.split('.')
                .next()?
                .parse()
                .ok()
                .filter(|_| w.contains('.'))
        })
        .unwrap_or_else(|| panic!("no version in {version:?}"))
}

/// A tool's trimmed stdout when it succeeded, else its trimmed stderr.
pub fn stdout_or_stderr(out: std::process::Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `tag` plus a random suffix: tests share one server (and its roles).
pub fn unique(tag: &str) -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("random");
    format!("it_{tag}_{}", hex::encode(b))
}

/// A release whose database, admin and app role are this test's own on the shared server,
/// installed on a fake cluster whose port-forwards lead to the throwaway PostgreSQL.
pub struct Release {
    pub cluster: Cluster,
    pub pg: Pg,
    pub database: String,
    pub admin: String,
    pub app: String,
    /// The values file: the names above and the image of the throwaway server's major version.
    pub values: String,
    /// The same names for the managed server (prod has no image).
    pub managed_values: String,
}

impl Release {
    pub async fn new(tag: &str) -> Release {
        let pg = Pg::get();
        let cluster = Cluster::with_plan_class().await;
        cluster.fake.forward_port(5432, pg.addr());
        // The pod's own address: this machine's, where the server wants TLS (scripts/throwaway-pg.sh).
        cluster.fake.set_pod_ip(&var("PHONEBILL_TEST_POD_IP"));
        let database = unique(tag);
        let (admin, app) = (format!("{database}_admin"), format!("{database}_app"));
        let names = format!("database: {database}\nadminUser: {admin}\nappUser: {app}\n");
        let values = cluster.dir.path().join("values.yaml");
        std::fs::write(
            &values,
            format!(
                "{names}image: {}\nmetrics:\n  user: {database}_metrics\n",
                pg.image()
            ),
        )
        .expect("write values");
        let managed_values = cluster.dir.path().join("managed-values.yaml");
        std::fs::write(&managed_values, &names).expect("write values");
        Release {
            cluster,
            pg,
            database,
            admin,
            app,
            values: values.display().to_string(),
            managed_values: managed_values.display().to_string(),
        }
    }

    /// This release's values file for a command line: the managed server's (no image) with
    /// `--env prod`.
    pub fn values_for(&self, args: &[&str]) -> &str {
        if args.windows(2).any(|w| w == ["--env", "prod"]) {
            &self.managed_values
        } else {
            &self.values
        }
    }

    /// Run the tool with this release's values file.
    pub async fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--values", self.values_for(args)]);
        self.cluster.run(&all).await
    }

    /// install, then what the image's entrypoint does on a new data volume; commands run by
    /// exec in the pod reach the shared server as the admin (the pod's socket does that there).
    pub async fn install(&self) {
        self.cluster.install_ok(&["--values", &self.values]).await;
        self.entrypoint();
        let password = self.secret(ADMIN_SECRET, "postgres-password");
        self.exec_env(&password, &[]);
    }

    /// What commands run by pod exec see: the shared server with `password`, and PATH with the
    /// server's tools after `first` (directories of test doubles).
    pub fn exec_env(&self, password: &str, first: &[&std::path::Path]) {
        let mut dirs: Vec<PathBuf> = first.iter().map(|p| p.to_path_buf()).collect();
        dirs.push(self.pg.bin.clone());
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(dirs).expect("PATH");
        let port = self.pg.port.to_string();
        // The data directory's place, as the pod's environment has it: a restore puts an archive
        // beside it (on the data volume).
        let pgdata = self.cluster.dir.path().join("pgdata");
        self.cluster.fake.exec_env(&[
            ("PATH", path.to_str().expect("utf-8 PATH")),
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port),
            ("PGPASSWORD", password),
            ("PGSSLMODE", "disable"),
            ("PGDATA", pgdata.to_str().expect("utf-8 path")),
        ]);
    }

    /// The admin's URL (TLS verified against the test CA) for the --database-url path.
    /// Run the tool on this release through --database-url with the local tools (the
    /// release's passwords in the environment).
    pub async fn via_url(&self, args: &[&str]) -> Run {
        let url = self.admin_url();
        let bin = self.pg.bin.display().to_string();
        let mut all = args.to_vec();
        all.extend([
            "--database-url",
            &url,
            "--pg-bin",
            &bin,
            "--values",
            &self.values,
        ]);
        let admin = self.secret(ADMIN_SECRET, "postgres-password");
        let app = self.secret(crate::support::APP_SECRET, "auth-user-password");
        run_url(
            &all,
            &[("PGPASSWORD", &admin), ("PHONEBILL_APP_PASSWORD", &app)],
        )
        .await
    }

    /// The application's URL to the shared server (its login from the app Secret, no TLS): what
    /// the app would write and read through while a test or the benchmark restores.
    pub fn app_url(&self) -> String {
        format!(
            "postgresql://{}:{}@127.0.0.1:{}/{}?sslmode=disable",
            self.app,
            phonebill_db::render::url_encode(
                &self.secret(crate::support::APP_SECRET, "auth-user-password")
            ),
            self.pg.port,
            self.database
        )
    }

    pub fn admin_url(&self) -> String {
        format!(
            "postgresql://{}@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
            self.admin,
            self.pg.port,
            self.database,
            self.pg.ca.display()
        )
    }

    pub fn secret(&self, name: &str, key: &str) -> String {
        self.cluster.secret_text(name, key)
    }

    /// The postgres image's docker-entrypoint.sh on an empty data directory, against the shared
    /// server: the superuser POSTGRES_USER with POSTGRES_PASSWORD, the database POSTGRES_DB, then
    /// the init scripts of our ConfigMap (`*.sql` with psql, `*.sh` with bash), as the image runs them.
    pub fn entrypoint(&self) {
        let admin_pw = self.secret(ADMIN_SECRET, "postgres-password");
        // The image reads the app password's verifier from the mounted Secret file.
        let verifier = self.cluster.dir.path().join("app-password-scram");
        std::fs::write(&verifier, self.secret(ADMIN_SECRET, "app-password-scram"))
            .expect("write the verifier file");
        let metrics_verifier = self.cluster.dir.path().join("metrics-password-scram");
        std::fs::write(
            &metrics_verifier,
            self.secret(ADMIN_SECRET, "metrics-password-scram"),
        )
        .expect("write the verifier file");
        self.pg.psql(
            "postgres",
            &format!(
                "CREATE ROLE {} SUPERUSER LOGIN PASSWORD '{admin_pw}'",
                self.admin
            ),
        );
        self.pg.psql(
            "postgres",
            &format!("CREATE DATABASE {} OWNER {}", self.database, self.admin),
        );
        let cm: Value = self
            .cluster
            .fake
            .get(
                "ConfigMap",
                NS,
                "auth-postgres-dev-postgresql-configuration",
            )
            .expect("ConfigMap");
        let mut scripts: Vec<(String, String)> = cm["data"]
            .as_object()
            .expect("data")
            .iter()
            .filter(|(k, _)| k.ends_with(".sql") || k.ends_with(".sh"))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        scripts.sort();
        assert!(
            scripts.len() >= 2,
            "the ConfigMap has init scripts: {scripts:?}"
        );
        for (name, body) in scripts {
            let mut cmd = if name.ends_with(".sql") {
                let mut c = Command::new(self.pg.bin.join("psql"));
                c.args([
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-X",
                    "-q",
                    "-d",
                    &self.database,
                    "-U",
                    &self.admin,
                    "-c",
                    &body,
                ]);
                c
            } else {
                let mut c = Command::new("bash");
                c.args(["-c", &body]);
                c
            };
            let path = format!(
                "{}:{}",
                self.pg.bin.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let out = cmd
                .env("PATH", path)
                .env("PGHOST", "127.0.0.1")
                .env("PGPORT", self.pg.port.to_string())
                .env("PGPASSWORD", &admin_pw)
                .env("PGSSLMODE", "disable")
                .env("POSTGRES_USER", &self.admin)
                .env("POSTGRES_DB", &self.database)
                .env("APP_USER", &self.app)
                .env("APP_PASSWORD_SCRAM_FILE", &verifier)
                .env("METRICS_USER", format!("{}_metrics", self.database))
                .env("METRICS_PASSWORD_SCRAM_FILE", &metrics_verifier)
                .output()
                .expect("run init script");
            assert!(
                out.status.success(),
                "init script {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    pub fn psql(&self, sql: &str) -> String {
        self.pg.psql(&self.database, sql)
    }
}

/// Run the tool against a URL, with extra environment (PGPASSWORD, PHONEBILL_APP_PASSWORD).
pub async fn run_url(args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().expect("temp dir");
    run_bin_env(home.path(), args, env).await
}
