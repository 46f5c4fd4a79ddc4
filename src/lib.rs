//! phonebill-db: install and operate the phonebill Auth service's PostgreSQL on Kubernetes.
//!
//! The binary (`main.rs`) is a thin shell over [`run`]; tests reach everything here.

pub mod args;
pub mod certs;
pub mod check;
pub mod cli;
pub mod commands;
pub mod context;
pub mod cron;
pub mod db;
pub mod error;
pub mod files;
pub mod k8s;
pub mod passwords;
pub mod profile;
pub mod render;
pub mod report;
pub mod terminal;
pub mod ui;

use anyhow::Result;

use cli::{Cli, Command};
use context::Ctx;
use error::ExitCode;
use ui::Ui;

/// Run a parsed command line; the exit code on success, or the error for `main` to report.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    // Generated from the command line alone: no profile, no cluster.
    match &cli.command {
        Command::Completion(args) => {
            return Ok(commands::completion::run(args, cli::command())?.exit);
        }
        Command::Man(args) => return Ok(commands::man::run(args, cli::command())?.exit),
        _ => {}
    }
    let ui = Ui::new(cli.global.output, cli.global.verbose, cli.global.yes);
    for (flag, env) in &cli.global.password_flags {
        // On stderr whatever the output format: a warning a script's log should show.
        eprintln!(
            "warning: {flag} on the command line can be read by other users of this machine (ps, /proc); use ${env} instead"
        );
    }
    let mut ctx = Ctx::new(cli.global, ui)?;
    precheck(&cli.command, &ctx)?;
    match recorded_values(&cli.command) {
        Recorded::Used => ctx.adopt_record().await?,
        Recorded::Shown => {
            // A record that cannot be used is said; a cluster that cannot be reached is
            // status's own report (said once, there).
            if let Ok(kept) = ctx.fetch_record(k8s::client::DEFAULT_RETRY_BUDGET).await
                && let Err(e) = ctx.adopt_fetched(kept)
            {
                ctx.ui.note(
                    None,
                    format!(
                        "warning: the recorded values are not used: {}",
                        error::report(&e).error
                    ),
                );
            }
        }
        Recorded::NotUsed => {}
    }
    let outcome = match &cli.command {
        Command::Render(args) => commands::render::run(&ctx, args)?,
        Command::Values(args) => commands::values::run(&mut ctx, args).await?,
        Command::Install(args) => commands::install::run(&ctx, args).await?,
        Command::Status(args) => commands::status::run(&ctx, args).await?,
        Command::Uninstall(args) => commands::uninstall::run(&ctx, args).await?,
        Command::ApplySchema(args) => commands::apply_schema::run(&ctx, args).await?,
        Command::Verify(args) => commands::verify::run(&ctx, args).await?,
        Command::Expose(args) => commands::expose::run(&ctx, args).await?,
        Command::Connect(args) => commands::connect::run(&ctx, args).await?,
        Command::Backup(args) => commands::backup::run(&ctx, args).await?,
        Command::Restore(args) => commands::restore::run(&ctx, args).await?,
        Command::Stop(args) => commands::stop::run(&ctx, args).await?,
        Command::Start(args) => commands::start::run(&ctx, args).await?,
        Command::Resize(args) => commands::resize::run(&ctx, args).await?,
        Command::Upgrade(args) => commands::upgrade::run(&ctx, args).await?,
        Command::RotatePassword(args) => commands::rotate_password::run(&ctx, args).await?,
        Command::Logs(args) => commands::logs::run(&ctx, args).await?,
        Command::Psql(args) => commands::psql::run(&ctx, args).await?,
        Command::Report(args) => commands::report::run(&ctx, args).await?,
        Command::Completion(_) | Command::Man(_) => unreachable!("handled above"),
    };
    Ok(outcome.exit)
}

/// What a command can judge from its arguments and the profile alone, before the release's
/// record is read or the cluster asked: a usage error is exit 2 at once, not after a kubeconfig
/// error or an unreachable API's retries.
fn precheck(command: &Command, ctx: &Ctx) -> Result<()> {
    let profile = &ctx.profile;
    match command {
        Command::Install(a) => commands::install::precheck(profile, a),
        Command::Resize(a) => commands::resize::precheck(profile, a, ctx.values.is_some()),
        Command::Logs(a) => {
            profile.cluster("logs")?;
            commands::logs::precheck(a)
        }
        Command::Psql(_) => profile.cluster("psql").map(drop),
        Command::Stop(_) => profile.cluster("stop").map(drop),
        Command::Start(_) => profile.cluster("start").map(drop),
        Command::Upgrade(_) => commands::upgrade::precheck(profile),
        Command::RotatePassword(a) => commands::rotate_password::precheck(a),
        Command::Report(a) => commands::report::precheck(a),
        Command::Verify(a) if a.restore_drill => match (&a.from, &a.snapshot) {
            (Some(f), _) => db::backup_file::check_source("--from", f),
            (None, Some(_)) => profile
                .cluster("verify --restore-drill --snapshot")
                .map(drop),
            (None, None) => Err(commands::restore_drill::need_source()),
        },
        Command::Expose(_) => profile.cluster("expose").map(drop),
        Command::Connect(_) => profile.cluster("connect").map(drop),
        Command::Backup(a) if a.snapshot => profile.cluster("backup --snapshot").map(drop),
        Command::Backup(a) if a.list => profile.cluster("backup --list").map(drop),
        Command::Restore(a) => {
            if let Some(to) = &a.safety_to {
                db::backup_file::check_destination("--safety-to", to)?;
            }
            a.from
                .as_ref()
                .map_or(Ok(()), |f| db::backup_file::check_source("--from", f))
        }
        Command::Backup(a) => {
            a.to.as_ref()
                .map_or(Ok(()), |to| db::backup_file::check_destination("--to", to))
        }
        _ => Ok(()),
    }
}

/// How a command treats the values install recorded with the release.
enum Recorded {
    /// Laid under `--values`: the command works on the release as installed.
    Used,
    /// As `Used`, but a record that cannot be used is a warning (status reports, it does not judge).
    Shown,
    /// Not read: no release (render, --database-url), or not needed (uninstall deletes by name).
    NotUsed,
}

fn recorded_values(command: &Command) -> Recorded {
    let through_release = |db: &args::DbArgs| {
        if db.database_url.is_none() {
            Recorded::Used
        } else {
            Recorded::NotUsed
        }
    };
    match command {
        Command::Install(a) if a.reset_values => Recorded::NotUsed,
        Command::Install(_)
        | Command::Expose(_)
        | Command::Connect(_)
        | Command::Logs(_)
        | Command::Psql(_)
        | Command::RotatePassword(_)
        | Command::Resize(_)
        | Command::Stop(_)
        | Command::Start(_)
        | Command::Upgrade(_) => Recorded::Used,
        Command::Status(_) | Command::Report(_) => Recorded::Shown,
        Command::ApplySchema(a) => through_release(&a.db),
        Command::Verify(a) => through_release(&a.db),
        Command::Backup(a) => through_release(&a.db),
        Command::Restore(a) => through_release(&a.db),
        Command::Uninstall(_)
        | Command::Render(_)
        | Command::Values(_)
        | Command::Completion(_)
        | Command::Man(_) => Recorded::NotUsed,
    }
}
