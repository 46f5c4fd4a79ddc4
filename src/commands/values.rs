//! `values`: the values a command works with — the embedded profile, the release's recorded
//! values and `--values`, laid over each other in that order — with where they came from.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::context::Ctx;
use crate::ui::Outcome;

/// How long `values` waits for the cluster to read the record: it is a look, not a wait.
const RECORD_BUDGET: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
#[command(
    after_help = "Keys set in a --values file must be keys printed here (like a Helm values file)."
)]
pub struct ValuesArgs {
    /// Leave out the release's recorded values (the cluster is not asked)
    #[arg(long)]
    pub no_record: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValuesReport {
    pub environment: String,
    /// What was laid over what, first to last.
    pub sources: Vec<String>,
    /// Why the release's record is not among them, when it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_not_read: Option<String>,
    pub values: serde_yaml::Value,
}

pub async fn run(ctx: &mut Ctx, args: &ValuesArgs) -> Result<Outcome> {
    let mut record_not_read = None;
    if !args.no_record {
        match ctx.fetch_record(RECORD_BUDGET).await {
            // A record that cannot be used is an error: what a command would meet too.
            Ok(kept) => ctx.adopt_fetched(kept)?,
            Err(e) => record_not_read = Some(crate::error::report(&e).error),
        }
    }
    let mut sources = vec![format!(
        "the embedded profile `{}`",
        ctx.profile.environment
    )];
    if let Some(r) = &ctx.record {
        sources.push(format!(
            "{} {} (recorded by install)",
            r.kept_in,
            ctx.profile.names().record
        ));
    }
    if let Some(v) = &ctx.values {
        sources.push(v.source.clone());
    }
    if ctx.global.namespace.is_some() {
        sources.push("--namespace".into());
    }
    let report = ValuesReport {
        environment: ctx.profile.environment.clone(),
        sources,
        record_not_read,
        values: serde_yaml::to_value(&ctx.profile)?,
    };
    ctx.ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

fn text(r: &ValuesReport) -> String {
    let mut out = format!("# {}\n", r.sources.join(", then "));
    if let Some(cause) = &r.record_not_read {
        out.push_str(&format!(
            "# the release's recorded values are not among them: {cause}\n"
        ));
    }
    out.push_str(&serde_yaml::to_string(&r.values).unwrap_or_default());
    out
}
