//! The migration runner against the real PostgreSQL, through the library and the binary: changed
//! migrations are refused, a failing one leaves nothing behind, concurrent runs apply each once.

use phonebill_db::db::connect::Db;
use phonebill_db::db::migrate::{self, Migration};
use phonebill_db::db::tls;
use phonebill_db::profile::Profile;

use crate::pg::{Pg, run_url};

async fn admin(pg: &Pg, db: &str) -> tokio_postgres::Client {
    let url = tls::parse_url(&pg.url(db), None, None).expect("url");
    let profile = Profile::load("dev", None).expect("dev profile");
    Db::for_url(url, &profile, None)
        .admin()
        .await
        .expect("connect")
}

async fn apply(
    client: &mut tokio_postgres::Client,
    ms: &[Migration],
) -> anyhow::Result<Vec<String>> {
    let done = migrate::locked(client, async |c| migrate::apply(c, ms, |_| {}).await).await?;
    Ok(done.into_iter().map(|m| m.id).collect())
}

fn ledger(pg: &Pg, db: &str) -> String {
    pg.psql(db, "SELECT string_agg(id || '=' || left(checksum, 8), ',' ORDER BY id) FROM phonebill_db.schema_migrations")
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused_and_nothing_else_runs() {
    let pg = Pg::get();
    let db = pg.create_database("edited");
    let mut c = admin(&pg, &db).await;
    let m1 = Migration::new("0001_a", "CREATE TABLE a (id int);");
    assert_eq!(
        apply(&mut c, std::slice::from_ref(&m1)).await.unwrap(),
        ["0001_a"]
    );
    let before = ledger(&pg, &db);

    let edited = Migration::new("0001_a", "CREATE TABLE a (id bigint);");
    let m2 = Migration::new("0002_b", "CREATE TABLE b (id int);");
    let err = apply(&mut c, &[edited, m2]).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("applied migration changed since it was applied: 0001_a"),
        "{text}"
    );
    assert!(text.contains("nothing was applied"), "{text}");
    assert_eq!(pg.psql(&db, "SELECT to_regclass('public.b') IS NULL"), "t");
    assert_eq!(ledger(&pg, &db), before);
}

#[tokio::test]
async fn a_migration_that_fails_halfway_leaves_nothing_of_itself() {
    let pg = Pg::get();
    let db = pg.create_database("halfway");
    let mut c = admin(&pg, &db).await;
    let good = Migration::new("0001_good", "CREATE TABLE kept (id int);");
    let bad = Migration::new(
        "0002_bad",
        "CREATE TABLE half_a (id int); INSERT INTO kept VALUES (1); CREATE TABLE half_b (id int); SELECT 1/0;",
    );
    let later = Migration::new("0003_later", "CREATE TABLE later (id int);");
    let err = apply(&mut c, &[good, bad, later]).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("migration 0002_bad failed and was rolled back: division by zero"),
        "{text}"
    );
    assert_eq!(
        pg.psql(&db, "SELECT to_regclass('half_a') IS NULL AND to_regclass('half_b') IS NULL AND to_regclass('later') IS NULL"),
        "t"
    );
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM kept"), "0");
    assert_eq!(
        pg.psql(
            &db,
            "SELECT string_agg(id, ',') FROM phonebill_db.schema_migrations"
        ),
        "0001_good"
    );
    // The session is usable afterwards (the failed transaction was rolled back).
    c.simple_query("SELECT 1")
        .await
        .expect("session still usable");
}

#[tokio::test]
async fn apply_schema_refuses_a_database_whose_migration_changed() {
    let pg = Pg::get();
    let db = pg.create_database("tampered");
    let url = pg.url(&db);
    assert_eq!(
        run_url(&["apply-schema", "--database-url", &url], &[])
            .await
            .code,
        0
    );
    pg.psql(&db, "UPDATE phonebill_db.schema_migrations SET checksum = 'deadbeef0000' WHERE id = '0002_auth_tables'");
    pg.psql(
        &db,
        "DELETE FROM phonebill_db.schema_migrations WHERE id = '0100_dev_sample_accounts'",
    );
    pg.psql(
        &db,
        "DELETE FROM auth_user_permissions; DELETE FROM auth_users",
    );
    let run = run_url(&["apply-schema", "--database-url", &url], &[]).await;
    assert_eq!(run.code, 1);
    let line = run.error_line();
    assert!(line.contains("applied migration changed since it was applied: 0002_auth_tables (database deadbeef0000"), "{line}");
    assert!(run.hint_line().contains("never edit an applied migration"));
    // The pending sample-data migration did not run.
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM auth_users"), "0");
    let dry = run_url(&["apply-schema", "--dry-run", "--database-url", &url], &[]).await;
    assert_eq!(dry.code, 1, "the dry run refuses too");
}

#[tokio::test]
async fn two_runs_at_once_both_succeed_and_apply_each_migration_once() {
    let pg = Pg::get();
    let db = pg.create_database("concurrent");
    let url = pg.url(&db);
    let args = ["apply-schema", "-o", "json", "--database-url", url.as_str()];
    let (a, b) = tokio::join!(run_url(&args, &[]), run_url(&args, &[]));
    assert_eq!((a.code, b.code), (0, 0), "{}\n{}", a.stderr, b.stderr);
    let count = |r: &crate::support::Run| r.json()["applied"].as_array().unwrap().len();
    assert_eq!(count(&a) + count(&b), 4, "{}\n{}", a.stdout, b.stdout);
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*), count(DISTINCT id) FROM phonebill_db.schema_migrations"
        ),
        "4|4"
    );
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM auth_services"), "3");
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_tool_is_refused() {
    let pg = Pg::get();
    let db = pg.create_database("newer");
    let url = pg.url(&db);
    assert_eq!(
        run_url(&["apply-schema", "--database-url", &url], &[])
            .await
            .code,
        0
    );
    pg.psql(&db, "INSERT INTO phonebill_db.schema_migrations (id, checksum, tool_version, millis) VALUES ('0200_future', 'x', '9.9.9', 1)");
    let run = run_url(&["apply-schema", "--database-url", &url], &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.error_line()
            .contains("the database has migrations this tool does not know: 0200_future"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("a newer phonebill-db"));
}
