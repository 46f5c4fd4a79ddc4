//! Restoring a checked backup in one transaction (`templates/exec/restore.sh`): the file streams
//! into the restore pipeline where the tools are; nothing is committed unless every statement
//! succeeded, and the pipeline's marker says the commit happened.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backup_file::{Format, Manifest};
use super::process::{Exit, cause, tail};
use super::tools::Tools;
use crate::error::user_error;
use crate::render::render_sql;

const SCRIPT: &str = include_str!("../../templates/exec/restore.sh");
const DROP_TABLES: &str = include_str!("../../sql/restore/drop-tables.sql");
const REPLACE_ROWS: &str = include_str!("../../sql/restore/replace-rows.sql");
const CHECK_FOREIGN_KEYS: &str = include_str!("../../sql/restore/check-foreign-keys.sql");
const COMMITTED: &str = "phonebill-db: committed";

/// What a restore replaces, for the confirmation and the report.
pub fn scope(m: &Manifest) -> String {
    if !m.tables.is_empty() {
        format!("replaces every row of {}", m.tables.join(", "))
    } else if m.schema_only {
        "replaces the schema and leaves every table empty".into()
    } else {
        "replaces the whole database's schema and data".into()
    }
}

/// Who restores, into what, and the app role whose privileges a whole-database restore re-grants.
pub struct Target<'a> {
    pub database: &'a str,
    pub admin_user: &'a str,
    pub app_user: &'a str,
}

impl<'a> Target<'a> {
    /// The database `db` names, restored as its admin, re-granting its app role.
    pub fn of(db: &'a super::connect::Db) -> Target<'a> {
        Target {
            database: &db.database,
            admin_user: &db.admin.user,
            app_user: &db.app.user,
        }
    }
}

/// The restore pipeline's command line for a backup described by `m`.
///
/// Owners and privileges are not taken from the backup (`--no-owner --no-privileges`; plain backups
/// are made without them): the restoring admin owns what it recreates, and the app role's grants
/// come from `sql/app-role.sql` as apply-schema gives them. So a backup restores into a server
/// whose roles differ (dev's `postgres`, a managed server's own administrator).
pub fn command(m: &Manifest, t: &Target<'_>) -> Result<Vec<String>> {
    let (prelude, postlude) = if m.tables.is_empty() {
        (
            DROP_TABLES.to_string(),
            super::role::grants_sql(t.app_user, t.database)?,
        )
    } else {
        let ctx = json!({ "tables": m.tables });
        (
            render_sql("replace-rows.sql", REPLACE_ROWS, &ctx)?,
            render_sql("check-foreign-keys.sql", CHECK_FOREIGN_KEYS, &ctx)?,
        )
    };
    let mut argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        SCRIPT.into(),
        "phonebill-db-restore".into(),
        m.format.as_str().into(),
        t.admin_user.into(),
        t.database.into(),
        prelude,
        postlude,
    ];
    if m.format == Format::Custom {
        if m.tables.is_empty() {
            argv.extend([
                "--clean".into(),
                "--if-exists".into(),
                "--no-owner".into(),
                "--no-privileges".into(),
            ]);
        } else {
            argv.push("--data-only".into());
        }
    }
    Ok(argv)
}

/// Stream `file` into the restore pipeline; Ok only when the transaction committed.
pub async fn run(
    tools: &Tools,
    file: &Path,
    m: &Manifest,
    target: &Target<'_>,
    bar: &ProgressBar,
) -> Result<f64> {
    let argv = command(m, target)?;
    let start = Instant::now();
    let mut p = tools.spawn(&argv, true).await?;
    let what = format!("the restore (through {} psql)", tools.whose());
    let stdout = tokio::spawn(tail(p.stdout));
    let stderr = tokio::spawn(tail(p.stderr));
    let mut stdin = p
        .stdin
        .take()
        .context("the restore pipeline has no stdin (a bug)")?;
    let mut reader = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    let mut broken = None;
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .with_context(|| format!("reading {}", file.display()))?;
        if n == 0 {
            break;
        }
        // A write fails when the pipeline stopped early (an error in the SQL): its stderr says why.
        if let Err(e) = stdin.write_all(&buf[..n]).await {
            broken = Some(e);
            break;
        }
        sent += n as u64;
        bar.set_position(sent);
    }
    if broken.is_none() {
        let _ = stdin.shutdown().await;
    }
    drop(stdin);
    let exit = p.exit.await?;
    let out = stdout.await.unwrap_or_default();
    let err = stderr.await.unwrap_or_default();
    if exit == Exit::Success && out.contains(COMMITTED) {
        return Ok(start.elapsed().as_secs_f64());
    }
    let why = cause(&err)
        .or_else(|| match &exit {
            Exit::Failed { message } => Some(message.clone()),
            Exit::Success => None,
        })
        .or_else(|| broken.map(|e| format!("the pipeline stopped reading: {e}")))
        .unwrap_or_else(|| "the transaction did not commit".into());
    Err(user_error(format!(
        "{what} failed and was rolled back, the database is as it was: {why}"
    ))
    .hint("the first error is shown; fix its cause (or use another backup) and restore again")
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::backup_file::{KIND, MANIFEST_VERSION};

    fn manifest(format: Format, tables: &[&str], schema_only: bool) -> Manifest {
        Manifest {
            kind: KIND.into(),
            manifest_version: MANIFEST_VERSION,
            database: "phonebill_auth".into(),
            environment: "dev".into(),
            source: "pod".into(),
            server_version: "16.4".into(),
            tool_version: "pg_dump (PostgreSQL) 16.4".into(),
            phonebill_db_version: "0".into(),
            format,
            schema_only,
            tables: tables.iter().map(|t| t.to_string()).collect(),
            compress: "gzip".into(),
            created_at: "2026-11-23T00:00:00Z".into(),
            size: 1,
            sha256: String::new(),
        }
    }

    const TARGET: Target<'static> = Target {
        database: "phonebill_auth",
        admin_user: "postgres",
        app_user: "auth_user",
    };

    #[test]
    fn a_whole_database_restore_drops_and_recreates_what_the_archive_has() {
        let argv = command(&manifest(Format::Custom, &[], false), &TARGET).unwrap();
        assert_eq!(&argv[..2], ["sh", "-c"]);
        assert_eq!(&argv[4..7], ["custom", "postgres", "phonebill_auth"]);
        assert!(
            argv[7].contains("DROP TABLE IF EXISTS %s CASCADE"),
            "{}",
            argv[7]
        );
        assert!(
            argv[8].contains("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"auth_user\""),
            "the app role's grants come from app-role.sql: {}",
            argv[8]
        );
        assert_eq!(
            &argv[9..],
            ["--clean", "--if-exists", "--no-owner", "--no-privileges"]
        );
        let plain = command(&manifest(Format::Plain, &[], false), &TARGET).unwrap();
        assert_eq!(plain.len(), 9, "plain files carry their own DROPs");
    }

    #[test]
    fn a_table_restore_replaces_only_those_rows_and_rechecks_foreign_keys() {
        let m = manifest(
            Format::Custom,
            &["auth_services", "auth_permissions"],
            false,
        );
        let argv = command(&m, &TARGET).unwrap();
        let prelude = &argv[7];
        assert!(prelude.contains("SET LOCAL session_replication_role = replica;"));
        assert!(prelude.contains("DELETE FROM ONLY public.\"auth_services\";"));
        assert!(prelude.contains("DELETE FROM ONLY public.\"auth_permissions\";"));
        let postlude = &argv[8];
        assert!(
            postlude.contains("'public.\"auth_services\"', 'public.\"auth_permissions\"'"),
            "{postlude}"
        );
        assert_eq!(argv.last().unwrap(), "--data-only");
        assert!(scope(&m).contains("auth_services, auth_permissions"));
    }
}
