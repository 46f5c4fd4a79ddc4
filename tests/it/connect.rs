//! `connect`: a local port through the fake API server's port-forward to the throwaway
//! PostgreSQL; psql connects through it, as DBeaver would.

use std::process::Stdio;

use crate::pg::Release;
use crate::support::ADMIN_SECRET;

#[tokio::test]
async fn connect_forwards_a_local_port_and_psql_works_through_it_until_ctrl_c() {
    let r = Release::new("connect").await;
    r.install().await;
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = r.cluster.kubeconfig.display().to_string();
    let mut child = crate::support::bin_command(
        home.path(),
        &[
            "connect",
            "--port",
            "0",
            "--show-password",
            "-o",
            "json",
            "--kubeconfig",
            &kubeconfig,
            "--values",
            &r.values,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("run phonebill-db");
    // The report is printed (and flushed) before it waits: one pretty JSON document.
    let report = crate::support::first_report(child.stdout.take().unwrap()).await;
    assert_eq!(report["host"], "127.0.0.1");
    assert_eq!(report["database"], r.database.as_str());
    assert_eq!(report["pod"], "auth-postgres-dev-postgresql-0");
    let port = report["port"].as_u64().unwrap().to_string();
    let admin_password = r.secret(ADMIN_SECRET, "postgres-password");
    assert_eq!(report["users"][1]["user"], r.admin.as_str());
    assert_eq!(report["users"][1]["password"], admin_password.as_str());

    // Two sessions, one after the other: each gets its own port-forward.
    for _ in 0..2 {
        // Async: the fake API server runs on this test's runtime and must keep serving.
        let out = tokio::process::Command::new(r.pg.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                &r.admin,
                "-d",
                &r.database,
            ])
            .args(["-X", "-tA", "-c", "SELECT current_database()"])
            .env("PGPASSWORD", &admin_password)
            .env("PGSSLMODE", "disable")
            .output()
            .await
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r.database);
    }

    // The port is taken now: a second connect says so.
    let busy = r.run(&["connect", "--port", &port]).await;
    assert_eq!(busy.code, 1, "{}", busy.stderr);
    assert!(
        busy.error_line().contains("cannot listen on 127.0.0.1"),
        "{}",
        busy.stderr
    );
    assert!(busy.hint_line().contains("--port"), "{}", busy.stderr);

    // Ctrl-C ends it cleanly.
    let done = crate::support::ctrl_c(child).await;
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

#[tokio::test]
async fn connect_before_install_names_the_missing_pod() {
    let r = Release::new("connect_none").await;
    let run = r.run(&["connect", "--port", "0"]).await;
    run.refused(1, "no database pod", "phonebill-db install");
}
