//! phonebill-db: install and operate the phonebill Auth service's PostgreSQL on Kubernetes.
//!
//! The binary (`main.rs`) is a thin shell over [`run`]; tests reach everything here.

pub mod certs;
pub mod check;
pub mod cli;
pub mod commands;
pub mod context;
pub mod cron;
pub mod db;
pub mod error;
pub mod k8s;
pub mod passwords;
pub mod profile;
pub mod render;
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
        Command::Completion(args) => return Ok(commands::completion::run(args)?.exit),
        Command::Man(args) => return Ok(commands::man::run(args)?.exit),
        _ => {}
    }
    let ui = Ui::new(cli.global.output, cli.global.verbose, cli.global.yes);
    for (flag, env) in &cli.global.password_flags {
        // On stderr whatever the output format: a warning a script's log should show.
        eprintln!(
            "warning: {flag} on the command line can be read by other users of this machine (ps, /proc); use ${env} instead"
        );
    }
    let ctx = Ctx::new(cli.global, ui)?;
    let outcome = match &cli.command {
        Command::Render(args) => commands::render::run(&ctx, args)?,
        Command::Install(args) => commands::install::run(&ctx, args).await?,
        Command::Status(args) => commands::status::run(&ctx, args).await?,
        Command::Uninstall(args) => commands::uninstall::run(&ctx, args).await?,
        Command::ApplySchema(args) => commands::apply_schema::run(&ctx, args).await?,
        Command::Verify(args) => commands::verify::run(&ctx, args).await?,
        Command::Expose(args) => commands::expose::run(&ctx, args).await?,
        Command::Connect(args) => commands::connect::run(&ctx, args).await?,
        Command::Backup(args) => commands::backup::run(&ctx, args).await?,
        Command::Restore(args) => commands::restore::run(&ctx, args).await?,
        Command::Completion(_) | Command::Man(_) => unreachable!("handled above"),
    };
    Ok(outcome.exit)
}
