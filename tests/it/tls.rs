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
