//! `apply-schema` (runbook 4.4): the migrations not applied yet, then the app role's privileges and
//! password; `--dry-run` lists what would run.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::args::DbArgs;
use crate::context::Ctx;
use crate::db::migrate::{self, AppliedNow};
use crate::db::role::{self, RoleReport};
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct ApplySchemaArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// List the migrations that would run; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub database: String,
    pub target: String,
    pub dry_run: bool,
    /// Applied by this run (or, with --dry-run, that would be).
    pub applied: Vec<AppliedNow>,
    /// Already applied before this run.
    pub already_applied: usize,
    pub role: Option<RoleReport>,
    /// The metrics exporter's login (the release's own server, its exporter on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_role: Option<RoleReport>,
}

pub async fn run(ctx: &Ctx, args: &ApplySchemaArgs) -> Result<Outcome> {
    let db = ctx.db(&args.db).await?;
    let spinner = ctx.ui.spinner(format!("connecting to {}", db.describe()));
    let mut client = db.admin().await?;
    let migrations = migrate::embedded(&ctx.profile);
    let report = if args.dry_run {
        let plan = migrate::plan(&client, &migrations).await?;
        plan.refuse_if_inconsistent()?;
        ApplyReport {
            database: db.database.clone(),
            target: db.describe(),
            dry_run: true,
            applied: plan
                .pending
                .iter()
                .map(|id| AppliedNow {
                    id: id.clone(),
                    millis: 0,
                })
                .collect(),
            already_applied: plan.applied.len(),
            role: None,
            metrics_role: None,
        }
    } else {
        spinner.set_message("waiting for the migration lock");
        let (applied, role, metrics_role) = migrate::locked(&mut client, async |c| {
            let applied = migrate::apply(c, &migrations, |id| {
                spinner.set_message(format!("applying {id}"));
                ctx.ui.detail(format!("applying migration {id}"));
            })
            .await?;
            spinner.set_message(format!("privileges of {}", db.app.user));
            let role = role::ensure(c, &db.app, &db.database).await?;
            let metrics_role = match &db.metrics {
                Some(metrics) => {
                    spinner.set_message(format!("the exporter's login {}", metrics.user));
                    Some(role::ensure_metrics(c, metrics, &db.database).await?)
                }
                None => None,
            };
            Ok((applied, role, metrics_role))
        })
        .await?;
        ApplyReport {
            database: db.database.clone(),
            target: db.describe(),
            dry_run: false,
            // After a successful run every migration is applied: the rest were applied before
            // (by an earlier run, or by a concurrent one this run waited for).
            already_applied: migrations.len() - applied.len(),
            applied,
            role: Some(role),
            metrics_role,
        }
    };
    spinner.finish_and_clear();
    ctx.ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

fn text(r: &ApplyReport) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "would apply" } else { "applied" };
    for m in &r.applied {
        if r.dry_run {
            out.push_str(&format!("{verb} {}\n", m.id));
        } else {
            out.push_str(&format!("{verb} {} ({} ms)\n", m.id, m.millis));
        }
    }
    if r.applied.is_empty() {
        out.push_str(&format!(
            "nothing to apply: {} migrations already applied to {}\n",
            r.already_applied, r.database
        ));
    } else {
        out.push_str(&format!(
            "{} {} migration(s) to {} ({} already applied)\n",
            verb,
            r.applied.len(),
            r.database,
            r.already_applied
        ));
    }
    if let Some(role) = &r.role {
        let password = if role.password_synced {
            "password set from its Secret"
        } else {
            "password left as it was (not known here; see --app-password)"
        };
        out.push_str(&format!(
            "role {}: privileges granted, {password}\n",
            role.role
        ));
    }
    out
}
