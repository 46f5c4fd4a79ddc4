//! Checks before anything is changed: the API answers, RBAC allows every verb a command uses, the
//! namespace and the StorageClass exist.

use anyhow::Result;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;

use super::client::{Kube, api_error};

/// One permission a command needs: `verb` on `resource` (of API `group`), in the namespace or cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub namespaced: bool,
}

impl Access {
    pub const fn ns(verb: &'static str, group: &'static str, resource: &'static str) -> Access {
        Access {
            verb,
            group,
            resource,
            namespaced: true,
        }
    }
    pub const fn cluster(
        verb: &'static str,
        group: &'static str,
        resource: &'static str,
    ) -> Access {
        Access {
            verb,
            group,
            resource,
            namespaced: false,
        }
    }
    pub fn describe(&self, namespace: &str) -> String {
        let res = if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if self.namespaced {
            format!("{} {res} in namespace {namespace}", self.verb)
        } else {
            format!("{} {res} (cluster-wide)", self.verb)
        }
    }
}

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
    let api: Api<SelfSubjectAccessReview> = Api::all(kube.client.clone());
    let mut denied = Vec::new();
    for a in wanted {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: a.namespaced.then(|| kube.namespace.clone()),
                    verb: Some(a.verb.into()),
                    group: Some(a.group.into()),
                    resource: Some(a.resource.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
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
        if !answer.status.is_some_and(|s| s.allowed) {
            denied.push(a.clone());
        }
    }
    Ok(denied)
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
