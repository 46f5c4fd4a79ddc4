//! Connection failures through the real binary and --database-url, against the throwaway server
//! (TLS on, certificate for DNS:localhost only, database `tls_only` refusing unencrypted clients):
//! one line, the documented exit code, nothing changed.

use crate::pg::{Pg, run_url};

fn url(pg: &Pg, user_pw: &str, host: &str, db: &str, query: &str) -> String {
    format!("postgresql://{user_pw}@{host}:{}/{db}{query}", pg.port)
}

async fn dry_run_succeeds_with_ca(url: &str, ca: &str) {
    let args = [
        "apply-schema",
        "--dry-run",
        "--database-url",
        url,
        "--ca-file",
        ca,
    ];
    let run = run_url(&args, &[]).await;
    assert_eq!(run.code, 0, "{url}: {}", run.stderr);
}

#[tokio::test]
async fn verify_full_with_the_right_ca_and_host_name_works() {
    let pg = Pg::get();
    let u = url(
        &pg,
        &format!("postgres:{}", pg.password),
        "localhost",
        "postgres",
        "?sslmode=verify-full",
    );
    let ca = pg.ca.display().to_string();
    dry_run_succeeds_with_ca(&u, &ca).await;
    // The same through sslrootcert= in the URL, password from PGPASSWORD.
    let u = url(
        &pg,
        "postgres",
        "localhost",
        "postgres",
        &format!("?sslmode=verify-full&sslrootcert={ca}"),
    );
    let run = run_url(
        &["apply-schema", "--dry-run", "--database-url", &u],
        &[("PGPASSWORD", &pg.password)],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[tokio::test]
async fn each_connection_failure_is_one_line_with_its_cause() {
    let pg = Pg::get();
    let good = format!("postgres:{}", pg.password);
    let ca = pg.ca.display().to_string();
    let other = pg.other_ca.display().to_string();
    let cases: Vec<(String, Vec<&str>, &str, &str)> = vec![
        (
            url(&pg, "postgres:wrong", "127.0.0.1", "postgres", ""),
            vec![],
            "password authentication failed for user \"postgres\"",
            "does not match",
        ),
        (
            format!("postgresql://{good}@127.0.0.1:1/postgres"),
            vec![],
            "Connection refused",
            "nothing listens there",
        ),
        (
            url(&pg, &good, "127.0.0.1", "tls_only", "?sslmode=disable"),
            vec![],
            "the server requires TLS",
            "sslmode=require",
        ),
        (
            url(&pg, &good, "localhost", "postgres", "?sslmode=verify-full"),
            vec!["--ca-file", &other],
            "not signed by a trusted CA (sslmode=verify-full)",
            "--ca-file",
        ),
        (
            url(&pg, &good, "127.0.0.1", "postgres", "?sslmode=verify-full"),
            vec!["--ca-file", &ca],
            "not valid for the host name connected to",
            "verify-ca",
        ),
        (
            url(&pg, &good, "127.0.0.1", "no_such_db", ""),
            vec![],
            "database \"no_such_db\" does not exist",
            "database name",
        ),
    ];
    for (u, extra, cause, hint) in cases {
        let mut args = vec!["verify", "--database-url", u.as_str()];
        args.extend(extra);
        let run = run_url(&args, &[]).await;
        // verify reports a failed admin connection as a failed check (exit 4) ...
        assert_eq!(run.code, 4, "{u}: {}", run.stderr);
        assert!(run.stdout.contains(cause), "{u}: {}", run.stdout);
        // ... apply-schema stops with the cause on one line (exit 1) and a hint.
        args[0] = "apply-schema";
        let run = run_url(&args, &[]).await;
        assert_eq!(run.code, 1, "{u}: {}", run.stderr);
        let line = run.error_line();
        assert!(line.contains(cause), "{u}: {line}");
        assert!(
            !line.contains(&pg.password),
            "the password is never shown: {line}"
        );
        assert!(run.hint_line().contains(hint), "{u}: {}", run.stderr);
    }
    // verify-ca accepts the host-name mismatch (the chain is what it checks).
    let u = url(&pg, &good, "127.0.0.1", "postgres", "?sslmode=verify-ca");
    dry_run_succeeds_with_ca(&u, &ca).await;
}

#[tokio::test]
async fn a_malformed_url_is_a_usage_error() {
    for bad in ["mysql://h/db", "postgresql://h/db?sslmode=sometimes", "::"] {
        let run = run_url(&["verify", "--database-url", bad], &[]).await;
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(
            run.error_line().starts_with("error: --database-url:"),
            "{}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn an_unusable_ca_file_is_one_line_and_changes_nothing() {
    let pg = Pg::get();
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "this is no certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let u = url(
        &pg,
        &format!("postgres:{}", pg.password),
        "localhost",
        "postgres",
        "?sslmode=verify-full",
    );
    for (file, cause) in [
        (&missing, "cannot read CA file"),
        (&not_pem, "holds no usable certificate"),
    ] {
        let f = file.display().to_string();
        let run = run_url(
            &["apply-schema", "--database-url", &u, "--ca-file", &f],
            &[],
        )
        .await;
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.error_line().contains(cause), "{}", run.stderr);
        assert!(
            run.hint_line().contains("PEM file with the server's CA"),
            "{}",
            run.stderr
        );
    }
}

/// What a client made of one connection attempt: TLS, no TLS, or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Tls,
    Plain,
    Refused,
}

/// libpq itself (the tests' psql 16) with this sslmode and root certificate: the oracle.
async fn libpq(
    pg: &Pg,
    host: &str,
    db: &str,
    mode: &str,
    root: Option<&str>,
    home: &std::path::Path,
) -> Outcome {
    let mut conninfo = format!(
        "host={host} port={} user=postgres dbname={db} sslmode={mode} connect_timeout=5",
        pg.port
    );
    if let Some(r) = root {
        conninfo.push_str(&format!(" sslrootcert={r}"));
    }
    let out = tokio::process::Command::new(pg.bin.join("psql"))
        .args(["-X", "-tA", &conninfo, "-c"])
        .arg("SELECT CASE WHEN ssl THEN 'tls' ELSE 'plain' END FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .env_clear()
        .env("HOME", home) // no ~/.postgresql/root.crt
        .env("PGPASSWORD", &pg.password)
        .output()
        .await
        .expect("run psql");
    match String::from_utf8_lossy(&out.stdout).trim() {
        "tls" => Outcome::Tls,
        "plain" => Outcome::Plain,
        _ => Outcome::Refused,
    }
}

/// The tool with the same settings: verify's "admin connects" says how it got in.
async fn tool(pg: &Pg, host: &str, db: &str, mode: &str, root: Option<&str>) -> (Outcome, String) {
    let mut url = format!(
        "postgresql://postgres@{host}:{}/{db}?sslmode={mode}",
        pg.port
    );
    if let Some(r) = root {
        url.push_str(&format!("&sslrootcert={r}"));
    }
    let run = run_url(
        &["verify", "-o", "json", "--database-url", &url],
        &[("PGPASSWORD", pg.password.as_str())],
    )
    .await;
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    let admin = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "admin connects"))
        .cloned()
        .unwrap_or_default();
    let detail = admin["detail"].as_str().unwrap_or_default().to_string();
    let outcome = if admin["status"] != "pass" {
        Outcome::Refused
    } else if detail.contains("over TLS") {
        Outcome::Tls
    } else if detail.contains("without TLS") {
        Outcome::Plain
    } else {
        panic!("{url}: {detail}\n{}", run.stderr)
    };
    (outcome, format!("{detail} {}", run.stderr))
}

/// Every sslmode × CA file (none, the server's CA, an unrelated CA) × host name (the one the
/// certificate names, an IP it does not) × server (TLS offered; TLS required), against libpq.
#[tokio::test]
async fn every_sslmode_and_ca_file_behaves_as_libpq() {
    let pg = Pg::get();
    let home = tempfile::tempdir().unwrap();
    let ca = pg.ca.display().to_string();
    let other = pg.other_ca.display().to_string();
    let mut rows = Vec::new();
    for db in ["postgres", "tls_only"] {
        for mode in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            for root in [None, Some(ca.as_str()), Some(other.as_str())] {
                for host in ["localhost", "127.0.0.1"] {
                    let want = libpq(&pg, host, db, mode, root, home.path()).await;
                    let (got, detail) = tool(&pg, host, db, mode, root).await;
                    let root_name = match root {
                        None => "none",
                        Some(r) if r == ca => "server's CA",
                        Some(_) => "other CA",
                    };
                    assert_eq!(
                        got, want,
                        "db {db}, sslmode={mode}, CA {root_name}, host {host}: libpq {want:?}, the tool {got:?} ({detail})"
                    );
                    rows.push((db, mode, root_name, host, want));
                }
            }
        }
    }
    assert_eq!(rows.len(), 72);
    // The rows that make the difference, as libpq's documentation states them.
    let row = |db: &str, mode: &str, root: &str, host: &str| {
        rows.iter()
            .find(|r| r.0 == db && r.1 == mode && r.2 == root && r.3 == host)
            .unwrap()
            .4
    };
    assert_eq!(
        row("postgres", "require", "other CA", "localhost"),
        Outcome::Refused,
        "a CA file makes require check the chain"
    );
    assert_eq!(
        row("postgres", "require", "none", "localhost"),
        Outcome::Tls
    );
    assert_eq!(
        row("postgres", "prefer", "other CA", "localhost"),
        Outcome::Plain,
        "prefer falls back"
    );
    assert_eq!(
        row("postgres", "allow", "none", "localhost"),
        Outcome::Plain
    );
    assert_eq!(row("tls_only", "allow", "none", "localhost"), Outcome::Tls);
    assert_eq!(
        row("postgres", "verify-full", "server's CA", "127.0.0.1"),
        Outcome::Refused
    );
    assert_eq!(
        row("postgres", "verify-ca", "server's CA", "127.0.0.1"),
        Outcome::Tls
    );
    assert_eq!(
        row("postgres", "verify-ca", "none", "localhost"),
        Outcome::Refused
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_with_exit_3() {
    // Accepts connections (the kernel's backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!(
        "postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable&connect_timeout=1"
    );
    let started = std::time::Instant::now();
    let run = run_url(
        &["apply-schema", "--dry-run", "--database-url", &url],
        &[("PGPASSWORD", "x")],
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.error_line().contains("no answer within"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("firewall"), "{}", run.stderr);
    assert!(started.elapsed().as_secs() < 10);
    drop(silent);
}

/// `sslmode=require` against a server without TLS: the cause in words, without `-v` (it said
/// "error performing TLS handshake … see -v").
#[tokio::test]
async fn require_against_a_server_without_tls_says_so() {
    let pg = Pg::get();
    let port = std::env::var("PHONEBILL_TEST_PLAIN_PG_PORT")
        .expect("PHONEBILL_TEST_PLAIN_PG_PORT: run the tests with `bash scripts/test.sh`");
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=require");
    let run = run_url(
        &["apply-schema", "--dry-run", "--database-url", &url],
        &[("PGPASSWORD", &pg.password)],
    )
    .await;
    run.refused(
        1,
        "the server does not offer TLS",
        "sslmode=prefer or disable",
    );
}
