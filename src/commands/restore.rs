//! `restore` (runbook 6.3): check the file against its manifest and the target, confirm, take a
//! safety backup, restore in one transaction, then run the verify checks.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::args::{DbArgs, PgBinArgs};
use crate::check::{self, Check};
use crate::context::Ctx;
use crate::db::backup_file::default_name;
use crate::db::backup_file::{self, Format, Manifest};
use crate::db::checks::database_checks;
use crate::db::dump::{self, DumpOptions, Source, Taken};
use crate::db::encryption::{Identities, profile_recipients};
use crate::db::tools::{ToolVersion, Tools};
use crate::db::{drill, restore, shadow};
use crate::error::{ExitCode, user_error};
use crate::ui::{Outcome, unless_interrupted};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Backup file written by `phonebill-db backup` (its FILE.meta.json beside it)
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["snapshot", "drop_previous"],
        conflicts_with = "snapshot"
    )]
    pub from: Option<PathBuf>,
    /// Restore into the database itself, in one transaction (the application waits for it), after
    /// a safety backup: for a server without room for a second copy. Default for a whole-database
    /// backup: into a shadow database beside the live one, checked, then swapped in
    #[arg(long, conflicts_with = "snapshot")]
    pub in_place: bool,
    /// pg_restore's parallel jobs for the shadow database (default: the server's cores, at most 8)
    #[arg(long, value_name = "N", conflicts_with_all = ["snapshot", "in_place"], value_parser = clap::value_parser!(u32).range(1..=32))]
    pub jobs: Option<u32>,
    /// Drop the database as it was before the last restore (`<db>_before_restore_<time>`), which
    /// a restore keeps until then; with --from, after this restore's swap
    #[arg(long, conflicts_with_all = ["snapshot", "in_place"])]
    pub drop_previous: bool,
    /// Bring the data volume back from this VolumeSnapshot of the release (`latest`: the newest
    /// ready one; `backup --list` shows them), after a safety snapshot of the volume as it is
    #[arg(long, value_name = "NAME|latest", conflicts_with_all = ["database_url", "safety_to", "no_safety_backup", "pg_bin"])]
    pub snapshot: Option<String>,
    // (Each also conflicts with --from: clap takes a requirement as met when the required
    // argument conflicts with one given, and --from conflicts with --snapshot.)
    /// With --snapshot: restore a snapshot that does not carry this release's labels
    #[arg(long, requires = "snapshot", conflicts_with = "from")]
    pub force_foreign: bool,
    /// With --snapshot: no safety snapshot first (refused when the StorageClass deletes old
    /// volumes: then the safety snapshot is the only copy)
    #[arg(long, requires = "snapshot", conflicts_with = "from")]
    pub no_safety_snapshot: bool,
    /// With --snapshot: how long each wait may take (snapshot, pod stop, new volume, rollout)
    #[arg(long, default_value = "15m", value_parser = crate::args::parse_duration, requires = "snapshot", conflicts_with = "from")]
    pub timeout: std::time::Duration,
    /// In place: no safety backup of the database as it is first. (A shadow restore takes none
    /// anyway: the database as it was is kept under its previous name, unless --drop-previous)
    #[arg(long)]
    pub no_safety_backup: bool,
    /// Where the safety backup goes (in place, default: DATABASE-ENV-before-restore-TIME.dump
    /// here; a shadow restore writes one only when this is given)
    #[arg(long, value_name = "FILE", conflicts_with = "no_safety_backup")]
    pub safety_to: Option<PathBuf>,
    /// age identity file (the private key, `age-keygen -o FILE`) to decrypt an encrypted backup with
    #[arg(
        long,
        value_name = "FILE",
        env = "PHONEBILL_AGE_IDENTITY",
        hide_env_values = true,
        conflicts_with = "snapshot"
    )]
    pub identity: Option<PathBuf>,
    /// The confirmation, typed in advance: the database's name, or ENV/DATABASE in a production
    /// environment (prod/phonebill_auth), where --yes alone is not enough
    #[arg(long, value_name = "TEXT")]
    pub confirm: Option<String>,
    #[command(flatten)]
    pub pg_bin: PgBinArgs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub file: String,
    pub database: String,
    pub target: String,
    pub scope: String,
    pub backup_created_at: String,
    /// `shadow` (loaded beside the live database, checked, swapped in) or `in-place` (one
    /// transaction in the database itself).
    pub mode: &'static str,
    pub safety_backup: Option<Taken>,
    /// Shadow: the live database as it was, under its new name (kept until `--drop-previous` or
    /// the next restore): what the application wrote while the shadow loaded is there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_database: Option<String>,
    /// Shadow: pg_restore's jobs, how long connections were refused for the swap, the room the
    /// check saw, previous databases dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<shadow::Room>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    pub seconds: f64,
    pub passed: bool,
    pub checks: Vec<Check>,
}

pub async fn run(ctx: &Ctx, args: &RestoreArgs) -> Result<Outcome> {
    if let Some(name) = &args.snapshot {
        let wanted = super::restore_snapshot::SnapshotRestore {
            name,
            timeout: args.timeout,
            force_foreign: args.force_foreign,
            no_safety_snapshot: args.no_safety_snapshot,
        };
        return super::restore_snapshot::run(ctx, &wanted).await;
    }
    let Some(from) = args.from.as_ref() else {
        return drop_previous_only(ctx, args).await;
    };
    // The file first: --yes never skips these checks, and nothing has been touched yet (where
    // the safety backup goes was checked before the cluster was asked: `lib::precheck`).
    let identities = args
        .identity
        .as_deref()
        .map(Identities::read)
        .transpose()?
        .map(std::sync::Arc::new);
    let spinner = ctx.ui.spinner(format!("checking {}", from.display()));
    let checked = backup_file::inspect(from, identities.as_deref())?;
    let manifest = checked.manifest;
    spinner.set_message("connecting");
    let db = ctx.db(&args.db).await?;
    if manifest.database != db.database {
        return Err(user_error(format!(
            "{} is a backup of database {}, not of {}; nothing was restored",
            from.display(),
            manifest.database,
            db.database
        ))
        .hint("restore a backup of this database, or point --env/--values/--database-url at the database the file belongs to")
        .exit(ExitCode::ChecksFailed)
        .into());
    }
    let admin = db.admin().await?;
    let tools = Tools::for_db(
        &db,
        &ctx.profile.names().container,
        args.pg_bin.pg_bin.as_deref(),
    );
    dump::check_tables(&admin, &db.database, &manifest.tables).await?;
    // The pod's pg_restore matches its server; a local one must read the archive's version.
    if matches!(tools, Tools::Local { .. })
        && manifest.format == Format::Custom
        && let Ok(dumped) = ToolVersion::parse(&manifest.tool_version)
    {
        let local = tools.version("pg_restore").await?;
        dump::refuse_older_tool(&tools, &local, dumped.major, "the backup's pg_dump")?;
    }
    let plan = match &checked.sql {
        Some(sql) => Some(restore::plan_sql(&tools, from, sql).await?),
        None => None,
    };
    spinner.finish_and_clear();

    let scope = restore::scope(&manifest);
    confirm(
        ctx,
        args.confirm.as_deref(),
        &format!(
            "restore {} into database {} on {} ({scope})",
            from.display(),
            db.database,
            db.describe_tools()
        ),
        &db.database,
    )?;
    let whole = manifest.tables.is_empty() && !manifest.schema_only;
    if whole && !args.in_place {
        let source = restore::Source::new(from, identities);
        let shadowed = Shadowed {
            from,
            source: &source,
            manifest: &manifest,
            plan,
            scope,
        };
        return shadow_restore(ctx, args, shadowed, db, admin, tools).await;
    }

    let safety_backup = if args.no_safety_backup {
        None
    } else {
        // Encrypted as every backup of this environment is (backups.encryptTo).
        let encrypt = profile_recipients(&ctx.profile)?;
        let dest = args.safety_to.clone().unwrap_or_else(|| {
            default_name(
                &db.database,
                &ctx.profile.environment,
                Format::Custom,
                "before-restore",
                encrypt.is_some(),
            )
        });
        let bar = ctx.ui.bytes(None, "safety backup");
        ctx.ui
            .note(Some(&bar), format!("safety backup into {}", dest.display()));
        let src = Source {
            db: &db,
            admin: &admin,
            tools: &tools,
            environment: &ctx.profile.environment,
        };
        let taken = unless_interrupted(
            dump::take(
                &src,
                &DumpOptions {
                    encrypt,
                    ..Default::default()
                },
                &dest,
                &bar,
            ),
            "no safety backup was kept and nothing was restored",
        )
        .await;
        bar.finish_and_clear();
        Some(taken.map_err(|e| e.context("taking the safety backup; nothing was restored"))?)
    };

    let bar = ctx.ui.bytes(
        Some(manifest.dump_size_and_sha256().0),
        format!("restoring {}", db.database),
    );
    let restored = unless_interrupted(
        restore::run(
            &tools,
            &restore::Source::new(from, identities),
            &manifest,
            &restore::Target::of(&db),
            &bar,
            plan,
        ),
        "a restore that had not finished was not committed (its transaction rolls back); `phonebill-db verify` shows the state",
    )
    .await;
    bar.finish_and_clear();
    let seconds = restored?;

    let spinner = ctx.ui.spinner("verifying");
    let checks = database_checks(&ctx.profile, &db).await;
    spinner.finish_and_clear();
    let report = RestoreReport {
        file: from.display().to_string(),
        database: db.database.clone(),
        target: db.describe(),
        scope,
        backup_created_at: manifest.created_at.clone(),
        mode: "in-place",
        safety_backup,
        previous_database: None,
        jobs: None,
        unavailable_seconds: None,
        room: None,
        dropped: vec![],
        seconds,
        passed: check::passed(&checks),
        checks,
    };
    ctx.ui.emit(&report, |r| text(r, &manifest))?;
    check::refuse_failed(
        "restored, but ",
        &report.checks,
        &crate::db::checks::hint(&report.checks),
    )?;
    Ok(Outcome::ok())
}

/// What a shadow restore restores.
struct Shadowed<'a> {
    from: &'a std::path::Path,
    source: &'a restore::Source<'a>,
    manifest: &'a Manifest,
    plan: Option<restore::SqlPlan>,
    scope: String,
}

/// The whole-database restore beside the live database (`db::shadow`): room checked, the shadow
/// made, loaded with pg_restore's jobs and checked, then swapped in; on any failure before the
/// swap the shadow goes and the live database is as it was.
async fn shadow_restore(
    ctx: &Ctx,
    args: &RestoreArgs,
    s: Shadowed<'_>,
    db: crate::db::connect::Db,
    admin: tokio_postgres::Client,
    tools: Tools,
) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let live = db.database.clone();
    let spinner = ctx.ui.spinner("checking the room for a second copy");
    let room = shadow::check_room(&tools, &admin, &live, s.manifest).await?;
    let jobs = match args.jobs {
        Some(j) => j,
        None => shadow::default_jobs(&tools).await,
    };
    // The swap runs from the server's maintenance database: no session of this tool may be in
    // the live database or the shadow then.
    let maint = db.on("postgres").admin().await.map_err(|e| {
        e.context("connecting to the server's `postgres` database, where the swap runs from")
    })?;
    spinner.finish_and_clear();
    // A dump as well only when asked for (--safety-to): the live database, renamed, is the
    // safety copy.
    let safety_backup = match (&args.safety_to, args.no_safety_backup) {
        (Some(dest), false) => {
            let bar = ctx.ui.bytes(None, "safety backup");
            let src = Source {
                db: &db,
                admin: &admin,
                tools: &tools,
                environment: &ctx.profile.environment,
            };
            let opts = DumpOptions {
                encrypt: profile_recipients(&ctx.profile)?,
                ..Default::default()
            };
            let taken = unless_interrupted(
                dump::take(&src, &opts, dest, &bar),
                "no safety backup was kept and nothing was restored",
            )
            .await;
            bar.finish_and_clear();
            Some(taken.map_err(|e| e.context("taking the safety backup; nothing was restored"))?)
        }
        _ => None,
    };
    drop(admin);
    let mut interrupt = crate::ui::Interrupt::listen()?;
    let stamp = drill::stamp();
    let name = drill::copy_name(&live, drill::Kind::Shadow, &stamp);
    let (copy, leftovers) = drill::create(&maint, &live, &name, drill::Kind::Shadow).await?;
    // Under the restore's lock: a swap cut off after it closed the live database is undone.
    if shadow::reopen_if_closed(&maint, &live).await? {
        ctx.ui.warn(format!(
            "{live} refused connections (an earlier restore was cut off in its swap): they are allowed again"
        ));
    }
    for left in leftovers {
        ctx.ui.note(
            None,
            format!("dropped {left}, the shadow an interrupted restore left behind"),
        );
    }
    let shadow_db = db.on(&name);
    let bar = ctx.ui.bytes(
        Some(s.manifest.dump_size_and_sha256().0),
        format!("restoring {} into the shadow {name}", s.from.display()),
    );
    let work = async {
        let target = restore::Target {
            database: &name,
            admin_user: &db.admin.user,
            app_user: &db.app.user,
        };
        let seconds =
            shadow::load(&tools, s.source, s.manifest, &target, jobs, &bar, s.plan).await?;
        if s.manifest.format == Format::Custom {
            // The app role's privileges, as a whole-database restore re-grants them.
            let sql = crate::db::role::grants_sql(&db.app.user, &name)?;
            shadow_db
                .admin()
                .await?
                .batch_execute(&sql)
                .await
                .map_err(|e| anyhow::anyhow!(crate::db::connect::server_message(&e)))
                .context("granting the app role its privileges on the shadow")?;
        }
        bar.set_message(format!("checking the shadow {name}"));
        anyhow::Ok((seconds, database_checks(&ctx.profile, &shadow_db).await))
    };
    let outcome = interrupt
        .guard(
            work,
            &format!("the shadow {name} was dropped; the live database {live} was not touched"),
        )
        .await;
    bar.finish_and_clear();
    let (_, checks) = match outcome {
        Ok(o) => o,
        Err(e) => {
            shadow::remove_archives(&tools).await;
            let _ = copy.remove().await;
            if crate::ui::interrupted(&e) {
                return Err(e);
            }
            return Err(e.context(format!(
                "restoring into the shadow {name} (dropped; the live database {live} was not touched)"
            )));
        }
    };
    if !check::passed(&checks) {
        let _ = copy.remove().await;
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.status == check::Status::Fail)
            .map(|c| c.name.as_str())
            .collect();
        return Err(user_error(format!(
            "the restored copy failed {} of {} checks ({}); it was dropped and the live database {live} was not touched",
            failed.len(),
            checks.len(),
            failed.join(", ")
        ))
        .hint(crate::db::checks::hint(&checks))
        .exit(ExitCode::ChecksFailed)
        .into());
    }
    let previous = shadow::previous_name(&live, &stamp);
    let spinner = ctx.ui.spinner(format!("swapping {name} in for {live}"));
    let swapped = shadow::swap(&maint, &live, &name, &previous).await;
    spinner.finish_and_clear();
    let swapped = match swapped {
        Ok(s) => s,
        Err(e) => {
            let _ = copy.remove().await;
            return Err(e);
        }
    };
    copy.keep().await;
    // Older previous databases go; this one stays as the safety copy (with what the app wrote
    // while the shadow loaded) unless --drop-previous. The swap is done: a failure here is a
    // warning, not the restore's.
    let keep = (!args.drop_previous).then_some(previous.as_str());
    let dropped = match shadow::drop_previous(&maint, &live, keep).await {
        Ok(d) => d,
        Err(e) => {
            ctx.ui.warn(format!(
                "an older previous database was not dropped: {}",
                crate::error::report(&e).error
            ));
            vec![]
        }
    };
    let report = RestoreReport {
        file: s.from.display().to_string(),
        database: live.clone(),
        target: db.describe(),
        scope: s.scope,
        backup_created_at: s.manifest.created_at.clone(),
        mode: "shadow",
        safety_backup,
        previous_database: keep.map(str::to_string),
        jobs: Some(jobs),
        unavailable_seconds: Some((swapped.refused_seconds * 1000.0).round() / 1000.0),
        room,
        dropped,
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        passed: check::passed(&checks),
        checks,
    };
    ctx.ui.emit(&report, |r| text(r, s.manifest))?;
    Ok(Outcome::ok())
}

/// `restore --drop-previous` alone: the databases earlier restores kept, dropped.
async fn drop_previous_only(ctx: &Ctx, args: &RestoreArgs) -> Result<Outcome> {
    let db = ctx.db(&args.db).await?;
    let live = db.database.clone();
    let maint = db.on("postgres").admin().await?;
    // A swap that was cut off left the live database refusing connections: open it again.
    if shadow::reopen_if_closed(&maint, &live).await? {
        ctx.ui.warn(format!(
            "{live} refused connections (a restore was cut off in its swap): they are allowed again"
        ));
    }
    let kept = shadow::previous(&maint, &live).await?;
    if !kept.is_empty() {
        confirm(
            ctx,
            args.confirm.as_deref(),
            &format!(
                "drop {} (what database {live} was before the last restore)",
                kept.iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &live,
        )?;
    }
    let dropped = shadow::drop_previous(&maint, &live, None).await?;
    #[derive(Serialize)]
    struct Dropped {
        database: String,
        dropped: Vec<String>,
    }
    ctx.ui.emit(
        &Dropped {
            database: live,
            dropped,
        },
        |d| {
            if d.dropped.is_empty() {
                format!("no previous database of {} to drop\n", d.database)
            } else {
                format!("dropped {}\n", d.dropped.join(", "))
            }
        },
    )?;
    Ok(Outcome::ok())
}

fn text(r: &RestoreReport, m: &Manifest) -> String {
    let mut out = format!(
        "restored {} (backup of {} taken {}) into {} on {} in {:.1}s: {}\n",
        r.file, m.database, m.created_at, r.database, r.target, r.seconds, r.scope
    );
    if let (Some(jobs), Some(refused)) = (r.jobs, r.unavailable_seconds) {
        out.push_str(&format!(
            "loaded into a shadow database with {jobs} pg_restore job(s), checked, then swapped in: connections were refused for {refused:.3}s\n"
        ));
    }
    if let Some(p) = &r.previous_database {
        out.push_str(&format!(
            "the database as it was is kept as {p} (with what the application wrote while the shadow loaded); `phonebill-db restore --drop-previous` drops it\n"
        ));
    }
    if let Some(s) = &r.safety_backup {
        out.push_str(&format!(
            "safety backup of the database as it was: {} ({})\n",
            s.file,
            indicatif::BinaryBytes(s.details.size)
        ));
    }
    out.push_str(&check::table(&r.checks));
    if r.passed {
        out.push_str("all checks passed\n");
    }
    out
}

/// The typed confirmation: the database's name; in a production environment `ENV/DATABASE`, which
/// `--yes` does not answer (only the terminal or `--confirm` do).
fn confirm(ctx: &Ctx, given: Option<&str>, what: &str, database: &str) -> Result<()> {
    let production = ctx.profile.production;
    let expected = if production {
        format!("{}/{database}", ctx.profile.environment)
    } else {
        database.to_string()
    };
    match given {
        Some(text) if text == expected => Ok(()),
        Some(text) => Err(user_error(format!(
            "--confirm `{}` does not match `{expected}`; nothing was restored",
            crate::error::shown(text)
        ))
        .hint(format!("confirm with --confirm {expected} if this is the database to overwrite"))
        .exit(ExitCode::Usage)
        .into()),
        None if production => ctx.ui.ask_typed(
            &format!("{what} — a PRODUCTION database"),
            &expected,
            &format!(
                "run it on a terminal, or add --confirm {expected} (--yes is not enough in a production environment)"
            ),
        ),
        None => ctx.ui.confirm_typed(what, &expected),
    }
}
