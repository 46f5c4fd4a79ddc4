//! `report`: the support archive, against the fake API server and the throwaway PostgreSQL:
//! what it holds, that no secret of the release is in it, partial rights, a broken release,
//! and the refusals.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::pg::Release;
use crate::support::{ADMIN_SECRET, APP_SECRET, Cluster, NS, STS};

const POD: &str = "auth-postgres-dev-postgresql-0";

/// The archive's files by their path under its top directory, and that directory's name.
fn unpack(file: &Path) -> (String, BTreeMap<String, String>) {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(file).expect("the archive"));
    let mut archive = tar::Archive::new(gz);
    let mut top = String::new();
    let mut files = BTreeMap::new();
    for e in archive.entries().expect("a tar") {
        let mut e = e.expect("an entry");
        let path = e.path().expect("a path").display().to_string();
        let (dir, rest) = path.split_once('/').expect("under one directory");
        top = dir.to_string();
        let mut text = String::new();
        e.read_to_string(&mut text).expect("text");
        files.insert(rest.to_string(), text);
    }
    (top, files)
}

fn parts(files: &BTreeMap<String, String>) -> Vec<String> {
    let index: Value = serde_json::from_str(&files["report.json"]).expect("report.json");
    index["unreadable"]
        .as_array()
        .expect("unreadable")
        .iter()
        .map(|u| u["part"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_holds_what_an_escalation_needs_and_no_secret_of_the_release() {
    let r = Release::new("report").await;
    r.install().await;
    let applied = r.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let c = &r.cluster;
    let admin_pw = r.secret(ADMIN_SECRET, "postgres-password");
    let app_pw = r.secret(APP_SECRET, "auth-user-password");
    let tls_key = r.secret("auth-postgres-dev-postgresql-tls", "tls.key");
    let ca_key = r.secret("auth-postgres-dev-postgresql-ca", "ca.key");
    // A service-account token Secret beside the release's (labelled as its own).
    let token = "eyJhbGciOiJSUzI1NiJ9.c2VydmljZS1hY2NvdW50LXRva2Vu.c2lnbmF0dXJlLXBhcnQ";
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    c.fake
        .create(
            NS,
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "auth-postgres-dev-snapshots-token",
                    "labels": {"app.kubernetes.io/instance": "auth-postgres-dev",
                        "app.kubernetes.io/managed-by": "phonebill-db"},
                    "annotations": {"kubernetes.io/service-account.name": "auth-postgres-dev-snapshots"}},
                "type": "kubernetes.io/service-account-token",
                "data": {"token": b64(token), "ca.crt": b64("x")}}),
        )
        .expect("the token Secret");
    // Secrets where an unlucky log would show them.
    c.fake.log(
        NS,
        POD,
        "postgresql",
        "LOG:  database system is ready to accept connections",
    );
    c.fake.log(
        NS,
        POD,
        "postgresql",
        &format!("LOG:  statement: ALTER ROLE x PASSWORD '{app_pw}'"),
    );
    c.fake.log(
        NS,
        POD,
        "postgresql",
        &format!("FATAL: bad login for {admin_pw} via postgresql://a:{admin_pw}@h/db"),
    );
    c.fake.restart_container(NS, POD, "postgresql");
    c.fake.log(
        NS,
        POD,
        "postgresql",
        &format!("key was {tls_key} and {ca_key}; token {token}"),
    );
    c.fake
        .log(NS, POD, "metrics", "msg=\"Listening on\" address=[::]:9187");
    // The admin's password in a query text, visible only with --with-queries.
    r.psql(&format!(
        "CREATE TABLE report_probe(id int); INSERT INTO report_probe SELECT generate_series(1, 42); ANALYZE report_probe; COMMENT ON TABLE report_probe IS '{admin_pw}'"
    ));

    let dest = c.dir.path().join("support.tar.gz");
    let dest_s = dest.display().to_string();
    let run = r.run(&["report", "--to", &dest_s, "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let j = run.json();
    assert_eq!(j["file"], dest_s.as_str());
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner reads it");
    let (top, files) = unpack(&dest);
    assert_eq!(top, "support");
    for f in [
        "report.json",
        "status.json",
        "verify.json",
        "drift.diff",
        "events.yaml",
        "pods.yaml",
        "logs/postgresql.log",
        "logs/postgresql.previous.log",
        "logs/metrics.log",
        "database/settings.json",
        "database/connections.json",
        "database/lock-waits.json",
        "database/databases.json",
        "database/tables.json",
        "values.yaml",
        "snapshots.json",
        "version.txt",
        &format!("objects/StatefulSet-{STS}.yaml"),
        &format!("objects/Secret-{ADMIN_SECRET}.yaml"),
        "objects/CronJob-auth-postgres-dev-snapshots.yaml",
    ] {
        assert!(
            files.contains_key(f),
            "{f} is in the archive: {:?}",
            files.keys()
        );
    }
    assert!(
        !files.contains_key("database/activity.json"),
        "query texts only when asked"
    );
    assert_eq!(
        parts(&files),
        Vec::<String>::new(),
        "{}",
        files["report.json"]
    );
    // What each part says is the release's.
    let status: Value = serde_json::from_str(&files["status.json"]).unwrap();
    assert_eq!(status["state"], "ready");
    // Only secrets go: who installed it, the names and the certificates stay readable.
    assert!(
        !files["status.json"].contains("<redacted>"),
        "{}",
        files["status.json"]
    );
    assert_eq!(status["installed"]["installedBy"], "fake-user");
    assert!(files["objects/Secret-auth-postgres-dev-postgresql-tls.yaml"].contains("tls.key: <"));
    let verify: Value = serde_json::from_str(&files["verify.json"]).unwrap();
    assert_eq!(verify["passed"], true, "{verify}");
    let tables: Value = serde_json::from_str(&files["database/tables.json"]).unwrap();
    let probe = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "report_probe")
        .expect("the probe table is listed");
    assert_eq!(probe["live_rows"], "42");
    let settings: Value = serde_json::from_str(&files["database/settings.json"]).unwrap();
    assert!(
        settings
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["source"] != "default"),
        "{settings}"
    );
    assert!(files["logs/postgresql.previous.log"].contains("ready to accept connections"));
    assert!(files["logs/metrics.log"].contains("9187"));
    assert!(
        files["drift.diff"].contains("every rendered object matches"),
        "{}",
        files["drift.diff"]
    );
    assert!(
        files["objects/Secret-auth-postgres-dev-postgresql.yaml"].contains("postgres-password: <")
    );

    // No secret of the release, anywhere: whole, or a PEM key's body line by line.
    let mut secrets = vec![admin_pw.clone(), app_pw.clone(), token.to_string()];
    for key in [&tls_key, &ca_key] {
        secrets.push(key.clone());
        secrets.extend(
            key.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_string),
        );
    }
    let scan = |files: &BTreeMap<String, String>| {
        for (name, text) in files {
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "{name} holds a secret value: {s}"
                );
            }
        }
    };
    scan(&files);
    assert!(files["logs/postgresql.log"].contains("<redacted>"));

    // With --with-queries: the sessions and a lock wait, the blocking and the waiting query.
    let (blocker, conn) = tokio_postgres::connect(&r.pg.url(&r.database), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    blocker
        .batch_execute("BEGIN; LOCK TABLE report_probe IN SHARE MODE")
        .await
        .unwrap();
    let (waiter, conn) = tokio_postgres::connect(&r.pg.url(&r.database), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let waiting = tokio::spawn(async move {
        waiter
            .simple_query("INSERT INTO report_probe VALUES (0)")
            .await
            .map(drop)
    });
    let with_queries = c.dir.path().join("with-queries.tar.gz");
    let wq = with_queries.display().to_string();
    let run = r
        .run(&["report", "--to", &wq, "--with-queries", "--since", "1h"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(&format!("wrote {wq} (")),
        "{}",
        run.stdout
    );
    let (_, files) = unpack(&with_queries);
    let locks: Value = serde_json::from_str(&files["database/lock-waits.json"]).unwrap();
    let wait = locks
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["waiting_query"] == "INSERT INTO report_probe VALUES (0)")
        .unwrap_or_else(|| panic!("the wait is listed: {locks}"));
    assert!(
        wait["blocking_query"]
            .as_str()
            .unwrap()
            .contains("LOCK TABLE report_probe"),
        "{wait}"
    );
    assert!(files.contains_key("database/activity.json"));
    scan(&files);
    blocker.batch_execute("COMMIT").await.unwrap();
    waiting.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_release_with_partial_rights_still_gives_a_report_that_lists_what_it_missed() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake
        .delete("StatefulSet", NS, STS)
        .expect("delete the StatefulSet");
    c.fake.deny("list", "", "secrets");
    c.fake.deny("get", "", "pods/log");
    let dest = c.dir.path().join("broken.tar.gz");
    let run = c
        .run(&["report", "--to", &dest.display().to_string()])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("could not read"), "{}", run.stdout);
    let (_, files) = unpack(&dest);
    let missed = parts(&files);
    for part in ["Secrets", "logs/postgresql.log", "database/"] {
        assert!(
            missed.iter().any(|m| m.starts_with(part)),
            "{part} in {missed:?}"
        );
    }
    let status: Value = serde_json::from_str(&files["status.json"]).unwrap();
    assert_eq!(status["state"], "not-ready", "{status}");
    assert!(status["statefulSet"].is_null(), "{status}");
    assert!(files["drift.diff"].contains(&format!("StatefulSet/{STS}: missing")));
    assert!(files.contains_key("objects/Service-auth-postgres-dev-postgresql.yaml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_never_replaces_a_file_and_refuses_a_missing_directory() {
    let c = Cluster::with_plan_class().await;
    let there = c.dir.path().join("old.tar.gz");
    std::fs::write(&there, "keep me").unwrap();
    let run = c
        .run(&["report", "--to", &there.display().to_string()])
        .await;
    run.refused(2, "already exists", "choose another name with --to");
    assert_eq!(std::fs::read_to_string(&there).unwrap(), "keep me");
    let nowhere = c.dir.path().join("no/such/dir/r.tar.gz");
    let run = c
        .run(&["report", "--to", &nowhere.display().to_string()])
        .await;
    run.refused(2, "does not exist", "create the directory first");
    // Refused before the cluster was asked.
    assert_eq!(c.fake.requests_matching("/api"), 0);
}
