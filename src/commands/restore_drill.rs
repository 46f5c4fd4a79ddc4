//! `verify --restore-drill` (verify's half): proof that a backup restores, and how long it takes.
//! A backup file (`--from FILE|DIR`) is restored into a scratch copy of the database on its own
//! server, through restore's own pipeline; a volume snapshot (`--snapshot NAME|latest`) into a
//! claim of its own, started by a pod of the release's own template. The copy gets verify's
//! database checks and a row count of every table; the restore's time is the measured RTO, the
//! data's age the RPO. The copy is removed whatever happens (Ctrl-C too); the live database and
//! its pod are never touched. The result is kept with the release for status and verify.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::verify::VerifyArgs;
use crate::check::{self, Check};
use crate::context::Ctx;
use crate::db::backup_file::{self, Manifest};
use crate::db::checks::database_checks;
use crate::db::connect::Db;
use crate::db::encryption::Identities;
use crate::db::tools::Tools;
use crate::db::{drill, restore};
use crate::error::{ExitCode, UserError, user_error};
use crate::k8s::drill_record::{self, Drill};
use crate::k8s::{drill_copy, volume_restore};
use crate::ui::Outcome;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    #[serde(flatten)]
    pub drill: Drill,
    /// Where the result was kept (the release's ConfigMap), or why it was not.
    pub recorded: String,
}

pub async fn run(ctx: &Ctx, args: &VerifyArgs) -> Result<Outcome> {
    let drill = match (&args.from, &args.snapshot) {
        (Some(from), _) => file_drill(ctx, args, from).await?,
        (None, Some(name)) => snapshot_drill(ctx, args, name).await?,
        (None, None) => return Err(need_source()),
    };
    let recorded = if args.db.database_url.is_some() {
        "not kept: --database-url reaches no release".to_string()
    } else {
        let kept = async {
            let kube = ctx.kube().await?;
            drill_record::write(&kube, &ctx.profile, &drill).await
        };
        match kept.await {
            Ok(()) => format!("ConfigMap {}", ctx.profile.names().drill_record),
            Err(e) => {
                let why = crate::error::report(&e).error;
                ctx.ui
                    .warn(format!("the drill's result was not kept: {why}"));
                format!("not kept: {why}")
            }
        }
    };
    let report = DrillReport { drill, recorded };
    ctx.ui.emit(&report, text)?;
    let d = &report.drill;
    if !d.passed {
        return Err(user_error(format!(
            "the restore drill of {} failed: {}",
            d.source,
            d.cause.as_deref().unwrap_or("see its checks")
        ))
        .hint(match d.kind.as_str() {
            "file" => "this backup would not bring the database back: take a new one (`phonebill-db backup`) and drill it; the live database was not touched",
            _ => "this snapshot would not bring the database back: take a new one (`phonebill-db backup --snapshot`) and drill it; the live database was not touched",
        })
        .exit(ExitCode::ChecksFailed)
        .into());
    }
    Ok(Outcome::ok())
}

/// `--restore-drill` without what to restore (exit 2).
pub fn need_source() -> anyhow::Error {
    user_error("--restore-drill needs what to restore: --from FILE|DIR or --snapshot NAME|latest")
        .hint("e.g. `phonebill-db verify --restore-drill --from backups/` (its newest backup) or `--snapshot latest`")
        .exit(ExitCode::Usage)
        .into()
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// How old something taken at `at` (RFC 3339) is now, in seconds.
fn age_of(at: &str) -> Option<i64> {
    let t: jiff::Timestamp = at.parse().ok()?;
    Some(jiff::Timestamp::now().duration_since(t).as_secs())
}

fn rto_target(ctx: &Ctx) -> Duration {
    humantime::parse_duration(&ctx.profile.restore_drill.rto_target)
        .expect("checked by the profile's rules")
}

/// The restore's time against the profile's target.
fn restore_time(seconds: f64, target: Duration) -> Check {
    let said = format!(
        "{seconds:.1}s, target {} (restoreDrill.rtoTarget)",
        humantime::format_duration(target)
    );
    if seconds <= target.as_secs_f64() {
        Check::pass("restore time", said)
    } else {
        Check::fail("restore time", format!("{said}: too slow"))
    }
}

/// The outcome of the part of a drill that can fail: its time, checks and rows, or the cause.
struct Restored {
    seconds: f64,
    checks: Vec<Check>,
    rows: std::collections::BTreeMap<String, i64>,
}

/// The drill's record from what happened.
#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &Ctx,
    kind: &str,
    source: String,
    taken_at: Option<String>,
    started_at: String,
    outcome: Result<Restored>,
    copy: String,
    removed: Result<()>,
) -> Drill {
    let target = rto_target(ctx);
    let rpo_seconds = taken_at.as_deref().and_then(age_of);
    let (restore_seconds, mut checks, rows, mut cause) = match outcome {
        Ok(r) => {
            let mut checks = vec![restore_time(r.seconds, target)];
            checks.extend(r.checks);
            let failed: Vec<&str> = checks
                .iter()
                .filter(|c| c.status == check::Status::Fail)
                .map(|c| c.name.as_str())
                .collect();
            let cause = (!failed.is_empty())
                .then(|| format!("checks failed on the copy: {}", failed.join(", ")));
            (Some(r.seconds), checks, r.rows, cause)
        }
        Err(e) => (
            None,
            vec![],
            Default::default(),
            Some(crate::error::report(&e).error),
        ),
    };
    let copy_removed = removed.is_ok();
    if let Err(e) = removed {
        let why = crate::error::report(&e).error;
        checks.push(Check::warn("copy removed", why.clone()));
        cause.get_or_insert(format!("the copy was not removed: {why}"));
    }
    Drill {
        kind: kind.into(),
        source,
        taken_at,
        started_at,
        finished_at: now(),
        passed: cause.is_none(),
        cause,
        restore_seconds,
        rto_target_seconds: target.as_secs(),
        rpo_seconds,
        copy,
        copy_removed,
        checks,
        rows,
    }
}

/// A drill of a backup file (`--from FILE`, or the newest backup in `--from DIR`).
async fn file_drill(ctx: &Ctx, args: &VerifyArgs, from: &Path) -> Result<Drill> {
    let database = ctx.profile.database.clone();
    let file: PathBuf = if from.is_dir() {
        backup_file::newest_in(from, &database)?.ok_or_else(|| {
            user_error(format!(
                "--from {}: no whole-database backup of {database} in it; nothing was restored",
                from.display()
            ))
            .hint("give the directory `phonebill-db backup --to DIR/FILE` wrote into, or a backup file")
            .exit(ExitCode::Usage)
        })?
    } else {
        from.to_path_buf()
    };
    let identities = args
        .identity
        .as_deref()
        .map(Identities::read)
        .transpose()?
        .map(Arc::new);
    let started_at = now();
    let source = file.display().to_string();
    let spinner = ctx.ui.spinner(format!("checking {source}"));
    // A file that does not pass its checks is a failed drill (exit 4), recorded; a file that is
    // another database's, or a few tables', is no drill of this one (exit 2).
    let checked = match backup_file::inspect(&file, identities.as_deref()) {
        Ok(c) => c,
        Err(e) if is_refusal(&e, ExitCode::ChecksFailed) => {
            spinner.finish_and_clear();
            return Ok(record(
                ctx,
                "file",
                source,
                None,
                started_at,
                Err(e),
                String::new(),
                Ok(()),
            ));
        }
        Err(e) => return Err(e),
    };
    let manifest = checked.manifest;
    refuse_unfit(&file, &manifest, &database)?;
    spinner.set_message("connecting");
    let db = ctx.db(&args.db).await?;
    if manifest.database != db.database {
        return Err(unfit(
            &file,
            format!("a backup of {}, not of {}", manifest.database, db.database),
        ));
    }
    let admin = db.admin().await?;
    let tools = Tools::for_db(
        &db,
        &ctx.profile.names().container,
        args.pg_bin.pg_bin.as_deref(),
    );
    let plan = match &checked.sql {
        Some(sql) => Some(restore::plan_sql(&tools, &file, sql).await?),
        None => None,
    };
    let mut interrupt = crate::ui::Interrupt::listen()?;
    let name = drill::copy_name(&db.database, drill::Kind::Drill, &drill::stamp());
    spinner.set_message(format!("making the copy {name}"));
    let (copy, dropped) = drill::create(&admin, &db.database, &name, drill::Kind::Drill).await?;
    spinner.finish_and_clear();
    for left in dropped {
        ctx.ui.note(
            None,
            format!("dropped {left}, a copy an earlier drill left behind"),
        );
    }
    let copy_db = db.on(&name);
    let bar = ctx.ui.bytes(
        Some(manifest.dump_size_and_sha256().0),
        format!("restoring {source} into {name}"),
    );
    let work = async {
        let target = restore::Target {
            database: &name,
            admin_user: &db.admin.user,
            app_user: &db.app.user,
        };
        let seconds = restore::run(
            &tools,
            &restore::Source::new(&file, identities.clone()),
            &manifest,
            &target,
            &bar,
            plan,
        )
        .await?;
        bar.set_message("checking the copy");
        checks_and_rows(ctx, &copy_db, seconds).await
    };
    let outcome = interrupt
        .guard(
            work,
            &format!("the drill's copy {name} was dropped; the live database was not touched"),
        )
        .await;
    bar.finish_and_clear();
    let removed = copy.remove().await;
    let outcome = match outcome {
        Err(e) if crate::ui::interrupted(&e) => return Err(e),
        o => o,
    };
    Ok(record(
        ctx,
        "file",
        source,
        Some(manifest.created_at.clone()),
        started_at,
        outcome,
        name,
        removed,
    ))
}

/// verify's database checks of the copy and each table's rows.
async fn checks_and_rows(ctx: &Ctx, copy: &Db, seconds: f64) -> Result<Restored> {
    let checks = database_checks(&ctx.profile, copy).await;
    let rows = drill::row_counts(&copy.admin().await?).await?;
    Ok(Restored {
        seconds,
        checks,
        rows,
    })
}

fn is_refusal(e: &anyhow::Error, code: ExitCode) -> bool {
    e.downcast_ref::<UserError>()
        .is_some_and(|u| u.exit == code)
}

fn unfit(file: &Path, why: String) -> anyhow::Error {
    user_error(format!(
        "--from {}: {why}; a restore drill restores a whole-database backup of this release; nothing was restored",
        file.display()
    ))
    .hint("drill a backup `phonebill-db backup` took of this database (no --table), or point --env/--values at its release")
    .exit(ExitCode::Usage)
    .into()
}

/// A backup of another database, or of a few tables' rows, is no drill of this one.
fn refuse_unfit(file: &Path, m: &Manifest, database: &str) -> Result<()> {
    if m.database != database {
        return Err(unfit(
            file,
            format!("a backup of {}, not of {database}", m.database),
        ));
    }
    if !m.tables.is_empty() {
        return Err(unfit(
            file,
            format!("a backup of the rows of {} only", m.tables.join(", ")),
        ));
    }
    if m.schema_only {
        return Err(unfit(file, "a backup of the schema only (no rows)".into()));
    }
    Ok(())
}

/// A drill of a volume snapshot (`--snapshot NAME|latest`): a claim from it, the release's server
/// started on it in a pod of its own.
async fn snapshot_drill(ctx: &Ctx, args: &VerifyArgs, name: &str) -> Result<Drill> {
    let profile = &ctx.profile;
    profile.cluster("verify --restore-drill --snapshot")?;
    let names = profile.names();
    let kube = ctx.kube_within(args.timeout).await?;
    let snap = volume_restore::resolve(&kube, profile, name).await?;
    let snap_name = snap.metadata.name.clone().unwrap_or_default();
    volume_restore::check(&kube, profile, &snap, false).await?;
    let sts = crate::k8s::release::live_statefulset(&kube, profile)
        .await?
        .ok_or_else(|| {
            crate::k8s::power::not_installed(profile, "verify --restore-drill --snapshot")
        })?;
    let live = crate::k8s::release::claim(&kube, &names.pvc).await?;
    let copy = drill_copy::plan(profile, &sts, live.as_ref(), &snap_name, &snap)?;
    let started_at = now();
    let taken_at = Some(crate::k8s::snapshot::created(&snap)).filter(|t| !t.is_empty());
    let mut interrupt = crate::ui::Interrupt::listen()?;
    let spinner = ctx.ui.spinner("removing what an earlier drill left");
    if drill_copy::remove(&kube, profile, args.timeout).await? {
        ctx.ui.note(
            Some(&spinner),
            format!(
                "removed {}, a copy an earlier drill left behind",
                names.drill
            ),
        );
    }
    let work = async {
        spinner.set_message(format!("making the copy {} from {snap_name}", names.drill));
        let started = Instant::now();
        drill_copy::create(&kube, &copy).await?;
        let ready = drill_copy::wait_ready(&kube, profile, args.timeout, &ctx.ui, &spinner).await?;
        if let Err(cause) = ready {
            anyhow::bail!("the copy of {snap_name} did not start: {cause}");
        }
        let seconds = started.elapsed().as_secs_f64();
        spinner.set_message("checking the copy");
        let db = Db::for_pod(kube.clone(), profile, names.drill.clone()).await?;
        checks_and_rows(ctx, &db, seconds).await
    };
    let outcome = interrupt
        .guard(
            work,
            &format!(
                "the drill's copy {} was removed; the live database was not touched",
                names.drill
            ),
        )
        .await;
    spinner.set_message(format!("removing the copy {}", names.drill));
    let removed = drill_copy::remove(&kube, profile, args.timeout)
        .await
        .map(drop);
    spinner.finish_and_clear();
    let outcome = match outcome {
        Err(e) if crate::ui::interrupted(&e) => return Err(e),
        o => o,
    };
    Ok(record(
        ctx,
        "snapshot",
        snap_name,
        taken_at,
        started_at,
        outcome,
        format!("PersistentVolumeClaim and Pod {}", names.drill),
        removed,
    ))
}

fn text(r: &DrillReport) -> String {
    let d = &r.drill;
    let mut out = format!(
        "restore drill of {} ({}): {}\n",
        d.source,
        d.kind,
        if d.passed { "passed" } else { "FAILED" }
    );
    if let Some(c) = &d.cause {
        out.push_str(&format!("  cause     {c}\n"));
    }
    if let Some(s) = d.restore_seconds {
        out.push_str(&format!(
            "  restore   {s:.1}s (RTO target {})\n",
            humantime::format_duration(Duration::from_secs(d.rto_target_seconds))
        ));
    }
    if let Some(a) = d.rpo_seconds {
        out.push_str(&format!(
            "  data age  {} (RPO; taken {})\n",
            humantime::format_duration(Duration::from_secs(a.max(0) as u64)),
            d.taken_at.as_deref().unwrap_or("?")
        ));
    }
    if !d.copy.is_empty() {
        out.push_str(&format!(
            "  copy      {}: {}\n",
            d.copy,
            if d.copy_removed {
                "removed"
            } else {
                "NOT removed"
            }
        ));
    }
    out.push_str(&format!("  recorded  {}\n", r.recorded));
    if !d.checks.is_empty() {
        out.push_str(&check::table(&d.checks));
    }
    if !d.rows.is_empty() {
        let rows: Vec<Vec<String>> = d
            .rows
            .iter()
            .map(|(t, n)| vec![t.clone(), n.to_string()])
            .collect();
        out.push_str(&crate::ui::table(&["TABLE", "ROWS"], &rows));
    }
    out
}
