//! `verify` (runbook 4.4.3, 7.3, 12): the completion checklist; exit 4 when a check fails.

use anyhow::Result;
use clap::Args;
use kube::api::Api;
use serde::Serialize;

use std::path::PathBuf;

use crate::args::{DbArgs, PgBinArgs};
use crate::check::{self, Check, Status};
use crate::context::Ctx;
use crate::db::checks::hint;
use crate::db::connect::secret_key;
use crate::db::tools::Tools;
use crate::db::{checks, migrate};
use crate::error::report;
use crate::k8s::{health, release};
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Also fail (not only warn) when the server's time zone, memory settings or connection limit
    /// differ from the profile on a server this tool did not configure (--database-url)
    #[arg(long)]
    pub strict: bool,
    /// Instead of the checklist, a restore drill: restore a backup (--from) or a snapshot
    /// (--snapshot) into a copy, check it and count its rows, time it (RTO) and date it (RPO),
    /// remove the copy and keep the result with the release; exit 4 when it fails
    #[arg(long, conflicts_with = "strict")]
    pub restore_drill: bool,
    /// With --restore-drill: the backup file, or a directory (its newest backup of the database)
    #[arg(
        long,
        value_name = "FILE|DIR",
        requires = "restore_drill",
        conflicts_with = "snapshot"
    )]
    pub from: Option<PathBuf>,
    /// With --restore-drill: the VolumeSnapshot (`latest`: the newest ready one), restored into a
    /// claim and a pod of their own
    #[arg(
        long,
        value_name = "NAME|latest",
        requires = "restore_drill",
        conflicts_with = "database_url"
    )]
    pub snapshot: Option<String>,
    /// With --restore-drill --from: the age identity file that decrypts an encrypted backup
    #[arg(
        long,
        value_name = "FILE",
        env = "PHONEBILL_AGE_IDENTITY",
        hide_env_values = true
    )]
    pub identity: Option<PathBuf>,
    /// With --restore-drill --snapshot: how long the copy may take to start, and to go
    #[arg(long, default_value = "15m", value_parser = crate::args::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub pg_bin: PgBinArgs,
}

impl VerifyArgs {
    /// The checklist on the database `db` reaches, as `verify` alone runs it (what `report` keeps).
    pub fn checklist(db: DbArgs) -> VerifyArgs {
        VerifyArgs {
            db,
            strict: false,
            restore_drill: false,
            from: None,
            snapshot: None,
            identity: None,
            timeout: std::time::Duration::from_secs(15 * 60),
            pg_bin: PgBinArgs { pg_bin: None },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub target: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

pub async fn run(ctx: &Ctx, args: &VerifyArgs) -> Result<Outcome> {
    if args.restore_drill {
        return super::restore_drill::run(ctx, args).await;
    }
    let report = collect(ctx, args).await?;
    ctx.ui.emit(&report, text)?;
    check::refuse_failed("", &report.checks, &hint(&report.checks))?;
    Ok(Outcome::ok())
}

/// Every check of the checklist, run (what `run` prints and judges; `report` keeps it).
pub async fn collect(ctx: &Ctx, args: &VerifyArgs) -> Result<VerifyReport> {
    let spinner = ctx.ui.spinner("checking");
    let mut checks = Vec::new();
    // The release on the pod path; the URL (without its password) otherwise.
    let mut target = None;
    let mut reachable = true;
    // The release's pod (in-cluster, no --database-url): where to try a connection without TLS.
    let mut pod_ip = None;
    if args.db.database_url.is_none() {
        let kube = ctx.kube().await?;
        if ctx.profile.managed.is_none() {
            crate::k8s::power::refuse_stopped(&kube, &ctx.profile, "verify").await?;
        }
        target = Some(format!(
            "release {} in namespace {}",
            ctx.profile.release, kube.namespace
        ));
        let state = release::observe(&kube, &ctx.profile).await?;
        let names = ctx.profile.names();
        let cluster = match &ctx.profile.managed {
            Some(m) => {
                target = Some(format!(
                    "managed server {} (release {} in namespace {})",
                    m.host, ctx.profile.release, kube.namespace
                ));
                let mut out = vec![health::secrets(&state, &names)];
                if state.secrets.contains(&names.app_secret) {
                    let secrets = Api::namespaced(kube.client.clone(), &kube.namespace);
                    let url =
                        secret_key(&kube, &secrets, &names.app_secret, "database-url").await?;
                    out.push(checks::app_url(&url, args.db.ca_file.as_deref(), &m.ssl_mode).await);
                }
                out
            }
            None => {
                pod_ip = state
                    .pods
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(&names.pod))
                    .and_then(|p| p.status.as_ref()?.pod_ip.clone());
                let mut out = health::checks(&kube, &state, &names).await?;
                if let Some(pod) = state.running_pod(&names) {
                    out.extend(
                        crate::k8s::thresholds::checks(&kube, &ctx.profile, pod, &names.container)
                            .await,
                    );
                }
                match crate::k8s::schedule::observe(&kube, &ctx.profile).await {
                    Ok(Some(s)) => out.push(crate::k8s::schedule::check(&s)),
                    Ok(None) => {}
                    Err(e) => out.push(Check::warn(
                        "snapshot schedule",
                        format!("cannot read it: {}", report(&e).error),
                    )),
                }
                out
            }
        };
        let mut cluster = cluster;
        cluster.push(drill_check(ctx, &kube).await);
        reachable = cluster
            .iter()
            .filter(|c| c.name == "pod ready" || c.name == "secrets present")
            .all(|c| c.status == Status::Pass);
        checks.extend(cluster);
    }
    if reachable {
        spinner.set_message("connecting");
        let db = ctx.db(&args.db).await?;
        target.get_or_insert_with(|| db.describe());
        match db.admin().await {
            Ok(admin) => {
                checks.push(Check::pass(
                    "admin connects",
                    format!(
                        "as {} to {}, {}",
                        db.admin.user,
                        db.database,
                        checks::transport(&admin).await
                    ),
                ));
                if let Some(ip) = &pod_ip {
                    let tools = Tools::for_db(&db, &ctx.profile.names().container, None);
                    checks
                        .push(checks::tls_required(&tools, ip, &db.database, &db.admin.user).await);
                }
                spinner.set_message("checking the database");
                let migrations = migrate::embedded(&ctx.profile);
                let params = checks::Parameters::for_target(&db, args.strict);
                checks.extend(checks::run(&db, &admin, &ctx.profile, &migrations, params).await);
            }
            Err(e) => checks.push(Check::fail("admin connects", report(&e).error)),
        }
    } else {
        checks.push(Check::skip(
            "database checks",
            "the pod is not ready or a Secret is missing",
        ));
    }
    spinner.finish_and_clear();
    Ok(VerifyReport {
        target: target.unwrap_or_default(),
        passed: check::passed(&checks),
        checks,
    })
}

/// The last restore drill, as the release keeps it: due, failed or fine.
async fn drill_check(ctx: &Ctx, kube: &crate::k8s::Kube) -> Check {
    match crate::k8s::drill_record::read(kube, &ctx.profile).await {
        Ok(last) => crate::k8s::drill_record::check(
            last.as_ref(),
            humantime::parse_duration(&ctx.profile.restore_drill.every)
                .expect("checked by the profile's rules"),
            jiff::Timestamp::now(),
        ),
        Err(e) => Check::warn(
            "restore drill",
            format!("cannot read the last one: {}", report(&e).error),
        ),
    }
}

fn text(r: &VerifyReport) -> String {
    let mut out = format!("verify {}\n", r.target);
    out.push_str(&check::table(&r.checks));
    if r.passed {
        out.push_str("all checks passed\n");
    }
    out
}
