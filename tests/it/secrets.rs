//! Passwords through the real binary: never shown or written, a warning when one is typed on the
//! command line, and never sent to the server in clear text.

use crate::pg::{Pg, run_url};

/// Every place a run could show a password: stdout, stderr, and the files it wrote.
fn shown_anywhere(run: &crate::support::Run, files: &[std::path::PathBuf], secret: &str) -> bool {
    run.stdout.contains(secret)
        || run.stderr.contains(secret)
        || files
            .iter()
            .any(|f| std::fs::read(f).is_ok_and(|b| String::from_utf8_lossy(&b).contains(secret)))
}

#[tokio::test]
async fn a_password_in_the_urls_query_is_used_but_never_shown_or_written() {
    let pg = Pg::get();
    let db = pg.create_database("query_pw");
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("q.dump");
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/{db}?password={}&sslmode=disable",
        pg.port, pg.password
    );
    let pg_bin = pg.bin.display().to_string();
    let run = run_url(
        &[
            "backup",
            "--database-url",
            &url,
            "--pg-bin",
            &pg_bin,
            "--to",
            dump.to_str().unwrap(),
            "-o",
            "json",
        ],
        &[],
    )
    .await;
    let report = run.ok_json();
    let manifest = dir.path().join("q.dump.meta.json");
    assert!(manifest.exists());
    assert!(
        !shown_anywhere(&run, std::slice::from_ref(&manifest), &pg.password),
        "the password leaked:\n{}\n{}\n{}",
        run.stdout,
        run.stderr,
        std::fs::read_to_string(&manifest).unwrap()
    );
    assert!(report["source"].as_str().unwrap().contains(&db));
    // Typed on the command line: a warning, once, naming the variable to use instead.
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("PHONEBILL_DATABASE_URL"),
        "{}",
        warnings[0]
    );

    // From the environment: no warning.
    let run = run_url(
        &["apply-schema", "--dry-run"],
        &[("PHONEBILL_DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    assert!(!shown_anywhere(&run, &[], &pg.password));
}

#[tokio::test]
async fn the_app_password_as_a_flag_warns_and_reaches_the_server_only_as_a_scram_verifier() {
    let pg = Pg::get();
    let db = pg.create_database("scram");
    let values = tempfile::NamedTempFile::new().unwrap();
    let app = format!("{db}_app");
    std::fs::write(values.path(), format!("database: {db}\nappUser: {app}\n")).unwrap();
    let app_password = format!("clear-text-{db}");
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/{db}?sslmode=disable",
        pg.port
    );
    let run = run_url(
        &[
            "apply-schema",
            "--database-url",
            &url,
            "--values",
            values.path().to_str().unwrap(),
            "--app-password",
            &app_password,
        ],
        &[("PGPASSWORD", pg.password.as_str())],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("--app-password") && warnings[0].contains("PHONEBILL_APP_PASSWORD")
    );
    assert!(!shown_anywhere(&run, &[], &app_password));

    // The app logs in with it...
    let who = pg
        .psql_as(&app, &app_password, &db, "SELECT current_user")
        .expect("the app role logs in with its password");
    assert_eq!(who, app);
    // ...but no statement the server saw carried it (pg_stat_statements keeps utility statements'
    // text, ALTER ROLE included), and the server stores a SCRAM verifier.
    let seen = pg.psql(
        &db,
        &format!("SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%{app_password}%'"),
    );
    assert_eq!(seen, "0", "the password reached the server in a statement");
    let altered = pg.psql(
        &db,
        &format!("SELECT count(*) FROM pg_stat_statements WHERE query LIKE 'ALTER ROLE {app} PASSWORD ''SCRAM-SHA-256$%'"),
    );
    assert_eq!(altered, "1", "ALTER ROLE was sent with a verifier");
    let stored = pg.psql(
        "postgres",
        &format!("SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = '{app}'"),
    );
    assert_eq!(stored, "SCRAM-SHA-256$");
}
