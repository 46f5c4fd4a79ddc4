//! restore's shadow and swap: the backup loaded beside the live database with parallel jobs,
//! checked, swapped in; what the application wrote meanwhile kept in the previous database; and
//! at each step that can fail — the load, the checks, the rename, Ctrl-C, the room check — the
//! live database untouched. Against the throwaway PostgreSQL through the fake API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::backup::{fingerprint, loaded};
use crate::pg::Release;
use crate::support::{ADMIN_SECRET, APP_SECRET};

fn path(dir: &std::path::Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// The release's databases on the shared server with `infix` in their name (shadows, previous).
fn databases(r: &Release, infix: &str) -> Vec<String> {
    let list = r.pg.psql(
        "postgres",
        &format!(
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE '{}\\_{infix}\\_%'",
            r.database
        ),
    );
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The application, writing: a login-history row every few milliseconds as the app role, a new
/// session when one ends (a swap ends them); how many writes went through.
fn writer(r: &Release) -> (Arc<AtomicBool>, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let url = r.app_url();
    let (s, w) = (stop.clone(), written.clone());
    let task = tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
            else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            tokio::spawn(conn);
            while !s.load(Ordering::Relaxed) {
                let ok = client
                    .execute(
                        "INSERT INTO auth_login_history (login_type, login_status, failure_reason) VALUES ('LOGIN', 'SUCCESS', 'writer')",
                        &[],
                    )
                    .await;
                if ok.is_err() {
                    break;
                }
                w.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
    });
    (stop, written, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_restore_brings_back_the_backups_rows_while_the_app_writes_until_the_swap() {
    let r = loaded("shadow", 3_000).await;
    let dir = tempfile::tempdir().unwrap();
    let file = path(dir.path(), "auth.dump");
    r.run(&["backup", "--to", &file]).await.succeeded();
    let backed_up = fingerprint(&r);
    r.psql("UPDATE auth_services SET service_name = 'after the backup'");
    // The live database's own access list and settings, which the shadow must carry over.
    let nobody = format!("{}_nobody", r.database);
    r.pg.psql("postgres", &format!("CREATE ROLE {nobody} LOGIN"));
    r.pg.psql(
        "postgres",
        &format!(
            "REVOKE CONNECT ON DATABASE {db} FROM PUBLIC; ALTER DATABASE {db} SET idle_in_transaction_session_timeout = '1h'",
            db = r.database
        ),
    );

    let (stop, written, task) = writer(&r);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restored = r
        .run(&[
            "restore", "--from", &file, "--yes", "--jobs", "2", "-o", "json",
        ])
        .await
        .ok_json();
    let at_swap = written.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    assert!(
        at_swap > 10,
        "the app wrote while the shadow loaded: {at_swap}"
    );
    assert!(
        written.load(Ordering::Relaxed) > at_swap,
        "and writes again after the swap"
    );

    assert_eq!(restored["mode"], "shadow", "{restored}");
    assert_eq!(restored["jobs"], 2);
    assert_eq!(restored["passed"], true);
    assert!(
        restored["unavailableSeconds"].as_f64().unwrap() < 1.0,
        "{restored}"
    );
    let previous = restored["previousDatabase"].as_str().unwrap().to_string();
    assert!(previous.starts_with(&format!("{}_before_restore_", r.database)));
    // The live name holds exactly the backup's rows, but what the app wrote after the swap.
    r.psql("DELETE FROM auth_login_history WHERE failure_reason = 'writer'");
    assert_eq!(fingerprint(&r), backed_up);
    // What the app wrote while the shadow loaded is in the previous database, not lost.
    let kept: u64 =
        r.pg.psql(
            &previous,
            "SELECT count(*) FROM auth_login_history WHERE failure_reason = 'writer'",
        )
        .parse()
        .unwrap();
    assert!(kept > 0 && kept <= at_swap, "{kept} of {at_swap}");
    assert_eq!(
        r.pg.psql(
            &previous,
            "SELECT service_name FROM auth_services WHERE service_code = 'AUTH'"
        ),
        "after the backup"
    );
    assert!(databases(&r, "restore").is_empty(), "no shadow is left");
    let can = |role: &str| {
        r.pg.psql(
            "postgres",
            &format!(
                "SELECT has_database_privilege('{role}', '{}', 'CONNECT')",
                r.database
            ),
        )
    };
    assert_eq!(can(&nobody), "f", "PUBLIC's CONNECT stays revoked");
    assert_eq!(can(&r.app), "t");
    assert_eq!(can(&format!("{}_metrics", r.database)), "t");
    assert_eq!(
        r.pg.psql(
            "postgres",
            &format!(
                "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '{}' AND s.setrole = 0",
                r.database
            )
        ),
        "idle_in_transaction_session_timeout=1h"
    );

    // status lists it; a second restore keeps only its own previous database.
    let s = r.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(s["database"]["previous"][0][0], previous.as_str(), "{s}");
    let second = r
        .run(&["restore", "--from", &file, "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(second["dropped"][0], previous.as_str(), "{second}");
    assert_eq!(databases(&r, "before_restore").len(), 1);
    // --drop-previous drops it.
    let dropped = r
        .run(&["restore", "--drop-previous", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(dropped["dropped"].as_array().unwrap().len(), 1, "{dropped}");
    assert!(databases(&r, "before_restore").is_empty());
    assert_eq!(fingerprint(&r), backed_up);

    // A swap cut off after it refused connections (the tool killed) leaves them refused: said
    // with what to do, and the next restore (or --drop-previous) opens the database again.
    r.pg.psql(
        "postgres",
        &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", r.database),
    );
    r.run(&["apply-schema"]).await.refused(
        1,
        "not currently accepting connections",
        "restore --drop-previous",
    );
    let reopened = r.run(&["restore", "--drop-previous", "--yes"]).await;
    reopened.succeeded();
    assert!(
        reopened
            .stderr
            .contains("refused connections (a restore was cut off in its swap)"),
        "{}",
        reopened.stderr
    );
    assert_eq!(fingerprint(&r), backed_up, "it answers again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_rename_ctrl_c_and_no_room_leave_the_live_database_untouched() {
    let r = loaded("shadowfail", 20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let file = path(dir.path(), "auth.dump");
    r.run(&["backup", "--to", &file]).await.succeeded();
    r.psql("UPDATE auth_services SET service_name = 'live'");
    let before = fingerprint(&r);

    // The rename is refused (another session holds the live database's catalog row past the
    // swap's 5 s lock timeout): rolled back, connections allowed again, the shadow dropped.
    let (holder, conn) = tokio_postgres::connect(&r.pg.url("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM pg_database WHERE datname = '{}' FOR UPDATE",
            r.database
        ))
        .await
        .unwrap();
    let run = r.run(&["restore", "--from", &file, "--yes"]).await;
    run.failed_saying(
        1,
        &[
            "the swap did not happen",
            "lock timeout",
            "takes connections",
        ],
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(fingerprint(&r), before);
    assert_eq!(
        r.pg.psql_as(
            &r.app,
            &r.secret(APP_SECRET, "auth-user-password"),
            &r.database,
            "SELECT 1"
        )
        .unwrap(),
        "1",
        "the app logs in again"
    );
    assert!(databases(&r, "restore").is_empty());
    assert!(databases(&r, "before_restore").is_empty());

    // Ctrl-C while the shadow loads: dropped, the live database as it was.
    let kc = r.cluster.kubeconfig.display().to_string();
    let out = crate::support::ctrl_c_when(
        r.cluster.dir.path(),
        &[
            "restore",
            "--from",
            &file,
            "--yes",
            "--jobs",
            "1",
            "--values",
            &r.values,
            "--kubeconfig",
            &kc,
        ],
        || !databases(&r, "restore").is_empty(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("interrupted; the shadow"), "{stderr}");
    assert!(databases(&r, "restore").is_empty(), "{stderr}");
    assert_eq!(fingerprint(&r), before);

    // No room on the data volume for a second copy: refused before anything is made.
    let doubles = tempfile::tempdir().unwrap();
    let df = doubles.path().join("df");
    std::fs::write(
        &df,
        "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\necho '/dev/sdc 20971520 20900000 71520 100% /var/lib/postgresql/data'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&df, std::fs::Permissions::from_mode(0o755)).unwrap();
    r.exec_env(
        &r.secret(ADMIN_SECRET, "postgres-password"),
        &[doubles.path()],
    );
    r.run(&["restore", "--from", &file, "--yes"]).await.refused(
        2,
        "no room on the data volume for the restore's shadow copy",
        "--in-place",
    );
    assert!(databases(&r, "restore").is_empty());
    assert_eq!(fingerprint(&r), before);
    // --in-place needs no second copy.
    r.run(&[
        "restore",
        "--from",
        &file,
        "--yes",
        "--in-place",
        "--no-safety-backup",
    ])
    .await
    .succeeded();
    assert_ne!(fingerprint(&r), before, "restored in place");
}
