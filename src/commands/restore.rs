//! `restore` (runbook 6.3): check the file against its manifest and the target, confirm, take a
//! safety backup, restore in one transaction, then run the verify checks.

use std::path::PathBuf;

use anyhow::Result;
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
use crate::db::restore;
use crate::db::tools::{ToolVersion, Tools};
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
        required_unless_present = "snapshot",
        conflicts_with = "snapshot"
    )]
    pub from: Option<PathBuf>,
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
    /// Do not take a backup of the database as it is before restoring
    #[arg(long)]
    pub no_safety_backup: bool,
    /// Where the safety backup goes (default: DATABASE-ENV-before-restore-TIME.dump here)
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
    pub safety_backup: Option<Taken>,
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
    let from = args
        .from
        .as_ref()
        .expect("clap requires --from without --snapshot");
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
        safety_backup,
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

fn text(r: &RestoreReport, m: &Manifest) -> String {
    let mut out = format!(
        "restored {} (backup of {} taken {}) into {} on {} in {:.1}s: {}\n",
        r.file, m.database, m.created_at, r.database, r.target, r.seconds, r.scope
    );
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
