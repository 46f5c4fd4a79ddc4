//! The cluster's side of a major upgrade (`upgrade`): which StatefulSet holds the data and on
//! which major version, the other StatefulSets of the release (an upgrade under way), and taking
//! a StatefulSet and its claim away once it is no longer needed.

use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

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
    let serving = profile.names().stateful_set;
    let mut all = super::inventory::names::<StatefulSet>(kube, profile).await?;
    all.retain(|n| *n != serving);
    Ok(all)
}

/// Refused while an upgrade keeps a second StatefulSet: the command would change one server.
pub async fn refuse_under_way(kube: &Kube, profile: &Profile) -> Result<()> {
    let others = others(kube, profile).await?;
    if others.is_empty() {
        Ok(())
    } else {
        Err(under_way(&others, profile))
    }
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

/// Before an install that would make the release's StatefulSet anew: a claim an upgrade moved the
/// data to (`data-<release>-postgresql-pgN-0`) while the one this install would use does not
/// exist means the record that said so is gone (uninstall removes it). Starting an empty
/// database beside the data would hide it: refused, with the values that run on it.
pub async fn refuse_moved_data(kube: &Kube, profile: &Profile) -> Result<()> {
    let names = profile.names();
    let all = super::inventory::names::<PersistentVolumeClaim>(kube, profile).await?;
    if all.contains(&names.pvc) {
        return Ok(());
    }
    let prefix = format!("data-{}-postgresql-", profile.release);
    let moved = all.iter().find_map(|c| {
        let set = c.strip_prefix(&prefix)?.strip_suffix("-0")?;
        let major = set.strip_prefix("pg")?;
        major
            .parse::<u32>()
            .ok()
            .map(|m| (c.clone(), set.to_string(), m))
    });
    let Some((claim, set, major)) = moved else {
        return Ok(());
    };
    Err(user_error(format!(
        "release {}'s data is on claim {claim}, where an upgrade to PostgreSQL {major} moved it; this install would start an empty database in {} instead; nothing was changed",
        profile.release, names.stateful_set
    ))
    .hint(format!(
        "install with a values file saying `dataSet: {set}` and `image: {}` to run on that data, or delete the claim to start empty",
        crate::profile::image_with_major(&profile.cluster("install")?.image, major)
    ))
    .exit(ExitCode::Usage)
    .into())
}

/// The volume bound to a claim, if the claim exists.
pub async fn volume_of(kube: &Kube, claim: &str) -> Result<Option<String>> {
    Ok(super::release::claim(kube, claim)
        .await?
        .and_then(|p| p.spec?.volume_name))
}

/// One annotation of a claim, if the claim exists and has it.
pub async fn annotation_of_claim(kube: &Kube, claim: &str, key: &str) -> Result<Option<String>> {
    Ok(super::release::claim(kube, claim)
        .await?
        .and_then(|p| p.annotations().get(key).cloned()))
}

/// Set one annotation on a claim (a merge patch: nothing else of it changes).
pub async fn annotate_claim(kube: &Kube, claim: &str, key: &str, value: &str) -> Result<()> {
    let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
    let params = PatchParams {
        field_manager: Some(super::apply::FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    Api::<PersistentVolumeClaim>::namespaced(kube.client.clone(), &kube.namespace)
        .patch(claim, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error(e, &format!("annotating claim {claim}"), &kube.server))?;
    Ok(())
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
