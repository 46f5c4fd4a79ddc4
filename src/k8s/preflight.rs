//! Checks before anything is changed: the API answers, RBAC allows every verb a command uses, the
//! namespace and the StorageClass exist.

use anyhow::Result;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};

pub use super::access::Access;
use super::client::{Kube, api_error};

/// The namespaced kinds install applies (server-side apply needs get, create and patch).
pub const APPLIED: &[(&str, &str)] = &[
    ("", "serviceaccounts"),
    ("", "secrets"),
    ("", "configmaps"),
    ("", "services"),
    ("apps", "statefulsets"),
    ("networking.k8s.io", "networkpolicies"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("batch", "cronjobs"),
];

/// What the waits and status read.
pub const OBSERVED: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "persistentvolumeclaims"),
    ("", "events"),
    ("", "services"),
    ("", "secrets"),
    ("apps", "statefulsets"),
];

/// API server version, e.g. "v1.33.2"; the first request, so it also proves the API is reachable.
pub async fn server_version(kube: &Kube) -> Result<String> {
    let info = kube
        .client
        .apiserver_version()
        .await
        .map_err(|e| api_error(e, "asking the API server for its version", &kube.server))?;
    Ok(info.git_version)
}

/// The accesses that are denied, asked of the API server with SelfSubjectAccessReviews.
pub async fn denied(kube: &Kube, wanted: &[Access]) -> Result<Vec<Access>> {
    let mut denied = Vec::new();
    for a in wanted {
        let (verb, resource) = (a.verb, a.resource);
        if !allowed(kube, verb, a.group, resource, None, a.namespaced).await? {
            denied.push(a.clone());
        }
    }
    Ok(denied)
}

/// Is `verb` on `resource` (of API `group`; a "resource/subresource" too), of the object `name`
/// or of any, allowed in the namespace (or cluster-wide)? Asked with a SelfSubjectAccessReview.
pub async fn allowed(
    kube: &Kube,
    verb: &str,
    group: &str,
    resource: &str,
    name: Option<&str>,
    namespaced: bool,
) -> Result<bool> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, sub)) => (r, Some(sub.to_string())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: namespaced.then(|| kube.namespace.clone()),
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                name: name.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(kube.client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            api_error(
                e,
                "checking RBAC rights (SelfSubjectAccessReview)",
                &kube.server,
            )
        })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// What an install will do besides applying the release: make the namespace, the StorageClass,
/// the VolumeSnapshotClass; run the snapshot schedule once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallNeeds {
    pub create_namespace: bool,
    pub create_storage_class: bool,
    pub create_snapshot_class: bool,
    pub first_run: bool,
}

impl InstallNeeds {
    /// Everything install may do (the installer's RBAC).
    pub const ALL: InstallNeeds = InstallNeeds {
        create_namespace: true,
        create_storage_class: true,
        create_snapshot_class: true,
        first_run: true,
    };
}

/// Every access install asks for before it changes anything: what it applies (server-side apply
/// needs get, create and patch), what its waits and status read, what it looks at to prune, the
/// namespace, StorageClass and VolumeSnapshotClass when it makes them, the Job of the schedule's
/// first run and its pods' log. (Besides these, the API server makes it hold what its Roles
/// grant: see `grants`.)
pub fn install_accesses(needs: InstallNeeds) -> Vec<Access> {
    let mut wanted: Vec<Access> = Vec::new();
    for (group, resource) in APPLIED {
        for verb in ["get", "create", "patch"] {
            wanted.push(Access::ns(verb, group, resource));
        }
    }
    for (group, resource) in OBSERVED {
        wanted.push(Access::ns("list", group, resource));
    }
    // Passwords: is there a data volume without its Secret?
    wanted.push(Access::ns("get", "", "persistentvolumeclaims"));
    // Pruning: what an earlier install made.
    wanted.extend(super::inventory::accesses(super::inventory::MADE, "list"));
    if needs.create_namespace {
        wanted.push(Access::cluster("create", "", "namespaces"));
    }
    if needs.create_storage_class {
        for verb in ["create", "patch", "get"] {
            wanted.push(Access::cluster(verb, "storage.k8s.io", "storageclasses"));
        }
    }
    if needs.create_snapshot_class {
        // Listing them is asked where allowed, gone without where not (see `grants`).
        for verb in ["create", "get"] {
            wanted.push(Access::cluster(
                verb,
                "snapshot.storage.k8s.io",
                "volumesnapshotclasses",
            ));
        }
    }
    if needs.first_run {
        for verb in ["create", "get", "delete"] {
            wanted.push(Access::ns(verb, "batch", "jobs"));
        }
        wanted.push(Access::ns("get", "", "pods/log"));
    }
    let mut seen = Vec::new();
    wanted.retain(|a| {
        let new = !seen.contains(a);
        seen.push(a.clone());
        new
    });
    wanted
}

/// Ask about every access at once (duplicates asked once); all denials in one error whose message
/// ends with `unchanged` (what was left alone), before the command changes anything.
pub async fn require(
    kube: &Kube,
    mut wanted: Vec<Access>,
    unchanged: &str,
    hint: &str,
) -> Result<()> {
    let mut seen = Vec::new();
    wanted.retain(|a| {
        let new = !seen.contains(a);
        seen.push(a.clone());
        new
    });
    let denied = denied(kube, &wanted).await?;
    if denied.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = denied.iter().map(|a| a.describe(&kube.namespace)).collect();
    Err(
        crate::error::user_error(format!("not allowed to {}; {unchanged}", list.join("; ")))
            .hint(hint)
            .into(),
    )
}

/// Names of the cluster's StorageClasses, sorted; `None` when RBAC does not let us list them
/// (a namespace-scoped developer): the check is then left to the volume binding.
pub async fn storage_classes(kube: &Kube) -> Result<Option<Vec<String>>> {
    let api: Api<StorageClass> = Api::all(kube.client.clone());
    let list = match api.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(None),
        Err(e) => return Err(api_error(e, "listing StorageClasses", &kube.server)),
    };
    let mut names: Vec<String> = list.items.iter().map(|s| s.name_any()).collect();
    names.sort();
    Ok(Some(names))
}

/// Every denial in one message, before any write.
pub async fn deny_check(kube: &Kube, wanted: Vec<Access>) -> Result<()> {
    require(
        kube,
        wanted,
        "nothing was changed",
        "ask a cluster admin for these RBAC rights (a Role with them, bound to you in the namespace), then run install again",
    )
    .await
}
