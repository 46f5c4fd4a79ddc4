//! What the off-hours schedule is doing (its two CronJobs): when it stops and starts the
//! database, when it last did, and when it will next. Read by `status`.

use anyhow::Result;
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::Api;
use serde::Serialize;

use super::client::{Kube, api_error};
use crate::profile::Profile;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffHoursState {
    pub stop_at: String,
    pub start_at: String,
    pub time_zone: String,
    pub weekdays: Vec<String>,
    /// Both CronJobs exist (install made them).
    pub installed: bool,
    pub last_stop: Option<String>,
    pub last_start: Option<String>,
    pub next_stop: Option<String>,
    pub next_start: Option<String>,
}

/// The schedule's state, or None when the profile has it off (or no cluster database).
pub async fn observe(kube: &Kube, profile: &Profile) -> Result<Option<OffHoursState>> {
    let Some(off) = profile
        .cluster
        .as_ref()
        .map(|c| &c.off_hours)
        .filter(|o| o.enabled)
    else {
        return Ok(None);
    };
    let names = profile.names();
    let api: Api<CronJob> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut jobs = Vec::new();
    for name in [&names.stop_schedule, &names.start_schedule] {
        jobs.push(
            api.get_opt(name)
                .await
                .map_err(|e| api_error(e, &format!("reading CronJob {name}"), &kube.server))?,
        );
    }
    let last = |cj: &Option<CronJob>| {
        cj.as_ref()
            .and_then(|j| j.status.as_ref()?.last_schedule_time.as_ref())
            .map(|t| t.0.to_string())
    };
    let now = jiff::Timestamp::now();
    let next = |at: &str| {
        off.cron(at)
            .and_then(|c| crate::cron::Schedule::parse(&c).ok())
            .zip(crate::cron::zone(&off.time_zone))
            .and_then(|(s, tz)| s.next_after(now, &tz))
            .map(|t| t.to_string())
    };
    Ok(Some(OffHoursState {
        stop_at: off.stop_at.clone(),
        start_at: off.start_at.clone(),
        time_zone: off.time_zone.clone(),
        weekdays: off.weekdays.clone(),
        installed: jobs.iter().all(Option::is_some),
        last_stop: last(&jobs[0]),
        last_start: last(&jobs[1]),
        next_stop: next(&off.stop_at),
        next_start: next(&off.start_at),
    }))
}

/// One line for status: the times, the days, what ran and what runs next.
pub fn describe(s: &OffHoursState) -> String {
    format!(
        "stops {} and starts {} {} on {}; last stop {}, last start {}; next stop {}, next start {}",
        s.stop_at,
        s.start_at,
        s.time_zone,
        s.weekdays.join(","),
        s.last_stop.as_deref().unwrap_or("never"),
        s.last_start.as_deref().unwrap_or("never"),
        s.next_stop.as_deref().unwrap_or("?"),
        s.next_start.as_deref().unwrap_or("?"),
    )
}
