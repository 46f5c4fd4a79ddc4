//! `stop` (runbook 10.1; dev physical architecture 10.1.2, 11.1.1): a CHECKPOINT, the
//! StatefulSet scaled to 0, and a wait until its pod is gone. The claim, the Secrets and the
//! Services stay; `start` brings the pod back on the same data.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::args::parse_duration;
use crate::check::Check;
use crate::context::Ctx;
use crate::error::{ExitCode, user_error};
use crate::k8s::watches::Wake;
use crate::k8s::{power, release, wait};
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// How long to wait for the pod to stop
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Run as the off-hours schedule's job: with only its Role's rights (read the StatefulSet,
    /// scale it), so no CHECKPOINT first and the wait reads the StatefulSet alone
    #[arg(long)]
    pub scheduled: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StopReport {
    pub release: String,
    pub namespace: String,
    pub stateful_set: String,
    /// It was stopped already: nothing was changed.
    pub already_stopped: bool,
    /// The CHECKPOINT before the pod goes (its shutdown writes one too: a failure is a warning).
    pub checkpoint: Check,
    pub seconds: f64,
    /// What stays: the data volume's claim, the Secrets, the Services.
    pub kept: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: &StopArgs) -> Result<Outcome> {
    let profile = &ctx.profile;
    profile.cluster("stop")?;
    let names = profile.names();
    let kube = ctx.kube_within(args.timeout).await?;
    let started = Instant::now();
    let Some(sts) = release::live_statefulset(&kube, profile).await? else {
        return Err(power::not_installed(profile, "stop"));
    };
    power::refuse_restoring(&sts, profile, "stop")?;
    let already_stopped = power::stopped(&sts);
    let mut checkpoint = Check::skip("checkpoint", "the release was stopped already");
    if !already_stopped {
        if !args.scheduled {
            crate::k8s::upgrade::refuse_under_way(&kube, profile).await?;
        }
        ctx.ui.confirm_typed(
            &format!(
                "Stop release {} in namespace {}? Its database is down until `phonebill-db start` (the data stays). Type the release name to go on",
                profile.release, kube.namespace
            ),
            &profile.release,
        )?;
        checkpoint = if args.scheduled {
            Check::skip(
                "checkpoint",
                "the schedule's job may only scale the StatefulSet; the server's shutdown checkpoints",
            )
        } else {
            let spinner = ctx.ui.spinner("CHECKPOINT");
            let c = checkpoint_now(ctx).await;
            spinner.finish_and_clear();
            c
        };
        power::scale(&kube, profile, 0).await?;
    }
    let bar = ctx
        .ui
        .spinner(format!("waiting for pod {} to stop", names.pod));
    let gone = if args.scheduled {
        let mut wake = Wake::polling();
        wait::poll(
            args.timeout,
            &ctx.ui,
            &bar,
            &mut wake,
            || release::live_statefulset(&kube, profile),
            |s| s.as_ref().is_some_and(power::scaled_down),
            |s| {
                let left = s
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .map_or(0, |st| st.replicas);
                format!("{left} pod(s) of {} left", names.stateful_set)
            },
        )
        .await?
        .map(drop)
        .map_err(|t| t.after)
    } else {
        let mut wake = Wake::release(&kube, profile);
        wait::poll(
            args.timeout,
            &ctx.ui,
            &bar,
            &mut wake,
            || release::observe(&kube, profile),
            |s| {
                s.stateful_set.as_ref().is_some_and(power::scaled_down)
                    && !s
                        .pods
                        .iter()
                        .any(|p| p.metadata.name.as_ref() == Some(&names.pod))
            },
            |s| match s
                .pods
                .iter()
                .find(|p| p.metadata.name.as_ref() == Some(&names.pod))
            {
                Some(p) => format!("pod {} {}", names.pod, release::pod_status_text(p)),
                None => format!("pod {} gone", names.pod),
            },
        )
        .await?
        .map(drop)
        .map_err(|t| t.after)
    };
    bar.finish_and_clear();
    if let Err(after) = gone {
        return Err(user_error(format!(
            "StatefulSet {} is scaled to 0, but its pod {} was still there after {}",
            names.stateful_set,
            names.pod,
            humantime::format_duration(Duration::from_secs(after.as_secs()))
        ))
        .hint("run the same command again to go on waiting; `phonebill-db status` shows the pod (a lost node keeps it terminating)")
        .exit(ExitCode::Timeout)
        .into());
    }
    let mut kept = vec![format!("PersistentVolumeClaim/{}", names.pvc)];
    kept.extend(
        [&names.admin_secret, &names.app_secret]
            .iter()
            .map(|s| format!("Secret/{s}")),
    );
    kept.extend(
        [&names.service, &names.headless_service]
            .iter()
            .map(|s| format!("Service/{s}")),
    );
    let report = StopReport {
        release: profile.release.clone(),
        namespace: kube.namespace.clone(),
        stateful_set: names.stateful_set.clone(),
        already_stopped,
        checkpoint,
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        kept,
    };
    ctx.ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

/// CHECKPOINT as the administrator, so that the shutdown has little left to write; a failure is
/// a warning (the server's own shutdown checkpoints too).
async fn checkpoint_now(ctx: &Ctx) -> Check {
    let done = async {
        let db = crate::db::connect::Db::for_release(ctx.kube().await?, &ctx.profile).await?;
        let admin = db.admin().await?;
        admin
            .batch_execute("CHECKPOINT")
            .await
            .map_err(|e| anyhow::anyhow!(crate::db::connect::server_message(&e)))?;
        anyhow::Ok(())
    };
    match done.await {
        Ok(()) => Check::pass("checkpoint", "done"),
        Err(e) => Check::warn(
            "checkpoint",
            format!(
                "not taken ({}); the server's shutdown checkpoints",
                crate::error::report(&e).error
            ),
        ),
    }
}

fn text(r: &StopReport) -> String {
    let mut out = if r.already_stopped {
        format!(
            "release {} in namespace {} was stopped already; nothing was changed\n",
            r.release, r.namespace
        )
    } else {
        format!(
            "release {} in namespace {} stopped in {:.1}s: StatefulSet {} runs no pod\n",
            r.release, r.namespace, r.seconds, r.stateful_set
        )
    };
    if r.checkpoint.status != crate::check::Status::Skip || !r.already_stopped {
        out.push_str(&format!(
            "checkpoint: {} {}\n",
            r.checkpoint.status.painted(),
            r.checkpoint.detail
        ));
    }
    out.push_str(&format!(
        "kept: {}\n`phonebill-db start` starts it again on the same data\n",
        r.kept.join(", ")
    ));
    out
}
