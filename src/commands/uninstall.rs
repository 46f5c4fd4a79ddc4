//! `uninstall` (runbook 8.2): remove what install made and wait until it is gone. The data volume
//! and the Secrets holding its passwords stay unless `--delete-data` is given and confirmed.

use std::fmt::Debug;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::parse_duration;
use crate::context::Ctx;
use crate::error::{ExitCode, user_error};
use crate::k8s::client::{api_error, is_not_found};
use crate::k8s::preflight::{self, APPLIED, Access};
use crate::k8s::{Kube, wait};
use crate::ui::{Outcome, table};

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Also delete the data volume and the Secrets with its passwords (asks to type the release name)
    #[arg(long)]
    pub delete_data: bool,
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
    pub waited_seconds: f64,
}

pub async fn run(ctx: &Ctx, args: &UninstallArgs) -> Result<Outcome> {
    let kube = ctx.kube().await?;
    preflight::server_version(&kube).await?;
    let profile = &ctx.profile;
    let selector = profile.managed_selector();
    let by_instance = format!("app.kubernetes.io/instance={}", profile.release);

    let mut wanted: Vec<Access> = APPLIED
        .iter()
        .flat_map(|(g, r)| [Access::ns("list", g, r), Access::ns("delete", g, r)])
        .collect();
    wanted.push(Access::ns("list", "", "pods"));
    wanted.push(Access::ns("list", "", "persistentvolumeclaims"));
    if args.delete_data {
        wanted.push(Access::ns("delete", "", "persistentvolumeclaims"));
    }
    let denied = preflight::denied(&kube, &wanted).await?;
    if !denied.is_empty() {
        let list: Vec<String> = denied.iter().map(|a| a.describe(&kube.namespace)).collect();
        return Err(user_error(format!(
            "not allowed to {}; nothing was deleted",
            list.join("; ")
        ))
        .hint("ask a cluster admin for these RBAC rights, then run uninstall again")
        .into());
    }

    // What install made (found by label), then what holds data (kept unless --delete-data).
    let made = made_objects(&kube, &selector).await?;
    let data = data_objects(&kube, &selector, &by_instance).await?;

    if args.delete_data && !data.is_empty() {
        ctx.ui.confirm_typed(
            &format!(
                "This deletes the database's data volume and passwords ({}) for good",
                data.join(", ")
            ),
            &profile.release,
        )?;
    }

    let (to_delete, kept) = if args.delete_data {
        ([made, data].concat(), vec![])
    } else {
        (made, data)
    };
    for object in &to_delete {
        delete(&kube, object).await?;
        ctx.ui
            .note(None, format!("{} deleted", object.to_lowercase()));
    }

    let bar = ctx.ui.spinner("waiting for the release to be gone");
    let gone = wait::poll(
        args.timeout,
        &ctx.ui,
        &bar,
        || remaining(&kube, &selector, &by_instance, &to_delete),
        |left| wait::release_gone(left),
        |left| format!("waiting for {} to be gone", left.join(", ")),
    )
    .await?;
    let elapsed = bar.elapsed();
    bar.finish_and_clear();
    let report = UninstallReport {
        release: profile.release.clone(),
        namespace: kube.namespace.clone(),
        deleted: to_delete,
        kept,
        waited_seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
    };
    if let Err(timed_out) = gone {
        ctx.ui.emit(&report, text)?;
        return Err(user_error(format!(
            "timed out waiting for {} to be deleted",
            timed_out.last.join(", ")
        ))
        .hint("a finalizer or a stuck pod holds them: see `kubectl describe` of the objects named")
        .exit(ExitCode::Timeout)
        .into());
    }
    ctx.ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

/// What install made, found by its labels ("Kind/name").
async fn made_objects(kube: &Kube, selector: &str) -> Result<Vec<String>> {
    let mut made = names::<StatefulSet>(kube, selector).await?;
    made.extend(names::<Service>(kube, selector).await?);
    made.extend(names::<ConfigMap>(kube, selector).await?);
    made.extend(names::<ServiceAccount>(kube, selector).await?);
    made.extend(names::<NetworkPolicy>(kube, selector).await?);
    Ok(made)
}

/// What holds the data: the claims of the release and the Secrets with the passwords.
async fn data_objects(kube: &Kube, selector: &str, by_instance: &str) -> Result<Vec<String>> {
    let mut data = names::<PersistentVolumeClaim>(kube, by_instance).await?;
    data.extend(names::<Secret>(kube, selector).await?);
    Ok(data)
}

/// "Kind/name" of the objects of one kind that match `selector`.
async fn names<K>(kube: &Kube, selector: &str) -> Result<Vec<String>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let kind = K::kind(&());
    let api: Api<K> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let list = api
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map_err(|e| api_error(e, &format!("listing {kind}s"), &kube.server))?;
    Ok(list
        .items
        .iter()
        .map(|o| format!("{kind}/{}", o.name_any()))
        .collect())
}

async fn delete(kube: &Kube, object: &str) -> Result<()> {
    let (kind, name) = object.split_once('/').expect("names() makes Kind/name");
    let c = kube.client.clone();
    let ns = kube.namespace.as_str();
    let dp = DeleteParams::background();
    let result = match kind {
        "StatefulSet" => Api::<StatefulSet>::namespaced(c, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        "Service" => Api::<Service>::namespaced(c, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        "ConfigMap" => Api::<ConfigMap>::namespaced(c, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        "ServiceAccount" => Api::<ServiceAccount>::namespaced(c, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        "NetworkPolicy" => Api::<NetworkPolicy>::namespaced(c, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        "PersistentVolumeClaim" => Api::<PersistentVolumeClaim>::namespaced(c, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        "Secret" => Api::<Secret>::namespaced(c, ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        other => unreachable!("uninstall lists no {other}"),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()), // already gone
        Err(e) => Err(api_error(e, &format!("deleting {object}"), &kube.server)),
    }
}

/// What is still there of the deleted objects, and pods of the release.
async fn remaining(
    kube: &Kube,
    selector: &str,
    by_instance: &str,
    deleted: &[String],
) -> Result<Vec<String>> {
    let mut now = made_objects(kube, selector).await?;
    now.extend(data_objects(kube, selector, by_instance).await?);
    now.retain(|o| deleted.contains(o));
    now.extend(names::<Pod>(kube, by_instance).await?);
    Ok(now)
}

fn text(r: &UninstallReport) -> String {
    let mut rows: Vec<Vec<String>> = r
        .deleted
        .iter()
        .map(|o| vec![o.clone(), "deleted".into()])
        .collect();
    rows.extend(r.kept.iter().map(|o| vec![o.clone(), "kept".into()]));
    let mut out = if rows.is_empty() {
        String::new()
    } else {
        table(&["OBJECT", "RESULT"], &rows)
    };
    if r.deleted.is_empty() {
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
    if !r.kept.is_empty() {
        out.push_str("kept the data volume and its Secrets: a later install reuses them and their passwords; `--delete-data` removes them\n");
    }
    out
}
