//! Shared test support: a fake cluster with a kubeconfig, and the real binary run against it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use fake_kube::FakeKube;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const NS: &str = "phonebill-dev";
pub const STS: &str = "auth-postgres-dev-postgresql";
pub const PVC: &str = "data-auth-postgres-dev-postgresql-0";
pub const ADMIN_SECRET: &str = "auth-postgres-dev-postgresql";
pub const APP_SECRET: &str = "auth-db-secret";

/// What a run of the binary left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    /// The `error:` line (one line, as the spec asks) — panics if there is none or more than one.
    pub fn error_line(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one error line, stderr was:\n{}",
            self.stderr
        );
        lines[0].to_string()
    }
    /// A run that must succeed; its JSON report.
    pub fn ok_json(&self) -> Value {
        assert_eq!(self.code, 0, "{}\n{}", self.stdout, self.stderr);
        self.json()
    }

    /// A run that must succeed (whatever it printed).
    pub fn succeeded(&self) {
        assert_eq!(self.code, 0, "{}\n{}", self.stdout, self.stderr);
    }

    /// A refused run: exit `code`, one error line containing `error`, a hint containing `hint`.
    pub fn refused(&self, code: i32, error: &str, hint: &str) {
        assert_eq!(self.code, code, "{}\n{}", self.stdout, self.stderr);
        assert!(self.error_line().contains(error), "{}", self.stderr);
        assert!(self.hint_line().contains(hint), "{}", self.stderr);
    }

    /// A failed run: exit `code`, one error line containing each of `parts`.
    pub fn failed_saying(&self, code: i32, parts: &[&str]) {
        assert_eq!(self.code, code, "{}\n{}", self.stdout, self.stderr);
        let line = self.error_line();
        for part in parts {
            assert!(line.contains(part), "no `{part}` in: {}", self.stderr);
        }
    }

    /// The `warning:` lines on stderr.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect()
    }

    pub fn hint_line(&self) -> String {
        self.stderr
            .lines()
            .find(|l| l.starts_with("hint: "))
            .unwrap_or_else(|| panic!("no hint in:\n{}", self.stderr))
            .to_string()
    }
}

/// The real binary with a scrubbed environment (PATH only; HOME and working directory `home`), no
/// terminal on stdin; for tests that spawn it and talk to it while it runs.
pub fn bin_command(home: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_phonebill-db"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .current_dir(home)
        .stdin(Stdio::null());
    cmd
}

/// Ctrl-C to a spawned binary (SIGINT, as a terminal sends it); its output once it stopped, which
/// must be within 30 s.
pub async fn ctrl_c(child: tokio::process::Child) -> std::process::Output {
    let pid = child.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("it stops on Ctrl-C")
        .expect("its output")
}

/// Start the real binary, wait until `ready` says the moment has come (within 10 s: a binary that
/// never gets there fails the test), then Ctrl-C it; its output.
pub async fn ctrl_c_when(
    home: &Path,
    args: &[&str],
    ready: impl Fn() -> bool,
) -> std::process::Output {
    let child = bin_command(home, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start phonebill-db");
    let mut came = false;
    for _ in 0..400 {
        if ready() {
            came = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(came, "the moment to interrupt {args:?} came");
    ctrl_c(child).await
}

/// Run the real binary with a scrubbed environment (no KUBECONFIG, HOME and working directory `home`).
pub async fn run_bin(home: &Path, args: &[&str]) -> Run {
    run_bin_env(home, args, &[]).await
}

/// `run_bin` with extra environment variables (the rest is scrubbed).
pub async fn run_bin_env(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = bin_command(home, args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run phonebill-db");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "the binary panicked:\n{}",
        run.stderr
    );
    run
}

/// A fake AKS cluster and a kubeconfig pointing at it.
pub struct Cluster {
    pub fake: FakeKube,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// A fake cluster as AKS ships it (no `managed-standard` StorageClass).
    pub async fn aks() -> Cluster {
        let fake = FakeKube::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig);
        Cluster {
            fake,
            dir,
            kubeconfig,
        }
    }

    /// A fake cluster that has the plan's StorageClass and VolumeSnapshotClass.
    pub async fn with_plan_class() -> Cluster {
        let c = Cluster::aks().await;
        c.fake.add_storage_class("managed-standard");
        c.fake.add_snapshot_class("csi-azuredisk-vsc");
        c
    }

    /// The release's namespace, as an admin would have made it.
    pub fn create_namespace(&self) {
        let ns =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
        self.fake.create("", ns).expect("create namespace");
    }

    /// Run `phonebill-db ARGS --kubeconfig <fake>`.
    pub async fn run(&self, args: &[&str]) -> Run {
        let kc = self.kubeconfig.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", &kc]);
        run_bin(self.dir.path(), &all).await
    }

    /// The tool's own client for this cluster (as a command builds it), aimed at the namespace.
    pub async fn kube(&self) -> phonebill_db::k8s::Kube {
        phonebill_db::k8s::client::connect(
            Some(&self.kubeconfig),
            None,
            NS,
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("a client for the fake")
    }

    /// Install and insist it worked.
    /// A manual snapshot of the release's volume (the class made if missing); its name.
    pub async fn snapshot(&self) -> String {
        self.run(&[
            "backup",
            "--snapshot",
            "--create-snapshot-class",
            "-o",
            "json",
        ])
        .await
        .ok_json()["snapshot"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn install_ok(&self, extra: &[&str]) -> Value {
        let mut args = vec!["install", "-o", "json", "--timeout", "30s"];
        args.extend(extra);
        let run = self.run(&args).await;
        assert_eq!(
            run.code, 0,
            "install failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run.json()
    }

    /// A plain install over the release, which must find all 17 objects as they are and write
    /// nothing (no resourceVersion moves, the record's neither); its run, for more checks.
    pub async fn reinstall_changes_nothing(&self) -> Run {
        let before = self.versions();
        let run = self.run(&["install", "--timeout", "30s"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stdout.contains("0 created, 0 configured, 17 unchanged"),
            "{}",
            run.stdout
        );
        assert_eq!(self.versions(), before, "no resourceVersion moved");
        run
    }

    /// resourceVersion of every object in the namespace, by "Kind/name".
    pub fn versions(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for id in self.fake.inventory(NS) {
            let (kind, name) = id.split_once('/').expect("Kind/name");
            let obj = self.fake.get(kind, NS, name).expect("listed object exists");
            out.push((
                id.clone(),
                obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        out
    }

    /// One key of a Secret, decoded (panics when the Secret or key is missing).
    pub fn secret_text(&self, name: &str, key: &str) -> String {
        use base64::Engine;
        let data = self.secret_data(name);
        let b64 = data[key]
            .as_str()
            .unwrap_or_else(|| panic!("Secret {name} has no {key}"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        String::from_utf8(bytes).expect("utf8")
    }

    pub fn secret_data(&self, name: &str) -> Value {
        self.fake
            .get("Secret", NS, name)
            .map(|s| s["data"].clone())
            .unwrap_or(Value::Null)
    }
}

/// The release's record (Secret auth-postgres-dev-values), each key's text decoded.
pub fn record_data(c: &Cluster) -> Value {
    use base64::Engine;
    let data = c.secret_data("auth-postgres-dev-values");
    let decoded: serde_json::Map<String, Value> = data
        .as_object()
        .expect("the release's record")
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .expect("base64");
            (
                k.clone(),
                Value::String(String::from_utf8(bytes).expect("utf8")),
            )
        })
        .collect();
    Value::Object(decoded)
}

/// The check named `name` of a verify report (or any report with `checks`).
pub fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {v}"))
}

/// The names of the objects an install report says it pruned.
pub fn pruned(report: &Value) -> Vec<&str> {
    report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["change"] == "pruned")
        .map(|o| o["name"].as_str().unwrap_or_default())
        .collect()
}

/// The one pretty JSON document a long-running command (connect) prints before it waits: its
/// lines up to the closing brace, within 30 s.
pub async fn first_report(stdout: tokio::process::ChildStdout) -> Value {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(stdout).lines();
    let mut text = String::new();
    // Bounded: a binary that never prints its report fails the test instead of hanging it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Some(line) = tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("the report within 30s")
        .expect("read the report")
    {
        text.push_str(&line);
        text.push('\n');
        if line == "}" {
            break;
        }
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// What the namespace holds but the snapshot schedule's runs (the Job install starts to prove it,
/// and its pod): to compare with [`expected_inventory`].
pub fn release_inventory(fake: &FakeKube) -> Vec<String> {
    fake.inventory(NS)
        .into_iter()
        .filter(|id| !id.contains("-snapshots-install-"))
        .collect()
}

/// Every object install makes in the dev namespace (the PVC comes from the StatefulSet).
pub fn expected_inventory() -> Vec<String> {
    let mut v: Vec<String> = [
        "ConfigMap/auth-postgres-dev-postgresql-configuration",
        "ConfigMap/auth-postgres-dev-snapshots",
        "Secret/auth-postgres-dev-values",
        "CronJob/auth-postgres-dev-snapshots",
        "NetworkPolicy/auth-postgres-dev-postgresql",
        "PersistentVolumeClaim/data-auth-postgres-dev-postgresql-0",
        "Pod/auth-postgres-dev-postgresql-0",
        "Secret/auth-db-secret",
        "Secret/auth-postgres-dev-postgresql",
        "Secret/auth-postgres-dev-postgresql-ca",
        "Secret/auth-postgres-dev-postgresql-tls",
        "Service/auth-postgres-dev-postgresql",
        "Service/auth-postgres-dev-postgresql-hl",
        "Service/auth-postgres-dev-postgresql-metrics",
        "Role/auth-postgres-dev-snapshots",
        "RoleBinding/auth-postgres-dev-snapshots",
        "ServiceAccount/auth-postgres-dev-postgresql",
        "ServiceAccount/auth-postgres-dev-snapshots",
        "StatefulSet/auth-postgres-dev-postgresql",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.sort();
    v
}

/// The rendered postgresql.conf as the cluster holds it.
pub fn postgresql_conf(c: &Cluster) -> String {
    let cm = c
        .fake
        .get(
            "ConfigMap",
            NS,
            "auth-postgres-dev-postgresql-configuration",
        )
        .expect("ConfigMap exists");
    cm["data"]["postgresql.conf"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A VolumeSnapshot of `claim` that the tool under test did not make (a person's, another
/// release's, or one standing for an earlier run), with these labels.
pub fn put_snapshot(fake: &FakeKube, name: &str, claim: &str, labels: Value) {
    fake.create(
        NS,
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": name, "labels": labels},
            "spec": {"volumeSnapshotClassName": "csi-azuredisk-vsc", "source": {"persistentVolumeClaimName": claim}}}),
    )
    .unwrap();
}

/// The labels the tool puts on a snapshot of `release` (`origin`: manual, scheduled, safety).
pub fn snapshot_labels(release: &str, origin: Option<&str>) -> Value {
    let mut labels = json!({"app.kubernetes.io/instance": release, "app.kubernetes.io/managed-by": "phonebill-db"});
    if let Some(origin) = origin {
        labels["phonebill-db/origin"] = json!(origin);
    }
    labels
}

/// The lines of each fenced block of `lang` (```` ```sh ````, ```` ```text ````) in markdown `text`.
pub fn fenced_blocks(text: &str, lang: &str) -> Vec<Vec<String>> {
    text.split(&format!("```{lang}\n"))
        .skip(1)
        .map(|b| {
            b.split("```")
                .next()
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// A scheduled job's command as its CronJob runs it, against this fake cluster: the container's
/// arguments with its mounted values file (the ConfigMap's `values.yaml`) written locally.
pub fn job_command(c: &Cluster, cron_job: &str, values_map: &str) -> Vec<String> {
    let cj = c.fake.get("CronJob", NS, cron_job).expect("the CronJob");
    let values = c.dir.path().join(format!("{cron_job}-values.yaml"));
    let cm = c.fake.get("ConfigMap", NS, values_map).expect("its values");
    std::fs::write(&values, cm["data"]["values.yaml"].as_str().unwrap()).unwrap();
    cj.pointer("/spec/jobTemplate/spec/template/spec/containers/0/args")
        .and_then(Value::as_array)
        .expect("args")
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            if a == "/etc/phonebill-db/values.yaml" {
                values.display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect()
}

/// Run a job's command with exactly the rules of `role` (as its ServiceAccount would have them).
pub async fn run_as_role(c: &Cluster, role: &str, args: &[String]) -> Run {
    let rules = c.fake.get("Role", NS, role).expect("the Role")["rules"].clone();
    c.fake.allow_only(NS, rules);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = c.run(&args).await;
    c.fake.allow_all();
    run
}
