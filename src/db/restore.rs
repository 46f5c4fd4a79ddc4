//! Restoring a checked backup in one transaction (`templates/exec/restore.sh`): the file streams
//! into the restore pipeline where the tools are (a plain backup's SQL through its check again,
//! plain_sql.rs); nothing is committed unless every statement succeeded, and the pipeline's
//! marker says the commit happened.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use std::sync::Arc;

use super::backup_file::{Format, Manifest};
use super::encryption::Identities;
use super::plain_sql::GzGuard;
use super::process::{Exit, Writer, cause, tail};
use super::tools::Tools;
use crate::error::{ExitCode, user_error};
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

/// How a plain backup's SQL reaches psql (`plan_sql` decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlPlan {
    /// psql has `\restrict` (PostgreSQL 17.6, 16.10, 15.14 and later): the stream goes inside one
    /// whose key only this run knows, so psql itself refuses any command in it.
    pub restrict: bool,
}

/// How the restoring psql will take a plain backup checked as `sql`: with `\restrict` where it has
/// it; without, only SQL that is ASCII outside COPY data (a statement may switch the client encoding,
/// and psql then reads bytes past 127 by it where this tool's check read UTF-8).
pub async fn plan_sql(
    tools: &Tools,
    file: &Path,
    sql: &super::plain_sql::Summary,
) -> Result<SqlPlan> {
    let psql = tools.version("psql").await?;
    let restrict = psql.has_restrict();
    if !restrict && let Some(line) = sql.non_ascii_line {
        return Err(user_error(format!(
            "{}: line {line} has SQL (not COPY data) with characters outside ASCII, which {} psql ({}, without \\restrict) may read in another encoding than this tool checked; nothing was restored",
            file.display(),
            tools.whose(),
            psql.text
        ))
        .hint("restore with psql of PostgreSQL 16.10, 15.14, 17.6 or later (--pg-bin DIR, or the pod's image), or from a custom-format backup")
        .exit(ExitCode::ChecksFailed)
        .into());
    }
    Ok(SqlPlan { restrict })
}

/// The SQL before and after the backup's own: a whole-database restore drops the tables first and
/// re-grants the app role after; a table restore empties those tables first and rechecks foreign
/// keys after.
///
/// Owners and privileges are not taken from the backup (`--no-owner --no-privileges`; plain backups
/// are made without them): the restoring admin owns what it recreates, and the app role's grants
/// come from `sql/app-role.sql` as apply-schema gives them. So a backup restores into a server
/// whose roles differ (dev's `postgres`, a managed server's own administrator).
fn around(m: &Manifest, t: &Target<'_>) -> Result<(String, String)> {
    if m.tables.is_empty() {
        Ok((
            DROP_TABLES.to_string(),
            super::role::grants_sql(t.app_user, t.database)?,
        ))
    } else {
        let ctx = json!({ "tables": m.tables });
        Ok((
            render_sql("replace-rows.sql", REPLACE_ROWS, &ctx)?,
            render_sql("check-foreign-keys.sql", CHECK_FOREIGN_KEYS, &ctx)?,
        ))
    }
}

/// What the pipeline reads on stdin: a custom archive, or the whole SQL script this tool wrote
/// around a plain backup's (gzip-compressed on its way to a pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Custom,
    Sql,
    SqlGz,
}

impl Input {
    fn as_str(self) -> &'static str {
        match self {
            Input::Custom => "custom",
            Input::Sql => "sql",
            Input::SqlGz => "sql.gz",
        }
    }
}

/// The restore pipeline's command line for a backup described by `m`.
pub fn command(m: &Manifest, t: &Target<'_>, input: Input) -> Result<Vec<String>> {
    let mut argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        SCRIPT.into(),
        "phonebill-db-restore".into(),
        input.as_str().into(),
        t.admin_user.into(),
        t.database.into(),
    ];
    if input != Input::Custom {
        return Ok(argv);
    }
    let (prelude, postlude) = around(m, t)?;
    argv.extend([prelude, postlude]);
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
    Ok(argv)
}

/// The script psql reads around a plain backup's checked SQL: `BEGIN`, the prelude, (the SQL),
/// the postlude, `COMMIT` and the marker, inside this run's own `\restrict` where psql has it.
fn script_around(m: &Manifest, t: &Target<'_>, plan: SqlPlan) -> Result<(String, String)> {
    let (prelude, postlude) = around(m, t)?;
    let key = if plan.restrict {
        Some(crate::passwords::generate()?)
    } else {
        None
    };
    let mut head = String::new();
    let mut tail = format!("\n{postlude}\nCOMMIT;\n");
    if let Some(key) = &key {
        head.push_str(&format!("\\restrict {key}\n"));
        tail.push_str(&format!("\\unrestrict {key}\n"));
    }
    head.push_str(&format!("BEGIN;\n{prelude}\n"));
    tail.push_str(&format!("\\echo {COMMITTED}\n"));
    Ok((head, tail))
}

/// The backup a restore reads: its file, and the identities that decrypt it when it is encrypted.
pub struct Source<'a> {
    pub file: &'a Path,
    identities: Option<Arc<Identities>>,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a Path, identities: Option<Arc<Identities>>) -> Source<'a> {
        Source { file, identities }
    }
}

/// The dump of a backup, a piece at a time: read from the file, or decrypted from it on a thread
/// of its own (a few pieces in flight; memory stays flat).
enum Chunks<'a> {
    File {
        reader: tokio::fs::File,
        buf: Vec<u8>,
        file: &'a Path,
    },
    Decrypted {
        rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
        last: Vec<u8>,
        file: &'a Path,
    },
}

impl<'a> Chunks<'a> {
    async fn open(src: &Source<'a>, m: &Manifest) -> Result<Chunks<'a>> {
        let file = src.file;
        match (&m.encryption, &src.identities) {
            (None, _) => Ok(Chunks::File {
                reader: tokio::fs::File::open(file)
                    .await
                    .with_context(|| format!("opening {}", file.display()))?,
                buf: vec![0u8; 256 * 1024],
                file,
            }),
            (Some(_), Some(ids)) => Ok(Chunks::Decrypted {
                rx: super::encryption::stream(file, ids.clone()),
                last: Vec::new(),
                file,
            }),
            (Some(_), None) => {
                anyhow::bail!("an encrypted backup's restore without its identities (a bug)")
            }
        }
    }

    /// The next bytes of the dump (empty at its end).
    async fn next(&mut self) -> Result<&[u8]> {
        match self {
            Chunks::File { reader, buf, file } => {
                let n = reader
                    .read(buf)
                    .await
                    .with_context(|| format!("reading {}", file.display()))?;
                Ok(&buf[..n])
            }
            Chunks::Decrypted { rx, last, file } => {
                *last = match rx.recv().await {
                    None => Vec::new(),
                    Some(Ok(bytes)) => bytes,
                    Some(Err(e)) => {
                        return Err(user_error(format!(
                            "{} changed while it was restored (it no longer decrypts: {e}); nothing was committed",
                            file.display()
                        ))
                        .hint("leave the backup alone while it is restored (copy it somewhere safe first), then restore again")
                        .exit(ExitCode::ChecksFailed)
                        .into());
                    }
                };
                Ok(last)
            }
        }
    }
}

/// Stream the backup's dump into the restore pipeline; Ok only when the transaction committed.
/// A plain backup needs its `plan`.
pub async fn run(
    tools: &Tools,
    src: &Source<'_>,
    m: &Manifest,
    target: &Target<'_>,
    bar: &ProgressBar,
    plan: Option<SqlPlan>,
) -> Result<f64> {
    let input = match (m.format, tools) {
        (Format::Custom, _) => Input::Custom,
        (Format::Plain, Tools::Pod { .. }) => Input::SqlGz,
        (Format::Plain, Tools::Local { .. }) => Input::Sql,
    };
    let argv = command(m, target, input)?;
    let start = Instant::now();
    let mut p = tools.spawn(&argv, true).await?;
    let what = format!("the restore (through {} psql)", tools.whose());
    let stdout = tokio::spawn(tail(p.stdout));
    let stderr = tokio::spawn(tail(p.stderr));
    let stdin = p
        .stdin
        .take()
        .context("the restore pipeline has no stdin (a bug)")?;
    let chunks = Chunks::open(src, m).await?;
    let sent = match input {
        Input::Custom => send_file(stdin, chunks, bar).await,
        Input::Sql | Input::SqlGz => {
            let plan = plan.context("a plain backup's restore without its plan (a bug)")?;
            let (head, tail) = script_around(m, target, plan)?;
            send_sql(stdin, chunks, m, bar, &head, &tail, input == Input::SqlGz).await
        }
    };
    let broken = match sent {
        Ok(broken) => broken,
        // The file failed its check on the way (it changed since it was checked): nothing was
        // committed; the pipeline is stopped.
        Err(e) => {
            drop(p.exit);
            return Err(e);
        }
    };
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

/// Send the backup's dump (decrypted as it goes, if encrypted) into `stdin` and close it: a
/// failed write (the reader stopped early) is returned, not raised.
pub async fn send_dump(
    stdin: Writer,
    src: &Source<'_>,
    m: &Manifest,
    bar: &ProgressBar,
) -> Result<Option<std::io::Error>> {
    send_file(stdin, Chunks::open(src, m).await?, bar).await
}

/// Copy a custom archive into the pipeline. A failed write (the pipeline stopped early: an
/// error in the SQL, its stderr says why) is returned, not raised.
async fn send_file(
    mut stdin: Writer,
    mut chunks: Chunks<'_>,
    bar: &ProgressBar,
) -> Result<Option<std::io::Error>> {
    let mut sent = 0u64;
    loop {
        let bytes = chunks.next().await?;
        if bytes.is_empty() {
            break;
        }
        if let Err(e) = stdin.write_all(bytes).await {
            return Ok(Some(e));
        }
        sent += bytes.len() as u64;
        bar.set_position(sent);
    }
    let _ = stdin.shutdown().await;
    Ok(None)
}

/// Send a plain backup's SQL as it passes its check again (what psql gets is what was checked,
/// even if the file changed since), between `head` and `tail`; gzip-compressed (level 1) for a
/// pod. `tail` (the COMMIT) goes only when the whole file passed and still has its checksum.
async fn send_sql(
    mut stdin: Writer,
    mut chunks: Chunks<'_>,
    m: &Manifest,
    bar: &ProgressBar,
    head: &str,
    tail: &str,
    compress: bool,
) -> Result<Option<std::io::Error>> {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let file = match &chunks {
        Chunks::File { file, .. } | Chunks::Decrypted { file, .. } => *file,
    };
    let mut encoder =
        compress.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    // Bytes for the pipeline, through the encoder when there is one.
    let pack = |bytes: &[u8], encoder: &mut Option<flate2::write::GzEncoder<Vec<u8>>>| -> Vec<u8> {
        match encoder {
            Some(e) => {
                e.write_all(bytes).expect("writing into memory");
                std::mem::take(e.get_mut())
            }
            None => bytes.to_vec(),
        }
    };
    let changed = |why: String| -> anyhow::Error {
        user_error(format!(
            "{} changed while it was restored ({why}); nothing was committed",
            file.display()
        ))
        .hint("leave the backup alone while it is restored (copy it somewhere safe first), then restore again")
        .exit(ExitCode::ChecksFailed)
        .into()
    };
    let first = pack(head.as_bytes(), &mut encoder);
    if let Err(e) = stdin.write_all(&first).await {
        return Ok(Some(e));
    }
    let mut guard = GzGuard::new();
    let mut hasher = Sha256::new();
    let mut sql = Vec::new();
    let mut read = 0u64;
    loop {
        let chunk = chunks.next().await?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        sql.clear();
        guard
            .push(chunk, Some(&mut sql))
            .map_err(|e| changed(e.to_string()))?;
        read += chunk.len() as u64;
        let bytes = pack(&sql, &mut encoder);
        if let Err(e) = stdin.write_all(&bytes).await {
            return Ok(Some(e));
        }
        bar.set_position(read);
    }
    sql.clear();
    guard
        .finish(Some(&mut sql))
        .map_err(|e| changed(e.to_string()))?;
    if hex::encode(hasher.finalize()) != m.dump_size_and_sha256().1 {
        return Err(changed(
            "its SHA-256 checksum no longer matches the manifest".into(),
        ));
    }
    sql.extend_from_slice(tail.as_bytes());
    let mut last = pack(&sql, &mut encoder);
    if let Some(e) = encoder.take() {
        last.extend(e.finish().expect("finishing in memory"));
    }
    if let Err(e) = stdin.write_all(&last).await {
        return Ok(Some(e));
    }
    let _ = stdin.shutdown().await;
    Ok(None)
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
            encryption: None,
        }
    }

    const TARGET: Target<'static> = Target {
        database: "phonebill_auth",
        admin_user: "postgres",
        app_user: "auth_user",
    };

    #[test]
    fn a_whole_database_restore_drops_and_recreates_what_the_archive_has() {
        let argv = command(
            &manifest(Format::Custom, &[], false),
            &TARGET,
            Input::Custom,
        )
        .unwrap();
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
        let plain = command(&manifest(Format::Plain, &[], false), &TARGET, Input::Sql).unwrap();
        assert_eq!(
            &plain[4..],
            ["sql", "postgres", "phonebill_auth"],
            "the tool sends the whole script of a plain backup"
        );
    }

    #[test]
    fn a_table_restore_replaces_only_those_rows_and_rechecks_foreign_keys() {
        let m = manifest(
            Format::Custom,
            &["auth_services", "auth_permissions"],
            false,
        );
        let argv = command(&m, &TARGET, Input::Custom).unwrap();
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

    #[test]
    fn a_plain_backups_script_is_one_transaction_inside_a_restrict_of_its_own() {
        let m = manifest(Format::Plain, &[], false);
        let (head, tail) = script_around(&m, &TARGET, SqlPlan { restrict: true }).unwrap();
        let key = head
            .strip_prefix("\\restrict ")
            .and_then(|h| h.split_once('\n'))
            .map(|(k, _)| k.to_string())
            .expect("the head opens with \\restrict KEY");
        assert_eq!(key.len(), 32);
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(
            head.contains("BEGIN;\n") && head.contains("DROP TABLE IF EXISTS"),
            "{head}"
        );
        assert!(
            tail.ends_with(&format!(
                "COMMIT;\n\\unrestrict {key}\n\\echo {COMMITTED}\n"
            )),
            "{tail}"
        );
        let (again, _) = script_around(&m, &TARGET, SqlPlan { restrict: true }).unwrap();
        assert!(!again.contains(&key), "a key of each run's own");
        let (head, tail) = script_around(&m, &TARGET, SqlPlan { restrict: false }).unwrap();
        assert!(
            head.starts_with("BEGIN;\n") && !tail.contains("restrict"),
            "{head}{tail}"
        );
    }
}
