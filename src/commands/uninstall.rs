//! `uninstall` (runbook 8.2): remove what install made and wait until it is gone. The data volume
//! and the Secrets holding its passwords stay unless `--delete-data` is given and confirmed.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::args::parse_duration;
use crate::context::Ctx;
use crate::error::{ExitCode, user_error};
use crate::k8s::inventory::{self, DATA, MADE};
use crate::k8s::preflight::{self, Access};
use crate::k8s::{Kube, wait};
use crate::profile::Profile;
use crate::ui::{Outcome, table};

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Also delete the data volume's claim and the Secrets with its passwords (asks to type the release name)
    #[arg(long)]
    pub delete_data: bool,
    /// With --delete-data: also delete the release's VolumeSnapshots of that data (otherwise they
    /// are kept and listed; on a terminal it asks)
    #[arg(long, requires = "delete_data")]
    pub delete_snapshots: bool,
    /// How long to wait for everything to be gone
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UninstallReport {
    pub release: String,
    pub namespace: String,
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    /// PersistentVolumes whose claims were deleted: with reclaimPolicy Retain (the plan's class)
    /// the volume and its Azure disk stay until deleted by hand.
    pub released_volumes: Vec<String>,
    pub waited_seconds: f64,
    /// Gone, every deleted object? (`false`: the wait ran out; `stillThere` says what and why.)
    pub removed: bool,
    pub still_there: Vec<crate::k8s::stuck::Stuck>,
    /// The managed server whose database stays whatever uninstall does (prod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_server: Option<String>,
    /// With --delete-data: the release's VolumeSnapshots of the deleted data, deleted (asked, or
    /// --delete-snapshots) or kept — billed disk snapshots, marked as of the deleted data so that
    /// a later install's volume is not mistaken for theirs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots_deleted: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots_kept: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: &UninstallArgs) -> Result<Outcome> {
    let kube = ctx.kube_within(args.timeout).await?;
    preflight::server_version(&kube).await?;
    let profile = &ctx.profile;

    let mut wanted = inventory::accesses(MADE, "list");
    wanted.extend(inventory::accesses(DATA, "list"));
    wanted.extend(inventory::accesses(MADE, "delete"));
    wanted.push(Access::ns("list", "", "pods"));
    if args.delete_data {
        wanted.extend(inventory::accesses(DATA, "delete"));
        wanted.push(Access::ns("get", "", "persistentvolumeclaims"));
    }
    preflight::require(
        &kube,
        wanted,
        "nothing was deleted",
        "ask a cluster admin for these RBAC rights, then run uninstall again",
    )
    .await?;

    let made = inventory::made(&kube, profile).await?;
    let data = inventory::data(&kube, profile).await?;
    let mut released_volumes = Vec::new();
    if args.delete_data && !data.is_empty() {
        released_volumes = inventory::volumes_of(&kube, &data).await?;
        let loses = match &profile.managed {
            Some(m) => format!(
                "the app loses its database URL until the next install (the database on {} stays)",
                m.host
            ),
            None => {
                "the database's data and passwords can no longer be opened by a new install".into()
            }
        };
        ctx.ui.confirm_typed(
            &format!("This deletes {}: {loses}", data.join(", ")),
            &profile.release,
        )?;
    }

    // The snapshots of the data: asked about (or --delete-snapshots) before anything goes.
    let snapshots = if args.delete_data && profile.cluster.is_some() {
        data_snapshots(ctx, &kube, args).await?
    } else {
        Snapshots::default()
    };

    let (to_delete, kept) = if args.delete_data {
        ([made, data].concat(), vec![])
    } else {
        (made, data)
    };
    let deleting = ctx.ui.spinner("deleting");
    for id in &to_delete {
        deleting.set_message(format!("deleting {}", id.to_lowercase()));
        inventory::delete(&kube, id, false).await?;
        ctx.ui.detail(format!("{} deleted", id.to_lowercase()));
    }
    deleting.finish_and_clear();
    let (snapshots_deleted, snapshots_kept) = settle_snapshots(&kube, snapshots).await?;

    let bar = ctx.ui.spinner("waiting for the release to be gone");
    let mut wake = crate::k8s::watches::Wake::release(&kube, profile);
    let gone = wait::poll(
        args.timeout,
        &ctx.ui,
        &bar,
        &mut wake,
        || remaining(&kube, profile, &to_delete),
        |left| wait::release_gone(left),
        |left| format!("waiting for {} to be gone", left.join(", ")),
    )
    .await?;
    let elapsed = bar.elapsed();
    bar.finish_and_clear();
    let still_there = match &gone {
        Ok(_) => vec![],
        Err(timed_out) => crate::k8s::stuck::explain(&kube, &timed_out.last).await?,
    };
    let report = UninstallReport {
        release: profile.release.clone(),
        namespace: kube.namespace.clone(),
        deleted: to_delete,
        kept,
        released_volumes,
        waited_seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        removed: gone.is_ok(),
        still_there,
        managed_server: profile.managed.as_ref().map(|m| m.host.clone()),
        snapshots_deleted,
        snapshots_kept,
    };
    ctx.ui.emit(&report, text)?;
    if let Err(timed_out) = gone {
        let first = report.still_there.first();
        return Err(user_error(format!(
            "timed out after {}s waiting for {} to be deleted{}",
            report.waited_seconds,
            timed_out.last.join(", "),
            first.map_or(String::new(), |s| format!(": {} is {}", s.object, s.why))
        ))
        .hint(first.map_or_else(
            || "wait longer with --timeout, then run uninstall again".to_string(),
            |s| s.hint.clone(),
        ))
        .exit(ExitCode::Timeout)
        .into());
    }
    Ok(Outcome::ok())
}

/// The release's VolumeSnapshots of the data about to be deleted, and whether they go too.
#[derive(Default)]
struct Snapshots {
    of_data: Vec<crate::k8s::snapshot::VolumeSnapshot>,
    /// The data they hold (the claim's), to mark the kept ones with.
    data: Option<String>,
    delete: bool,
}

async fn data_snapshots(ctx: &Ctx, kube: &Kube, args: &UninstallArgs) -> Result<Snapshots> {
    use crate::k8s::snapshot;
    let profile = &ctx.profile;
    let data = snapshot::current_data(kube, profile).await?;
    let of_data: Vec<_> = match snapshot::list(kube, profile).await {
        Ok(all) => all
            .into_iter()
            .filter(|s| snapshot::of_data(s, data.as_deref()))
            .collect(),
        // No snapshot API, or not allowed to list them: say what cannot be told.
        Err(e) => {
            ctx.ui.note(
                None,
                format!(
                    "warning: cannot list the release's VolumeSnapshots ({}); any there stay",
                    crate::error::report(&e).error
                ),
            );
            vec![]
        }
    };
    if of_data.is_empty() {
        return Ok(Snapshots::default());
    }
    let names: Vec<String> = of_data
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let delete = args.delete_snapshots
        || ctx
            .ui
            .ask_yes_no(&format!(
                "Also delete the {} VolumeSnapshots of this data ({})? They are billed while they exist; kept, they can bring it back",
                names.len(),
                names.join(", ")
            ))?
            .unwrap_or(false);
    Ok(Snapshots {
        of_data,
        data,
        delete,
    })
}

/// Delete the snapshots, or keep them marked as of the deleted data (a snapshot from before the
/// mark gets it now): a later install's new volume must not be taken for theirs. Their names.
async fn settle_snapshots(kube: &Kube, s: Snapshots) -> Result<(Vec<String>, Vec<String>)> {
    use crate::k8s::snapshot::{DATA_OF, VolumeSnapshot, data_of};
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<VolumeSnapshot> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut names = Vec::new();
    for snap in &s.of_data {
        let name = snap.metadata.name.clone().unwrap_or_default();
        if s.delete {
            let doing = format!("deleting VolumeSnapshot {name}");
            crate::k8s::client::delete_if_there(kube, &api, &name, &Default::default(), &doing)
                .await?;
        } else if let (None, Some(data)) = (data_of(snap), &s.data) {
            let mark = serde_json::json!({"metadata": {"annotations": {DATA_OF: data}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&mark))
                .await
                .map_err(|e| {
                    crate::k8s::client::api_error(
                        e,
                        &format!("marking VolumeSnapshot {name} as of the deleted data"),
                        &kube.server,
                    )
                })?;
        }
        names.push(name);
    }
    Ok(if s.delete {
        (names, vec![])
    } else {
        (vec![], names)
    })
}

/// What is still there of the deleted objects, and the release's pods.
async fn remaining(kube: &Kube, profile: &Profile, deleted: &[String]) -> Result<Vec<String>> {
    let mut now = inventory::made(kube, profile).await?;
    now.extend(inventory::data(kube, profile).await?);
    now.retain(|o| deleted.contains(o));
    now.extend(inventory::pods(kube, profile).await?);
    Ok(now)
}

fn text(r: &UninstallReport) -> String {
    let mut rows: Vec<Vec<String>> = r
        .deleted
        .iter()
        .map(|o| {
            let stuck = r.still_there.iter().any(|s| &s.object == o);
            vec![
                o.clone(),
                if stuck { "STILL THERE" } else { "deleted" }.into(),
            ]
        })
        .collect();
    rows.extend(r.kept.iter().map(|o| vec![o.clone(), "kept".into()]));
    let mut out = if rows.is_empty() {
        String::new()
    } else {
        table(&["OBJECT", "RESULT"], &rows)
    };
    if !r.removed {
        out.push_str(&format!(
            "release {} is NOT removed from namespace {} after {}s; still there:\n",
            r.release, r.namespace, r.waited_seconds
        ));
        for s in &r.still_there {
            out.push_str(&format!(
                "  {}: {}\n    hint: {}\n",
                s.object, s.why, s.hint
            ));
        }
    } else if r.deleted.is_empty() {
        out.push_str(&format!(
            "nothing of release {} to remove in namespace {}\n",
            r.release, r.namespace
        ));
    } else {
        out.push_str(&format!(
            "release {} removed from namespace {} after {}s\n",
            r.release, r.namespace, r.waited_seconds
        ));
    }
    match &r.managed_server {
        Some(host) => {
            if !r.kept.is_empty() {
                out.push_str("kept the Secrets with the server's address and logins: a later install reuses them; `--delete-data` removes them\n");
            }
            out.push_str(&format!(
                "the database on the managed server {host} is untouched: phonebill-db never deletes it\n"
            ));
        }
        None if !r.kept.is_empty() => {
            out.push_str("kept the data volume and its Secrets: a later install reuses them and their passwords; `--delete-data` removes them\n");
        }
        None => {}
    }
    for pv in &r.released_volumes {
        out.push_str(&format!(
            "PersistentVolume {pv} was bound to the deleted claim: with reclaimPolicy Retain it and its Azure disk stay (and cost) until you delete them (`kubectl delete pv {pv}`, then the disk)\n"
        ));
    }
    if !r.snapshots_deleted.is_empty() {
        out.push_str(&format!(
            "deleted the VolumeSnapshots of the data: {}\n",
            r.snapshots_deleted.join(", ")
        ));
    }
    if !r.snapshots_kept.is_empty() {
        out.push_str(&format!(
            "kept {} VolumeSnapshots of the deleted data (their disk snapshots are billed until deleted): {}; a later install does not take them for its own data; `restore --snapshot NAME --force-foreign` brings one back, `kubectl delete volumesnapshot NAME -n {}` (or uninstall --delete-data --delete-snapshots) removes them\n",
            r.snapshots_kept.len(),
            r.snapshots_kept.join(", "),
            r.namespace
        ));
    }
    out
}
