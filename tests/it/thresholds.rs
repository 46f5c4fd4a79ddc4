//! The plan's alert thresholds in status and verify (disk 80%, memory 85%, 5 restarts), and
//! `status --queries` (the runbook's performance queries), against the fake API server with the
//! throwaway PostgreSQL behind the pod.

use std::path::Path;

use serde_json::Value;

use crate::pg::Release;
use crate::support::{ADMIN_SECRET, NS, check};

const POD: &str = "auth-postgres-dev-postgresql-0";

/// The fake runs no container and has no volume to fill: this stands for `df` in the pod. It
/// prints what POSIX `df -Pk DIR` prints for the data volume, its used and available KiB read
/// from the file `volume` beside it (the test fills the volume by writing that file).
fn df_stand_in(dir: &Path) {
    let script = dir.join("df");
    std::fs::write(
        &script,
        r#"#!/bin/sh
read used avail < "$(dirname "$0")/volume"
total=$((used + avail))
echo "Filesystem     1024-blocks      Used Available Capacity Mounted on"
echo "/dev/sdc $total $used $avail $(( (used * 100 + total - 1) / total ))% $2"
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn fill(dir: &Path, used_kib: u64, avail_kib: u64) {
    std::fs::write(dir.join("volume"), format!("{used_kib} {avail_kib}\n")).unwrap();
}

async fn verify(r: &Release) -> Value {
    let run = r.run(&["verify", "-o", "json"]).await;
    assert_eq!(
        run.code, 0,
        "warnings never fail verify: {}\n{}",
        run.stdout, run.stderr
    );
    run.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_thresholds_warn_when_the_volume_fills_the_memory_rises_and_the_container_crash_loops()
{
    let r = Release::new("thresh").await;
    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    let doubles = tempfile::tempdir().unwrap();
    df_stand_in(doubles.path());
    let cgroup = tempfile::tempdir().unwrap();
    let password = r.secret(ADMIN_SECRET, "postgres-password");
    r.exec_env(&password, &[doubles.path()]);
    let c = &r.cluster;

    // 20 GiB volume, a tenth used; 64Mi of the 2Gi limit; no restarts.
    fill(doubles.path(), 2 * 1024 * 1024, 18 * 1024 * 1024);
    let v = verify(&r).await;
    assert_eq!(check(&v, "disk usage")["status"], "pass", "{v}");
    assert!(
        check(&v, "disk usage")["detail"]
            .as_str()
            .unwrap()
            .starts_with("10% of the data volume (2.0 GiB of 20.0 GiB)")
    );
    assert_eq!(check(&v, "memory")["status"], "pass");
    assert!(
        check(&v, "memory")["detail"]
            .as_str()
            .unwrap()
            .contains("of the 2.0 GiB limit (4%, from the metrics API)"),
        "{v}"
    );
    assert_eq!(check(&v, "restarts")["detail"], "none");

    // The volume fills to 85%: a warning with the resize to do.
    fill(doubles.path(), 17 * 1024 * 1024, 3 * 1024 * 1024);
    let v = verify(&r).await;
    let disk = check(&v, "disk usage");
    assert_eq!(disk["status"], "warn", "{v}");
    assert!(
        disk["detail"]
            .as_str()
            .unwrap()
            .contains("85% of the data volume"),
        "{disk}"
    );
    assert!(
        disk["detail"]
            .as_str()
            .unwrap()
            .contains("`phonebill-db resize --storage 30Gi`"),
        "{disk}"
    );

    // The server uses 1.8 GiB of its 2 GiB: a warning naming the settings to lower.
    c.fake
        .set_pod_memory(NS, POD, "postgresql", 1932 * 1024 * 1024);
    let v = verify(&r).await;
    let memory = check(&v, "memory");
    assert_eq!(memory["status"], "warn", "{v}");
    assert!(
        memory["detail"]
            .as_str()
            .unwrap()
            .contains("(95%, from the metrics API)"),
        "{memory}"
    );
    assert!(
        memory["detail"]
            .as_str()
            .unwrap()
            .contains("postgresql.sharedBuffers"),
        "{memory}"
    );

    // No metrics API (no metrics-server): the container's cgroup, its working set.
    c.fake.set_metrics_api(false);
    std::fs::write(
        cgroup.path().join("memory.current"),
        format!("{}\n", 1900u64 * 1024 * 1024),
    )
    .unwrap();
    std::fs::write(cgroup.path().join("memory.max"), "max\n").unwrap();
    std::fs::write(
        cgroup.path().join("memory.stat"),
        format!("anon 1\ninactive_file {}\n", 900u64 * 1024 * 1024),
    )
    .unwrap();
    let path = std::env::join_paths(
        [doubles.path().to_path_buf(), r.pg.bin.clone()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let port = r.pg.port.to_string();
    c.fake.exec_env(&[
        ("PATH", path.to_str().unwrap()),
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", &port),
        ("PGPASSWORD", &password),
        ("PGSSLMODE", "disable"),
        ("CGROUP_ROOT", cgroup.path().to_str().unwrap()),
    ]);
    let v = verify(&r).await;
    let memory = check(&v, "memory");
    assert_eq!(memory["status"], "pass", "{v}");
    assert!(
        memory["detail"]
            .as_str()
            .unwrap()
            .contains("1.0 GiB of the 2.0 GiB limit (49%, from the container's cgroup)"),
        "the working set leaves out inactive files: {memory}"
    );
    std::fs::write(
        cgroup.path().join("memory.stat"),
        "anon 1\ninactive_file 0\n",
    )
    .unwrap();
    let v = verify(&r).await;
    assert_eq!(check(&v, "memory")["status"], "warn", "{v}");

    // Killed at its limit six times: a crash loop, with how the last one ended.
    c.fake
        .crash_container(NS, POD, "postgresql", "OOMKilled", 137, 6);
    let v = verify(&r).await;
    let restarts = check(&v, "restarts");
    assert_eq!(restarts["status"], "warn", "{v}");
    let said = restarts["detail"].as_str().unwrap();
    assert!(
        said.contains("restarted 6 time(s); the last ended OOMKilled (exit 137)"),
        "{said}"
    );
    assert!(said.contains("`phonebill-db logs --previous`"), "{said}");

    // status shows the same three, as warnings; the release is still ready.
    let s = r.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(s["state"], "ready");
    let names: Vec<(&str, &str)> = s["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("disk usage", "warn"),
            ("memory", "warn"),
            ("restarts", "warn")
        ]
    );
    let text = r.run(&["status"]).await;
    assert!(
        text.stdout
            .lines()
            .any(|l| l.starts_with("Threshold") && l.contains("disk usage") && l.contains("warn")),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_queries_shows_the_slowest_statements_lock_waits_and_connections() {
    let r = Release::new("queries").await;
    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    let db = r.database.clone();
    r.psql("SELECT pg_stat_statements_reset()");
    for _ in 0..3 {
        r.psql("SELECT pg_sleep(0.05), count(*) FROM auth_users");
    }
    // A session holds a lock; another waits on it.
    let (blocker, conn) = tokio_postgres::connect(&r.pg.url(&db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    blocker
        .batch_execute("BEGIN; LOCK TABLE auth_services IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (waiter, conn) = tokio_postgres::connect(&r.pg.url(&db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let waiting = tokio::spawn(async move {
        waiter
            .simple_query("UPDATE auth_services SET service_name = service_name")
            .await
            .map(drop)
    });
    for _ in 0..100 {
        let n = r.psql("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'auth_services'::regclass");
        if n != "0" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let s = r
        .run(&["status", "--queries", "-o", "json"])
        .await
        .ok_json();
    let q = &s["database"]["queries"];
    let slowest = q["slowestStatements"]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{q}"));
    let sleep = slowest
        .iter()
        .find(|row| row["query"].as_str().unwrap().contains("pg_sleep"))
        .unwrap_or_else(|| panic!("the slow statement is listed: {q}"));
    assert_eq!(sleep["calls"], "3");
    assert!(
        sleep["mean_ms"].as_str().unwrap().parse::<f64>().unwrap() >= 50.0,
        "{sleep}"
    );
    let wait = q["lockWaits"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| {
            w["waiting_query"]
                .as_str()
                .unwrap()
                .contains("UPDATE auth_services")
        })
        .unwrap_or_else(|| panic!("the lock wait is listed: {q}"));
    assert!(
        wait["blocking_query"]
            .as_str()
            .unwrap()
            .contains("LOCK TABLE auth_services"),
        "{wait}"
    );
    assert!(
        q["connections"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["database"] == db.as_str() && c["state"] == "idle in transaction"),
        "{q}"
    );
    let text = r.run(&["status", "--queries"]).await;
    assert!(
        text.stdout
            .contains("Slowest statements (pg_stat_statements, by mean time)"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("Lock waits"), "{}", text.stdout);
    blocker.batch_execute("ROLLBACK").await.unwrap();
    waiting.await.unwrap().unwrap();

    // Without the extension in the database: that part says why and what to do; the rest comes.
    r.psql("DROP EXTENSION pg_stat_statements");
    let s = r
        .run(&["status", "--queries", "-o", "json"])
        .await
        .ok_json();
    let q = &s["database"]["queries"];
    assert!(
        q["slowestStatements"]["error"]
            .as_str()
            .unwrap()
            .contains("pg_stat_statements"),
        "{q}"
    );
    assert!(
        q["slowestStatements"]["hint"]
            .as_str()
            .unwrap()
            .contains("apply-schema"),
        "{q}"
    );
    assert!(q["connections"]["rows"].is_array(), "{q}");
}
