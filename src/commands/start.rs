//! `start`: the StatefulSet `stop` scaled to 0 back to one pod, waited for as install waits
//! (rolled out, ready, the claim bound; a diagnosis when it is not), then verify's database checks.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::args::parse_duration;
use crate::check::{self, Check};
use crate::context::Ctx;
use crate::error::{ExitCode, user_error};
use crate::k8s::watches::Wake;
use crate::k8s::{power, preflight, release, wait};
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// How long to wait for the database to be ready
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Run as the off-hours schedule's job: with only its Role's rights (read the StatefulSet,
    /// scale it), so the wait reads the StatefulSet alone and the database checks are left to verify
    #[arg(long)]
    pub scheduled: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartReport {
    pub release: String,
    pub namespace: String,
    pub stateful_set: String,
    /// It was running already: nothing was changed (the checks still ran).
    pub already_running: bool,
    pub seconds: f64,
    pub passed: bool,
    /// verify's database checks on the started server (none for the schedule's job).
    pub checks: Vec<Check>,
}

pub async fn run(ctx: &Ctx, args: &StartArgs) -> Result<Outcome> {
    let profile = &ctx.profile;
    profile.cluster("start")?;
    let names = profile.names();
    let kube = ctx.kube_within(args.timeout).await?;
    let started = Instant::now();
    let Some(sts) = release::live_statefulset(&kube, profile).await? else {
        return Err(power::not_installed(profile, "start"));
    };
    power::refuse_restoring(&sts, profile, "start")?;
    let already_running = !power::stopped(&sts);
    if !already_running {
        power::scale(&kube, profile, 1).await?;
    }
    let bar = ctx.ui.spinner(format!(
        "waiting for {} to become ready",
        names.stateful_set
    ));
    if args.scheduled {
        let mut wake = Wake::polling();
        let ready = wait::poll(
            args.timeout,
            &ctx.ui,
            &bar,
            &mut wake,
            || release::live_statefulset(&kube, profile),
            |s| s.as_ref().is_some_and(power::scaled_up),
            |s| {
                let ready = s
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .and_then(|st| st.ready_replicas)
                    .unwrap_or(0);
                format!("{ready}/1 ready")
            },
        )
        .await?;
        bar.finish_and_clear();
        if let Err(t) = ready {
            return Err(not_ready(
                &names.stateful_set,
                t.after,
                "its pod is not ready".into(),
                "see `phonebill-db status` for why".into(),
            ));
        }
    } else {
        let mut wake = Wake::release(&kube, profile);
        let ready = wait::rollout(&kube, profile, args.timeout, &ctx.ui, &bar, &mut wake).await?;
        bar.finish_and_clear();
        if let Err(t) = ready {
            let classes = match preflight::storage_classes(&kube).await {
                Ok(Some(c)) => c,
                _ => vec![profile.cluster("start")?.storage.class_name.clone()],
            };
            let findings = crate::k8s::diagnose::diagnose(&t.last, &names, &classes);
            let (cause, hint) = match findings.first() {
                Some(f) => (f.cause.clone(), f.hint.clone()),
                None => (
                    wait::progress_text(&t.last, &names),
                    "raise --timeout, or see `phonebill-db status`".into(),
                ),
            };
            return Err(not_ready(&names.stateful_set, t.after, cause, hint));
        }
    }
    let checks = if args.scheduled {
        vec![]
    } else {
        let spinner = ctx.ui.spinner("checking the database");
        let checks = crate::db::checks::release_checks(&kube, profile).await;
        spinner.finish_and_clear();
        checks
    };
    let report = StartReport {
        release: profile.release.clone(),
        namespace: kube.namespace.clone(),
        stateful_set: names.stateful_set.clone(),
        already_running,
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        passed: check::passed(&checks),
        checks,
    };
    ctx.ui.emit(&report, text)?;
    check::refuse_failed(
        "started, but ",
        &report.checks,
        &crate::db::checks::hint(&report.checks),
    )?;
    Ok(Outcome::ok())
}

fn not_ready(stateful_set: &str, after: Duration, cause: String, hint: String) -> anyhow::Error {
    user_error(format!(
        "timed out after {} waiting for {stateful_set} to become ready: {cause}",
        humantime::format_duration(Duration::from_secs(after.as_secs()))
    ))
    .hint(hint)
    .exit(ExitCode::Timeout)
    .into()
}

fn text(r: &StartReport) -> String {
    let mut out = if r.already_running {
        format!(
            "release {} in namespace {} was running already; nothing was changed\n",
            r.release, r.namespace
        )
    } else {
        format!(
            "release {} in namespace {} started in {:.1}s: {} is ready\n",
            r.release, r.namespace, r.seconds, r.stateful_set
        )
    };
    if !r.checks.is_empty() {
        out.push_str(&check::table(&r.checks));
        if r.passed {
            out.push_str("all checks passed\n");
        }
    }
    out
}
