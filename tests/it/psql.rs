//! `psql`: the pod's psql through exec — a script on stdin, `-c` after `--`, JSON, the app role,
//! and a terminal session (TTY exec, the terminal's size sent).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::pg::Release;
use crate::support::bin_command;

/// The tool with `input` on stdin (no terminal), as the release's user.
async fn piped(r: &Release, args: &[&str], input: &str) -> crate::support::Run {
    let kc = r.cluster.kubeconfig.display().to_string();
    // Before any `--`: what follows it is psql's.
    let mut all = vec![args[0], "--kubeconfig", &kc, "--values", &r.values];
    all.extend(&args[1..]);
    let mut child = bin_command(r.cluster.dir.path(), &all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_on_stdin_runs_as_the_admin_or_the_app_and_stops_at_its_first_error() {
    let r = Release::new("psql").await;
    r.install().await;
    r.run(&["apply-schema", "-o", "json"]).await.ok_json();

    let run = piped(
        &r,
        &["psql"],
        "SELECT 'rows:' || count(*) FROM auth_users;\n",
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected = r.psql("SELECT 'rows:' || count(*) FROM auth_users");
    assert!(run.stdout.contains(expected.trim()), "{}", run.stdout);

    // --app: logged in as the app role itself (it may read the tables, not drop them); no way
    // back to the administrator (with `role=` set at the start, SET ROLE NONE was the superuser).
    let run = piped(
        &r,
        &["psql", "--app", "--", "-At"],
        "SET ROLE NONE;\nSELECT current_user || '/' || session_user;\n",
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("{}/{}", r.app, r.app)),
        "{}",
        run.stdout
    );
    let run = piped(
        &r,
        &["psql", "--app"],
        "RESET ROLE;\nCREATE ROLE escaped;\n",
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("permission denied"), "{}", run.stderr);
    // The password's file in the pod's /tmp is gone once psql started.
    let left: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("phonebill-db-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let run = piped(&r, &["psql", "--app"], "DROP TABLE auth_users;\n").await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("must be owner"), "{}", run.stderr);
    assert!(run.error_line().contains("psql in pod"), "{}", run.stderr);

    // A script stops at its first error: what follows it does not run.
    let run = piped(
        &r,
        &["psql"],
        "CREATE TABLE psql_probe (n int);\nSELECT * FROM no_such_table;\nINSERT INTO psql_probe VALUES (1);\n",
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("relation \"no_such_table\" does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!(r.psql("SELECT count(*) FROM psql_probe").trim(), "0");

    // psql's own arguments after `--`, and the JSON report.
    let json = piped(
        &r,
        &["psql", "-o", "json", "--", "-At", "-c", "SELECT 6*7"],
        "",
    )
    .await;
    let report = json.ok_json();
    assert_eq!(report["output"], "42\n");
    assert_eq!(report["succeeded"], true);
    assert_eq!(report["role"], r.admin.as_str());
    assert_eq!(report["database"], r.database.as_str());
    let failed = piped(&r, &["psql", "-o", "json", "--", "-c", "SELECT nope"], "").await;
    assert_eq!(failed.code, 1);
    let report = failed.json();
    assert_eq!(report["succeeded"], false);
    assert!(
        report["errors"]
            .as_str()
            .unwrap()
            .contains("column \"nope\" does not exist"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_psql_gets_one_with_this_terminals_size() {
    let r = Release::new("psqltty").await;
    r.install().await;
    let kc = r.cluster.kubeconfig.display().to_string();
    // script(1) gives the tool a terminal (120 columns, 40 rows); the keys typed are stdin.
    let command = format!(
        "stty cols 120 rows 40; exec {} psql --kubeconfig {kc} --values {}",
        env!("CARGO_BIN_EXE_phonebill-db"),
        r.values
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"SELECT 'an' || 'swer' AS reply;\n\\q\n")
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        out
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("answer"), "{stdout}");
    // The session was a TTY exec, given the terminal's size.
    assert!(
        r.cluster
            .fake
            .requests_with("/exec?")
            .iter()
            .any(|q| q.contains("tty=true") && !q.contains("stderr=true")),
        "{:?}",
        r.cluster.fake.requests_with("/exec?")
    );
    assert_eq!(r.cluster.fake.exec_resizes().first(), Some(&(120, 40)));
    // Its history is not saved on the pod's read-only root ("could not save history to file").
    assert!(
        r.cluster
            .fake
            .requests_with("/exec?")
            .iter()
            .any(|q| q.contains("tty=true") && q.contains("command=PSQL_HISTORY%3D%2Fdev%2Fnull")),
        "{:?}",
        r.cluster.fake.requests_with("/exec?")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_is_refused_where_there_is_no_pod() {
    let c = crate::support::Cluster::with_plan_class().await;
    c.run(&["psql", "--env", "prod"])
        .await
        .refused(2, "no database in the cluster", "");
    c.create_namespace();
    let run = c.run(&["psql"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.error_line()
            .contains("no database pod of release auth-postgres-dev"),
        "{}",
        run.stderr
    );
}
