//! `report`: one archive to attach to an escalation (status, verify, the live objects and their
//! drift, events, pod states, logs, the database's settings, sessions, locks and sizes, the
//! recorded values, the snapshots), no secret in it; what could not be read is listed inside.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::args::parse_duration;
use crate::commands::status::StatusArgs;
use crate::context::Ctx;
use crate::report::{self, Options, Unreadable, archive};
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where to write the archive (tar.gz, mode 0600; default:
    /// ./phonebill-db-report-RELEASE-TIME.tar.gz); an existing file is never replaced
    #[arg(long, value_name = "FILE")]
    pub to: Option<PathBuf>,
    /// Only log lines newer than this, e.g. 2h (default: what the kubelet keeps, at most 16 MiB
    /// per log)
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub since: Option<Duration>,
    /// Include the sessions' query texts (they may hold the application's data)
    #[arg(long)]
    pub with_queries: bool,
    #[command(flatten)]
    pub status: StatusArgs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Written {
    file: String,
    files: usize,
    unreadable: Vec<Unreadable>,
}

/// The archive's default name: `phonebill-db-report-RELEASE-TIME.tar.gz` here.
pub fn default_name(release: &str) -> PathBuf {
    PathBuf::from(format!(
        "phonebill-db-report-{release}-{}.tar.gz",
        crate::db::backup_file::stamp()
    ))
}

/// What the arguments alone refuse (exit 2): a destination that cannot take a new file.
pub fn precheck(args: &ReportArgs) -> Result<()> {
    match &args.to {
        Some(to) => crate::db::backup_file::check_destination("--to", to),
        None => Ok(()),
    }
}

pub async fn run(ctx: &Ctx, args: &ReportArgs) -> Result<Outcome> {
    // An explicit --to was checked by `precheck`; the default name is checked here.
    let dest = match &args.to {
        Some(to) => to.clone(),
        None => {
            let dest = default_name(&ctx.profile.release);
            crate::db::backup_file::check_destination("--to", &dest)?;
            dest
        }
    };
    let spinner = ctx.ui.spinner("gathering the report");
    let opts = Options {
        since: args.since,
        with_queries: args.with_queries,
        ca_file: args.status.ca_file.clone(),
    };
    let gathered = report::gather(ctx, &opts).await?;
    let top = dest
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".tar.gz").to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "phonebill-db-report".into());
    spinner.set_message("writing the archive");
    archive::write(&dest, &top, &gathered.entries)?;
    spinner.finish_and_clear();
    let written = Written {
        file: dest.display().to_string(),
        files: gathered.entries.len(),
        unreadable: gathered.index.unreadable,
    };
    ctx.ui.emit(&written, text)?;
    Ok(Outcome::ok())
}

fn text(w: &Written) -> String {
    let mut out = format!(
        "wrote {} ({} files; no passwords, keys or tokens in it)\n",
        w.file, w.files
    );
    if !w.unreadable.is_empty() {
        out.push_str("could not read (listed in its report.json):\n");
        for u in &w.unreadable {
            out.push_str(&format!("  {}: {}\n", u.part, u.cause));
        }
    }
    out
}
