//! Off-hours stop and start (runbook 10.1 "scale pods down outside working hours"; dev physical
//! architecture 10.1.2, "off-hours automatic shutdown", and 11.1.1, `kubectl scale statefulset
//! postgresql --replicas=1`): the release's StatefulSet scaled through its `scale` subresource,
//! so that a Role may allow exactly that and nothing else. The claim, the Secrets and the Services
//! stay; only the pod goes.

use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::client::{Kube, api_error};
use crate::error::{ExitCode, user_error};
use crate::profile::Profile;

/// The field manager of stop's and start's writes (the StatefulSet's `spec.replicas`).
pub const MANAGER: &str = "phonebill-db-power";

/// Stopped by `stop` (or by hand): the StatefulSet asks for no pod. A StatefulSet that an
/// interrupted `restore --snapshot` scaled to 0 carries that restore's record and is not
/// "stopped": that restore goes on when run again.
pub fn stopped(sts: &StatefulSet) -> bool {
    sts.spec.as_ref().and_then(|s| s.replicas) == Some(0) && !restoring(sts)
}

/// A `restore --snapshot` is under way (it records itself on the StatefulSet).
pub fn restoring(sts: &StatefulSet) -> bool {
    sts.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(super::volume_restore::ANNOTATION))
}

/// stop and start leave a StatefulSet alone while a snapshot restore works on it (exit 2).
pub fn refuse_restoring(sts: &StatefulSet, profile: &Profile, what: &str) -> Result<()> {
    if !restoring(sts) {
        return Ok(());
    }
    Err(user_error(format!(
        "{what}: a `restore --snapshot` of release {} is under way (StatefulSet {} records it); nothing was changed",
        profile.release,
        profile.names().stateful_set
    ))
    .hint("run that restore again to finish it (`phonebill-db restore --snapshot NAME`), then stop or start")
    .exit(ExitCode::Usage)
    .into())
}

/// The controller has seen the latest spec and keeps no pod: what a stop waits for when it may
/// read only the StatefulSet (the scheduled stop's Role).
pub fn scaled_down(sts: &StatefulSet) -> bool {
    let Some(status) = &sts.status else {
        return false;
    };
    status.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0)
        && status.replicas == 0
}

/// The controller has seen the latest spec and one replica is ready: what a start waits for when
/// it may read only the StatefulSet.
pub fn scaled_up(sts: &StatefulSet) -> bool {
    let Some(status) = &sts.status else {
        return false;
    };
    status.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0)
        && status.ready_replicas.unwrap_or(0) >= 1
}

/// Ask the StatefulSet for `replicas` pods, through its scale subresource.
pub async fn scale(kube: &Kube, profile: &Profile, replicas: i32) -> Result<()> {
    let name = profile.names().stateful_set;
    Api::<StatefulSet>::namespaced(kube.client.clone(), &kube.namespace)
        .patch_scale(
            &name,
            &PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!("scaling StatefulSet {name} to {replicas}"),
                &kube.server,
            )
        })?;
    Ok(())
}

/// What a command that needs the database pod says of a stopped release (exit 2).
pub fn stopped_error(profile: &Profile, what: &str) -> anyhow::Error {
    user_error(format!(
        "{what}: release {} is stopped (its StatefulSet {} runs no pod); nothing was changed",
        profile.release,
        profile.names().stateful_set
    ))
    .hint(format!(
        "start it with `phonebill-db start --env {}` (and `phonebill-db stop` again after, if it should stay off)",
        profile.environment
    ))
    .exit(ExitCode::Usage)
    .into()
}

/// Nothing to stop, start or copy: no StatefulSet of the release (exit 2).
pub fn not_installed(profile: &Profile, what: &str) -> anyhow::Error {
    user_error(format!(
        "{what}: release {} is not installed in namespace {} (no StatefulSet {}); nothing was changed",
        profile.release,
        profile.namespace,
        profile.names().stateful_set
    ))
    .hint(format!(
        "install it with `phonebill-db install --env {}`, or give the namespace with -n",
        profile.environment
    ))
    .exit(ExitCode::Usage)
    .into()
}

/// Refuse `what` when the release is stopped. A StatefulSet that is not there, or that may not be
/// read, is for the command itself to find.
pub async fn refuse_stopped(kube: &Kube, profile: &Profile, what: &str) -> Result<()> {
    match super::release::live_statefulset(kube, profile).await {
        Ok(Some(sts)) if stopped(&sts) => Err(stopped_error(profile, what)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(replicas: i32, annotated: bool, status: serde_json::Value) -> StatefulSet {
        let mut v = json!({"metadata": {"name": "s", "generation": 3},
            "spec": {"replicas": replicas, "selector": {}, "serviceName": "x", "template": {}},
            "status": status});
        if annotated {
            v["metadata"]["annotations"] = json!({super::super::volume_restore::ANNOTATION: "{}"});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_statefulset_at_zero_is_stopped_unless_a_snapshot_restore_scaled_it() {
        let down = json!({"observedGeneration": 3, "replicas": 0});
        assert!(stopped(&sts(0, false, down.clone())));
        assert!(!stopped(&sts(0, true, down.clone())), "a restore under way");
        assert!(!stopped(&sts(1, false, down.clone())));
        assert!(scaled_down(&sts(0, false, down)));
        assert!(
            !scaled_down(&sts(
                0,
                false,
                json!({"observedGeneration": 2, "replicas": 0})
            )),
            "the controller has not seen the new spec"
        );
        assert!(!scaled_down(&sts(
            0,
            false,
            json!({"observedGeneration": 3, "replicas": 1})
        )));
        assert!(scaled_up(&sts(
            1,
            false,
            json!({"observedGeneration": 3, "replicas": 1, "readyReplicas": 1})
        )));
        assert!(!scaled_up(&sts(
            1,
            false,
            json!({"observedGeneration": 3, "replicas": 1})
        )));
    }
}
