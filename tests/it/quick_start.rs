//! The README's quick start, as a newcomer pastes it: every `phonebill-db` line of its blocks
//! runs — render and values first with no cluster at all, then all of them against the fake AKS
//! cluster (neither class there) with a real PostgreSQL behind the pod; `connect` is left open
//! while the psql line connects through it. Lines for other programs (az, docker, kubectl) are
//! the cloud's and are not run here.

use std::path::Path;
use std::process::Stdio;

use crate::pg::Release;
use crate::support::APP_SECRET;

/// The shell lines of the README's quick start, block by block.
fn quick_start() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Quick start on AKS\n")
        .nth(1)
        .expect("a quick start")
        .split("\n## ")
        .next()
        .unwrap();
    crate::support::fenced_blocks(section, "sh")
}

/// A `phonebill-db` on PATH that is the binary under test with this release's names laid under
/// any values file the line gives (a test database of its own), and the fake's kubeconfig.
fn wrapper(dir: &Path, release_values: &str) {
    let script = format!(
        "#!/bin/bash\nargs=(); extra=''\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --values ]; then extra=\"$2\"; shift 2; else args+=(\"$1\"); shift; fi\ndone\nf=$(mktemp)\ncat '{release_values}' > \"$f\"\n[ -n \"$extra\" ] && cat \"$extra\" >> \"$f\"\nexec '{}' \"${{args[@]}}\" --values \"$f\"\n",
        env!("CARGO_BIN_EXE_phonebill-db")
    );
    let path = dir.join("phonebill-db");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn shell(dir: &Path, path: &str, env: &[(&str, &str)], line: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.args(["-c", line])
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_works_as_written() {
    let blocks = quick_start();
    let lines: Vec<&String> = blocks.iter().flatten().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("phonebill-db install")),
        "{lines:?}"
    );
    for l in &lines {
        let program = l.split_whitespace().next().unwrap_or_default();
        assert!(
            ["phonebill-db", "az", "docker", "kubectl", "printf", "psql"].contains(&program),
            "a quick start line runs what this test does not know: {l}"
        );
    }

    // No cluster yet: what it would install, and the values.
    let home = tempfile::tempdir().unwrap();
    let alone = format!("{}:/usr/bin:/bin", home.path().display());
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_phonebill-db"),
        home.path().join("phonebill-db"),
    )
    .unwrap();
    for line in lines
        .iter()
        .filter(|l| l.starts_with("phonebill-db render") || l.starts_with("phonebill-db values"))
    {
        let out = shell(home.path(), &alone, &[], line)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A fresh AKS cluster: neither the plan's StorageClass nor a snapshot class.
    let r = Release::new("quick").await;
    let fake = &r.cluster.fake;
    fake.delete("StorageClass", "", "managed-standard").unwrap();
    fake.delete("VolumeSnapshotClass", "", "csi-azuredisk-vsc")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    wrapper(dir.path(), &r.values);
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        dir.path().display(),
        r.pg.bin.display()
    );
    let kubeconfig = r.cluster.kubeconfig.display().to_string();
    let mut installed = false;
    let mut connected: Option<(tokio::process::Child, String)> = None;
    let mut ran = 0;
    for line in lines {
        let program = line.split_whitespace().next().unwrap();
        if !["phonebill-db", "printf", "psql"].contains(&program) {
            continue;
        }
        ran += 1;
        let env = [("KUBECONFIG", kubeconfig.as_str())];
        if line.starts_with("phonebill-db connect") {
            // Any free port here; the psql line is given the one it printed.
            let line = line.replace("--port 15432", "--port 0");
            let mut child = shell(dir.path(), &path, &env, &line)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            use tokio::io::AsyncBufReadExt;
            let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let port = loop {
                let l = tokio::time::timeout(std::time::Duration::from_secs(30), out.next_line())
                    .await
                    .expect("connect prints its details")
                    .unwrap()
                    .expect("a port line");
                if let Some(p) = l.trim().strip_prefix("port") {
                    break p.trim().to_string();
                }
            };
            connected = Some((child, port));
            continue;
        }
        let mut line = line.clone();
        let mut env: Vec<(&str, String)> = vec![("KUBECONFIG", kubeconfig.clone())];
        if program == "psql" {
            let (_, port) = connected.as_ref().expect("connect runs before psql");
            line = line
                .replace("port=15432", &format!("port={port}"))
                .replace("dbname=phonebill_auth", &format!("dbname={}", r.database))
                .replace("user=auth_user", &format!("user={}", r.app));
            env.push(("PGPASSWORD", r.secret(APP_SECRET, "auth-user-password")));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = shell(dir.path(), &path, &env, &line)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: exit {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if line.starts_with("phonebill-db install") && !installed {
            // What the image's entrypoint does on a new data volume, here on the test server.
            installed = true;
            r.entrypoint();
            let password = r.secret(crate::support::ADMIN_SECRET, "postgres-password");
            r.exec_env(&password, &[]);
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(
                report.contains("its first run"),
                "the schedule proven: {report}"
            );
        }
    }
    assert!(ran >= 10, "{ran} lines ran");
    assert!(
        fake.get("StorageClass", "", "managed-standard").is_some(),
        "made by the flag"
    );
    assert!(dir.path().join("installer-rbac.yaml").is_file());
    if let Some((mut child, _)) = connected {
        child.start_kill().unwrap();
    }
}
