//! A whole-database restore beside the live database, then a swap: the backup is loaded into a
//! shadow database (made like the live one) with pg_restore's parallel jobs, checked with
//! verify's checks, and only then swapped in — the app's sessions ended, the live database
//! renamed `<db>_before_restore_<time>` and the shadow renamed `<db>`, both renames and their
//! marks in one transaction. Until the swap the application keeps the live database; it is kept
//! from connecting only for the swap itself. Any failure before the swap leaves the live database
//! as it was and drops the shadow. The renamed database is the safety copy: kept until
//! `restore --drop-previous` or the next restore; what the application wrote while the shadow
//! loaded is in it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use tokio_postgres::Client;

use super::backup_file::{Format, Manifest};
use super::connect::server_message;
use super::process::{Exit, cause, tail};
use super::restore::{self, Source, SqlPlan, Target};
use super::tools::Tools;
use crate::error::{ExitCode, user_error};

/// How long the app's sessions may take to end before the swap gives up (nothing renamed).
const SESSIONS_END: Duration = Duration::from_secs(10);

/// The comment marking a database as `live`'s previous (what a restore swapped out).
pub fn previous_mark(live: &str) -> String {
    format!("phonebill-db previous of {live}")
}

/// The name the live database gets when a restore swaps it out.
pub fn previous_name(live: &str, stamp: &str) -> String {
    super::drill::named(live, &format!("_before_restore_{stamp}"))
}

/// pg_restore's jobs when not given: the cores the server sees (the pod's `nproc`; for a server
/// reached by URL, this machine's), from 1 to 8.
pub async fn default_jobs(tools: &Tools) -> u32 {
    let n = match tools {
        Tools::Pod { .. } => tools
            .output(&["nproc".to_string()])
            .await
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok()),
        Tools::Local { .. } => std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as u32),
    };
    n.unwrap_or(2).clamp(1, 8)
}

/// Where an archive is put in the pod for pg_restore to seek in: beside the data directory, on the
/// data volume (`$PGDATA` is `<volume>/pgdata` in the release's pod).
const POD_ARCHIVE_DIR: &str = "${PGDATA%/*}";

/// Refuse, before anything is written, a shadow restore the pod's data volume has no room for: a
/// second copy of the database (its size now) and, for a custom archive, the archive itself.
/// (A server reached by URL says nothing of its disk: not checked.)
pub async fn check_room(
    tools: &Tools,
    admin: &Client,
    live: &str,
    m: &Manifest,
) -> Result<Option<Room>> {
    if !matches!(tools, Tools::Pod { .. }) {
        return Ok(None);
    }
    let df = tools
        .output(&[
            "sh".into(),
            "-c".into(),
            format!("df -Pk \"{POD_ARCHIVE_DIR}\""),
        ])
        .await
        .context("reading the data volume's free space")?;
    let Some((_, avail_kib)) = crate::k8s::thresholds::parse_df(&df) else {
        return Ok(None);
    };
    let size: i64 = admin
        .query_one("SELECT pg_database_size($1::text)", &[&live])
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))?
        .get(0);
    let archive = match m.format {
        Format::Custom => m.dump_size_and_sha256().0,
        Format::Plain => 0,
    };
    let previous: i64 = super::drill::marked(admin, &previous_mark(live))
        .await?
        .iter()
        .map(|(_, s)| *s)
        .sum();
    let room = Room {
        free: avail_kib * 1024,
        needed: (size.max(0) as u64) * 11 / 10 + archive,
        previous: previous.max(0) as u64,
    };
    if room.free < room.needed {
        let gib = |b: u64| format!("{:.1} GiB", b as f64 / 1024f64.powi(3));
        return Err(user_error(format!(
            "no room on the data volume for the restore's shadow copy: it needs about {} (the database's size, and the archive), {} is free{}; nothing was changed",
            gib(room.needed),
            gib(room.free),
            if room.previous > 0 {
                format!(
                    "; the previous database a restore kept takes {}",
                    gib(room.previous)
                )
            } else {
                String::new()
            }
        ))
        .hint("`restore --in-place` restores into the database itself (one transaction, the app waits for it); or make room: `restore --drop-previous`, `phonebill-db resize --storage SIZE`")
        .exit(ExitCode::Usage)
        .into());
    }
    Ok(Some(room))
}

/// The data volume's room, as the check saw it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    pub free: u64,
    pub needed: u64,
    /// What previous databases of earlier restores take.
    pub previous: u64,
}

/// Load the backup into the (empty) shadow database `target.database`: a custom archive with
/// pg_restore's `jobs` (it must seek: in the pod the archive is first put on the data volume, and
/// an encrypted one decrypted there; locally the file itself, an encrypted one decrypted beside
/// it), a plain one through the restore pipeline; then the app role's grants. Its time.
pub async fn load(
    tools: &Tools,
    src: &Source<'_>,
    m: &Manifest,
    target: &Target<'_>,
    jobs: u32,
    bar: &ProgressBar,
    plan: Option<SqlPlan>,
) -> Result<f64> {
    let start = Instant::now();
    if m.format == Format::Plain {
        restore::run(tools, src, m, target, bar, plan).await?;
        return Ok(start.elapsed().as_secs_f64());
    }
    let args = || -> Vec<String> {
        vec![
            format!("--jobs={jobs}"),
            "--no-owner".into(),
            "--no-privileges".into(),
            "--exit-on-error".into(),
            format!("--username={}", target.admin_user),
            format!("--dbname={}", target.database),
        ]
    };
    match tools {
        Tools::Pod { .. } => {
            remove_archives(tools).await;
            // The shell expands the directory: `f` is set first in each command.
            let file = format!(
                "f=\"{POD_ARCHIVE_DIR}/.phonebill-db-restore-{}.dump\"",
                std::process::id()
            );
            // Put: the archive (decrypted, when encrypted) streamed in, private to the server's user.
            let mut p = tools
                .spawn(
                    &[
                        "sh".into(),
                        "-c".into(),
                        format!("{file}; umask 077 && cat > \"$f\""),
                    ],
                    true,
                )
                .await?;
            let stderr = tokio::spawn(tail(p.stderr));
            let stdout = tokio::spawn(tail(p.stdout));
            let stdin = p
                .stdin
                .take()
                .context("the copy into the pod has no stdin (a bug)")?;
            let sent = restore::send_dump(stdin, src, m, bar).await;
            let exit = p.exit.await?;
            let _ = stdout.await;
            let err = stderr.await.unwrap_or_default();
            let put = match (sent, exit) {
                (Ok(None), Exit::Success) => Ok(()),
                (Err(e), _) => Err(e),
                (Ok(broken), exit) => Err(user_error(format!(
                    "putting the archive on the pod's data volume failed: {}",
                    cause(&err)
                        .or(match exit {
                            Exit::Failed { message } => Some(message),
                            Exit::Success => None,
                        })
                        .or(broken.map(|e| e.to_string()))
                        .unwrap_or_else(|| "the copy ended early".into())
                ))
                .hint(
                    "check the volume's free space (`phonebill-db status`), or restore --in-place",
                )
                .into()),
            };
            // pg_restore, and the archive removed whatever happened.
            let mut argv: Vec<String> = vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "{file}; if [ \"$1\" = put-failed ]; then rm -f \"$f\"; exit 0; fi; pg_restore \"$@\" \"$f\"; s=$?; rm -f \"$f\"; exit $s"
                ),
                "pg-restore".into(),
            ];
            if put.is_err() {
                argv.push("put-failed".into());
                let _ = tools.output(&argv).await;
                return put.map(|_| 0.0);
            }
            argv.extend(args());
            bar.set_message(format!("pg_restore --jobs={jobs} into {}", target.database));
            run_pg_restore(tools, &argv).await?;
        }
        Tools::Local { .. } => {
            let decrypted;
            let file = if m.encryption.is_some() {
                decrypted = Decrypted::write(src, m, bar).await?;
                decrypted.path.display().to_string()
            } else {
                src.file.display().to_string()
            };
            let mut argv = vec!["pg_restore".to_string()];
            argv.extend(args());
            argv.push(file);
            bar.set_message(format!("pg_restore --jobs={jobs} into {}", target.database));
            run_pg_restore(tools, &argv).await?;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

async fn run_pg_restore(tools: &Tools, argv: &[String]) -> Result<()> {
    let p = tools.spawn(argv, false).await?;
    let what = format!(
        "pg_restore ({} tools)",
        tools.whose().trim_start_matches("the ")
    );
    let (out, err) = tokio::join!(tail(p.stdout), tail(p.stderr));
    let _ = out;
    match p.exit.await? {
        Exit::Success => Ok(()),
        // With parallel jobs the worker's error comes first and "a worker process died" after it.
        Exit::Failed { message } => Err(user_error(format!(
            "{what} failed: {}",
            err.lines()
                .find(|l| l.contains("ERROR:"))
                .map(|l| l.trim().to_string())
                .or_else(|| cause(&err))
                .unwrap_or(message)
        ))
        .hint("the first error is shown; the shadow copy is dropped and the live database was not touched: fix the cause (or use another backup) and restore again")
        .into()),
    }
}

/// An encrypted archive decrypted beside it for a local pg_restore to seek in (0600), removed when
/// dropped.
struct Decrypted {
    path: std::path::PathBuf,
}

impl Decrypted {
    async fn write(src: &Source<'_>, m: &Manifest, bar: &ProgressBar) -> Result<Decrypted> {
        let name = src
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = match src.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let path = dir.join(format!(".{name}.decrypted-{}", std::process::id()));
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {} (the decrypted archive)", path.display()))?;
        let out = Decrypted { path };
        let w: super::process::Writer = Box::new(tokio::fs::File::from_std(file));
        // The file is closed (flushed) at the end of the stream.
        if let Some(e) = restore::send_dump(w, src, m, bar).await? {
            return Err(
                anyhow::Error::new(e).context("writing the decrypted archive (is the disk full?)")
            );
        }
        // A write's failure may show only when the file is closed: its size says.
        let written = std::fs::metadata(&out.path).map(|m| m.len()).unwrap_or(0);
        if written != m.dump_size_and_sha256().0 {
            return Err(user_error(format!(
                "writing the decrypted archive {} stopped at {written} of {} bytes (is the disk full?)",
                out.path.display(),
                m.dump_size_and_sha256().0
            ))
            .into());
        }
        Ok(out)
    }
}

impl Drop for Decrypted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the swap did: the live database's new name, and how long connections to it were refused.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Swapped {
    pub previous: String,
    pub refused_seconds: f64,
}

/// Swap the checked shadow in, from a session (`maint`) in another database: new connections to
/// the live database refused, its sessions (and the shadow's) ended, then in one transaction the
/// live database renamed `previous` and marked as such, the shadow renamed to the live name and
/// unmarked; connections allowed again. A failure at any step leaves the live database as it was
/// (connections allowed again) and says why.
pub async fn swap(maint: &Client, live: &str, shadow: &str, previous: &str) -> Result<Swapped> {
    use super::drill::{execute, quoted};
    let sql = async |template: &str, args: &[&str]| quoted(maint, template, args).await;
    let allow = async |name: &str, on: bool| {
        let template =
            format!("SELECT format('ALTER DATABASE %I WITH ALLOW_CONNECTIONS {on}', $1::text)");
        execute(maint, &sql(&template, &[name]).await?).await
    };
    // Everything the swap runs is made first: once connections are refused, nothing but the
    // swap itself may fail.
    let statements = [
        sql(
            "SELECT format('ALTER DATABASE %I RENAME TO %I', $1::text, $2::text)",
            &[live, previous],
        )
        .await?,
        sql(
            "SELECT format('ALTER DATABASE %I RENAME TO %I', $1::text, $2::text)",
            &[shadow, live],
        )
        .await?,
        sql(
            "SELECT format('COMMENT ON DATABASE %I IS %L', $1::text, $2::text)",
            &[previous, &previous_mark(live)],
        )
        .await?,
        sql(
            "SELECT format('COMMENT ON DATABASE %I IS NULL', $1::text)",
            &[live],
        )
        .await?,
    ];
    let transaction = format!("BEGIN; {}; COMMIT", statements.join("; "));
    execute(maint, "SET lock_timeout = '5s'").await?;
    // Connections allowed again to the live database (under its name whatever the outcome);
    // a failure to is said, with the statement that does it.
    let reopen = async |name: &str| match allow(name, true).await {
        Ok(()) => String::new(),
        Err(e) => format!(
            "; TURNING CONNECTIONS BACK ON FAILED ({e}): run `ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true` as its owner"
        ),
    };
    let refused = |why: String, reopened: String, hint: &str| -> anyhow::Error {
        user_error(format!(
            "the swap did not happen: {why}; the live database {live} is as it was{}",
            if reopened.is_empty() {
                " and takes connections".to_string()
            } else {
                reopened
            }
        ))
        .hint(hint.to_string())
        .into()
    };
    if let Err(e) = allow(live, false).await {
        return Err(refused(
            format!("new connections to {live} could not be refused ({e})"),
            String::new(),
            "the restoring role must own the database; restore --in-place works without",
        ));
    }
    let started = Instant::now();
    // Nobody new in the shadow either: a session there would block its rename.
    let _ = allow(shadow, false).await;
    // The sessions of both databases ended (a terminated backend leaves pg_stat_activity once
    // it has rolled back and exited).
    let ended = loop {
        let left: i64 = match maint
            .query_one(
                "SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid)) + count(*) FROM pg_stat_activity WHERE datname IN ($1::text, $2::text) AND pid <> pg_backend_pid()",
                &[&live, &shadow],
            )
            .await
        {
            Ok(r) => r.get(0),
            Err(e) => {
                return Err(refused(
                    format!("the sessions of {live} could not be ended ({})", server_message(&e)),
                    reopen(live).await,
                    "the restoring role needs pg_signal_backend (or to be a superuser); restore --in-place works without",
                ));
            }
        };
        if left == 0 {
            break true;
        }
        if started.elapsed() > SESSIONS_END {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    if !ended {
        return Err(refused(
            format!(
                "sessions of {live} were still open {} after they were ended",
                humantime::format_duration(SESSIONS_END)
            ),
            reopen(live).await,
            "run the restore again (a backend stuck in I/O), or restore --in-place",
        ));
    }
    if let Err(e) = maint.batch_execute(&transaction).await {
        let _ = maint.batch_execute("ROLLBACK").await;
        return Err(refused(
            format!(
                "renaming the databases was refused ({})",
                server_message(&e)
            ),
            reopen(live).await,
            "the shadow copy is dropped; run the restore again, or restore --in-place",
        ));
    }
    // The restored database, now under the live name, takes connections again; so does the
    // previous one, for whoever looks at what it holds.
    let reopened = reopen(live).await;
    let refused_seconds = started.elapsed().as_secs_f64();
    let _ = allow(previous, true).await;
    if !reopened.is_empty() {
        return Err(user_error(format!(
            "the restored database was swapped in as {live} (the old one is {previous}){reopened}"
        ))
        .hint("until then the application cannot connect")
        .into());
    }
    Ok(Swapped {
        previous: previous.to_string(),
        refused_seconds,
    })
}

/// A swap that was cut off after it refused connections (the tool killed) leaves the live
/// database closed: open it again (under the restore's lock, no swap of it runs). Whether it was.
pub async fn reopen_if_closed(admin: &Client, live: &str) -> Result<bool> {
    let closed: bool = admin
        .query_opt(
            "SELECT NOT datallowconn FROM pg_database WHERE datname = $1::text",
            &[&live],
        )
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))?
        .is_some_and(|r| r.get(0));
    if closed {
        let statement = super::drill::quoted(
            admin,
            "SELECT format('ALTER DATABASE %I WITH ALLOW_CONNECTIONS true', $1::text)",
            &[live],
        )
        .await?;
        super::drill::execute(admin, &statement).await?;
    }
    Ok(closed)
}

/// Remove every archive a restore put on the pod's data volume (one restore of the database at a
/// time: what is there is an interrupted one's). Best effort.
pub async fn remove_archives(tools: &Tools) {
    if matches!(tools, Tools::Pod { .. }) {
        let _ = tools
            .output(&[
                "sh".into(),
                "-c".into(),
                format!("rm -f \"{POD_ARCHIVE_DIR}\"/.phonebill-db-restore-*.dump"),
            ])
            .await;
    }
}

/// The previous databases of `live` that restores kept, with their sizes.
pub async fn previous(admin: &Client, live: &str) -> Result<Vec<(String, i64)>> {
    super::drill::marked(admin, &previous_mark(live)).await
}

/// Drop the previous databases of `live` but `keep`; their names.
pub async fn drop_previous(admin: &Client, live: &str, keep: Option<&str>) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    for (name, _) in previous(admin, live).await? {
        if Some(name.as_str()) == keep {
            continue;
        }
        super::drill::drop_database(admin, &name).await?;
        dropped.push(name);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_databases_name_fits_and_says_what_it_is() {
        assert_eq!(
            previous_name("phonebill_auth", "20261206t121500123"),
            "phonebill_auth_before_restore_20261206t121500123"
        );
        assert_eq!(previous_name(&"x".repeat(63), "20261206t121500").len(), 63);
    }
}
