//! `backup --snapshot` (runbook 6.2; "Kubernetes: deploying databases", backups): a CSI VolumeSnapshot of the release's data volume,
//! and a wait until the driver says it is ready to use. The snapshot API
//! (`snapshot.storage.k8s.io/v1`) is a CRD that k8s-openapi does not carry; its two kinds are
//! typed here with the fields we use.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use super::client::{Kube, api_error, delete_if_there, is_not_found};
use super::wait::poll;
use super::watches::Wake;
use crate::error::{ExitCode, user_error};
use crate::profile::Profile;
use crate::ui::Ui;

/// `snapshot.storage.k8s.io/v1` VolumeSnapshot, through kube's CustomResource derive: it carries
/// its apiVersion and kind in every body, as the API server requires of a CRD's objects.
#[derive(CustomResource, Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[kube(
    group = "snapshot.storage.k8s.io",
    version = "v1",
    kind = "VolumeSnapshot",
    namespaced,
    status = "VolumeSnapshotStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSpec {
    pub volume_snapshot_class_name: Option<String>,
    pub source: VolumeSnapshotSource,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSource {
    pub persistent_volume_claim_name: Option<String>,
}

/// What the snapshot controller reports. `error` is the last error it observed; it keeps trying
/// and clears it on success, so an error is not the end of a wait.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    pub ready_to_use: Option<bool>,
    pub restore_size: Option<String>,
    pub creation_time: Option<String>,
    pub bound_volume_snapshot_content_name: Option<String>,
    pub error: Option<VolumeSnapshotError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VolumeSnapshotError {
    pub message: Option<String>,
    pub time: Option<String>,
}

/// `snapshot.storage.k8s.io/v1` VolumeSnapshotClass. Its fields sit at the top level (no spec),
/// which the CustomResource derive cannot express: typed here, with its apiVersion and kind
/// (`types`) in every body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotClass {
    #[serde(flatten)]
    pub types: kube::core::TypeMeta,
    pub metadata: ObjectMeta,
    pub driver: String,
    pub deletion_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
}

impl k8s_openapi::Resource for VolumeSnapshotClass {
    const API_VERSION: &'static str = "snapshot.storage.k8s.io/v1";
    const GROUP: &'static str = "snapshot.storage.k8s.io";
    const KIND: &'static str = "VolumeSnapshotClass";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "volumesnapshotclasses";
    type Scope = k8s_openapi::ClusterResourceScope;
}

impl k8s_openapi::Metadata for VolumeSnapshotClass {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Wait condition: the driver finished the snapshot.
pub fn ready(s: &VolumeSnapshot) -> bool {
    s.status.as_ref().and_then(|st| st.ready_to_use) == Some(true)
}

/// The driver's error, when it reported one.
pub fn failed(s: &VolumeSnapshot) -> Option<String> {
    s.status
        .as_ref()
        .and_then(|st| st.error.as_ref())
        .and_then(|e| e.message.clone())
}

/// The snapshot of the data volume this backup creates.
pub fn snapshot(profile: &Profile, class: &str, name: &str, origin: Origin) -> VolumeSnapshot {
    snapshot_of(profile, class, name, origin, None)
}

/// [`snapshot`] marked with whose data it holds (`data`: the claim's [`data_of_claim`]).
pub fn snapshot_of(
    profile: &Profile,
    class: &str,
    name: &str,
    origin: Origin,
    data: Option<&str>,
) -> VolumeSnapshot {
    let mut labels = profile.primary_labels();
    labels.insert(ORIGIN_LABEL.into(), origin.as_str().into());
    let mut s = VolumeSnapshot::new(
        name,
        VolumeSnapshotSpec {
            volume_snapshot_class_name: Some(class.to_string()),
            source: VolumeSnapshotSource {
                persistent_volume_claim_name: Some(profile.names().pvc),
            },
        },
    );
    s.metadata.labels = Some(labels);
    if let Some(data) = data {
        s.metadata.annotations = Some([(DATA_OF.to_string(), data.to_string())].into());
    }
    s
}

/// Whose data a volume holds, on a snapshot (the data of the claim it was taken of) and on a
/// claim restored from one (the data it came from). A claim's name says nothing of it: after
/// `uninstall --delete-data` and an install, a new, empty volume has the old one's name.
pub const DATA_OF: &str = "phonebill-db/data-of";

/// The data a claim holds: the lineage it was restored from, else its own uid (a volume a new
/// install made).
pub fn data_of_claim(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DATA_OF).cloned())
        .or_else(|| claim.metadata.uid.clone())
}

/// The data a snapshot holds, when it says (snapshots taken before the mark do not).
pub fn data_of(s: &VolumeSnapshot) -> Option<&str> {
    s.metadata
        .annotations
        .as_ref()?
        .get(DATA_OF)
        .map(String::as_str)
}

/// May the snapshot be of `current`'s data (the claim's [`data_of_claim`])? A snapshot without
/// the mark may: nothing tells otherwise.
pub fn of_data(s: &VolumeSnapshot, current: Option<&str>) -> bool {
    match (data_of(s), current) {
        (Some(was), Some(now)) => was == now,
        _ => true,
    }
}

/// The data the release's claim holds now (None: no claim).
pub async fn current_data(kube: &Kube, profile: &Profile) -> Result<Option<String>> {
    Ok(super::release::claim(kube, &profile.names().pvc)
        .await?
        .as_ref()
        .and_then(data_of_claim))
}

/// What a snapshot backup reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taken {
    pub snapshot: String,
    pub namespace: String,
    pub persistent_volume_claim: String,
    pub snapshot_class: String,
    pub snapshot_class_created: bool,
    pub ready_to_use: bool,
    pub restore_size: Option<String>,
    pub seconds: f64,
}

pub struct Request<'a> {
    pub class: &'a str,
    pub create_class: bool,
    pub name: String,
    pub timeout: Duration,
    pub origin: Origin,
}

/// Who took a snapshot, in its `phonebill-db/origin` label: retention keeps each kind apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The schedule's CronJob (`backup --snapshot --scheduled`).
    Scheduled,
    /// `backup --snapshot` by hand.
    Manual,
    /// `restore --snapshot`'s copy of the volume it replaces.
    Safety,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Scheduled => "scheduled",
            Origin::Manual => "manual",
            Origin::Safety => "safety",
        }
    }
}

/// The label that says who took a snapshot.
pub const ORIGIN_LABEL: &str = "phonebill-db/origin";

/// Check the claim and the class, create the snapshot, wait until it is ready (exit 3 on timeout).
pub async fn take(
    kube: &Kube,
    profile: &Profile,
    req: &Request<'_>,
    ui: &Ui,
    bar: &ProgressBar,
) -> Result<Taken> {
    let start = std::time::Instant::now();
    let pvc_name = profile.names().pvc;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let pvc = pvcs
        .get_opt(&pvc_name)
        .await
        .map_err(|e| api_error(e, &format!("reading claim {pvc_name}"), &kube.server))?;
    let phase = pvc
        .as_ref()
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.phase.clone());
    if phase.as_deref() != Some("Bound") {
        return Err(user_error(format!(
            "the data volume {pvc_name} in namespace {} is {}",
            kube.namespace,
            phase.map_or("missing".to_string(), |p| format!("not bound ({p})"))
        ))
        .hint(format!(
            "run `phonebill-db status --env {}`; a snapshot needs the installed release's volume",
            profile.environment
        ))
        .into());
    }
    let created = ensure_class(kube, profile, req, bar).await?;
    bar.set_message(format!("creating VolumeSnapshot {}", req.name));
    let api: Api<VolumeSnapshot> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let data = pvc.as_ref().and_then(data_of_claim);
    let wanted = snapshot_of(profile, req.class, &req.name, req.origin, data.as_deref());
    crate::k8s::client::create_once(
        kube,
        &api,
        &wanted,
        &format!("creating VolumeSnapshot {}", req.name),
        |there| {
            there.spec == wanted.spec
                && there.metadata.labels == wanted.metadata.labels
                && data_of(there) == data.as_deref()
        },
    )
    .await?;
    let name = req.name.clone();
    let mut wake = Wake::polling().named::<VolumeSnapshot>(kube, &name);
    let outcome = poll(
        req.timeout,
        ui,
        bar,
        &mut wake,
        || async {
            api.get(&name)
                .await
                .map_err(|e| api_error(e, &format!("reading VolumeSnapshot {name}"), &kube.server))
        },
        ready,
        |s| match failed(s) {
            // The controller keeps trying after an error and clears it on success: the latest
            // error is news, not the end.
            Some(e) => format!("snapshot {name}: the controller reports `{e}` (it keeps trying)"),
            None => format!("waiting for the CSI driver to take snapshot {name}"),
        },
    )
    .await?;
    let snap = match outcome {
        Ok(s) => s,
        Err(t) => {
            let last = failed(&t.last)
                .map(|e| format!("; the controller's last error: {e}"))
                .unwrap_or_default();
            return Err(user_error(format!(
                "VolumeSnapshot {name} is not ready to use after {}{last}",
                humantime::format_duration(Duration::from_secs(t.after.as_secs()))
            ))
            .hint(format!(
                "it stays and may still become ready: check `kubectl -n {} describe volumesnapshot {name}`, or wait longer with --timeout",
                kube.namespace
            ))
            .exit(ExitCode::Timeout)
            .into());
        }
    };
    Ok(Taken {
        snapshot: name,
        namespace: kube.namespace.clone(),
        persistent_volume_claim: pvc_name,
        snapshot_class: req.class.to_string(),
        snapshot_class_created: created,
        ready_to_use: true,
        restore_size: snap.status.and_then(|s| s.restore_size),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// One of the release's snapshots, as `backup --list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub name: String,
    pub created: String,
    pub claim: String,
    pub restore_size: Option<String>,
    pub ready: bool,
    pub origin: String,
    /// Of the data the release's volume holds now (false: of a volume `uninstall --delete-data`
    /// deleted; `restore --snapshot` takes it only with --force-foreign).
    pub current_data: bool,
    /// The controller's latest error, if any.
    pub error: Option<String>,
}

fn listed(s: &VolumeSnapshot, current: Option<&str>) -> Listed {
    Listed {
        name: s.metadata.name.clone().unwrap_or_default(),
        created: created(s),
        claim: s
            .spec
            .source
            .persistent_volume_claim_name
            .clone()
            .unwrap_or_default(),
        restore_size: s.status.as_ref().and_then(|st| st.restore_size.clone()),
        ready: ready(s),
        origin: origin_of(s).unwrap_or("unknown").into(),
        current_data: of_data(s, current),
        error: failed(s),
    }
}

/// The release's snapshots (the ones this tool labelled for it), newest first.
pub async fn list(kube: &Kube, profile: &Profile) -> Result<Vec<VolumeSnapshot>> {
    let api: Api<VolumeSnapshot> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut items = api
        .list(&ListParams::default().labels(&profile.managed_selector()))
        .await
        .map_err(|e| {
            if is_not_found(&e) {
                anyhow::Error::new(
                    user_error("this cluster has no VolumeSnapshot API (snapshot.storage.k8s.io/v1)")
                        .hint("AKS has it built in; elsewhere install the CSI external-snapshotter CRDs and controller"),
                )
            } else {
                api_error(
                    e,
                    &format!("listing VolumeSnapshots in namespace {}", kube.namespace),
                    &kube.server,
                )
            }
        })?
        .items;
    items.sort_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| b.metadata.name.cmp(&a.metadata.name))
    });
    Ok(items)
}

/// When the snapshot was made (RFC 3339; empty when not known yet).
pub fn created(s: &VolumeSnapshot) -> String {
    s.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

/// Who took it: the origin label this tool sets (scheduled, manual, safety).
pub fn origin_of(s: &VolumeSnapshot) -> Option<&str> {
    s.metadata
        .labels
        .as_ref()?
        .get(ORIGIN_LABEL)
        .map(String::as_str)
}

/// `backup --list`: the release's snapshots as rows.
pub async fn rows(kube: &Kube, profile: &Profile) -> Result<Vec<Listed>> {
    let current = current_data(kube, profile).await?;
    Ok(list(kube, profile)
        .await?
        .iter()
        .map(|s| listed(s, current.as_deref()))
        .collect())
}

/// Which of the release's snapshots of `origin` go when `keep` stay: all but the newest `keep`
/// of the data the volume holds now (pure; `all` newest first). Other origins, snapshots of a
/// deleted volume's data (kept on purpose by uninstall) and snapshots without the release's
/// labels, never.
pub fn beyond(
    all: &[VolumeSnapshot],
    origin: Origin,
    keep: usize,
    current: Option<&str>,
) -> Vec<String> {
    all.iter()
        .filter(|s| origin_of(s) == Some(origin.as_str()) && of_data(s, current))
        .skip(keep)
        .filter_map(|s| s.metadata.name.clone())
        .collect()
}

/// Delete what [`beyond`] names; their names.
pub async fn prune(
    kube: &Kube,
    profile: &Profile,
    origin: Origin,
    keep: usize,
) -> Result<Vec<String>> {
    let current = current_data(kube, profile).await?;
    let gone = beyond(
        &list(kube, profile).await?,
        origin,
        keep,
        current.as_deref(),
    );
    let api: Api<VolumeSnapshot> = Api::namespaced(kube.client.clone(), &kube.namespace);
    for name in &gone {
        let doing = format!("deleting VolumeSnapshot {name}");
        delete_if_there(kube, &api, name, &Default::default(), &doing).await?;
    }
    Ok(gone)
}

/// What the cluster says of a VolumeSnapshotClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassState {
    Present,
    /// Missing; the classes there are.
    Missing(Vec<String>),
    /// Not allowed to list classes (they are cluster-scoped): the snapshot controller says so in
    /// a snapshot's status if the class is missing.
    Unknown,
    /// No VolumeSnapshot API (snapshot.storage.k8s.io/v1) on this cluster.
    NoApi,
}

/// Is `class` there?
pub async fn class_state(kube: &Kube, class: &str) -> Result<ClassState> {
    let api: Api<VolumeSnapshotClass> = Api::all(kube.client.clone());
    let classes = match api.list(&ListParams::default()).await {
        Ok(c) => c,
        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(ClassState::Unknown),
        Err(e) if is_not_found(&e) => return Ok(ClassState::NoApi),
        Err(e) => return Err(api_error(e, "listing VolumeSnapshotClasses", &kube.server)),
    };
    let names: Vec<String> = classes
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    Ok(if names.iter().any(|n| n == class) {
        ClassState::Present
    } else {
        ClassState::Missing(names)
    })
}

/// The refusal for a missing class: which there are, and `what_else` to try besides
/// `--create-snapshot-class`.
pub fn missing_class(
    class: &str,
    existing: &[String],
    driver: &str,
    what_else: &str,
) -> anyhow::Error {
    let existing = if existing.is_empty() {
        "there are none".to_string()
    } else {
        format!("existing: {}", existing.join(", "))
    };
    user_error(format!(
        "VolumeSnapshotClass `{class}` does not exist ({existing}); nothing was changed"
    ))
    .hint(format!(
        "add --create-snapshot-class to create it for {driver}, or {what_else}"
    ))
    .into()
}

/// Make the profile's VolumeSnapshotClass `class` (one made meanwhile for the same driver is as
/// good).
pub async fn create_class(kube: &Kube, profile: &Profile, class: &str) -> Result<()> {
    let api: Api<VolumeSnapshotClass> = Api::all(kube.client.clone());
    let wanted = crate::render::snapshot_class(
        class,
        &profile.cluster("backup --snapshot")?.snapshot.driver,
    )?;
    crate::k8s::client::create_once(
        kube,
        &api,
        &wanted,
        &format!("creating VolumeSnapshotClass {class}"),
        |there| there.driver == wanted.driver,
    )
    .await
    .context("--create-snapshot-class")?;
    Ok(())
}

/// The class must exist, or be created when asked; a cluster without the snapshot API is told so.
async fn ensure_class(
    kube: &Kube,
    profile: &Profile,
    req: &Request<'_>,
    bar: &ProgressBar,
) -> Result<bool> {
    let driver = &profile.cluster("backup --snapshot")?.snapshot.driver;
    match class_state(kube, req.class).await? {
        ClassState::Present => return Ok(false),
        ClassState::Unknown if !req.create_class => return Ok(false),
        ClassState::NoApi => {
            return Err(user_error(
                "this cluster has no VolumeSnapshot API (snapshot.storage.k8s.io/v1)",
            )
            .hint("AKS has it built in; elsewhere install the CSI external-snapshotter CRDs and controller, or back up with a dump instead of --snapshot")
            .into());
        }
        ClassState::Missing(names) if !req.create_class => {
            return Err(missing_class(
                req.class,
                &names,
                driver,
                "pick an existing one with --snapshot-class",
            ));
        }
        ClassState::Missing(_) | ClassState::Unknown => {}
    }
    bar.set_message(format!("creating VolumeSnapshotClass {}", req.class));
    create_class(kube, profile, req.class).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_names_the_release_claim_and_the_class() {
        let profile = Profile::load("dev", None).unwrap();
        let s = snapshot(&profile, "csi-azuredisk-vsc", "snap-1", Origin::Manual);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["spec"]["source"]["persistentVolumeClaimName"],
            "data-auth-postgres-dev-postgresql-0"
        );
        assert_eq!(v["spec"]["volumeSnapshotClassName"], "csi-azuredisk-vsc");
        assert_eq!(
            v["metadata"]["labels"]["app.kubernetes.io/instance"],
            "auth-postgres-dev"
        );
        // What the API server needs to recognise a CRD's object.
        assert_eq!(v["apiVersion"], "snapshot.storage.k8s.io/v1");
        assert_eq!(v["kind"], "VolumeSnapshot");
        assert_eq!(v["metadata"]["labels"]["phonebill-db/origin"], "manual");
        let c = crate::render::snapshot_class("csi-azuredisk-vsc", "disk.csi.azure.com").unwrap();
        assert_eq!(c.driver, "disk.csi.azure.com");
        assert_eq!(c.deletion_policy, "Delete");
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["apiVersion"], "snapshot.storage.k8s.io/v1");
        assert_eq!(v["kind"], "VolumeSnapshotClass");
    }

    #[test]
    fn retention_keeps_the_newest_of_one_origin_and_touches_nothing_else() {
        let profile = Profile::load("dev", None).unwrap();
        let mk = |name: &str, origin: Option<Origin>| {
            let mut s = snapshot(&profile, "c", name, origin.unwrap_or(Origin::Manual));
            if origin.is_none() {
                s.metadata.labels.as_mut().unwrap().remove(ORIGIN_LABEL);
            }
            s
        };
        // Newest first, as `list` sorts them.
        let all = vec![
            mk("s5", Some(Origin::Scheduled)),
            mk("m2", Some(Origin::Manual)),
            mk("s4", Some(Origin::Scheduled)),
            mk("safety", Some(Origin::Safety)),
            mk("s3", Some(Origin::Scheduled)),
            mk("someone-elses", None),
            mk("s2", Some(Origin::Scheduled)),
        ];
        assert_eq!(beyond(&all, Origin::Scheduled, 2, None), ["s3", "s2"]);
        assert_eq!(beyond(&all, Origin::Manual, 1, None), Vec::<String>::new());
        assert_eq!(
            beyond(&all, Origin::Scheduled, 7, None),
            Vec::<String>::new()
        );
        // Snapshots of a deleted volume's data are not the current data's to prune.
        let of = |name: &str, data: &str| {
            snapshot_of(&profile, "c", name, Origin::Scheduled, Some(data))
        };
        let all = vec![
            of("new2", "b"),
            of("new1", "b"),
            of("old2", "a"),
            of("old1", "a"),
        ];
        assert_eq!(beyond(&all, Origin::Scheduled, 1, Some("b")), ["new1"]);
        assert!(of_data(&all[0], Some("b")) && !of_data(&all[2], Some("b")));
        assert!(of_data(&mk("unmarked", Some(Origin::Manual)), Some("b")));
    }

    #[test]
    fn readiness_and_failure_come_from_the_status() {
        let mut s = snapshot(
            &Profile::load("dev", None).unwrap(),
            "c",
            "n",
            Origin::Manual,
        );
        assert!(!ready(&s) && failed(&s).is_none());
        s.status = Some(VolumeSnapshotStatus {
            ready_to_use: Some(false),
            error: Some(VolumeSnapshotError {
                message: Some("quota".into()),
                time: None,
            }),
            ..Default::default()
        });
        assert_eq!(failed(&s).as_deref(), Some("quota"));
        s.status = Some(VolumeSnapshotStatus {
            ready_to_use: Some(true),
            ..Default::default()
        });
        assert!(ready(&s));
    }
}
