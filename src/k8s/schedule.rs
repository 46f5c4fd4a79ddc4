//! What the snapshot schedule is doing: its CronJob, the last run and how it ended, the next run,
//! and how old the newest ready snapshot is. Read by `status` (to show) and `verify` (to judge).

use anyhow::Result;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::client::{Kube, api_error};
use super::first_run::{self, FirstRun};
use super::snapshot;
use crate::check::Check;
use crate::profile::Profile;

/// A snapshot older than this, with the schedule on, is worth a warning: a daily schedule missed a
/// run (24 hours and some slack).
pub const STALE_HOURS: i64 = 26;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleState {
    pub cron_job: String,
    pub schedule: String,
    pub time_zone: String,
    pub keep: u32,
    /// The CronJob exists (install made it).
    pub installed: bool,
    pub installed_at: Option<String>,
    pub last_run: Option<String>,
    /// succeeded, failed, running, or none yet.
    pub last_result: String,
    pub next_run: Option<String>,
    pub newest_ready: Option<String>,
    pub newest_ready_age_seconds: Option<i64>,
    /// The run install started to prove the schedule, as install left it on the CronJob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_run: Option<FirstRun>,
}

/// The schedule's state, or None when the profile has it off (or no cluster database).
pub async fn observe(kube: &Kube, profile: &Profile) -> Result<Option<ScheduleState>> {
    let Some(c) = profile.cluster.as_ref().filter(|c| c.snapshots.enabled) else {
        return Ok(None);
    };
    let names = profile.names();
    let cron_jobs: Api<CronJob> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let cj = cron_jobs
        .get_opt(&names.snapshot_schedule)
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!("reading CronJob {}", names.snapshot_schedule),
                &kube.server,
            )
        })?;
    let jobs: Api<Job> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let selector = format!(
        "{},app.kubernetes.io/component=snapshots",
        profile.managed_selector()
    );
    let mut runs = jobs
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(e, "listing the snapshot schedule's Jobs", &kube.server))?
        .items;
    runs.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let first = cj.as_ref().and_then(first_run::recorded);
    // The first run is the latest news while no other Job is newer (a failed one's Job is
    // deleted by install; its result stays on the CronJob).
    let first_is_latest = first.as_ref().is_some_and(|f| {
        let at = f.at.parse::<jiff::Timestamp>().ok();
        !runs.iter().any(|j| {
            j.metadata.name.as_deref() != Some(f.job.as_str())
                && at
                    .zip(j.metadata.creation_timestamp.as_ref())
                    .is_some_and(|(at, made)| made.0 > at)
        })
    });
    let first = first.filter(|_| first_is_latest);
    let last_result = match runs.last() {
        _ if first.as_ref().is_some_and(FirstRun::failed) => "failed (at install)".to_string(),
        None => first.as_ref().map_or("none yet".to_string(), |f| {
            format!("{} (at install)", f.result)
        }),
        Some(j) => {
            let has = |t: &str| first_run::condition(j, t).is_some();
            if has("Complete") {
                "succeeded".into()
            } else if has("Failed") {
                "failed".into()
            } else {
                "running".into()
            }
        }
    };
    let now = jiff::Timestamp::now();
    let next_run = crate::cron::Schedule::parse(&c.snapshots.schedule)
        .ok()
        .zip(crate::cron::zone(&c.snapshots.time_zone))
        .and_then(|(s, tz)| s.next_after(now, &tz))
        .map(|t| t.to_string());
    let current = snapshot::current_data(kube, profile).await?;
    let newest = snapshot::list(kube, profile)
        .await?
        .into_iter()
        .find(|s| snapshot::ready(s) && snapshot::of_data(s, current.as_deref()))
        .and_then(|s| {
            let t = s
                .status
                .as_ref()
                .and_then(|st| st.creation_time.clone())
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .or(s.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
            Some((t, now.duration_since(t).as_secs()))
        });
    Ok(Some(ScheduleState {
        cron_job: names.snapshot_schedule.clone(),
        schedule: c.snapshots.schedule.clone(),
        time_zone: c.snapshots.time_zone.clone(),
        keep: c.snapshots.keep,
        installed: cj.is_some(),
        installed_at: cj
            .as_ref()
            .and_then(|j| j.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.to_string()),
        // The schedule's last run or install's, whichever is later.
        last_run: cj
            .as_ref()
            .and_then(|j| j.status.as_ref()?.last_schedule_time.as_ref())
            .map(|t| t.0)
            .into_iter()
            .chain(
                first
                    .as_ref()
                    .and_then(|f| f.at.parse::<jiff::Timestamp>().ok()),
            )
            .max()
            .map(|t| t.to_string()),
        last_result,
        next_run,
        newest_ready: newest.map(|(t, _)| t.to_string()),
        newest_ready_age_seconds: newest.map(|(_, age)| age),
        first_run: first,
    }))
}

/// verify's judgement: a warning (never a failure) when the newest ready snapshot is older than
/// [`STALE_HOURS`] while the schedule is on — or when there is none and the schedule has been
/// installed longer than that.
pub fn check(state: &ScheduleState) -> Check {
    let name = "snapshot schedule";
    let hours = |secs: i64| secs / 3600;
    if !state.installed {
        return Check::warn(
            name,
            format!(
                "CronJob {} is missing: `phonebill-db install` makes it",
                state.cron_job
            ),
        );
    }
    // A failed first run is news until a snapshot newer than it is ready.
    let newer_ready = |at: &str| {
        state
            .newest_ready
            .as_deref()
            .and_then(|n| n.parse::<jiff::Timestamp>().ok())
            .zip(at.parse::<jiff::Timestamp>().ok())
            .is_some_and(|(ready, at)| ready > at)
    };
    if let Some(f) = state.first_run.as_ref().filter(|f| f.failed())
        && !newer_ready(&f.at)
    {
        return Check::warn(
            name,
            format!(
                "its first run at install failed: {}",
                f.cause.as_deref().unwrap_or("see the Job")
            ),
        );
    }
    match (state.newest_ready_age_seconds, &state.installed_at) {
        (Some(age), _) if hours(age) >= STALE_HOURS => Check::warn(
            name,
            format!(
                "the newest ready snapshot is {} hours old (last run: {}, {}); see `kubectl -n NAMESPACE get jobs`",
                hours(age),
                state.last_run.as_deref().unwrap_or("never"),
                state.last_result
            ),
        ),
        (Some(age), _) => Check::pass(
            name,
            format!(
                "{}, newest ready snapshot {} hours old",
                state.schedule,
                hours(age)
            ),
        ),
        (None, Some(at))
            if at.parse::<jiff::Timestamp>().is_ok_and(|t| {
                hours(jiff::Timestamp::now().duration_since(t).as_secs()) >= STALE_HOURS
            }) =>
        {
            Check::warn(
                name,
                format!("no ready snapshot yet, {} hours after install", STALE_HOURS),
            )
        }
        (None, _) => Check::pass(
            name,
            format!(
                "no snapshot yet; the first run is {}",
                state.next_run.as_deref().unwrap_or("to come")
            ),
        ),
    }
}
