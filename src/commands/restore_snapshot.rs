//! `restore --snapshot NAME|latest`: the data volume from a VolumeSnapshot (the steps are in
//! `k8s::volume_restore`), then the verify checks.

use anyhow::Result;
use serde::Serialize;

use crate::check::{self, Check};
use crate::context::Ctx;
use crate::db::checks::release_checks;
use crate::error::{ExitCode, user_error};
use crate::k8s::preflight::{self, Access};
use crate::k8s::volume_restore::{self, Request, Restored};
use crate::ui::{Outcome, unless_interrupted};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRestoreReport {
    #[serde(flatten)]
    pub restored: Restored,
    pub release: String,
    pub namespace: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

/// What `restore --snapshot NAME` was asked.
pub struct SnapshotRestore<'a> {
    pub name: &'a str,
    pub timeout: std::time::Duration,
    pub force_foreign: bool,
    pub no_safety_snapshot: bool,
}

pub async fn run(ctx: &Ctx, args: &SnapshotRestore<'_>) -> Result<Outcome> {
    let name = args.name;
    let cluster = ctx.profile.cluster("restore --snapshot")?;
    let kube = ctx.kube_within(args.timeout).await?;
    preflight::require(
        &kube,
        vec![
            Access::ns("get", "apps", "statefulsets"),
            Access::ns("list", "apps", "statefulsets"),
            Access::ns("patch", "apps", "statefulsets"),
            Access::ns("get", "", "persistentvolumeclaims"),
            Access::ns("create", "", "persistentvolumeclaims"),
            Access::ns("delete", "", "persistentvolumeclaims"),
            Access::ns("list", "", "pods"),
            Access::ns("get", "snapshot.storage.k8s.io", "volumesnapshots"),
            Access::ns("list", "snapshot.storage.k8s.io", "volumesnapshots"),
            Access::ns("create", "snapshot.storage.k8s.io", "volumesnapshots"),
        ],
        "nothing was changed",
        "ask a cluster admin for these RBAC rights, then run restore again",
    )
    .await?;
    crate::k8s::upgrade::refuse_under_way(&kube, &ctx.profile).await?;
    crate::k8s::power::refuse_stopped(&kube, &ctx.profile, "restore --snapshot").await?;

    // A restore under way (interrupted) is finished first, whatever was asked.
    let record = volume_restore::recorded(&kube, &ctx.profile).await?;
    let wanted = match &record {
        Some(r) if name != "latest" && name != r.snapshot => {
            return Err(user_error(format!(
                "a restore from {} is under way (interrupted on {}); nothing was changed",
                r.snapshot, r.started
            ))
            .hint(format!(
                "finish it first: `phonebill-db restore --snapshot {}`",
                r.snapshot
            ))
            .exit(ExitCode::Usage)
            .into());
        }
        Some(r) => r.snapshot.clone(),
        None => name.to_string(),
    };
    let spinner = ctx.ui.spinner(format!("checking snapshot {wanted}"));
    let snap = volume_restore::resolve(&kube, &ctx.profile, &wanted).await?;
    volume_restore::check(&kube, &ctx.profile, &snap, args.force_foreign).await?;
    if args.no_safety_snapshot && record.is_none() {
        let policy = volume_restore::reclaim_policy(&kube, &cluster.storage.class_name).await;
        if policy.as_deref() != Some("Retain") {
            return Err(user_error(format!(
                "--no-safety-snapshot: StorageClass {} {} the old volume once its claim goes, so a safety snapshot would be the only copy; nothing was changed",
                cluster.storage.class_name,
                if policy.is_some() { "deletes" } else { "may delete (its reclaimPolicy cannot be read)" }
            ))
            .hint("leave out --no-safety-snapshot")
            .exit(ExitCode::Usage)
            .into());
        }
    }
    spinner.finish_and_clear();
    let snap_name = snap.metadata.name.clone().unwrap_or_default();
    ctx.ui.confirm_typed(
        &format!(
            "restore the data volume of release {} from snapshot {snap_name}: the database as it is now is replaced (a safety snapshot keeps it)",
            ctx.profile.release
        ),
        &ctx.profile.release,
    )?;

    let bar = ctx.ui.spinner("restoring");
    let req = Request {
        no_safety_snapshot: args.no_safety_snapshot,
        timeout: args.timeout,
    };
    let restored = unless_interrupted(
        volume_restore::run(&kube, &ctx.profile, &req, &snap, record, &ctx.ui, &bar),
        "the restore stopped part way; run the same command again: it goes on from where it stopped (the StatefulSet records it)",
    )
    .await;
    bar.finish_and_clear();
    let restored = restored?;

    let spinner = ctx.ui.spinner("verifying");
    let checks = release_checks(&kube, &ctx.profile).await;
    spinner.finish_and_clear();
    let report = SnapshotRestoreReport {
        restored,
        release: ctx.profile.release.clone(),
        namespace: kube.namespace.clone(),
        passed: check::passed(&checks),
        checks,
    };
    ctx.ui.emit(&report, text)?;
    check::refuse_failed(
        "restored, but ",
        &report.checks,
        &crate::db::checks::hint(&report.checks),
    )?;
    Ok(Outcome::ok())
}

fn text(r: &SnapshotRestoreReport) -> String {
    let x = &r.restored;
    let mut out = format!(
        "restored the data volume {} of release {} from snapshot {} (taken {}) in {:.1}s ({:.1}s of it the tool's own){}\n",
        x.claim,
        r.release,
        x.snapshot,
        x.snapshot_created,
        x.seconds,
        x.tool_seconds,
        if x.resumed {
            ", finishing an interrupted restore"
        } else {
            ""
        }
    );
    if let Some(s) = &x.safety_snapshot {
        out.push_str(&format!(
            "safety snapshot of the volume as it was: {s} (`phonebill-db restore --snapshot {s}` goes back)\n"
        ));
    }
    match (&x.old_volume, x.old_volume_phase.as_deref()) {
        (Some(v), Some("Released")) => out.push_str(&format!(
            "the old volume {v} is Released and kept (reclaimPolicy Retain), with its Azure disk: delete it when you no longer need it (`kubectl delete pv {v}`, then the disk)\n"
        )),
        (Some(v), Some(phase)) => out.push_str(&format!("the old volume {v}: {phase}\n")),
        _ => {}
    }
    out.push_str(&check::table(&r.checks));
    if r.passed {
        out.push_str("all checks passed\n");
    }
    out
}
