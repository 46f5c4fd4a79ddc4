//! Streams through the API server — exec, port-forward, a followed log — live as long as their
//! session, however quiet, and end with an error (never a hang) when their connection breaks.
//!
//! `quiet_for_longer_than_a_minute` is slow on purpose: each of its sessions says nothing for
//! [`QUIET`], longer than the 60 s read deadline the tool's client once put on every connection
//! (it killed them all; see docs/commands/connect.md). Its scenarios run side by side, each on its
//! own fake cluster and database, so the test takes one silence, not four; nextest gives it its
//! own timeout (.config/nextest.toml).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::pg::Release;
use crate::support::{ADMIN_SECRET, NS, Run, bin_command};

/// Longer than the old read deadline (60 s), with room.
const QUIET: Duration = Duration::from_secs(70);
const POD: &str = "auth-postgres-dev-postgresql-0";

/// The tool with `input` on stdin, as the release's user: the child, to wait for or cut.
fn spawn_piped(r: &Release, args: &[&str]) -> tokio::process::Child {
    let kc = r.cluster.kubeconfig.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--kubeconfig", &kc, "--values", &r.values]);
    bin_command(r.cluster.dir.path(), &all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run phonebill-db")
}

/// Feed `input`, then its output once it ended, which must be within `within`.
async fn finish(mut child: tokio::process::Child, input: &str, within: Duration) -> Run {
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .expect("write stdin");
    drop(stdin);
    let out = tokio::time::timeout(within, child.wait_with_output())
        .await
        .expect("it ends instead of hanging")
        .expect("its output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn installed(tag: &str) -> Release {
    let r = Release::new(tag).await;
    r.install().await;
    r
}

/// `connect --port 0` on `r`: the child and the local port it listens on.
async fn connect(r: &Release) -> (tokio::process::Child, u16) {
    let mut child = spawn_piped(r, &["connect", "--port", "0", "-o", "json"]);
    let report = crate::support::first_report(child.stdout.take().expect("stdout")).await;
    let port = report["port"].as_u64().expect("a port") as u16;
    (child, port)
}

/// A session through `connect`'s local port, as the admin, as DBeaver would hold one open.
async fn session(r: &Release, port: u16) -> tokio_postgres::Client {
    let password = r.secret(ADMIN_SECRET, "postgres-password");
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(&r.admin)
        .password(password)
        .dbname(&r.database)
        .connect(tokio_postgres::NoTls)
        .await
        .expect("a session through connect");
    tokio::spawn(connection);
    client
}

async fn answer(client: &tokio_postgres::Client, n: i32) -> Result<i32, tokio_postgres::Error> {
    Ok(client.query_one("SELECT $1::int", &[&n]).await?.get(0))
}

/// What a child wrote on stderr (it keeps running) until it has said each of `until`, or 30 s.
async fn stderr_so_far(child: &mut tokio::process::Child, until: &[&str]) -> String {
    let mut err = child.stderr.take().expect("stderr");
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !until.iter().all(|u| text.contains(u)) {
        match tokio::time::timeout_at(deadline, err.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    child.stderr = Some(err); // the rest is read at its end
    text
}

/// A script whose statement keeps psql silent for longer than a minute, then answers.
async fn a_piped_psql_that_sleeps() {
    let r = installed("quiet_psql").await;
    let child = spawn_piped(&r, &["psql"]);
    let run = finish(
        child,
        &format!(
            "SELECT pg_sleep({});\nSELECT 'after the silence: ' || 42;\n",
            QUIET.as_secs()
        ),
        QUIET + Duration::from_secs(60),
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("after the silence: 42"),
        "{}",
        run.stdout
    );
}

/// A DBeaver-like session through `connect`: a query, nothing for longer than a minute, a query.
async fn a_connect_session_idle_then_queried() {
    let r = installed("quiet_connect").await;
    let (child, port) = connect(&r).await;
    let client = session(&r, port).await;
    assert_eq!(answer(&client, 1).await.expect("before the silence"), 1);
    tokio::time::sleep(QUIET).await;
    assert_eq!(answer(&client, 2).await.expect("after the silence"), 2);
    drop(client);
    let done = crate::support::ctrl_c(child).await;
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!stderr.contains("dropped"), "{stderr}");
}

/// `logs -f` on a server that says nothing for longer than a minute, then a line.
async fn logs_follow_quiet_then_a_line() {
    let r = installed("quiet_logs").await;
    let fake = &r.cluster.fake;
    fake.log(NS, POD, "postgresql", "LOG:  ready");
    let mut child = spawn_piped(&r, &["logs", "-f"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let next = async |lines: &mut tokio::io::Lines<_>| {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a line within 30 s")
            .expect("read a line")
    };
    assert_eq!(next(&mut lines).await.as_deref(), Some("LOG:  ready"));
    tokio::time::sleep(QUIET).await;
    assert!(
        child.try_wait().expect("its state").is_none(),
        "still following"
    );
    fake.log(NS, POD, "postgresql", "LOG:  checkpoint starting: time");
    assert_eq!(
        next(&mut lines).await.as_deref(),
        Some("LOG:  checkpoint starting: time")
    );
    let status = crate::support::ctrl_c(child).await.status;
    assert_eq!(status.code(), Some(0));
}

/// A restore whose pod side (pg_restore, then psql writing to /dev/null) says nothing back for
/// longer than a minute: it still commits, and verify passes.
async fn a_restore_whose_pod_side_is_silent() {
    let r = installed("quiet_restore").await;
    let applied = r.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("auth.dump").display().to_string();
    let backup = r.run(&["backup", "--to", &dump]).await;
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    r.psql("UPDATE auth_services SET service_name = 'changed after the backup'");
    // The pod's pg_restore waits before it reads the archive: the session is silent.
    let slow = dir.path().join("slow");
    std::fs::create_dir(&slow).unwrap();
    let real = r.pg.bin.join("pg_restore");
    let script = slow.join("pg_restore");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep {}\nexec {} \"$@\"\n",
            QUIET.as_secs(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    r.exec_env(&r.secret(ADMIN_SECRET, "postgres-password"), &[&slow]);
    let restore = spawn_piped(
        &r,
        &["restore", "--from", &dump, "--yes", "--no-safety-backup"],
    );
    let run = finish(restore, "", QUIET + Duration::from_secs(90)).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        r.psql(
            "SELECT count(*) FROM auth_services WHERE service_name = 'changed after the backup'"
        )
        .trim(),
        "0",
        "the backup's rows are back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quiet_for_longer_than_a_minute() {
    tokio::join!(
        a_piped_psql_that_sleeps(),
        a_connect_session_idle_then_queried(),
        logs_follow_quiet_then_a_line(),
        a_restore_whose_pod_side_is_silent(),
    );
}

/// An exec whose connection dies mid-command (no Status, no closing handshake): the command
/// ends with the cause, it does not wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_exec_ends_psql_with_the_cause() {
    let r = installed("cut_psql").await;
    let child = spawn_piped(&r, &["psql"]);
    let fake = &r.cluster.fake;
    let cut = async {
        // Once psql runs in the "pod" (its session is in pg_stat_activity), cut it off.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while r
            .psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'")
            .trim()
            == "0"
        {
            assert!(tokio::time::Instant::now() < deadline, "psql never ran");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        fake.cut_streams();
    };
    let (run, ()) = tokio::join!(
        finish(child, "SELECT pg_sleep(30);\n", Duration::from_secs(20)),
        cut
    );
    run.failed_saying(
        1,
        &["psql in pod", "the connection to the API server broke"],
    );
    assert!(run.hint_line().contains("run it again"), "{}", run.stderr);
}

/// connect says when a session drops and why: the port-forward cut off, the server ending it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reports_each_dropped_session_with_its_cause() {
    let r = installed("cut_connect").await;
    let (mut child, port) = connect(&r).await;
    let client = session(&r, port).await;
    assert_eq!(answer(&client, 1).await.unwrap(), 1);
    r.cluster.fake.cut_streams();
    assert!(answer(&client, 2).await.is_err(), "the session is gone");
    // The server ends a second session while its client holds it open (as psql idle at its
    // prompt would): a startup message of a protocol it does not speak, refused and closed.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, &[0, 0, 0, 8, 0, 9, 0, 9])
        .await
        .unwrap();
    let mut refusal = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), raw.read_to_end(&mut refusal))
        .await
        .expect("the server's answer, then the end")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refusal).contains("unsupported frontend protocol"),
        "{}",
        String::from_utf8_lossy(&refusal)
    );
    // A third works: connect goes on serving.
    let third = session(&r, port).await;
    assert_eq!(answer(&third, 4).await.unwrap(), 4);
    let said = stderr_so_far(
        &mut child,
        &[
            "dropped: the port-forward broke",
            "dropped: the database closed it",
        ],
    )
    .await;
    assert!(
        said.lines()
            .any(|l| l.starts_with("warning: connection from 127.0.0.1:")
                && l.contains("dropped: the port-forward broke")),
        "{said}"
    );
    assert!(
        said.lines()
            .any(|l| l.contains("dropped: the database closed it")),
        "{said}"
    );
    assert_eq!(said.matches("dropped").count(), 2, "{said}");
    drop(raw);
    let done = crate::support::ctrl_c(child).await;
    assert_eq!(done.status.code(), Some(0));
}

/// `logs -f` whose stream breaks ends with the cause (exit 1), not silently and not hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_log_that_breaks_ends_with_the_cause() {
    let r = installed("cut_logs").await;
    r.cluster.fake.log(NS, POD, "postgresql", "LOG:  ready");
    let mut child = spawn_piped(&r, &["logs", "-f"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line")
        .unwrap();
    assert_eq!(first.as_deref(), Some("LOG:  ready"));
    r.cluster.fake.cut_streams();
    let run = finish(child, "", Duration::from_secs(30)).await;
    run.failed_saying(1, &["the log stream broke"]);
}
