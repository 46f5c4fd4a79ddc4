//! The cluster's side of a major upgrade (`upgrade`): which StatefulSet holds the data and on
//! which major version, the other StatefulSets of the release (an upgrade under way), and taking
//! a StatefulSet and its claim away once it is no longer needed.

use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::client::{Kube, api_error};
use crate::error::{ExitCode, user_error};
use crate::profile::{Profile, image_major};

/// The release's StatefulSet as it runs: its name, PostgreSQL image and that image's major version.
#[derive(Debug, Clone)]
pub struct Running {
    pub stateful_set: String,
    pub image: String,
    pub major: Option<u32>,
}

/// The StatefulSet the profile names (the one holding the data), if it exists.
pub async fn running(kube: &Kube, profile: &Profile) -> Result<Option<Running>> {
    let names = profile.names();
    let sts = super::release::live_statefulset(kube, profile).await?;
    Ok(sts.map(|s| {
        let image = container_image(&s, &names.container).unwrap_or_default();
        Running {
            stateful_set: names.stateful_set.clone(),
            major: image_major(&image),
            image,
        }
    }))
}

/// The image of `container` in a StatefulSet's pod template.
pub fn container_image(sts: &StatefulSet, container: &str) -> Option<String> {
    sts.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .image
        .clone()
}

/// The release's StatefulSets other than the one the profile names: what an upgrade made (or
/// kept) beside it.
pub async fn others(kube: &Kube, profile: &Profile) -> Result<Vec<String>> {
    let names = profile.names();
    let list = Api::<StatefulSet>::namespaced(kube.client.clone(), &kube.namespace)
        .list_metadata(&ListParams::default().labels(&profile.managed_selector()))
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!("listing StatefulSets in namespace {}", kube.namespace),
                &kube.server,
            )
        })?;
    Ok(list
        .items
        .iter()
        .map(|s| s.name_any())
        .filter(|n| *n != names.stateful_set)
        .collect())
}

/// install and the other writers refuse while an upgrade keeps two StatefulSets: which one the
/// Services lead to is `upgrade`'s to decide.
pub fn under_way(others: &[String], profile: &Profile) -> anyhow::Error {
    user_error(format!(
        "release {} has an upgrade under way: StatefulSet {} beside {}; nothing was changed",
        profile.release,
        others.join(", "),
        profile.names().stateful_set
    ))
    .hint("finish it with `phonebill-db upgrade --finalize`, or go back with `phonebill-db upgrade --rollback` (docs/commands/upgrade.md)")
    .exit(ExitCode::Usage)
    .into()
}

/// The volume bound to a claim, if the claim exists.
pub async fn volume_of(kube: &Kube, claim: &str) -> Result<Option<String>> {
    let pvc = Api::<PersistentVolumeClaim>::namespaced(kube.client.clone(), &kube.namespace)
        .get_opt(claim)
        .await
        .map_err(|e| api_error(e, &format!("reading claim {claim}"), &kube.server))?;
    Ok(pvc.and_then(|p| p.spec?.volume_name))
}

/// `data-<statefulset>-0`: the claim of a StatefulSet's only pod.
pub fn claim_of(stateful_set: &str) -> String {
    format!("data-{stateful_set}-0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgresql_container_names_the_image() {
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "auth-postgres-dev-postgresql"},
            "spec": {"selector": {}, "serviceName": "x", "template": {"spec": {"containers": [
                {"name": "metrics", "image": "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"},
                {"name": "postgresql", "image": "docker.io/library/postgres:16.4"}
            ]}}}
        }))
        .unwrap();
        assert_eq!(
            container_image(&sts, "postgresql").as_deref(),
            Some("docker.io/library/postgres:16.4")
        );
        assert_eq!(container_image(&sts, "other"), None);
        assert_eq!(
            claim_of("auth-postgres-dev-postgresql-pg17"),
            "data-auth-postgres-dev-postgresql-pg17-0"
        );
    }
}
