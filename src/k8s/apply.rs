//! Server-side apply of rendered objects with one field manager; reports what changed per object.

use std::fmt::Debug;

use anyhow::Result;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::{Kube, api_error};
use crate::render::Object;

/// The one field manager of everything this tool applies.
pub const FIELD_MANAGER: &str = "phonebill-db";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
    /// Made by an earlier install, no longer rendered by the profile, deleted.
    Pruned,
    /// A dry run that could not ask the server (its namespace does not exist yet): it would be
    /// created, but nothing about it was checked.
    Unchecked,
}

#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub kind: String,
    pub name: String,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    pub dry_run: bool,
    pub force_conflicts: bool,
}

/// Apply one object into the release's namespace.
pub async fn apply(kube: &Kube, object: &Object, opts: ApplyOptions) -> Result<Applied> {
    let ns = kube.namespace.as_str();
    let c = kube.client.clone();
    crate::render::each_object!(object, o => apply_typed(kube, Api::namespaced(c, ns), o, opts).await)
}

/// Server-side apply `object` through `api`, comparing resourceVersions to tell what changed.
pub async fn apply_typed<K>(
    kube: &Kube,
    api: Api<K>,
    object: &K,
    opts: ApplyOptions,
) -> Result<Applied>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.name_any();
    let kind = K::kind(&()).to_string();
    let doing = |verb: &str| format!("{verb} {kind} {name} in namespace {}", kube.namespace);
    let before = api
        .get_opt(&name)
        .await
        .map_err(|e| api_error(e, &doing("reading"), &kube.server))?;
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = opts.force_conflicts;
    params.dry_run = opts.dry_run;
    let after = api
        .patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(|e| api_error(e, &doing("applying"), &kube.server))?;
    let change = match before {
        None => Change::Created,
        Some(b) if !opts.dry_run && b.resource_version() == after.resource_version() => {
            Change::Unchanged
        }
        // A dry run writes nothing, so the resourceVersion cannot tell; and a controller may write
        // the status between our read and our apply (a load balancer's address): compare contents.
        Some(b) if comparable(&b) == comparable(&after) => Change::Unchanged,
        Some(_) => Change::Configured,
    };
    Ok(Applied { kind, name, change })
}

/// An object's JSON without what the server and controllers change on their own.
fn comparable<K: Serialize>(object: &K) -> serde_json::Value {
    let mut v = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for key in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(key);
        }
    }
    v
}
