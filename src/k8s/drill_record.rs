//! The last restore drill's result, kept with the release in the ConfigMap
//! `<release>-drill-record` (no secret in it): `status` shows it, `verify` warns when it failed or
//! is older than the profile's `restoreDrill.every`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use super::client::{Kube, api_error};
use crate::check::Check;
use crate::profile::Profile;

/// The record's key in the ConfigMap.
const KEY: &str = "last.json";
/// The field manager of the record's data (install applies the ConfigMap's labels only).
const MANAGER: &str = "phonebill-db-drill";

/// One drill: what was restored, how long it took (the measured RTO), how old its data was (the
/// RPO), the checks and row counts of the copy, and whether the copy was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drill {
    /// `file` (a backup restored into a scratch database) or `snapshot` (a volume snapshot in a
    /// pod of its own).
    pub kind: String,
    /// The backup file or the snapshot.
    pub source: String,
    /// When the backup or snapshot was taken.
    pub taken_at: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub passed: bool,
    /// Why it failed (the first cause).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The restore's time: the recovery time this backup gives.
    pub restore_seconds: Option<f64>,
    pub rto_target_seconds: u64,
    /// The data's age when the drill began: what a restore now would lose.
    pub rpo_seconds: Option<i64>,
    /// The copy: a scratch database, or a claim and pod.
    pub copy: String,
    pub copy_removed: bool,
    pub checks: Vec<Check>,
    /// Rows of each table of the copy.
    pub rows: BTreeMap<String, i64>,
}

/// The last drill of the release, if one was recorded (and may be read).
pub async fn read(kube: &Kube, profile: &Profile) -> Result<Option<Drill>> {
    let name = profile.names().drill_record;
    let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let cm = api
        .get_opt(&name)
        .await
        .map_err(|e| api_error(e, &format!("reading ConfigMap {name}"), &kube.server))?;
    Ok(cm
        .and_then(|c| c.data?.get(KEY).cloned())
        .and_then(|text| serde_json::from_str(&text).ok()))
}

/// Keep `drill` as the release's last (server-side apply of the data by the drill's own manager).
pub async fn write(kube: &Kube, profile: &Profile, drill: &Drill) -> Result<()> {
    let name = profile.names().drill_record;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels(profile)),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            KEY.to_string(),
            serde_json::to_string_pretty(drill)?,
        )])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(kube.client.clone(), &kube.namespace)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!("recording the drill in ConfigMap {name}"),
                &kube.server,
            )
        })?;
    Ok(())
}

/// The component label of the drill schedule's objects and of the record (install renders them
/// with it; the record's writes keep it).
pub const COMPONENT: &str = "drills";

/// The record's labels: the release's, component [`COMPONENT`].
fn labels(profile: &Profile) -> BTreeMap<String, String> {
    let mut l = profile.common_labels();
    l.insert("app.kubernetes.io/component".into(), COMPONENT.into());
    l
}

/// verify's judgement of the last drill: a warning when there is none yet, when it failed, or
/// when it is older than `every` (never a failure: a drill is proof, not the database's state).
pub fn check(last: Option<&Drill>, every: Duration, now: jiff::Timestamp) -> Check {
    let Some(d) = last else {
        return Check::skip(
            "restore drill",
            "none yet: `phonebill-db verify --restore-drill --from BACKUP` (or --snapshot latest) proves a backup restores",
        );
    };
    let age = d
        .finished_at
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| now.duration_since(t).as_secs().max(0) as u64);
    let when = format!("{} drill of {} at {}", d.kind, d.source, d.finished_at);
    if !d.passed {
        return Check::warn(
            "restore drill",
            format!(
                "the last {when} FAILED: {}; fix it and drill again",
                d.cause.as_deref().unwrap_or("see its record")
            ),
        );
    }
    let summary = format!(
        "the last {when} passed: restored in {:.1}s (target {}), data {} old",
        d.restore_seconds.unwrap_or_default(),
        humantime::format_duration(Duration::from_secs(d.rto_target_seconds)),
        d.rpo_seconds
            .map(|s| humantime::format_duration(Duration::from_secs(s.max(0) as u64)).to_string())
            .unwrap_or_else(|| "?".into())
    );
    match age {
        Some(a) if a > every.as_secs() => Check::warn(
            "restore drill",
            format!(
                "{summary}; older than {} (restoreDrill.every): drill again",
                humantime::format_duration(every)
            ),
        ),
        _ => Check::pass("restore drill", summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drill(passed: bool, finished: &str) -> Drill {
        Drill {
            kind: "file".into(),
            source: "b.dump".into(),
            taken_at: None,
            started_at: finished.into(),
            finished_at: finished.into(),
            passed,
            cause: (!passed).then(|| "corrupted".into()),
            restore_seconds: Some(1.5),
            rto_target_seconds: 1800,
            rpo_seconds: Some(3600),
            copy: "x".into(),
            copy_removed: true,
            checks: vec![],
            rows: BTreeMap::new(),
        }
    }

    #[test]
    fn verify_warns_without_a_drill_after_a_failed_one_and_when_it_is_due() {
        use crate::check::Status;
        let now: jiff::Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
        let week = Duration::from_secs(7 * 86400);
        assert_eq!(check(None, week, now).status, Status::Skip);
        let fresh = check(Some(&drill(true, "2026-12-05T00:00:00Z")), week, now);
        assert_eq!(fresh.status, Status::Pass, "{}", fresh.detail);
        assert!(
            fresh
                .detail
                .contains("restored in 1.5s (target 30m), data 1h old")
        );
        let old = check(Some(&drill(true, "2026-11-20T00:00:00Z")), week, now);
        assert_eq!(old.status, Status::Warn);
        assert!(old.detail.contains("older than 7days"), "{}", old.detail);
        let failed = check(Some(&drill(false, "2026-12-05T00:00:00Z")), week, now);
        assert_eq!(failed.status, Status::Warn);
        assert!(failed.detail.contains("FAILED: corrupted"));
    }
}
