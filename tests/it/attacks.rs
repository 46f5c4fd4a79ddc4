//! The second security round: each attack of a colleague with namespace rights, or of a crafted
//! file, done for real through the binary — and refused. A test here is the attack, not a check
//! of the tool's own code: it would have worked before the fix.

use std::time::Duration;

use serde_json::json;

use crate::pg::Release;
use crate::pod::PodServer;
use crate::support::{APP_SECRET, Cluster, NS, PVC, STS, run_bin};

const RECORD: &str = "auth-postgres-dev-values";

/// `--allow-any` cannot be had by halves: ranges that together are the internet need it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internet_in_halves_needs_allow_any() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    for halves in [
        vec!["0.0.0.0/1", "128.0.0.0/1"],
        vec!["::/1", "8000::/1"],
        vec!["10.0.0.0/8", "11.0.0.0/8"],
    ] {
        let mut args = vec!["expose"];
        for h in &halves {
            args.extend(["--allow", h]);
        }
        c.run(&args)
            .await
            .refused(2, "nothing was created or changed", "--allow-any");
        assert!(
            c.fake
                .get("Service", NS, "auth-postgres-external")
                .is_none()
        );
        assert!(
            c.fake
                .get("NetworkPolicy", NS, "auth-postgres-external")
                .is_none()
        );
    }
    // IPv4-mapped IPv6 is IPv4: all of it is every address.
    let run = c.run(&["expose", "--allow", "::ffff:0.0.0.0/96"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is every address"), "{}", run.stderr);
    // A mapped range is written as the IPv4 range it is; a /8 is still someone's network.
    let r = c
        .run(&[
            "expose",
            "--allow",
            "::ffff:203.0.113.0/120",
            "--allow",
            "10.0.0.0/9",
            "-o",
            "json",
        ])
        .await
        .ok_json();
    assert_eq!(r["allowed"], json!(["203.0.113.0/24", "10.0.0.0/9"]));
}

/// A colleague who may write ConfigMaps plants a record choosing an image that would mount the
/// admin password and switching the NetworkPolicy off. The record is a Secret now: a ConfigMap of
/// its name is not read while the Secret is there; planted in the Secret (by one who may write
/// Secrets), a plain install says every recorded value and will not apply the changes to what
/// runs without a yes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_record_does_not_change_what_runs_unasked() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let planted = "image: evil.example.com/postgres:16\nnetworkPolicy:\n  enabled: false\n";
    // A ConfigMap of the record's name: not the record.
    c.fake
        .create(
            NS,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": RECORD},
                "data": {"environment": "dev", "values.yaml": planted}}),
        )
        .unwrap();
    c.reinstall_changes_nothing().await;
    // In the Secret itself.
    c.fake
        .merge_patch(
            "Secret",
            NS,
            RECORD,
            json!({"stringData": {"values.yaml": planted}}),
        )
        .unwrap();
    let before = c.versions();
    let run = c.run(&["install", "--timeout", "30s"]).await;
    run.refused(2, "needs confirmation", "--yes");
    assert!(
        run.error_line()
            .contains("image docker.io/library/postgres:16 → evil.example.com/postgres:16")
            && run
                .error_line()
                .contains("networkPolicy.enabled true → false"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the release's record (Secret auth-postgres-dev-values) sets image=evil.example.com/postgres:16"),
        "{}",
        run.stderr
    );
    assert_eq!(c.versions(), before, "nothing applied");
    // A dry run applies nothing either, and says so.
    let dry = c.run(&["install", "--dry-run", "-o", "json"]).await;
    let report = dry.ok_json();
    assert_eq!(report["recorded"][0]["key"], "image", "{report}");
    let sts = c.fake.get("StatefulSet", NS, STS).unwrap();
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "docker.io/library/postgres:16"
    );
    assert!(
        c.fake
            .get("NetworkPolicy", NS, "auth-postgres-dev-postgresql")
            .is_some()
    );
    // The owner means it: --yes applies it (and the next install asks nothing: it runs so).
    c.fake
        .merge_patch(
            "Secret",
            NS,
            RECORD,
            json!({"stringData": {"values.yaml": "networkPolicy:\n  enabled: false\n"}}),
        )
        .unwrap();
    let run = c.run(&["install", "--yes", "--timeout", "30s"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        c.fake
            .get("NetworkPolicy", NS, "auth-postgres-dev-postgresql")
            .is_none()
    );
    let again = c.run(&["install", "--timeout", "30s"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
}

/// An older version's record (a ConfigMap) is read once, and install replaces it with the Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_versions_record_moves_to_a_secret() {
    let c = Cluster::aks().await;
    c.install_ok(&["--storage-class", "managed-csi", "--create-snapshot-class"])
        .await;
    // As the older version kept it.
    let secret = c.fake.get("Secret", NS, RECORD).unwrap();
    let values = crate::support::record_data(&c)["values.yaml"].clone();
    c.fake
        .cluster()
        .purge(fake_kube::store::info_of("Secret"), NS, RECORD);
    c.fake
        .create(
            NS,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": RECORD, "labels": secret["metadata"]["labels"]},
                "data": {"environment": "dev", "values.yaml": values}}),
        )
        .unwrap();
    let report = c.install_ok(&[]).await;
    assert_eq!(
        report["storageClass"], "managed-csi",
        "the old record was used"
    );
    assert!(
        c.fake.get("ConfigMap", NS, RECORD).is_none(),
        "and replaced"
    );
    assert_eq!(
        crate::support::record_data(&c)["values.yaml"],
        "storage:\n  className: managed-csi\n"
    );
}

/// prod's safety switches cannot be switched by a values file or a planted record: no test
/// accounts with a known password in prod, no restore of prod on `--yes` alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prods_safety_switches_are_not_values() {
    let home = tempfile::tempdir().unwrap();
    for (yaml, key) in [
        ("sampleData: true\n", "sampleData"),
        ("production: false\n", "production"),
    ] {
        let values = home.path().join("switch.yaml");
        std::fs::write(&values, yaml).unwrap();
        let v = values.display().to_string();
        for args in [
            vec!["apply-schema", "--env", "prod", "--values", &v],
            vec![
                "restore", "--env", "prod", "--values", &v, "--from", "x.dump", "--yes",
            ],
            vec!["render", "--env", "prod", "--values", &v],
        ] {
            let run = run_bin(home.path(), &args).await;
            run.refused(2, &format!("key `{key}`"), "in prod");
        }
    }
    // Planted in prod's record.
    let c = Cluster::with_plan_class().await;
    c.fake
        .create(
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "phonebill-prod"}}),
        )
        .unwrap();
    c.fake
        .create(
            "phonebill-prod",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "auth-postgres-prod-values"},
                "stringData": {"environment": "prod", "values.yaml": "sampleData: true\n"}}),
        )
        .unwrap();
    c.run(&["apply-schema", "--env", "prod"])
        .await
        .refused(2, "key `sampleData`", "in prod");
}

/// The administrator logs in only on the pod's socket and loopback: from the network it is
/// refused, with TLS and the right password, through expose's load balancer too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_administrator_is_refused_from_the_network() {
    let c = Cluster::with_plan_class().await;
    let values = PodServer::before_install(&c);
    c.install_ok(&[&values[0], &values[1]]).await;
    let pod = PodServer::start(&c);
    let ca = pod.ca.display().to_string();
    let off = |user: &str| {
        format!(
            "hostaddr={} port={} dbname=phonebill_auth user={user} host=auth-postgres-dev-postgresql.phonebill-dev.svc sslmode=verify-full sslrootcert={ca}",
            pod.pod_ip, pod.port
        )
    };
    let e = pod
        .psql(&off("postgres"), Some(&pod.admin_password))
        .unwrap_err();
    assert!(e.contains("pg_hba.conf rejects connection"), "{e}");
    assert!(pod.psql(&off("auth_user"), Some(&pod.app_password)).is_ok());
    // The tool's own way in (a port-forward, on the pod's loopback) still works.
    let verify = c.run(&["verify", "-o", "json"]).await;
    assert_eq!(
        crate::support::check(&verify.json(), "admin connects")["status"],
        "pass",
        "{}",
        verify.stdout
    );
    // expose names only the app's login.
    let exposed = c
        .run(&["expose", "--allow", "203.0.113.0/24", "-o", "json"])
        .await
        .ok_json();
    let users: Vec<&str> = exposed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["role"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["app"]);
}

/// The metrics port admits the scraper's namespace only, not every source.
#[tokio::test]
async fn the_metrics_port_admits_only_the_scrapers_namespace() {
    let home = tempfile::tempdir().unwrap();
    let run = run_bin(home.path(), &["render", "-o", "json"]).await;
    let list = run.ok_json();
    let policy = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy")
        .unwrap()
        .clone();
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert!(
        rules.iter().all(|r| r
            .get("from")
            .is_some_and(|f| !f.as_array().unwrap().is_empty())),
        "no rule open to every source: {policy}"
    );
    let metrics = rules
        .iter()
        .find(|r| r["ports"][0]["port"] == 9187)
        .unwrap();
    assert_eq!(
        metrics["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}])
    );
}

/// A password change whose COMMIT reached the server but whose answer was lost, and whose first
/// check fails for another reason: the Secrets are not put back over a committed password (the
/// role would be locked out); the change is told apart by what the server stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_password_whose_answer_was_lost_is_kept() {
    let r = Release::new("atk_commit").await;
    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    let fake = &r.cluster.fake;
    // The first look after the lost answer fails too (the API refuses that port-forward).
    fake.cut_forward_after("COMMIT", 1);
    let old = r.secret(APP_SECRET, "auth-user-password");
    let run = r
        .run(&["rotate-password", "--role", "app", "--yes", "-o", "json"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let new = r.secret(APP_SECRET, "auth-user-password");
    assert_ne!(new, old, "the Secret holds the new password");
    let verify = r.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(
        crate::support::check(&verify, "app role connects")["status"],
        "pass",
        "the app logs in with its Secret's password: {verify}"
    );
}

/// A claim of the volume's name that someone makes while `restore --snapshot` replaces the
/// volume is not taken for the one made from the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_snapshot_does_not_take_over_a_claim_someone_else_made() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let snap = c.snapshot().await;
    // The tool's create of the new claim is slow to arrive; meanwhile a claim of its name appears.
    c.fake.inject(
        "/persistentvolumeclaims",
        Some("POST"),
        1,
        fake_kube::Fault::Delay(Duration::from_secs(2)),
    );
    let kc = c.kubeconfig.display().to_string();
    let child = crate::support::bin_command(
        c.dir.path(),
        &[
            "restore",
            "--snapshot",
            &snap,
            "--yes",
            "--timeout",
            "60s",
            "--kubeconfig",
            &kc,
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Once the tool has sent its create (held back two seconds), the name is taken.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c
        .fake
        .requests_matching("POST /api/v1/namespaces/phonebill-dev/persistentvolumeclaims")
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the tool never made its claim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.fake
        .create(
            NS,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": PVC},
                "spec": {"storageClassName": "managed-standard", "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "20Gi"}}}}),
        )
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("it ends")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "PersistentVolumeClaim {PVC} exists already, and is not the one this command makes"
        )),
        "{stderr}"
    );
}

/// What a profile may not hold, said before anything: an untrusted language, a label key of two
/// slashes, a size past any disk; and `--pg-bin` that has no tools is an error, not PATH.
#[tokio::test]
async fn what_the_values_and_flags_may_not_say() {
    let home = tempfile::tempdir().unwrap();
    for (yaml, key) in [
        ("extensions: [uuid-ossp, plpython3u]\n", "extensions[1]"),
        ("extensions: [adminpack]\n", "extensions[0]"),
        (
            "networkPolicy:\n  allowFromPodLabels:\n    a/b/c: x\n",
            "networkPolicy.allowFromPodLabels.a/b/c",
        ),
        (
            "storage:\n  size: 99999999999999999999999Ti\n",
            "storage.size",
        ),
    ] {
        let values = home.path().join("bad.yaml");
        std::fs::write(&values, yaml).unwrap();
        let run = run_bin(
            home.path(),
            &["render", "--values", &values.display().to_string()],
        )
        .await;
        run.refused(2, &format!("key `{key}`"), "");
    }
    let run = run_bin(
        home.path(),
        &[
            "backup",
            "--database-url",
            "postgresql://u@127.0.0.1:1/db",
            "--pg-bin",
            "/nonexistent",
            "--to",
            "x.dump",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("`/nonexistent` is not a directory"),
        "{}",
        run.stderr
    );
    // A directory without the tools, given as the variable.
    let run = crate::support::run_bin_env(
        home.path(),
        &[
            "backup",
            "--database-url",
            "postgresql://u@127.0.0.1:1/db",
            "--to",
            "x.dump",
        ],
        &[("PHONEBILL_PG_BIN", "/tmp")],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("has none of pg_dump"), "{}", run.stderr);
    let run = run_bin(
        home.path(),
        &["restore", "--from", "x.dump", "--force-foreign", "--yes"],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = run_bin(
        home.path(),
        &[
            "restore",
            "--from",
            "x.dump",
            "--no-safety-snapshot",
            "--yes",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
}

/// What a kubeconfig and its credential plugin hold never reaches an error line (nor `-o json`'s
/// error document): a plugin that fails after printing the token, one whose answer is not JSON
/// but quotes the token, a kubeconfig whose YAML breaks next to a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_an_error_line() {
    use base64::Engine;
    let c = Cluster::with_plan_class().await;
    let dir = c.dir.path();
    let token = "eyJhbGciOi-THE-SECRET-TOKEN-0123456789";
    let ca = base64::engine::general_purpose::STANDARD.encode(c.fake.ca_pem());
    let kubeconfig = |command: &str| {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: plugin\nusers:\n- name: plugin\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {command}\n      interactiveMode: Never\n",
            c.fake.url
        )
    };
    let credential = format!(
        "{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}"
    );
    for (name, body, says) in [
        (
            "fails",
            format!("echo '{credential}'; exit 1"),
            "credential plugin",
        ),
        (
            "garbles",
            format!("echo '{{\"token\": \"{token}\", oops'"),
            "no ExecCredential",
        ),
    ] {
        let script = dir.join(name);
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&config, kubeconfig(&script.display().to_string())).unwrap();
        let config = config.display().to_string();
        for output in ["text", "json"] {
            let run = run_bin(dir, &["status", "--kubeconfig", &config, "-o", output]).await;
            assert_eq!(run.code, 1, "{}", run.stderr);
            assert!(run.stderr.contains(says), "{}", run.stderr);
            assert!(
                !run.stderr.contains(token) && !run.stdout.contains(token),
                "the token leaked:\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
    // YAML that breaks next to a password.
    let config = dir.join("broken.kubeconfig");
    std::fs::write(
        &config,
        format!("apiVersion: v1\nusers:\n- name: u\n  user:\n    password: {token}\n    username: [admin\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    for output in ["text", "json"] {
        let run = run_bin(dir, &["status", "--kubeconfig", &config, "-o", output]).await;
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("kubeconfig {config} is not a kubeconfig")),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("line "), "{}", run.stderr);
        assert!(
            !run.stderr.contains(token) && !run.stdout.contains(token),
            "{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut out = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut out)
        .expect("a gzip file of text");
    out
}

/// Write `sql` as a plain backup named `name` beside `original`, with `original`'s manifest and
/// the size and SHA-256 recomputed: what anyone who can write the file can do.
fn forged(original: &std::path::Path, name: &str, sql: &str) -> String {
    use sha2::Digest;
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(sql.as_bytes()).unwrap();
    let bytes = e.finish().unwrap();
    let file = original.with_file_name(name);
    std::fs::write(&file, &bytes).unwrap();
    let meta = |p: &std::path::Path| format!("{}.meta.json", p.display());
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(meta(original)).unwrap()).unwrap();
    manifest["size"] = json!(bytes.len());
    manifest["sha256"] = json!(hex::encode(sha2::Sha256::digest(&bytes)));
    std::fs::write(meta(&file), manifest.to_string()).unwrap();
    file.display().to_string()
}

/// A plain backup restores only as pg_dump writes it: a psql command put into a real dump, its
/// manifest's size and SHA-256 recomputed, is refused before anything is touched — in front, after
/// a COPY's data, behind a string that ends where psql (not the server) thinks — through the pod
/// and through --database-url, and psql never runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psql_command_in_a_plain_backup_is_refused_not_run() {
    let r = Release::new("atk_plain").await;
    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    r.pg.generate_rows(&r.database, 20);
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("auth.sql.gz");
    let run = r
        .run(&[
            "backup",
            "--format",
            "plain",
            "--to",
            plain.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sql = gunzip(&std::fs::read(&plain).unwrap());
    assert!(
        sql.contains(" FROM stdin;\n") && sql.contains("\n\\.\n"),
        "{sql}"
    );
    let marker = dir.path().join("pwned");
    let command = format!("\\! id > {}\n", marker.display());
    let after_copy = sql.replacen("\n\\.\n", &format!("\n\\.\n{command}"), 1);
    let after_string = sql.replacen(
        "SET standard_conforming_strings = on;\n",
        &format!("SET standard_conforming_strings = on;\nSELECT 'a\\'; {command}"),
        1,
    );
    assert_ne!(after_string, sql);
    r.psql("UPDATE auth_services SET service_name = 'after the backup'");
    let changed =
        || r.psql("SELECT count(*) FROM auth_services WHERE service_name = 'after the backup'");
    let before = changed();
    assert_ne!(before, "0");
    for (name, text, line) in [
        ("front.sql.gz", format!("{command}{sql}"), 1),
        ("after-copy.sql.gz", after_copy, 0),
        ("after-string.sql.gz", after_string, 0),
    ] {
        let file = forged(&plain, name, &text);
        let expected_line = if line == 0 {
            text.lines().position(|l| l.contains("pwned")).unwrap() + 1
        } else {
            line
        };
        for url in [false, true] {
            let args = ["restore", "--from", &file, "--yes"];
            let run = if url {
                r.via_url(&args).await
            } else {
                r.run(&args).await
            };
            assert_eq!(run.code, 4, "{name} (url: {url}): {}", run.stderr);
            assert!(
                run.stderr.contains("not restored as SQL")
                    && run.stderr.contains(&format!("line {expected_line}:"))
                    && run.stderr.contains("nothing was restored"),
                "{name}: {}",
                run.stderr
            );
            assert!(
                !marker.exists(),
                "{name} (url: {url}): psql ran the command"
            );
            assert_eq!(changed(), before, "{name}: the database was touched");
        }
    }
    // No safety backup was taken for a file refused up front.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("before-restore"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // The real file still restores, both ways.
    let file = plain.to_str().unwrap();
    for url in [false, true] {
        let args = ["restore", "--from", file, "--yes", "--no-safety-backup"];
        let run = if url {
            r.via_url(&args).await
        } else {
            r.run(&args).await
        };
        assert_eq!(run.code, 0, "url: {url}: {}", run.stderr);
        assert_eq!(changed(), "0");
        r.psql("UPDATE auth_services SET service_name = 'after the backup'");
    }
}

/// pg_dump's own `\restrict` (PostgreSQL 15.14, 16.10 and later write one) is dropped and the
/// stream put inside this run's own where psql has `\restrict` (Debian's 15.18), and restored
/// without one by a psql that has not (the tests' 16.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_with_pg_dumps_own_restrict_restores_with_either_psql() {
    let old = crate::pg::Pg::old();
    let port = old.port;
    let (old, port, db) = crate::habits::database_on(old, port, "restrict");
    let old_tools = old.bin.display().to_string();
    let new_tools = crate::pg::Pg::get().bin.display().to_string();
    let url = format!("postgresql://postgres@127.0.0.1:{port}/{db}?sslmode=disable");
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, format!("appUser: {db}_app\n")).unwrap();
    let values = values.to_str().unwrap();
    let env = [
        ("PGPASSWORD", old.password.as_str()),
        ("PHONEBILL_APP_PASSWORD", "app-pw-restrict"),
    ];
    let base = ["--database-url", url.as_str(), "--values", values];
    let with = |args: &[&str], tools: &str| -> Vec<String> {
        args.iter()
            .chain(&base)
            .chain(&["--pg-bin", tools])
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::pg::run_url(&args, &env).await
    };
    let applied = run(["apply-schema"]
        .iter()
        .chain(&base)
        .map(|s| s.to_string())
        .collect())
    .await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let plain = dir.path().join("old.sql.gz").display().to_string();
    let backup = run(with(
        &["backup", "--format", "plain", "--to", &plain],
        &old_tools,
    ))
    .await;
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    let sql = gunzip(&std::fs::read(&plain).unwrap());
    assert!(
        sql.contains("\n\\restrict ") && sql.contains("\n\\unrestrict "),
        "{sql}"
    );
    for tools in [&old_tools, &new_tools] {
        crate::habits::pg_plain(
            &old,
            port,
            &db,
            "UPDATE auth_services SET service_name = 'changed'",
        );
        let restored = run(with(
            &[
                "restore",
                "--from",
                &plain,
                "--yes",
                "--no-safety-backup",
                "-o",
                "json",
            ],
            tools,
        ))
        .await;
        assert_eq!(restored.code, 0, "{tools}: {}", restored.stderr);
        assert_eq!(
            old.psql(
                &db,
                "SELECT count(*) FROM auth_services WHERE service_name = 'changed'"
            ),
            "0",
            "{tools}: the backup's rows are back"
        );
    }
    // The dump's own key with another command is still a command.
    let forged_file = forged(
        std::path::Path::new(&plain),
        "twice.sql.gz",
        &sql.replacen("\n\\restrict ", "\n\\restrict x\n\\restrict ", 1),
    );
    let run = run(with(
        &["restore", "--from", &forged_file, "--yes"],
        &old_tools,
    ))
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("`\\restrict`"), "{}", run.stderr);
}

const CA_SECRET: &str = "auth-postgres-dev-postgresql-ca";
const TLS_SECRET: &str = "auth-postgres-dev-postgresql-tls";

/// Put `crt`/`key` into a Secret's keys, as someone who may write Secrets would.
fn plant(c: &Cluster, secret: &str, keys: [(&str, &str); 2]) {
    use base64::Engine;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let data: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|(k, v)| (k.to_string(), json!(b64(v))))
        .collect();
    c.fake
        .merge_patch("Secret", NS, secret, json!({ "data": data }))
        .unwrap();
}

/// Whoever reads the release's CA key may sign a certificate, but only for the release's own
/// names: a server presenting one for another host is refused by libpq (OpenSSL checks the CA's
/// name constraints) while one for the Service's name is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cas_key_cannot_vouch_for_another_host() {
    let c = Cluster::with_plan_class().await;
    let values = PodServer::before_install(&c);
    c.install_ok(&[&values[0], &values[1]]).await;
    let ca_crt = c.secret_text(CA_SECRET, "ca.crt");
    let ca_key = c.secret_text(CA_SECRET, "ca.key");
    let now = std::time::SystemTime::now();
    for (host, taken) in [
        ("db.example.com", false),
        ("auth-postgres-dev-postgresql.phonebill-dev.svc", true),
    ] {
        let (crt, key) =
            phonebill_db::certs::issue(&ca_crt, &ca_key, &[host.to_string()], now).unwrap();
        plant(&c, TLS_SECRET, [("tls.crt", &crt), ("tls.key", &key)]);
        let pod = PodServer::start(&c);
        let got = pod.psql(
            &format!(
                "hostaddr={} port={} dbname=phonebill_auth user=auth_user host={host} sslmode=verify-full sslrootcert={}",
                pod.pod_ip,
                pod.port,
                pod.ca.display()
            ),
            Some(&pod.app_password),
        );
        match (taken, got) {
            (true, Ok(out)) => assert!(out.starts_with("auth_user TLSv1."), "{out}"),
            (false, Err(e)) => assert!(e.contains("certificate verify failed"), "{e}"),
            (_, got) => panic!("{host}: {got:?}"),
        }
    }
}

/// A CA near its end is not replaced behind the user's back (every saved copy would stop
/// working): install says so a year ahead, refuses under 30 days until `--renew-ca`, and then
/// says what changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_is_renewed_only_when_asked() {
    use phonebill_db::certs;
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let profile = phonebill_db::profile::Profile::load("dev", None).unwrap();
    let day = Duration::from_secs(86_400);
    let aged = |left: u32| {
        let made = std::time::SystemTime::now() - day * (certs::CA_DAYS as u32 - left);
        let (crt, key) = certs::new_ca(&profile, made).unwrap();
        plant(&c, CA_SECRET, [("ca.crt", &crt), ("ca.key", &key)]);
        crt
    };

    // 300 days left: kept, with a note; the new server certificate ends with the CA.
    let ca = aged(300);
    let run = c.run(&["install", "-o", "json", "--timeout", "30s"]).await;
    let report = run.ok_json();
    assert_eq!(report["tls"]["action"], "renewed", "{report}");
    let note = report["caNotes"][0].as_str().unwrap_or_default();
    assert!(
        note.contains("the release's CA expires in 299 days")
            || note.contains("the release's CA expires in 300 days"),
        "{report}"
    );
    assert!(note.contains("--renew-ca"), "{note}");
    assert_eq!(c.secret_text(CA_SECRET, "ca.crt"), ca);
    let server = certs::inspect(&c.secret_text(TLS_SECRET, "tls.crt")).unwrap();
    assert!(server.not_after <= certs::inspect(&ca).unwrap().not_after);
    let status = c.run(&["status", "-o", "json"]).await.json();
    assert_eq!(status["serverCertificate"]["status"], "warn", "{status}");

    // 20 days left: refused, nothing changed; --renew-ca makes a new CA and says so.
    let ca = aged(20);
    let tls_before = c.secret_text(TLS_SECRET, "tls.crt");
    c.run(&["install"])
        .await
        .refused(2, "expires in 19 days", "install --env dev --renew-ca");
    assert_eq!(c.secret_text(CA_SECRET, "ca.crt"), ca);
    assert_eq!(c.secret_text(TLS_SECRET, "tls.crt"), tls_before);
    // (The aged CA was planted by `kubectl`'s field manager: taken over.)
    let run = c
        .run(&[
            "install",
            "--renew-ca",
            "--force-conflicts",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("made a new CA"), "{}", run.stdout);
    let new = c.secret_text(CA_SECRET, "ca.crt");
    assert_ne!(new, ca);
    assert!(
        certs::inspect(&new)
            .unwrap()
            .days_left(std::time::SystemTime::now())
            >= certs::CA_DAYS - 1
    );
    // The app's Secret carries the new CA, and the server certificate is signed by it.
    assert_eq!(c.secret_text(APP_SECRET, "ca.crt"), new);
    assert!(certs::signed_by(
        &c.secret_text(TLS_SECRET, "tls.crt"),
        &new
    ));
}

/// A server that asks for the password in clear text gets none: the release's pod (SCRAM only,
/// through the port-forward) and a `--database-url` server over verified TLS both refused before
/// the password goes, unless the URL allows it with `require_auth=password`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_asking_for_a_clear_text_password_gets_none() {
    let c = Cluster::with_plan_class().await;
    let values = PodServer::before_install(&c);
    c.install_ok(&[&values[0], &values[1]]).await;
    // The pod's server, changed to ask every client for its password in clear text.
    let name = "auth-postgres-dev-postgresql-configuration";
    let cm = c.fake.get("ConfigMap", NS, name).unwrap();
    let hba = cm["data"]["pg_hba.conf"]
        .as_str()
        .unwrap()
        .replace("scram-sha-256", "password");
    c.fake
        .merge_patch(
            "ConfigMap",
            NS,
            name,
            json!({ "data": { "pg_hba.conf": hba } }),
        )
        .unwrap();
    let pod = PodServer::start(&c);
    // As psql would be (libpq gives it), so the server does ask: the control.
    let off = format!(
        "hostaddr={} port={} dbname=phonebill_auth user=auth_user host=auth-postgres-dev-postgresql.phonebill-dev.svc sslmode=verify-full sslrootcert={}",
        pod.pod_ip,
        pod.port,
        pod.ca.display()
    );
    assert!(pod.psql(&off, Some(&pod.app_password)).is_ok());

    // The tool through the port-forward: SCRAM or nothing.
    c.run(&["apply-schema"]).await.refused(
        1,
        "asked for the password in clear text",
        "require_auth=password",
    );

    // --database-url over verified TLS: refused by default; allowed when the URL says so.
    let url = |extra: &str| {
        format!(
            "postgresql://auth_user@auth-postgres-dev-postgresql.phonebill-dev.svc:{}/phonebill_auth?sslmode=verify-full&hostaddr={}{extra}",
            pod.port, pod.pod_ip
        )
    };
    let ca = pod.ca.display().to_string();
    let dry = |u: String| {
        let ca = ca.clone();
        let app = pod.app_password.clone();
        async move {
            crate::pg::run_url(
                &[
                    "verify",
                    "--database-url",
                    &u,
                    "--ca-file",
                    &ca,
                    "-o",
                    "json",
                ],
                &[("PGPASSWORD", &app)],
            )
            .await
        }
    };
    let run = dry(url("")).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    let admin = crate::support::check(&run.json(), "admin connects")["detail"].clone();
    assert!(
        admin.as_str().unwrap().ends_with(
            "the server asked for the password in clear text, which require_auth=!password refuses; the password was not sent"
        ),
        "{admin}"
    );
    let run = dry(url("&require_auth=password")).await;
    assert!(!run.stderr.contains("clear text"), "{}", run.stderr);
    let v = run.json();
    assert_eq!(
        crate::support::check(&v, "admin connects")["status"],
        "pass",
        "{v}"
    );
    // A rule libpq would not read is refused as the URL's fault.
    dry(url("&require_auth=scram"))
        .await
        .refused(2, "`scram` is not one of", "postgresql://");
}

/// Every small input is read within a bound: an endless CA file, an endless --ca-out target, an
/// endless manifest, a values file or a planted record nested without end, and a long value
/// with format characters are each refused quickly with one short line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_and_crafted_inputs_are_refused_quickly() {
    let started = std::time::Instant::now();
    // PGSSLROOTCERT=/dev/zero: aborted with a 4 GiB allocation and a backtrace (exit 134).
    let run = crate::pg::run_url(
        &[
            "apply-schema",
            "--dry-run",
            "--database-url",
            "postgresql://u@127.0.0.1:1/db?sslmode=verify-full",
        ],
        &[("PGSSLROOTCERT", "/dev/zero"), ("PGPASSWORD", "x")],
    )
    .await;
    run.refused(
        1,
        "cannot read CA file /dev/zero: it holds more than 1 MiB",
        "PEM file",
    );

    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    // --ca-out /dev/full: read to its (never) end before. Refused, nothing exposed.
    c.run(&[
        "expose",
        "--allow",
        "203.0.113.0/24",
        "--ca-out",
        "/dev/full",
    ])
    .await
    .refused(2, "/dev/full exists and is not a certificate", "--ca-out");
    assert!(
        c.fake
            .get("Service", NS, "auth-postgres-external")
            .is_none()
    );

    // A values file of 200 KB of `[`: minutes in serde_yaml's parser.
    let deep = c.dir.path().join("deep.yaml");
    std::fs::write(
        &deep,
        format!("storage: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    )
    .unwrap();
    let d = deep.display().to_string();
    c.run(&["render", "--values", &d]).await.refused(
        2,
        "recursion limit exceeded at line 1",
        "YAML syntax",
    );
    // A long value with a right-to-left override: shortened and escaped in the one line.
    let long = c.dir.path().join("long.yaml");
    std::fs::write(
        &long,
        format!("image: \"evil\u{202e}gpj.{}\"\n", "x".repeat(500_000)),
    )
    .unwrap();
    let l = long.display().to_string();
    let run = c.run(&["render", "--values", &l]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = run.error_line();
    assert!(line.len() < 400, "{} bytes: {}", line.len(), &line[..400]);
    assert!(line.contains("evil\\u{202e}gpj.xxx"), "{line}");
    assert!(line.contains("bytes in all)"), "{line}");
    assert!(!run.stderr.contains('\u{202e}'), "{}", run.stderr);
    // A file past 1 MiB.
    std::fs::write(&long, "x".repeat(2 << 20)).unwrap();
    c.run(&["render", "--values", &l])
        .await
        .refused(2, "it holds more than 1 MiB", "--values");

    // A backup whose manifest never ends.
    let dump = c.dir.path().join("x.dump");
    std::fs::write(&dump, b"PGDMP").unwrap();
    std::os::unix::fs::symlink("/dev/zero", c.dir.path().join("x.dump.meta.json")).unwrap();
    let f = dump.display().to_string();
    c.run(&["restore", "--from", &f, "--yes"]).await.refused(
        4,
        "cannot be read: it holds more than 1 MiB",
        "manifest",
    );

    // Nested in the release's record (within its 64 KiB): status says so, at once.
    use base64::Engine;
    let nested = format!(
        "storage: {}1{}\n",
        "{a: ".repeat(12_000),
        "}".repeat(12_000)
    );
    c.fake
        .merge_patch(
            "Secret",
            NS,
            "auth-postgres-dev-values",
            json!({ "data": { "values.yaml": base64::engine::general_purpose::STANDARD.encode(nested) } }),
        )
        .unwrap();
    let run = c.run(&["status"]).await;
    assert!(run.stderr.contains("is not valid YAML"), "{}", run.stderr);

    // All of it in moments (the nested file alone took minutes before).
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
