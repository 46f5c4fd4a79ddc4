//! The release's own server rules, tried for real: a PostgreSQL started from what install put in
//! the (fake) cluster — the ConfigMap's postgresql.conf, pg_hba.conf and pg_ident.conf, the TLS
//! Secret's key mounted as the kubelet mounts it (root's, group postgres, 0640), the admin
//! password file and the app password's verifier — and first started the way the official
//! image's entrypoint does it (initdb, a temporary server without TCP, the init scripts over the
//! local socket as the OS user `postgres`). Port-forwards of the fake lead to its loopback, and
//! the pod's address is this machine's, where TLS is required, as in a pod.
//!
//! Where it departs from a pod (said here so no test relies on it): it runs the tests'
//! PostgreSQL 16 build (scripts/pg16-tools.sh), not the image's own binaries (or Debian's 15 where
//! a test plays an older pod); paths under /etc/postgresql are under a temporary directory; the
//! tools "in the pod" (exec) reach it over loopback with the admin password, not over its socket.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::pg::{Pg, stdout_or_stderr};
use crate::support::{ADMIN_SECRET, APP_SECRET, Cluster, NS, STS};

const TLS_SECRET: &str = "auth-postgres-dev-postgresql-tls";

fn sh(cmd: &mut Command) -> Result<String, String> {
    stdout_or_stderr(cmd.output().expect("run a command"))
}

fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    c
}

/// A server started from the cluster's ConfigMap and Secrets.
pub struct PodServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub pod_ip: String,
    pub admin_password: String,
    pub app_password: String,
    pub ca: PathBuf,
    bin: PathBuf,
}

impl Drop for PodServer {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

impl PodServer {
    /// Before install: the pod gets this machine's address, where the server will want TLS.
    /// Returns install's arguments: a values file naming the image of this server's major
    /// version (install records it; later commands reuse it).
    pub fn before_install(c: &Cluster) -> [String; 2] {
        PodServer::before_install_on(c, &Pg::get())
    }

    /// [`PodServer::before_install`] for a pod that will run `pg`'s major version.
    pub fn before_install_on(c: &Cluster, pg: &Pg) -> [String; 2] {
        c.fake.set_pod_ip(
            &std::env::var("PHONEBILL_TEST_POD_IP")
                .expect("PHONEBILL_TEST_POD_IP: run `bash scripts/test.sh`"),
        );
        let values = c.dir.path().join("pod-values.yaml");
        std::fs::write(&values, format!("image: {}\n", pg.image())).unwrap();
        ["--values".into(), values.display().to_string()]
    }

    /// After install: the server the pod would run.
    pub fn start(c: &Cluster) -> PodServer {
        PodServer::start_as(c, STS, None)
    }

    /// The server of StatefulSet `sts`'s pod; with `routed`, only that pod's port-forwards and
    /// exec lead to it (a second StatefulSet beside the first, as during an upgrade).
    pub fn start_as(c: &Cluster, sts: &str, routed: Option<&str>) -> PodServer {
        PodServer::start_on(c, sts, routed, Pg::get())
    }

    /// [`PodServer::start_as`] with `pg`'s programs: its initdb, server and tools (the pod's
    /// psql, pg_dump and pg_restore for exec).
    pub fn start_on(c: &Cluster, sts: &str, routed: Option<&str>, pg: Pg) -> PodServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        sh(Command::new("chmod").arg("755").arg(&root)).unwrap();
        let secret = |name: &str, key: &str| c.secret_text(name, key);
        let cm = c
            .fake
            .get(
                "ConfigMap",
                NS,
                "auth-postgres-dev-postgresql-configuration",
            )
            .unwrap();
        let sts = c.fake.get("StatefulSet", NS, sts).unwrap();
        let container = &sts["spec"]["template"]["spec"]["containers"][0];
        let env = |name: &str| {
            container["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        };
        // /etc/postgresql/… of the pod, under this directory.
        let etc = root.join("etc/postgresql");
        let relocate =
            |text: &str| text.replace("/etc/postgresql/", &format!("{}/", etc.display()));
        for sub in ["conf", "tls", "credentials", "run"] {
            std::fs::create_dir_all(etc.join(sub)).unwrap();
        }
        for key in ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"] {
            std::fs::write(
                etc.join("conf").join(key),
                relocate(cm["data"][key].as_str().unwrap()),
            )
            .unwrap();
        }
        // As the kubelet mounts Secrets with fsGroup 999: root's, group postgres, the volume's mode.
        let mount = |path: PathBuf, text: &str, mode: &str| {
            std::fs::write(&path, text).unwrap();
            sh(Command::new("chown").arg("root:postgres").arg(&path)).unwrap();
            sh(Command::new("chmod").arg(mode).arg(&path)).unwrap();
        };
        mount(
            etc.join("tls/tls.crt"),
            &secret(TLS_SECRET, "tls.crt"),
            "0640",
        );
        mount(
            etc.join("tls/tls.key"),
            &secret(TLS_SECRET, "tls.key"),
            "0640",
        );
        let admin_password = secret(ADMIN_SECRET, "postgres-password");
        mount(
            etc.join("credentials/postgres-password"),
            &admin_password,
            "0440",
        );
        mount(
            etc.join("credentials/app-password-scram"),
            &secret(ADMIN_SECRET, "app-password-scram"),
            "0440",
        );
        mount(
            etc.join("credentials/metrics-password-scram"),
            &secret(ADMIN_SECRET, "metrics-password-scram"),
            "0440",
        );
        let ca = root.join("ca.crt");
        std::fs::write(&ca, secret(APP_SECRET, "ca.crt")).unwrap();
        sh(Command::new("chown").arg("postgres").arg(etc.join("run"))).unwrap();

        let port = free_port();
        let pod_ip = std::env::var("PHONEBILL_TEST_POD_IP")
            .expect("PHONEBILL_TEST_POD_IP: run `bash scripts/test.sh`");
        let data = root.join("data");
        std::fs::create_dir(&data).unwrap();
        sh(Command::new("chown").arg("postgres").arg(&data)).unwrap();
        // docker-entrypoint.sh: initdb --username=$POSTGRES_USER --pwfile=<password> $POSTGRES_INITDB_ARGS
        let (admin, database, app) = (env("POSTGRES_USER"), env("POSTGRES_DB"), env("APP_USER"));
        sh(as_postgres(&pg.bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .arg(format!("--username={admin}"))
            .arg(format!(
                "--pwfile={}",
                etc.join("credentials/postgres-password").display()
            ))
            .args(["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]))
        .expect("initdb");
        let conf = etc.join("conf/postgresql.conf");
        let socket = etc.join("run");
        let server = |listen: &str| {
            format!(
                "-c config_file={} -p {port} -c listen_addresses='{listen}' -c unix_socket_directories={} -c fsync=off",
                conf.display(),
                socket.display()
            )
        };
        let pg_ctl = |args: &[&str], options: Option<String>| {
            let mut cmd = as_postgres(&pg.bin.join("pg_ctl"));
            cmd.arg("-D")
                .arg(&data)
                .args(["-l"])
                .arg(socket.join("server.log"))
                .arg("-w");
            if let Some(o) = options {
                cmd.args(["-o", &o]);
            }
            sh(cmd.args(args)).unwrap_or_else(|e| {
                panic!(
                    "pg_ctl {args:?}: {e}\n{}",
                    std::fs::read_to_string(socket.join("server.log")).unwrap_or_default()
                )
            })
        };
        // The entrypoint's temporary server: no TCP; the database and the init scripts over the
        // local socket, as the OS user postgres (our pg_hba.conf: peer, mapped to the admin).
        pg_ctl(&["start"], Some(server("")));
        let psql = |db: &str| {
            let mut c = as_postgres(&pg.bin.join("psql"));
            c.args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-h"])
                .arg(&socket)
                .args(["-p", &port.to_string(), "-U", &admin, "-d", db]);
            c
        };
        sh(psql("postgres").args(["-c", &format!("CREATE DATABASE \"{database}\"")]))
            .expect("CREATE DATABASE over the socket");
        let scripts = root.join("initdb.d");
        std::fs::create_dir(&scripts).unwrap();
        for (key, value) in cm["data"].as_object().unwrap() {
            if key.ends_with(".sql") {
                sh(psql(&database).args(["-c", value.as_str().unwrap()]))
                    .unwrap_or_else(|e| panic!("{key}: {e}"));
            } else if key.ends_with(".sh") {
                let path = scripts.join(key);
                std::fs::write(&path, value.as_str().unwrap()).unwrap();
                sh(Command::new("chmod").arg("0555").arg(&path)).unwrap();
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--", "env"])
                    .arg(format!("PATH={}:/usr/bin:/bin", pg.bin.display()))
                    .arg(format!("PGHOST={}", socket.display()))
                    .arg(format!("PGPORT={port}"))
                    .arg(format!("POSTGRES_USER={admin}"))
                    .arg(format!("POSTGRES_DB={database}"))
                    .arg(format!("APP_USER={app}"))
                    .arg(format!(
                        "APP_PASSWORD_SCRAM_FILE={}",
                        etc.join("credentials/app-password-scram").display()
                    ))
                    .arg(format!("METRICS_USER={}", env("METRICS_USER")))
                    .arg(format!(
                        "METRICS_PASSWORD_SCRAM_FILE={}",
                        etc.join("credentials/metrics-password-scram").display()
                    ))
                    .arg("bash")
                    .arg(&path);
                sh(&mut cmd).unwrap_or_else(|e| panic!("{key}: {e}"));
            }
        }
        pg_ctl(&["stop"], None);
        // The pod's server: its loopback and its network address.
        pg_ctl(&["start"], Some(server(&format!("127.0.0.1,{pod_ip}"))));

        let path = format!(
            "{}:{}",
            pg.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let port_text = port.to_string();
        let exec_env = [
            ("PATH", path.as_str()),
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port_text),
            ("PGPASSWORD", &admin_password),
        ];
        match routed {
            Some(pod) => c
                .fake
                .route_pod(NS, pod, 5432, ([127, 0, 0, 1], port).into(), &exec_env),
            None => {
                c.fake.forward_port(5432, ([127, 0, 0, 1], port).into());
                c.fake.exec_env(&exec_env);
                let pod = c
                    .fake
                    .get("Pod", NS, "auth-postgres-dev-postgresql-0")
                    .unwrap();
                assert_eq!(
                    pod["status"]["podIP"],
                    pod_ip.as_str(),
                    "call PodServer::before_install first"
                );
            }
        }
        PodServer {
            dir,
            port,
            pod_ip,
            admin_password,
            app_password: secret(APP_SECRET, "auth-user-password"),
            ca,
            bin: pg.bin,
        }
    }

    /// psql with a libpq connection string; stdout, or the error.
    pub fn psql(&self, conninfo: &str, password: Option<&str>) -> Result<String, String> {
        let mut c = Command::new(self.bin.join("psql"));
        c.args(["-X", "-w", "-tA", conninfo, "-c", "SELECT current_user || ' ' || coalesce((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl), 'plain')"])
            .env_clear()
            .env("HOME", self.dir.path());
        if let Some(p) = password {
            c.env("PGPASSWORD", p);
        }
        sh(&mut c)
    }

    /// Run SQL as `user` in `db` over TCP (no TLS: loopback); stdout (unaligned, tuples only),
    /// or the error.
    pub fn sql(&self, user: &str, password: &str, db: &str, sql: &str) -> Result<String, String> {
        let mut c = Command::new(self.bin.join("psql"));
        c.args([
            "-X",
            "-w",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &self.port.to_string(),
            "-U",
            user,
            "-d",
            db,
            "-c",
            sql,
        ])
        .env_clear()
        .env("HOME", self.dir.path())
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable");
        sh(&mut c).map(|s| s.trim().to_string())
    }

    /// A psql session of `user` that reads its statements from stdin (piped), left open.
    pub fn session(&self, user: &str, password: &str, db: &str) -> std::process::Child {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &self.port.to_string(), "-U", user, "-d", db])
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "disable")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run psql")
    }

    pub fn rewrite_hba(&self, text: &str) {
        std::fs::write(
            self.dir.path().join("etc/postgresql/conf/pg_hba.conf"),
            text,
        )
        .unwrap();
        sh(as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("reload"))
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_releases_own_rules_trust_nobody_and_want_tls_off_the_pod() {
    let c = Cluster::with_plan_class().await;
    let values = PodServer::before_install(&c);
    c.install_ok(&[&values[0], &values[1]]).await;
    let pod = PodServer::start(&c);
    let lo = format!("host=127.0.0.1 port={} dbname=phonebill_auth", pod.port);

    // The probes, as the StatefulSet runs them (pg_isready asks for no password).
    let sts = c.fake.get("StatefulSet", NS, STS).unwrap();
    let probe =
        sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"][2]
            .as_str()
            .unwrap()
            .replace("-p 5432", &format!("-p {}", pod.port));
    let out = Command::new("sh")
        .args(["-c", &probe])
        .env("PATH", format!("{}:/usr/bin:/bin", Pg::get().bin.display()))
        .env("POSTGRES_USER", "postgres")
        .env("POSTGRES_DB", "phonebill_auth")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the readiness probe fails: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Loopback (where port-forwards arrive): no password, or a wrong one, gets nobody in.
    let e = pod
        .psql(&format!("{lo} user=postgres sslmode=disable"), None)
        .unwrap_err();
    assert!(e.contains("no password supplied"), "{e}");
    let e = pod
        .psql(
            &format!("{lo} user=postgres sslmode=disable"),
            Some("wrong"),
        )
        .unwrap_err();
    assert!(e.contains("password authentication failed"), "{e}");
    let e = pod
        .psql(
            &format!("{lo} user=auth_user sslmode=disable"),
            Some("wrong"),
        )
        .unwrap_err();
    assert!(e.contains("password authentication failed"), "{e}");
    assert_eq!(
        pod.psql(
            &format!("{lo} user=postgres sslmode=disable"),
            Some(&pod.admin_password)
        )
        .unwrap(),
        "postgres plain"
    );
    // The app role's first-start password (set from its verifier) is the Secret's.
    assert_eq!(
        pod.psql(
            &format!("{lo} user=auth_user sslmode=disable"),
            Some(&pod.app_password)
        )
        .unwrap(),
        "auth_user plain"
    );

    // Off the pod: without TLS refused before any password; with TLS verified against the CA in
    // auth-db-secret and the Service's name, as the app connects.
    let off = format!(
        "hostaddr={} port={} dbname=phonebill_auth user=auth_user",
        pod.pod_ip, pod.port
    );
    let e = pod
        .psql(&format!("{off} sslmode=disable"), Some(&pod.app_password))
        .unwrap_err();
    assert!(e.contains("no encryption"), "{e}");
    let ca = pod.ca.display();
    let tls = pod
        .psql(
            &format!("{off} host=auth-postgres-dev-postgresql.phonebill-dev.svc sslmode=verify-full sslrootcert={ca}"),
            Some(&pod.app_password),
        )
        .unwrap();
    assert!(tls.starts_with("auth_user TLSv1."), "{tls}");
    let e = pod
        .psql(
            &format!("{off} host=somewhere.else sslmode=verify-full sslrootcert={ca}"),
            Some(&pod.app_password),
        )
        .unwrap_err();
    assert!(e.contains("does not match host name"), "{e}");

    // The local socket: only the OS user postgres, only as the admin.
    let socket = pod.dir.path().join("etc/postgresql/run");
    let local = format!(
        "host={} port={} dbname=phonebill_auth",
        socket.display(),
        pod.port
    );
    let e = pod
        .psql(&format!("{local} user=postgres"), None)
        .unwrap_err();
    assert!(
        e.contains("Peer authentication failed"),
        "root is not postgres: {e}"
    );
    let as_pg = |user: &str| {
        sh(as_postgres(&Pg::get().bin.join("psql")).args([
            "-X",
            "-w",
            "-tA",
            &format!("{local} user={user}"),
            "-c",
            "SELECT current_user",
        ]))
    };
    assert_eq!(as_pg("postgres").unwrap(), "postgres");
    let e = as_pg("auth_user").unwrap_err();
    assert!(e.contains("Peer authentication failed"), "{e}");

    // Through the tool: `connect` leads there and a wrong password is refused through it...
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = c.kubeconfig.display().to_string();
    let mut child = crate::support::bin_command(
        home.path(),
        &[
            "connect",
            "--port",
            "0",
            "-o",
            "json",
            "--kubeconfig",
            &kubeconfig,
        ],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let report = crate::support::first_report(child.stdout.take().unwrap()).await;
    let local_port = report["port"].as_u64().unwrap();
    let through = format!(
        "host=127.0.0.1 port={local_port} dbname=phonebill_auth user=postgres sslmode=disable"
    );
    let wrong = async_psql(&pod, &through, "wrong").await;
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    let right = async_psql(&pod, &through, &pod.admin_password).await;
    assert_eq!(right, "postgres plain");
    let _ = child.kill().await;

    // ...and through the tool's own port-forward, a Secret with a wrong password gets nowhere.
    c.fake
        .merge_patch(
            "Secret",
            NS,
            ADMIN_SECRET,
            serde_json::json!({"data": {"postgres-password": STANDARD.encode("not-the-password")}}),
        )
        .unwrap();
    let run = c.run(&["apply-schema", "--dry-run"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.error_line()
            .contains("password authentication failed for user \"postgres\""),
        "{}",
        run.stderr
    );
}

/// psql on the runtime's terms (the fake API server serves port-forwards on this runtime).
async fn async_psql(pod: &PodServer, conninfo: &str, password: &str) -> String {
    let out = tokio::process::Command::new(pod.bin.join("psql"))
        .args(["-X", "-w", "-tA", conninfo, "-c", "SELECT current_user || ' ' || coalesce((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl), 'plain')"])
        .env_clear()
        .env("PGPASSWORD", password)
        .output()
        .await
        .unwrap();
    match stdout_or_stderr(out) {
        Ok(s) | Err(s) => s,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_on_the_releases_own_server_checks_tls_and_the_certificate() {
    let c = Cluster::with_plan_class().await;
    let values = PodServer::before_install(&c);
    c.install_ok(&[&values[0], &values[1]]).await;
    let pod = PodServer::start(&c);
    let applied = c.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let run = c.run(&["verify", "-o", "json"]).await;
    let report = run.ok_json();
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {report}"))
            .clone()
    };
    assert_eq!(
        check("TLS required off the pod")["status"],
        "pass",
        "{report}"
    );
    assert!(
        check("TLS required off the pod")["detail"]
            .as_str()
            .unwrap()
            .contains(&pod.pod_ip)
    );
    assert_eq!(check("server certificate")["status"], "pass");
    assert!(
        check("server certificate")["detail"]
            .as_str()
            .unwrap()
            .contains("days left")
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "fail"),
        "{report}"
    );

    // A server whose rules let connections in without TLS (initdb's own, say): verify says so.
    pod.rewrite_hba("local all all peer map=server\nhost all all 0.0.0.0/0 scram-sha-256\n");
    let run = c.run(&["verify", "-o", "json"]).await;
    assert_eq!(run.code, 4, "{}", run.stdout);
    let report = run.json();
    let tls = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "TLS required off the pod")
        .unwrap();
    assert_eq!(tls["status"], "fail", "{report}");
    assert!(
        run.error_line().contains("TLS required off the pod"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("pg_hba.conf"), "{}", run.stderr);
}
