//! Waiting: conditions are pure predicates over observed state; `poll` adds the interval and timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;

use super::release::{ReleaseState, pod_ready, pod_status_text, pvc_phase};
use crate::profile::Names;
use crate::ui::Ui;

/// How often a wait looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Installed and serving: the StatefulSet has seen its latest spec, every replica is ready and
/// updated, and the data volume is bound.
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
    let updated = status.updated_replicas.unwrap_or(want) >= want;
    let pods_ready = state.pods.iter().filter(|p| pod_ready(p)).count() as i32 >= want;
    observed && ready && updated && pods_ready && pvc_phase(state.pvc(names)) == "Bound"
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

/// Observe until `done` holds or `timeout` passes, showing `describe` on the spinner.
pub async fn poll<T, F, Fut>(
    timeout: Duration,
    ui: &Ui,
    bar: &ProgressBar,
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
        tokio::time::sleep(POLL_INTERVAL.min(timeout.saturating_sub(start.elapsed()))).await;
    }
}
