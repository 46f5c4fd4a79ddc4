//! What a release consists of on the cluster, found by its labels, as "Kind/name" ids; and
//! deleting by id. Shared by `install` (pruning what the profile no longer renders) and `uninstall`.

use std::fmt::Debug;

use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::access::Access;
use super::client::{Kube, api_error, is_not_found};
use crate::profile::Profile;

/// The kinds install makes that hold no data: pruned by install, deleted by every uninstall.
pub const MADE: &[(&str, &str, &str)] = &[
    ("StatefulSet", "apps", "statefulsets"),
    ("Service", "", "services"),
    ("ConfigMap", "", "configmaps"),
    ("ServiceAccount", "", "serviceaccounts"),
    ("NetworkPolicy", "networking.k8s.io", "networkpolicies"),
    ("CronJob", "batch", "cronjobs"),
    ("Role", "rbac.authorization.k8s.io", "roles"),
    ("RoleBinding", "rbac.authorization.k8s.io", "rolebindings"),
];

/// The kinds that hold the data or its passwords: deleted only by `uninstall --delete-data`.
pub const DATA: &[(&str, &str, &str)] = &[
    ("PersistentVolumeClaim", "", "persistentvolumeclaims"),
    ("Secret", "", "secrets"),
];

/// `verb` on every kind of `kinds`, in the namespace.
pub fn accesses(kinds: &[(&str, &'static str, &'static str)], verb: &'static str) -> Vec<Access> {
    kinds
        .iter()
        .map(|(_, group, resource)| Access::ns(verb, group, resource))
        .collect()
}

/// The kinds of these ids (for RBAC checks of exactly what will be deleted).
pub fn kinds_of(ids: &[String]) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut kinds: Vec<_> = MADE
        .iter()
        .chain(DATA)
        .filter(|(kind, _, _)| ids.iter().any(|id| id.starts_with(&format!("{kind}/"))))
        .copied()
        .collect();
    kinds.dedup();
    kinds
}

/// What install made that holds no data, by the release's managed-by labels.
pub async fn made(kube: &Kube, profile: &Profile) -> Result<Vec<String>> {
    let selector = profile.managed_selector();
    let mut ids = list_ids::<StatefulSet>(kube, &selector).await?;
    ids.extend(list_ids::<Service>(kube, &selector).await?);
    ids.extend(list_ids::<ConfigMap>(kube, &selector).await?);
    ids.extend(list_ids::<ServiceAccount>(kube, &selector).await?);
    ids.extend(list_ids::<NetworkPolicy>(kube, &selector).await?);
    ids.extend(list_ids::<CronJob>(kube, &selector).await?);
    ids.extend(list_ids::<Role>(kube, &selector).await?);
    ids.extend(list_ids::<RoleBinding>(kube, &selector).await?);
    Ok(ids)
}

/// The release's claims and password Secrets, by the release's managed-by labels.
pub async fn data(kube: &Kube, profile: &Profile) -> Result<Vec<String>> {
    let selector = profile.managed_selector();
    let mut ids = list_ids::<PersistentVolumeClaim>(kube, &selector).await?;
    ids.extend(list_ids::<Secret>(kube, &selector).await?);
    Ok(ids)
}

/// The release's pods (they go with their StatefulSet).
pub async fn pods(kube: &Kube, profile: &Profile) -> Result<Vec<String>> {
    list_ids::<Pod>(kube, &profile.managed_selector()).await
}

/// The PersistentVolume bound to each of these claims (what stays behind a Retain class).
pub async fn volumes_of(kube: &Kube, claims: &[String]) -> Result<Vec<String>> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut out = Vec::new();
    for id in claims
        .iter()
        .filter_map(|id| id.strip_prefix("PersistentVolumeClaim/"))
    {
        let pvc = api.get_opt(id).await.map_err(|e| {
            api_error(
                e,
                &format!("reading PersistentVolumeClaim {id}"),
                &kube.server,
            )
        })?;
        out.extend(pvc.and_then(|p| p.spec?.volume_name));
    }
    Ok(out)
}

async fn list_ids<K>(kube: &Kube, selector: &str) -> Result<Vec<String>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let kind = K::kind(&());
    Ok(names_by::<K>(kube, selector)
        .await?
        .into_iter()
        .map(|name| format!("{kind}/{name}"))
        .collect())
}

/// The names of the release's objects of one kind (by the managed-by labels).
pub async fn names<K>(kube: &Kube, profile: &Profile) -> Result<Vec<String>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    names_by::<K>(kube, &profile.managed_selector()).await
}

async fn names_by<K>(kube: &Kube, selector: &str) -> Result<Vec<String>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let list = api
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map_err(|e| listing_error::<K>(e, kube))?;
    Ok(list.items.iter().map(|o| o.name_any()).collect())
}

/// The release's objects of one kind, whole (by the managed-by labels).
pub async fn objects<K>(kube: &Kube, profile: &Profile) -> Result<Vec<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(kube.client.clone(), &kube.namespace);
    Ok(api
        .list(&ListParams::default().labels(&profile.managed_selector()))
        .await
        .map_err(|e| listing_error::<K>(e, kube))?
        .items)
}

fn listing_error<K: Resource<DynamicType = ()>>(e: kube::Error, kube: &Kube) -> anyhow::Error {
    api_error(
        e,
        &format!("listing {}s in namespace {}", K::kind(&()), kube.namespace),
        &kube.server,
    )
}

/// Delete one object by "Kind/name"; one that is already gone is fine.
pub async fn delete(kube: &Kube, id: &str, dry_run: bool) -> Result<()> {
    let (kind, name) = id.split_once('/').expect("ids are Kind/name");
    let dp = DeleteParams {
        dry_run,
        ..DeleteParams::background()
    };
    let result = match kind {
        "StatefulSet" => delete_one::<StatefulSet>(kube, name, &dp).await,
        "Service" => delete_one::<Service>(kube, name, &dp).await,
        "ConfigMap" => delete_one::<ConfigMap>(kube, name, &dp).await,
        "ServiceAccount" => delete_one::<ServiceAccount>(kube, name, &dp).await,
        "NetworkPolicy" => delete_one::<NetworkPolicy>(kube, name, &dp).await,
        "CronJob" => delete_one::<CronJob>(kube, name, &dp).await,
        "Role" => delete_one::<Role>(kube, name, &dp).await,
        "RoleBinding" => delete_one::<RoleBinding>(kube, name, &dp).await,
        "PersistentVolumeClaim" => delete_one::<PersistentVolumeClaim>(kube, name, &dp).await,
        "Secret" => delete_one::<Secret>(kube, name, &dp).await,
        other => unreachable!("the inventory lists no {other}"),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(api_error(e, &format!("deleting {id}"), &kube.server)),
    }
}

async fn delete_one<K>(kube: &Kube, name: &str, dp: &DeleteParams) -> kube::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    Api::<K>::namespaced(kube.client.clone(), &kube.namespace)
        .delete(name, dp)
        .await
        .map(|_| ())
}
