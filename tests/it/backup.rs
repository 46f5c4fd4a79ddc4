//! backup and restore against the real (throwaway) PostgreSQL: through the fake API server's exec
//! (pg_dump/pg_restore/psql run for real, as in the pod) and through --database-url with the
//! local tools. Every restore is judged by the data: each table's row count and content hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::pg::{Pg, Release, run_url};
use crate::support::{ADMIN_SECRET, Run};

const TABLES: [&str; 8] = [
    "auth_users",
    "auth_user_sessions",
    "auth_services",
    "auth_permissions",
    "auth_user_permissions",
    "auth_login_history",
    "auth_permission_access_log",
    "phonebill_db.schema_migrations",
];

/// Row count and content hash of every table ("missing" for a table that is not there).
pub fn fingerprint(r: &Release) -> BTreeMap<&'static str, String> {
    fingerprint_in(&r.pg, &r.database)
}

/// [`fingerprint`] of database `db` on the shared server.
pub fn fingerprint_in(pg: &Pg, db: &str) -> BTreeMap<&'static str, String> {
    let psql = |sql: &str| pg.psql(db, sql);
    TABLES
        .iter()
        .map(|t| {
            let sql = format!(
                "SELECT CASE WHEN to_regclass('{t}') IS NULL THEN 'missing' ELSE \
                 (SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x) END"
            );
            // A missing table makes the inner query fail to plan: ask first.
            let exists = psql(&format!("SELECT to_regclass('{t}') IS NOT NULL"));
            let value = if exists == "t" {
                psql(&sql)
            } else {
                "missing".into()
            };
            (*t, value)
        })
        .collect()
}

/// Columns, constraints, indexes and triggers of the public schema, hashed. (CHECK constraints by
/// name and column: a dump round trip re-deparses `IN (...)` into an equal but different text.)
fn schema(r: &Release) -> String {
    r.psql(
        "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
           SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':' || coalesce(column_default, '') AS x
             FROM information_schema.columns WHERE table_schema = 'public'
           UNION ALL SELECT conrelid::regclass || ':' || conname || ':' || conkey::text || ':' ||
                  CASE contype WHEN 'c' THEN 'check' ELSE pg_get_constraintdef(oid) END
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace
           UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
           UNION ALL SELECT tgname || ':' || tgrelid::regclass FROM pg_trigger WHERE NOT tgisinternal) s",
    )
}

/// A release with the schema applied and `users` x 9 generated rows (scripts/bench/generate-data.sql).
pub async fn loaded(tag: &str, users: u32) -> Release {
    let r = Release::new(tag).await;
    r.install().await;
    let applied = r.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    r.pg.generate_rows(&r.database, users);
    r
}

/// Drop a table, delete rows, change rows: what a restore must undo.
pub fn damage(r: &Release) {
    r.psql("DROP TABLE auth_permission_access_log");
    r.psql("DELETE FROM auth_users WHERE user_id LIKE 'gen-user-1%'");
    r.psql("UPDATE auth_services SET service_name = 'damaged'");
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Run the tool on this release through --database-url with the local tools.
async fn via_url(r: &Release, args: &[&str]) -> Run {
    r.via_url(args).await
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// A run that failed with `code`, its error line saying `error` and its hint `hint`.
/// A run that must succeed; its JSON report when it was asked for one (else null).
fn ok(run: &Run) -> Value {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    serde_json::from_str(&run.stdout).unwrap_or(Value::Null)
}

#[tokio::test]
async fn through_the_pod_both_formats_undo_every_damage() {
    let r = loaded("bk_pod", 12_000).await;
    let original = fingerprint(&r);
    let rows: u64 = original
        .values()
        .map(|v| v.split(':').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(rows >= 100_000, "{original:?}");
    let dir = tempfile::tempdir().unwrap();

    let custom = path(dir.path(), "auth.dump");
    let b = ok(&r.run(&["backup", "--to", &custom, "-o", "json"]).await);
    assert_eq!(b["format"], "custom");
    assert_eq!(b["database"], r.database.as_str());
    // pg_dump ran in the pod, through exec (not through a port-forward).
    assert!(
        b["source"]
            .as_str()
            .unwrap()
            .ends_with("(its own tools, through exec)"),
        "{b}"
    );
    assert_eq!(b["size"], std::fs::metadata(&custom).unwrap().len());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{custom}.meta.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["sha256"], b["sha256"]);
    assert!(
        manifest["toolVersion"]
            .as_str()
            .unwrap()
            .starts_with("pg_dump (PostgreSQL)")
    );

    let plain = path(dir.path(), "auth.sql.gz");
    let p = ok(&r
        .run(&["backup", "--format", "plain", "--to", &plain, "-o", "json"])
        .await);
    assert_eq!(p["compress"], "gzip:1", "the default level");
    let head = std::fs::read(&plain).unwrap();
    assert_eq!(&head[..2], &[0x1f, 0x8b], "plain backups are gzip files");

    damage(&r);
    assert_ne!(fingerprint(&r), original);
    let restored = ok(&r
        .run(&[
            "restore",
            "--from",
            &custom,
            "--yes",
            "--no-safety-backup",
            "-o",
            "json",
        ])
        .await);
    assert_eq!(restored["passed"], true, "{restored}");
    assert_eq!(fingerprint(&r), original);

    damage(&r);
    let damaged = fingerprint(&r);
    let safety = path(dir.path(), "safety.dump");
    let restored = ok(&r
        .run(&[
            "restore",
            "--from",
            &plain,
            "--yes",
            "--safety-to",
            &safety,
            "-o",
            "json",
        ])
        .await);
    assert_eq!(fingerprint(&r), original);
    assert_eq!(restored["safetyBackup"]["file"], safety.as_str());

    // The safety backup holds the database as it was just before. Restored beside the live
    // database, it fails verify (the dropped table): the shadow is dropped, nothing changes.
    let run = r
        .run(&[
            "restore",
            "--from",
            &safety,
            "--yes",
            "--no-safety-backup",
            "-o",
            "json",
        ])
        .await;
    run.failed_saying(4, &["the restored copy failed", "was not touched"]);
    assert_eq!(fingerprint(&r), original);
    // In place (one transaction), it brings the damage back, then verify fails: exit 4 after.
    let run = r
        .run(&[
            "restore",
            "--from",
            &safety,
            "--in-place",
            "--yes",
            "--no-safety-backup",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(fingerprint(&r), damaged);
    assert_eq!(
        files(dir.path()),
        [
            "auth.dump",
            "auth.dump.meta.json",
            "auth.sql.gz",
            "auth.sql.gz.meta.json",
            "safety.dump",
            "safety.dump.meta.json"
        ]
    );
}

#[tokio::test]
async fn through_a_url_schema_only_and_per_table_backups_restore_what_they_hold() {
    let r = loaded("bk_url", 12_000).await;
    let original = fingerprint(&r);
    let original_schema = schema(&r);
    let dir = tempfile::tempdir().unwrap();

    let full = path(dir.path(), "full.dump");
    let b = ok(&via_url(&r, &["backup", "--to", &full, "-o", "json"]).await);
    assert!(
        b["source"].as_str().unwrap().starts_with("postgresql://"),
        "{b}"
    );
    damage(&r);
    let restored = ok(&via_url(
        &r,
        &[
            "restore",
            "--from",
            &full,
            "--yes",
            "--no-safety-backup",
            "-o",
            "json",
        ],
    )
    .await);
    assert_eq!(restored["passed"], true, "{restored}");
    assert_eq!(fingerprint(&r), original);

    // Per table: only these tables' rows come back; the others keep their changes.
    let tables = path(dir.path(), "reference.dump");
    let t = ok(&via_url(
        &r,
        &[
            "backup",
            "--table",
            "auth_services",
            "--table",
            "auth_permissions",
            "--to",
            &tables,
            "-o",
            "json",
        ],
    )
    .await);
    assert_eq!(
        t["tables"],
        serde_json::json!(["auth_services", "auth_permissions"])
    );
    r.psql("UPDATE auth_services SET service_name = 'damaged'");
    r.psql("UPDATE auth_permissions SET permission_name = 'damaged'");
    r.psql("DELETE FROM auth_login_history WHERE history_id % 2 = 0");
    let mut expected = fingerprint(&r);
    expected.insert("auth_services", original["auth_services"].clone());
    expected.insert("auth_permissions", original["auth_permissions"].clone());
    let restored = ok(&via_url(
        &r,
        &[
            "restore",
            "--from",
            &tables,
            "--yes",
            "--no-safety-backup",
            "-o",
            "json",
        ],
    )
    .await);
    assert!(
        restored["scope"]
            .as_str()
            .unwrap()
            .contains("auth_services, auth_permissions")
    );
    assert_eq!(fingerprint(&r), expected);

    // Per table, plain format, the same.
    let plain_tables = path(dir.path(), "services.sql.gz");
    ok(&via_url(
        &r,
        &[
            "backup",
            "--format",
            "plain",
            "--table",
            "auth_services",
            "--to",
            &plain_tables,
        ],
    )
    .await);
    r.psql("UPDATE auth_services SET service_name = 'damaged again'");
    ok(&via_url(
        &r,
        &[
            "restore",
            "--from",
            &plain_tables,
            "--yes",
            "--no-safety-backup",
        ],
    )
    .await);
    assert_eq!(fingerprint(&r)["auth_services"], original["auth_services"]);

    // Schema only: the definitions come back exactly; every table is empty, so verify reports
    // the missing reference data and ledger (exit 4) after restoring.
    let schema_file = path(dir.path(), "schema.sql.gz");
    ok(&via_url(
        &r,
        &[
            "backup",
            "--schema-only",
            "--format",
            "plain",
            "--to",
            &schema_file,
        ],
    )
    .await);
    r.psql("DROP TABLE auth_permission_access_log");
    r.psql("DROP INDEX idx_auth_users_customer_id");
    assert_ne!(schema(&r), original_schema);
    let run = via_url(
        &r,
        &[
            "restore",
            "--from",
            &schema_file,
            "--yes",
            "--no-safety-backup",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(run.error_line().contains("restored, but"), "{}", run.stderr);
    assert_eq!(schema(&r), original_schema);
    for (table, value) in fingerprint(&r) {
        assert!(
            value.starts_with("0:"),
            "{table} is empty after a schema-only restore: {value}"
        );
    }
}

/// Refusals of a bad file: exit 4, one line naming the problem, the database untouched.
async fn refused(r: &Release, file: &str, says: &str) {
    let before = fingerprint(r);
    let run = via_url(
        r,
        &["restore", "--from", file, "--yes", "--no-safety-backup"],
    )
    .await;
    assert_eq!(run.code, 4, "{file}: {}", run.stderr);
    assert!(run.error_line().contains(says), "{file}: {}", run.stderr);
    assert!(
        run.error_line().contains("nothing was restored"),
        "{}",
        run.stderr
    );
    assert!(!run.hint_line().is_empty(), "{}", run.stderr);
    assert_eq!(fingerprint(r), before, "{file}");
}

#[tokio::test]
async fn truncated_flipped_empty_and_foreign_files_are_refused_before_anything_changes() {
    let r = loaded("bk_bad", 1_000).await;
    let dir = tempfile::tempdir().unwrap();
    let good = path(dir.path(), "good.dump");
    ok(&via_url(&r, &["backup", "--to", &good]).await);
    let bytes = std::fs::read(&good).unwrap();
    let copy = |name: &str, data: &[u8]| -> String {
        let p = path(dir.path(), name);
        std::fs::write(&p, data).unwrap();
        std::fs::copy(format!("{good}.meta.json"), format!("{p}.meta.json")).unwrap();
        p
    };
    r.psql("UPDATE auth_services SET service_name = 'changed since the backup'");

    refused(
        &r,
        &copy("truncated.dump", &bytes[..bytes.len() / 2]),
        "truncated",
    )
    .await;
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    refused(&r, &copy("flipped.dump", &flipped), "corrupted").await;
    refused(&r, &copy("empty.dump", b""), "empty").await;
    let no_manifest = path(dir.path(), "lonely.dump");
    std::fs::write(&no_manifest, &bytes).unwrap();
    refused(&r, &no_manifest, "manifest").await;
    // Not a file at all: a directory (even one with a manifest beside it), a device.
    let folder = path(dir.path(), "folder.dump");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(format!("{good}.meta.json"), format!("{folder}.meta.json")).unwrap();
    refused(&r, &folder, &format!("{folder}: it is a directory")).await;
    refused(&r, "/dev/null", "/dev/null: it is not a regular file").await;

    // A backup of another database.
    let other = Release::new("bk_other").await;
    other.install().await;
    ok(&other.run(&["apply-schema"]).await);
    let foreign = path(dir.path(), "foreign.dump");
    ok(&other.run(&["backup", "--to", &foreign]).await);
    refused(
        &r,
        &foreign,
        &format!("is a backup of database {}", other.database),
    )
    .await;

    // The intact file still restores (the refusals were about the files, not the database).
    ok(&via_url(
        &r,
        &["restore", "--from", &good, "--yes", "--no-safety-backup"],
    )
    .await);
    assert_ne!(
        r.psql("SELECT service_name FROM auth_services WHERE service_code = 'AUTH'"),
        "changed since the backup"
    );
}

#[tokio::test]
async fn a_restore_that_fails_partway_leaves_the_database_as_it_was() {
    let r = loaded("bk_fail", 500).await;
    let dir = tempfile::tempdir().unwrap();
    // Rows that break a foreign key, loaded with the checks off: the dump holds them, and the
    // restore fails when it adds the constraint back, after dropping and reloading tables.
    r.psql(
        "BEGIN; SET LOCAL session_replication_role = replica; \
         INSERT INTO auth_user_sessions (session_id, user_id, session_token, expires_at) \
         VALUES ('orphan', 'nobody', 't', now()); COMMIT;",
    );
    let bad = path(dir.path(), "bad.dump");
    ok(&r.run(&["backup", "--to", &bad]).await);
    r.psql("DELETE FROM auth_user_sessions WHERE session_id = 'orphan'");
    r.psql("UPDATE auth_services SET service_name = 'after the backup'");
    let before = fingerprint(&r);
    let safety = path(dir.path(), "safety.dump");
    // Beside the live database (the default): the shadow fails to load, is dropped, and the live
    // database is as it was.
    let run = r
        .run(&["restore", "--from", &bad, "--yes", "--safety-to", &safety])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.error_line().contains("was not touched"),
        "{}",
        run.stderr
    );
    assert!(
        run.error_line().contains("fk_auth_user_sessions_user"),
        "the first error names the constraint: {}",
        run.stderr
    );
    assert_eq!(fingerprint(&r), before);
    assert!(Path::new(&safety).exists(), "the safety backup stays");
    assert_eq!(
        r.pg.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname LIKE '{}\\_restore\\_%'",
                r.database
            )
        ),
        "0",
        "the shadow was dropped"
    );
    // In place: one transaction, rolled back.
    let run = r
        .run(&[
            "restore",
            "--from",
            &bad,
            "--yes",
            "--in-place",
            "--no-safety-backup",
        ])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.error_line().contains("rolled back"), "{}", run.stderr);
    assert!(
        run.error_line().contains("fk_auth_user_sessions_user"),
        "{}",
        run.stderr
    );
    assert_eq!(fingerprint(&r), before);

    // A per-table restore that would orphan rows of another table fails its foreign-key check.
    let perms = path(dir.path(), "perms.dump");
    ok(&via_url(
        &r,
        &["backup", "--table", "auth_permissions", "--to", &perms],
    )
    .await);
    r.psql(
        "INSERT INTO auth_permissions (service_code, permission_code, permission_name) VALUES ('AUTH', 'NEW', 'new')",
    );
    r.psql(
        "INSERT INTO auth_user_permissions (user_id, permission_id) \
         SELECT 'gen-user-1', permission_id FROM auth_permissions WHERE permission_code = 'NEW'",
    );
    let before = fingerprint(&r);
    let run = via_url(
        &r,
        &["restore", "--from", &perms, "--yes", "--no-safety-backup"],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.error_line()
            .contains("fk_auth_user_permissions_permission"),
        "{}",
        run.stderr
    );
    assert_eq!(fingerprint(&r), before);
}

/// A directory with a `pg_dump` that reports a version, and otherwise runs `body`.
fn fake_pg_dump(dir: &Path, version: &str, body: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("pg_dump");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) {version}'; exit 0; fi\n{body}\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// The pod's pg_dump replaced by one running `body`; a temp dir, its empty `out` directory and
/// the backup's destination `out/x.dump`.
fn pod_pg_dump(r: &Release, body: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dest = path(&out, "x.dump");
    let bin = fake_pg_dump(dir.path(), "16.2", body);
    r.exec_env(&r.secret(ADMIN_SECRET, "postgres-password"), &[&bin]);
    (dir, out, dest)
}

#[tokio::test]
async fn a_failed_pg_dump_leaves_no_file_and_a_terminal_less_restore_changes_nothing() {
    let r = Release::new("bk_dumpfail").await;
    r.install().await;
    ok(&r.run(&["apply-schema"]).await);
    // pg_dump in the pod writes a good-looking start, then fails: the exit status decides.
    let (_dir, out, dest) = pod_pg_dump(
        &r,
        "printf PGDMP; head -c 300000 /dev/zero; echo 'pg_dump: error: query failed: server closed the connection unexpectedly' >&2; exit 1",
    );
    let password = r.secret(ADMIN_SECRET, "postgres-password");
    let run = r.run(&["backup", "--to", &dest]).await;
    run.refused(1, "server closed the connection", "no backup file was kept");
    assert!(files(&out).is_empty(), "{:?}", files(&out));

    // pg_dump cannot reach the server at all.
    r.cluster.fake.exec_env(&[
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", "1"),
        ("PATH", &format!("{}:/usr/bin:/bin", r.pg.bin.display())),
    ]);
    let run = r.run(&["backup", "--to", &dest]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.error_line().contains("pg_dump"), "{}", run.stderr);
    assert!(files(&out).is_empty(), "{:?}", files(&out));

    // A local pg_dump older than the server (Debian's 15 against the 16 server) is refused
    // before it runs.
    r.exec_env(&password, &[]);
    let old = crate::pg::Pg::old().bin;
    let url = r.admin_url();
    let run = run_url(
        &[
            "backup",
            "--database-url",
            &url,
            "--pg-bin",
            &old.display().to_string(),
            "--to",
            &dest,
        ],
        &[("PGPASSWORD", &password)],
    )
    .await;
    run.refused(1, "older than the server", "--pg-bin");
    assert!(files(&out).is_empty());

    // No terminal and no --yes: nothing restored, no safety backup taken.
    ok(&r.run(&["backup", "--to", &dest]).await);
    r.psql("UPDATE auth_services SET service_name = 'kept'");
    let before = fingerprint(&r);
    let run = r.run(&["restore", "--from", &dest]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.error_line().contains("needs confirmation"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("--yes"), "{}", run.stderr);
    assert_eq!(fingerprint(&r), before);
    assert_eq!(files(&out), ["x.dump", "x.dump.meta.json"]);
    assert_eq!(
        files(r.cluster.dir.path())
            .iter()
            .filter(|f| f.contains("before-restore"))
            .count(),
        0,
        "no safety backup"
    );
    // Writing over an existing backup is refused (a usage error, before connecting).
    let run = r.run(&["backup", "--to", &dest]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.error_line().contains("already exists"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn bad_backup_arguments_are_usage_errors() {
    let r = Release::new("bk_usage").await;
    r.install().await;
    for (args, says) in [
        (
            vec!["backup", "--schema-only", "--table", "auth_users"],
            "cannot be used with",
        ),
        (
            vec!["backup", "--snapshot", "--to", "x.dump"],
            "cannot be used with",
        ),
        (vec!["backup", "--table", "Auth-Users"], "lower-case"),
        (vec!["backup", "--compress", "brotli"], "unknown method"),
        (
            vec!["backup", "--table", "no_such_table", "--to", "t.dump"],
            "does not exist",
        ),
    ] {
        let run = r.run(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    assert!(
        files(r.cluster.dir.path())
            .iter()
            .all(|f| !f.ends_with(".dump"))
    );
}

#[tokio::test]
async fn a_snapshot_names_the_claim_and_class_waits_until_ready_and_times_out_clearly() {
    let r = Release::new("bk_snap").await;
    r.install().await;
    let fake = &r.cluster.fake;
    fake.delete("VolumeSnapshotClass", "", "csi-azuredisk-vsc")
        .expect("the plan's class is there");

    // No class: refused, nothing created.
    let run = r.run(&["backup", "--snapshot"]).await;
    run.refused(
        1,
        "VolumeSnapshotClass `csi-azuredisk-vsc` does not exist",
        "--create-snapshot-class",
    );
    assert!(fake.list("VolumeSnapshot", crate::support::NS).is_empty());

    let taken = ok(&r
        .run(&[
            "backup",
            "--snapshot",
            "--create-snapshot-class",
            "-o",
            "json",
        ])
        .await);
    assert_eq!(taken["readyToUse"], true);
    assert_eq!(taken["snapshotClassCreated"], true);
    let class = fake
        .get("VolumeSnapshotClass", "", "csi-azuredisk-vsc")
        .expect("class");
    assert_eq!(class["driver"], "disk.csi.azure.com");
    let snaps = fake.list("VolumeSnapshot", crate::support::NS);
    assert_eq!(snaps.len(), 1);
    let snap = &snaps[0];
    assert_eq!(snap["metadata"]["name"], taken["snapshot"]);
    assert_eq!(
        snap["spec"]["source"]["persistentVolumeClaimName"],
        crate::support::PVC
    );
    assert_eq!(snap["spec"]["volumeSnapshotClassName"], "csi-azuredisk-vsc");
    assert_eq!(snap["status"]["readyToUse"], true);

    // A driver that never finishes: exit 3 after the timeout, the snapshot named.
    fake.set_snapshots(fake_kube::SnapshotBehavior::Never);
    let run = r.run(&["backup", "--snapshot", "--timeout", "2s"]).await;
    run.refused(3, "is not ready to use after 2s", "describe volumesnapshot");

    // An error the controller retries past (throttled, then done): the wait goes on to ready.
    fake.set_snapshots(fake_kube::SnapshotBehavior::TransientError { ticks: 20 });
    let taken = ok(&r
        .run(&["backup", "--snapshot", "-o", "json", "--timeout", "30s"])
        .await);
    assert_eq!(taken["readyToUse"], true, "{taken}");
    assert!(
        taken["seconds"].as_f64().unwrap() >= 0.5,
        "it waited through the error: {taken}"
    );
    // An error that stays: the wait runs to --timeout and reports the latest error (exit 3).
    fake.set_snapshots(fake_kube::SnapshotBehavior::Failing(
        "quota exceeded for resource disk snapshots",
    ));
    let run = r.run(&["backup", "--snapshot", "--timeout", "2s"]).await;
    run.refused(
        3,
        "the controller's last error: quota exceeded for resource disk snapshots",
        "describe volumesnapshot",
    );
    // 4xx answers never suggest retrying.
    assert!(!run.hint_line().to_lowercase().contains("retry"));

    // A class that does not exist, named with --snapshot-class: the existing ones are listed.
    let run = r
        .run(&["backup", "--snapshot", "--snapshot-class", "missing-class"])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.error_line()
            .contains("`missing-class` does not exist (existing: csi-azuredisk-vsc)"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_interrupted_backup_leaves_nothing_behind() {
    let r = Release::new("bk_int").await;
    r.install().await;
    // A pg_dump in the pod that has written a start and is still going.
    let (dir, out, dest) = pod_pg_dump(&r, "printf PGDMP; head -c 100000 /dev/zero; sleep 20");
    let kubeconfig = r.cluster.kubeconfig.display().to_string();
    let child = crate::support::bin_command(
        dir.path(),
        &[
            "backup",
            "--to",
            &dest,
            "--kubeconfig",
            &kubeconfig,
            "--values",
            &r.values,
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("run phonebill-db");
    let mut waited = 0;
    while !files(&out).iter().any(|f| f.contains(".partial-")) {
        assert!(waited < 200, "the backup never started: {:?}", files(&out));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let done = crate::support::ctrl_c(child).await;
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("interrupted; no backup file was kept"),
        "{stderr}"
    );
    assert!(files(&out).is_empty(), "{:?}", files(&out));
}

/// The binary with a permissive umask (0000), as on a shared machine with a careless profile.
async fn with_umask_0(r: &Release, args: &[&str]) -> Run {
    let kc = r.cluster.kubeconfig.display().to_string();
    let mut sh = tokio::process::Command::new("sh");
    sh.arg("-c")
        .arg("umask 0000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_phonebill-db"))
        .args(args)
        .args(["--values", &r.values, "--kubeconfig", &kc])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", r.cluster.dir.path())
        .stdin(std::process::Stdio::null());
    let o = sh.output().await.expect("run phonebill-db under sh");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn mode(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn backups_and_safety_backups_are_private_whatever_the_umask() {
    let r = loaded("bk_mode", 50).await;
    let dir = tempfile::tempdir().unwrap();
    let file = path(dir.path(), "private.dump");
    ok(&with_umask_0(&r, &["backup", "--to", &file]).await);
    assert_eq!(mode(&file), 0o600, "the dump");
    assert_eq!(mode(&format!("{file}.meta.json")), 0o600, "its manifest");
    let safety = path(dir.path(), "safety.dump");
    ok(&with_umask_0(
        &r,
        &["restore", "--from", &file, "--yes", "--safety-to", &safety],
    )
    .await);
    assert_eq!(mode(&safety), 0o600, "the safety backup");
    assert_eq!(mode(&format!("{safety}.meta.json")), 0o600);
    assert_eq!(
        files(dir.path()),
        [
            "private.dump",
            "private.dump.meta.json",
            "safety.dump",
            "safety.dump.meta.json"
        ],
        "no temporary file left"
    );
}

/// After a restore, a failed check gets that check's advice: a server of another major version
/// than the image is upgrade's business, not a migration's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restore_each_failed_check_gets_its_own_advice() {
    let r = Release::new("bk_advice").await;
    r.install().await;
    ok(&r.run(&["apply-schema"]).await);
    let dir = tempfile::tempdir().unwrap();
    let dump = path(dir.path(), "auth.dump");
    ok(&r.run(&["backup", "--to", &dump]).await);
    let other = dir.path().join("other-major.yaml");
    std::fs::write(
        &other,
        format!(
            "{}image: docker.io/library/postgres:{}\n",
            std::fs::read_to_string(&r.values)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("image:"))
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
            r.pg.major() + 1
        ),
    )
    .unwrap();
    let run = r
        .cluster
        .run(&[
            "restore",
            "--from",
            &dump,
            "--yes",
            "--in-place",
            "--no-safety-backup",
            "--values",
            &other.display().to_string(),
        ])
        .await;
    run.failed_saying(4, &["restored, but", "server version"]);
    let hint = run.hint_line();
    assert!(hint.contains("upgrade --major N"), "{hint}");
    assert!(!hint.contains("migration"), "{hint}");
}

/// lz4 and zstd are pg_dump 16's; the pod's image (postgres:16) has them. The tests' pg_dump 16
/// (PyPI pgserver, standing for the pod's) was built without them: the pod's pg_dump says so,
/// the backup fails with its words and keeps no file. (With a pg_dump built with zstd the same
/// command writes a zstd-compressed archive; that build is not in this machine's registries.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_from_a_pg_dump_built_without_it_fails_with_its_words_and_keeps_nothing() {
    let r = Release::new("bk_zstd").await;
    r.install().await;
    ok(&r.run(&["apply-schema"]).await);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for method in ["zstd", "lz4"] {
        let dest = path(&out, &format!("{method}.dump"));
        let run = r
            .run(&["backup", "--to", &dest, "--compress", method])
            .await;
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.error_line()
                .to_lowercase()
                .contains(&format!("does not support compression with {method}")),
            "{}",
            run.stderr
        );
        assert!(files(&out).is_empty(), "{:?}", files(&out));
    }
    // gzip, which every build has, works at any level.
    let dest = path(&out, "gzip.dump");
    let b = ok(&r
        .run(&[
            "backup",
            "--to",
            &dest,
            "--compress",
            "gzip:1",
            "-o",
            "json",
        ])
        .await);
    assert_eq!(b["format"], "custom");
}

/// Where a backup goes is checked before anything connects (a long dump must not fail at its
/// end): a directory, a missing directory, a file already there — exit 2 at once, nothing made.
/// The URL leads nowhere: had the tool connected first, it would say so instead.
#[tokio::test]
async fn a_destination_that_cannot_take_the_backup_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken.dump");
    std::fs::write(&taken, b"old").unwrap();
    let url = "postgresql://postgres@127.0.0.1:1/postgres";
    let dir_arg = format!("{}/", dir.path().display());
    let cases: [(&str, String, &str, &str); 4] = [
        (
            "--to",
            dir_arg.clone(),
            "is a directory",
            "give a file name in it",
        ),
        (
            "--to",
            "/nonexistent-dir/x.dump".into(),
            "directory /nonexistent-dir does not exist",
            "create the directory first",
        ),
        (
            "--to",
            taken.display().to_string(),
            "already exists",
            "choose another name with --to",
        ),
        (
            "--safety-to",
            dir_arg,
            "is a directory",
            "--safety-to backups/auth.dump",
        ),
    ];
    for (flag, to, error, hint) in cases {
        let args: Vec<&str> = if flag == "--to" {
            vec!["backup", "--database-url", url, "--to", &to]
        } else {
            vec![
                "restore",
                "--database-url",
                url,
                "--from",
                "x.dump",
                "--yes",
                flag,
                &to,
            ]
        };
        let run = crate::pg::run_url(&args, &[("PGPASSWORD", "x")]).await;
        run.refused(2, error, hint);
        assert!(!run.stderr.contains("Connection refused"), "{}", run.stderr);
    }
    assert_eq!(std::fs::read(&taken).unwrap(), b"old");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing made"
    );
}
