//! Waiting: conditions are pure predicates over observed state; `poll` adds the interval and timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;

use super::client::Kube;
use super::release::{self, ReleaseState, pod_ready, pod_status_text, pvc_phase};
use super::watches::Wake;
use crate::profile::{Names, Profile};
use crate::ui::Ui;

/// Installed and serving: the StatefulSet has seen its latest spec and finished rolling it out
/// (every replica is a ready, non-terminating pod of the update revision), and the volume is bound.
/// The API server leaves zero counts out of the status, so a missing count is 0.
pub fn release_ready(state: &ReleaseState, names: &Names) -> bool {
    let Some(sts) = &state.stateful_set else {
        return false;
    };
    let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &sts.status else {
        return false;
    };
    let observed = status.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0) >= want;
    let updated = status.updated_replicas.unwrap_or(0) >= want;
    let update_revision = status.update_revision.as_deref();
    let rolled = match (status.current_revision.as_deref(), update_revision) {
        (Some(current), Some(update)) => current == update,
        _ => true,
    };
    let pods_ready = state
        .pods
        .iter()
        .filter(|p| {
            let revision = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("controller-revision-hash"));
            p.metadata.deletion_timestamp.is_none()
                && pod_ready(p)
                && update_revision.is_none_or(|u| revision.map(String::as_str) == Some(u))
        })
        .count() as i32
        >= want;
    observed && ready && updated && rolled && pods_ready && pvc_phase(state.pvc(names)) == "Bound"
}

/// Nothing left that install made (Secrets and PVC aside, which `uninstall` handles on its own).
pub fn release_gone(remaining: &[String]) -> bool {
    remaining.is_empty()
}

/// One line for the spinner: where the release is on its way to ready.
pub fn progress_text(state: &ReleaseState, names: &Names) -> String {
    let pod = state
        .pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(&names.pod))
        .map(|p| format!("pod {}", pod_status_text(p)))
        .unwrap_or_else(|| "pod not created yet".into());
    let ready = state
        .stateful_set
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .map_or(0, |s| s.ready_replicas.unwrap_or(0));
    format!(
        "{pod}, PVC {}, {ready}/1 ready",
        pvc_phase(state.pvc(names))
    )
}

/// The last state seen when a wait ran out of time.
#[derive(Debug)]
pub struct TimedOut<T> {
    pub last: T,
    pub after: Duration,
}

/// Until the release is ready (`release_ready`), its progress shown as install shows it.
pub async fn rollout(
    kube: &Kube,
    profile: &Profile,
    timeout: Duration,
    ui: &Ui,
    bar: &ProgressBar,
    wake: &mut Wake,
) -> Result<Result<ReleaseState, TimedOut<ReleaseState>>> {
    let names = profile.names();
    poll(
        timeout,
        ui,
        bar,
        wake,
        || release::observe(kube, profile),
        |s| release_ready(s, &names),
        |s| {
            format!(
                "waiting for {}: {}",
                names.stateful_set,
                progress_text(s, &names)
            )
        },
    )
    .await
}

/// Observe until `done` holds or `timeout` passes, showing `describe` on the spinner; between
/// looks, sleep until `wake`'s watches see a change (or poll, where there are none).
pub async fn poll<T, F, Fut>(
    timeout: Duration,
    ui: &Ui,
    bar: &ProgressBar,
    wake: &mut Wake,
    mut observe: F,
    done: impl Fn(&T) -> bool,
    describe: impl Fn(&T) -> String,
) -> Result<Result<T, TimedOut<T>>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let state = observe().await?;
        let text = describe(&state);
        if text != last {
            ui.detail(format!("[{:>5.1}s] {text}", start.elapsed().as_secs_f64()));
            bar.set_message(text.clone());
            last = text;
        }
        if done(&state) {
            return Ok(Ok(state));
        }
        if start.elapsed() >= timeout {
            return Ok(Err(TimedOut {
                last: state,
                after: start.elapsed(),
            }));
        }
        wake.sleep(timeout.saturating_sub(start.elapsed())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use serde_json::json;

    fn state(sts_status: serde_json::Value, pod_revision: &str, terminating: bool) -> ReleaseState {
        let sts = serde_json::from_value(json!({"metadata": {"name": "auth-postgres-dev-postgresql", "generation": 2},
            "spec": {"replicas": 1, "selector": {}, "serviceName": "x", "template": {}}, "status": sts_status}))
        .unwrap();
        let mut pod = json!({"metadata": {"name": "auth-postgres-dev-postgresql-0", "labels": {"controller-revision-hash": pod_revision}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        if terminating {
            pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        let pvc = serde_json::from_value(json!({"metadata": {"name": "data-auth-postgres-dev-postgresql-0"}, "status": {"phase": "Bound"}})).unwrap();
        ReleaseState {
            stateful_set: Some(sts),
            pods: vec![serde_json::from_value(pod).unwrap()],
            pvcs: vec![pvc],
            ..Default::default()
        }
    }

    #[test]
    fn a_rollout_in_progress_is_not_ready_even_while_the_old_pod_is() {
        let names = Profile::load("dev", None).unwrap().names();
        // The controller saw generation 2; the old pod (revision a) is still Ready, maybe terminating;
        // updatedReplicas is 0 and so left out, as the API server does.
        let rolling = json!({"observedGeneration": 2, "replicas": 1, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "b"});
        assert!(!release_ready(&state(rolling.clone(), "a", true), &names));
        assert!(!release_ready(&state(rolling, "a", false), &names));
        let done = json!({"observedGeneration": 2, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "currentRevision": "b", "updateRevision": "b"});
        assert!(release_ready(&state(done.clone(), "b", false), &names));
        let stale = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "currentRevision": "b", "updateRevision": "b"});
        assert!(
            !release_ready(&state(stale, "b", false), &names),
            "the controller has not seen the new spec"
        );
        assert!(
            !release_ready(&state(done, "b", true), &names),
            "a terminating pod does not count"
        );
    }
}
