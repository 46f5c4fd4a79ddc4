//! `resize --storage SIZE`: grow the data volume (see `k8s::resize`) and record the size with the
//! release, so the next install renders it.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use k8s_openapi::api::apps::v1::StatefulSet;
use serde::Serialize;

use crate::args::parse_duration;
use crate::context::Ctx;
use crate::error::{ExitCode, user_error};
use crate::k8s::preflight::Access;
use crate::k8s::resize::{self, Resized};
use crate::k8s::{Kube, record};
use crate::profile::{Layer, Profile, merged};
use crate::render::Object;
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// The data volume's new size, e.g. 30Gi (a volume only grows)
    #[arg(long, value_name = "SIZE")]
    pub storage: String,
    /// How long to wait for the volume to grow and the release to be ready
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeReport {
    pub release: String,
    pub namespace: String,
    /// Nothing was to be done: the volume had the size.
    pub unchanged: bool,
    #[serde(flatten)]
    pub resized: Option<Resized>,
}

/// What the arguments and the profile alone refuse, before the record or the cluster is read
/// (exit 2): a managed environment, `--values`, a size its rule does not allow.
pub fn precheck(profile: &crate::profile::Profile, args: &ResizeArgs, values: bool) -> Result<()> {
    profile.cluster("resize")?;
    if values {
        return Err(user_error(
            "resize changes only the data volume's size; --values is install's",
        )
        .hint("run `install --values FILE` first, then resize")
        .exit(ExitCode::Usage)
        .into());
    }
    crate::profile::Profile::load_layers(&profile.environment, &[storage_layer(args)?])?;
    Ok(())
}

fn storage_layer(args: &ResizeArgs) -> Result<Layer> {
    Layer::parse(
        "--storage".into(),
        &format!(
            "storage: {{size: {}}}",
            serde_json::to_string(&args.storage)?
        ),
    )
}

pub async fn run(ctx: &Ctx, args: &ResizeArgs) -> Result<Outcome> {
    precheck(&ctx.profile, args, ctx.values.is_some())?;
    if ctx.values.is_some() {
        return Err(user_error(
            "resize changes only the data volume's size; --values is install's",
        )
        .hint("run `install --values FILE` first, then resize")
        .exit(ExitCode::Usage)
        .into());
    }
    let layer = storage_layer(args)?;
    let next = ctx.profile_with(layer.clone())?;
    let kube = ctx.kube_within(args.timeout).await?;
    let mut wanted = vec![
        Access::ns("patch", "", "persistentvolumeclaims"),
        Access::ns("delete", "", "pods"),
        Access::ns("patch", "", "configmaps"),
    ];
    for verb in ["get", "list", "delete", "create", "patch"] {
        wanted.push(Access::ns(verb, "apps", "statefulsets"));
    }
    crate::k8s::preflight::deny_check(&kube, wanted).await?;
    crate::k8s::upgrade::refuse_under_way(&kube, &ctx.profile).await?;
    crate::k8s::power::refuse_stopped(&kube, &ctx.profile, "resize").await?;

    let plan = resize::plan(&kube, &ctx.profile, &args.storage, &ctx.ui).await?;
    let resized = if plan.done {
        None
    } else {
        ctx.ui.confirm_typed(
            &format!(
                "Grow claim {} of release {} from {} to {}? A volume cannot shrink again. Type the release name to go on",
                plan.claim, ctx.profile.release, plan.from, plan.to
            ),
            &ctx.profile.release,
        )?;
        let render = async || statefulset(&kube, &next).await;
        match resize::run(&kube, &ctx.profile, plan, args.timeout, &ctx.ui, render).await {
            Ok(r) => Some(r),
            // Timed out waiting: the new size is asked for and stays; record it like a success.
            Err(e) if crate::error::report(&e).exit_code == ExitCode::Timeout.code() => {
                record_size(ctx, &kube, &next, &layer).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    };
    record_size(ctx, &kube, &next, &layer).await?;
    let report = ResizeReport {
        release: ctx.profile.release.clone(),
        namespace: kube.namespace.clone(),
        unchanged: resized.is_none(),
        resized,
    };
    ctx.ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

/// The recorded values with the new size: the next install renders it.
async fn record_size(ctx: &Ctx, kube: &Kube, next: &Profile, layer: &Layer) -> Result<()> {
    let values = merged(&ctx.recorded_values(), &layer.values);
    record::write(kube, next, ctx.record.as_ref(), &values)
        .await
        .context("recording the new size with the release")
}

/// The StatefulSet as install renders it with the new size; `None` when its certificate is due
/// for renewal (install renews it and rolls the pod; resize must not).
async fn statefulset(kube: &Kube, profile: &Profile) -> Result<Option<StatefulSet>> {
    let (objects, origin) = crate::passwords::rendered(kube, profile).await?;
    if origin != crate::certs::Origin::Existing {
        return Ok(None);
    }
    let sts = objects
        .into_iter()
        .find_map(|o| match o {
            Object::StatefulSet(s) => Some(s),
            _ => None,
        })
        .context("the profile renders no StatefulSet (a bug)")?;
    Ok(Some(sts))
}

fn text(r: &ResizeReport) -> String {
    match &r.resized {
        None => format!(
            "release {}: the data volume already has that size; nothing to do\n",
            r.release
        ),
        Some(x) => {
            let mut out = format!(
                "claim {} ({}) grew from {} to {} in {}s; recorded with the release\n",
                x.plan.claim, x.plan.class, x.plan.from, x.capacity, x.seconds
            );
            if x.stateful_set_recreated {
                out.push_str("the StatefulSet was made again with the new volume template; its pod kept running\n");
            }
            if let Some(pod) = &x.pod_restarted {
                out.push_str(&format!(
                    "offline expansion: pod {pod} was restarted so that the file system could grow\n"
                ));
            }
            out
        }
    }
}
