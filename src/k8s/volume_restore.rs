//! `restore --snapshot`: bring the data volume back from a VolumeSnapshot (dev physical
//! architecture 11.1, `az disk create --source <snapshot>`, without the portal).
//!
//! The steps, each one idempotent, so that a re-run of the same command after Ctrl-C (or a lost
//! connection) completes what was started:
//! 1. check the snapshot (this release's, ready) and the class (snapshots of this driver);
//! 2. a safety snapshot of the volume as it is, until ready (kept, labelled `safety`);
//! 3. record the restore on the StatefulSet (annotation `phonebill-db/restore`);
//! 4. scale the StatefulSet to 0 and wait until the pod is gone;
//! 5. replace the claim with one whose dataSource is the snapshot (same class, size ≥ the
//!    snapshot's restoreSize);
//! 6. scale to 1 and wait for the rollout, as install does;
//! 7. on a failure after the old claim went: the same with the safety snapshot, then fail naming
//!    both — the release is never left without a data volume;
//! 8. forget the record. The caller then runs the verify checks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod,
    TypedLocalObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{Kube, api_error, delete_if_there};
use super::snapshot::{self, Origin, VolumeSnapshot, VolumeSnapshotClass};
use super::wait;
use super::watches::Wake;
use crate::error::{ExitCode, user_error};
use crate::profile::Profile;
use crate::ui::Ui;

/// The StatefulSet's annotation that records a restore under way.
pub const ANNOTATION: &str = "phonebill-db/restore";
/// The field manager of the restore's own writes (scale, annotation).
const MANAGER: &str = "phonebill-db-restore";

/// What the annotation records: enough to finish, or undo, after an interruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub snapshot: String,
    pub safety: Option<String>,
    /// The PersistentVolume the old claim was bound to.
    pub old_volume: Option<String>,
    pub started: String,
}

/// One step's time, and how much of it was waiting on the cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub step: String,
    pub seconds: f64,
    pub waited_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    pub snapshot: String,
    pub snapshot_created: String,
    pub claim: String,
    pub safety_snapshot: Option<String>,
    /// The volume the old claim had, and what became of it (Released with Retain, gone with Delete).
    pub old_volume: Option<String>,
    pub old_volume_phase: Option<String>,
    pub resumed: bool,
    pub steps: Vec<Step>,
    pub seconds: f64,
    /// `seconds` less the waits on the cluster: the tool's own time.
    pub tool_seconds: f64,
}

pub struct Request {
    pub no_safety_snapshot: bool,
    pub timeout: Duration,
}

struct Clock {
    started: Instant,
    steps: Vec<Step>,
    step_started: Instant,
    waited: Duration,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            started: Instant::now(),
            steps: vec![],
            step_started: Instant::now(),
            waited: Duration::ZERO,
        }
    }
    fn done(&mut self, step: &str) {
        self.steps.push(Step {
            step: step.into(),
            seconds: round(self.step_started.elapsed()),
            waited_seconds: round(self.waited),
        });
        self.step_started = Instant::now();
        self.waited = Duration::ZERO;
    }
    fn waited(&mut self, d: Duration) {
        self.waited += d;
    }
}

/// The waits of a restore: progress on the bar, the time counted as waiting, a timeout that says
/// what was awaited.
struct Waiting<'a> {
    req: &'a Request,
    ui: &'a Ui,
    bar: &'a ProgressBar,
}

impl Waiting<'_> {
    /// Until `done` holds for what `observe` reads; `what` as in "waiting for WHAT".
    async fn until<T, F, Fut>(
        &self,
        what: &str,
        wake: &mut Wake,
        clock: &mut Clock,
        observe: F,
        done: impl Fn(&T) -> bool,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let text = format!("waiting for {what}");
        self.bar.set_message(text.clone());
        let started = Instant::now();
        let outcome = wait::poll(
            self.req.timeout,
            self.ui,
            self.bar,
            wake,
            observe,
            done,
            |_| text.clone(),
        )
        .await?;
        clock.waited(started.elapsed());
        match outcome {
            Ok(_) => Ok(()),
            Err(_) => Err(timeout(what, self.req.timeout)),
        }
    }
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// The snapshot a restore reads: by name, or `latest` (the newest ready scheduled or manual one).
pub async fn resolve(kube: &Kube, profile: &Profile, name: &str) -> Result<VolumeSnapshot> {
    let api: Api<VolumeSnapshot> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let found = if name == "latest" {
        let claim = profile.names().pvc;
        let current = snapshot::current_data(kube, profile).await?;
        snapshot::list(kube, profile).await?.into_iter().find(|s| {
            snapshot::ready(s)
                && source_claim(s) == Some(claim.as_str())
                && snapshot::of_data(s, current.as_deref())
                && snapshot::origin_of(s).is_some_and(|o| o != Origin::Safety.as_str())
        })
    } else {
        api.get_opt(name)
            .await
            .map_err(|e| api_error(e, &format!("reading VolumeSnapshot {name}"), &kube.server))?
    };
    found.ok_or_else(|| {
        user_error(if name == "latest" {
            format!(
                "release {} has no ready snapshot to restore; nothing was changed",
                profile.release
            )
        } else {
            format!(
                "VolumeSnapshot {name} does not exist in namespace {}; nothing was changed",
                kube.namespace
            )
        })
        .hint("`phonebill-db backup --list` shows the release's snapshots")
        .exit(ExitCode::Usage)
        .into()
    })
}

/// Refusals before anything changes: not ready, failed, another release's, a class that cannot.
pub async fn check(
    kube: &Kube,
    profile: &Profile,
    snap: &VolumeSnapshot,
    force_foreign: bool,
) -> Result<()> {
    let name = snap.metadata.name.clone().unwrap_or_default();
    let labels = snap.metadata.labels.clone().unwrap_or_default();
    let ours = labels.get("app.kubernetes.io/instance") == Some(&profile.release)
        && labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str)
            == Some(crate::profile::MANAGED_BY);
    if !ours && !force_foreign {
        return Err(user_error(format!(
            "VolumeSnapshot {name} is not one of release {}'s (it has not its labels); nothing was changed",
            profile.release
        ))
        .hint("restore one of the release's own (`backup --list`), or add --force-foreign if you mean it")
        .exit(ExitCode::Usage)
        .into());
    }
    // An upgrade moved the data to another claim, of another major version: the old claim's
    // snapshots hold data the running server cannot start on.
    let claim = profile.names().pvc;
    if ours && let Some(source) = source_claim(snap).filter(|s| *s != claim) {
        return Err(user_error(format!(
            "VolumeSnapshot {name} is of claim {source}, not of the release's data volume {claim} (an upgrade moved the data to another major version); nothing was changed"
        ))
        .hint("restore a snapshot of the current volume (`backup --list`), or a backup file into the new version (`restore --from`)")
        .exit(ExitCode::Usage)
        .into());
    }
    // A snapshot of a volume `uninstall --delete-data` deleted: the release's volume now is
    // another one (a new install's). Bringing that data back is a choice, not a default.
    let current = snapshot::current_data(kube, profile).await?;
    if ours && !force_foreign && !snapshot::of_data(snap, current.as_deref()) {
        return Err(user_error(format!(
            "VolumeSnapshot {name} holds the data of a volume that was deleted (uninstall --delete-data), not of the release's volume now; nothing was changed"
        ))
        .hint("add --force-foreign to bring that data back over the current volume (its safety snapshot is taken first); `backup --list` shows which snapshots are of the current data")
        .exit(ExitCode::Usage)
        .into());
    }
    if !snapshot::ready(snap) {
        let why =
            snapshot::failed(snap).map_or("not ready to use".into(), |e| format!("not ready: {e}"));
        return Err(user_error(format!(
            "VolumeSnapshot {name} is {why}; nothing was changed"
        ))
        .hint("wait until it is ready (`backup --list`), or restore another one")
        .exit(ExitCode::ChecksFailed)
        .into());
    }
    // Snapshots of one CSI driver make volumes of that driver only.
    let class_name = snap
        .spec
        .volume_snapshot_class_name
        .clone()
        .unwrap_or_default();
    let cluster = profile.cluster("restore --snapshot")?;
    let classes: Api<VolumeSnapshotClass> = Api::all(kube.client.clone());
    let storage: Api<StorageClass> = Api::all(kube.client.clone());
    if let (Ok(Some(vsc)), Ok(Some(sc))) = (
        classes.get_opt(&class_name).await,
        storage.get_opt(&cluster.storage.class_name).await,
    ) && vsc.driver != sc.provisioner
    {
        return Err(user_error(format!(
            "StorageClass {} ({}) cannot make a volume from snapshot {name} of driver {}; nothing was changed",
            cluster.storage.class_name, sc.provisioner, vsc.driver
        ))
        .hint("restore into a class of the snapshot's driver (storage.className in a values file)")
        .exit(ExitCode::Usage)
        .into());
    }
    Ok(())
}

/// The claim a snapshot was taken of.
fn source_claim(snap: &VolumeSnapshot) -> Option<&str> {
    snap.spec.source.persistent_volume_claim_name.as_deref()
}

/// The StorageClass's reclaim policy of the release's claim (None: cannot be read).
pub async fn reclaim_policy(kube: &Kube, class: &str) -> Option<String> {
    Api::<StorageClass>::all(kube.client.clone())
        .get_opt(class)
        .await
        .ok()
        .flatten()
        .map(|sc| sc.reclaim_policy.unwrap_or_else(|| "Delete".into()))
}

/// The restore under way, if the StatefulSet records one.
pub async fn recorded(kube: &Kube, profile: &Profile) -> Result<Option<Record>> {
    let sts = statefulset(kube, profile).await?;
    Ok(sts
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .and_then(|v| serde_json::from_str(v).ok()))
}

async fn statefulset(kube: &Kube, profile: &Profile) -> Result<StatefulSet> {
    super::release::live_statefulset(kube, profile)
        .await?
        .ok_or_else(|| {
            user_error(format!(
                "release {} is not installed in namespace {}; nothing was changed",
                profile.release, kube.namespace
            ))
            .hint("`phonebill-db install` first")
            .into()
        })
}

/// Run the steps (see the module's doc), resuming `record` when given.
pub async fn run(
    kube: &Kube,
    profile: &Profile,
    req: &Request,
    snap: &VolumeSnapshot,
    record: Option<Record>,
    ui: &Ui,
    bar: &ProgressBar,
) -> Result<Restored> {
    let mut clock = Clock::new();
    let names = profile.names();
    let cluster = profile.cluster("restore --snapshot")?;
    let snap_name = snap.metadata.name.clone().unwrap_or_default();
    let resumed = record.is_some();
    let current = super::release::claim(kube, &names.pvc).await?;
    let from_target = current
        .as_ref()
        .is_some_and(|c| made_from(c) == Some(snap_name.as_str()));

    // 2. The safety snapshot (unless the record has one, or the volume is already the target's).
    let mut record = match record {
        Some(r) => r,
        None => Record {
            snapshot: snap_name.clone(),
            safety: None,
            old_volume: current
                .as_ref()
                .and_then(|c| c.spec.as_ref()?.volume_name.clone()),
            started: jiff::Timestamp::now().to_string(),
        },
    };
    if record.safety.is_none() && !req.no_safety_snapshot && current.is_some() && !from_target {
        let name = format!("{}-before-restore-{}", names.pvc, stamp());
        bar.set_message(format!("safety snapshot {name} of the volume as it is"));
        let class = snap
            .spec
            .volume_snapshot_class_name
            .clone()
            .unwrap_or_else(|| cluster.snapshot.class_name.clone());
        let started = Instant::now();
        snapshot::take(
            kube,
            profile,
            &snapshot::Request {
                class: &class,
                create_class: false,
                name: name.clone(),
                timeout: req.timeout,
                origin: Origin::Safety,
            },
            ui,
            bar,
        )
        .await
        .map_err(|e| e.context("taking the safety snapshot; nothing was changed"))?;
        clock.waited(started.elapsed());
        record.safety = Some(name);
    }
    clock.done("safety snapshot");

    // 3. The record, before anything is taken away.
    annotate(kube, profile, Some(&record)).await?;
    clock.done("record");

    let result = replace_volume(kube, profile, req, &snap_name, snap, &mut clock, ui, bar).await;
    if let Err(e) = result {
        // 7. Put the previous data back, from the safety snapshot.
        let Some(safety) = record.safety.clone() else {
            return Err(e.context(format!(
                "restoring from {snap_name} failed, and there is no safety snapshot; the old volume {} is kept by its Retain class: bind it back by hand",
                record.old_volume.as_deref().unwrap_or("(unknown)")
            )));
        };
        bar.set_message(format!("putting the previous data back from {safety}"));
        let api: Api<VolumeSnapshot> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let safety_snap = api
            .get(&safety)
            .await
            .map_err(|e| api_error(e, &format!("reading VolumeSnapshot {safety}"), &kube.server))?;
        kube_restore_back(
            kube,
            profile,
            req,
            &safety,
            &safety_snap,
            &mut clock,
            ui,
            bar,
        )
        .await?;
        annotate(kube, profile, None).await?;
        return Err(user_error(format!(
            "restoring from {snap_name} failed ({}); the previous data is back from the safety snapshot {safety}",
            crate::error::report(&e).error
        ))
        .hint(format!(
            "see `kubectl -n {} describe pvc {}` for why; both snapshots are kept",
            kube.namespace, names.pvc
        ))
        .into());
    }

    // 8. Done: forget the record; say what became of the old disk.
    annotate(kube, profile, None).await?;
    let old_volume_phase = match &record.old_volume {
        Some(v) => match Api::<PersistentVolume>::all(kube.client.clone())
            .get_opt(v)
            .await
        {
            Ok(Some(pv)) => pv.status.and_then(|s| s.phase).or(Some("Unknown".into())),
            Ok(None) => Some("deleted".into()),
            Err(_) => None,
        },
        None => None,
    };
    clock.done("finish");
    let total = clock.started.elapsed();
    let waited: f64 = clock.steps.iter().map(|s| s.waited_seconds).sum();
    Ok(Restored {
        snapshot: snap_name,
        snapshot_created: snapshot::created(snap),
        claim: names.pvc.clone(),
        safety_snapshot: record.safety.clone(),
        old_volume: record.old_volume.clone(),
        old_volume_phase,
        resumed,
        tool_seconds: ((round(total) - waited) * 100.0).round() / 100.0,
        seconds: round(total),
        steps: clock.steps,
    })
}

/// Steps 4–6 for `snap`: scale to 0, replace the claim, scale to 1 and wait.
#[allow(clippy::too_many_arguments)]
async fn replace_volume(
    kube: &Kube,
    profile: &Profile,
    req: &Request,
    snap_name: &str,
    snap: &VolumeSnapshot,
    clock: &mut Clock,
    ui: &Ui,
    bar: &ProgressBar,
) -> Result<()> {
    let names = profile.names();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut wake = Wake::release(kube, profile);

    // 4. No pod may hold the volume.
    scale(kube, profile, 0).await?;
    let waiting = Waiting { req, ui, bar };
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let the_pod = ListParams::default().fields(&format!("metadata.name={}", names.pod));
    waiting
        .until(
            &format!("pod {} to stop", names.pod),
            &mut wake,
            clock,
            || async {
                pods.list_metadata(&the_pod).await.map_err(|e| {
                    api_error(e, &format!("looking for pod {}", names.pod), &kube.server)
                })
            },
            |listed| listed.items.is_empty(),
        )
        .await?;
    clock.done("scale to 0");

    // 5. The claim from the snapshot (left as it is when it already is one from it).
    let current = super::release::claim(kube, &names.pvc).await?;
    if current
        .as_ref()
        .is_some_and(|c| made_from(c) != Some(snap_name))
    {
        let doing = format!("deleting claim {}", names.pvc);
        delete_if_there(kube, &claims, &names.pvc, &DeleteParams::default(), &doing).await?;
        waiting
            .until(
                &format!("claim {} to go", names.pvc),
                &mut wake,
                clock,
                || super::release::claim(kube, &names.pvc),
                |c| c.is_none(),
            )
            .await?;
    }
    if current
        .as_ref()
        .is_none_or(|c| made_from(c) != Some(snap_name))
    {
        let claim = claim_from(profile, current.as_ref(), snap_name, snap);
        // One already there is this restore's only when it is made from the snapshot (a create
        // retried after a lost answer): a claim someone else made meanwhile is not taken over.
        crate::k8s::client::create_once(
            kube,
            &claims,
            &claim,
            &format!("creating claim {} from {snap_name}", names.pvc),
            |there| made_from(there) == Some(snap_name),
        )
        .await?;
    }
    clock.done("replace the claim");

    // 6. Back to one pod, as install waits for it.
    scale(kube, profile, 1).await?;
    bar.set_message(format!(
        "waiting for {} with the restored volume",
        names.stateful_set
    ));
    let started = Instant::now();
    let ready = wait::rollout(kube, profile, req.timeout, ui, bar, &mut wake).await?;
    clock.waited(started.elapsed());
    if let Err(t) = ready {
        let classes = vec![profile.cluster("restore")?.storage.class_name.clone()];
        let why = super::diagnose::diagnose(&t.last, &names, &classes)
            .first()
            .map_or_else(|| wait::progress_text(&t.last, &names), |f| f.cause.clone());
        return Err(user_error(format!(
            "{} is not ready with the volume from {snap_name} after {}: {why}",
            names.stateful_set,
            humantime::format_duration(req.timeout)
        ))
        .exit(ExitCode::Timeout)
        .into());
    }
    clock.done("scale to 1");
    Ok(())
}

/// Step 7: the same steps with the safety snapshot.
#[allow(clippy::too_many_arguments)]
async fn kube_restore_back(
    kube: &Kube,
    profile: &Profile,
    req: &Request,
    safety: &str,
    safety_snap: &VolumeSnapshot,
    clock: &mut Clock,
    ui: &Ui,
    bar: &ProgressBar,
) -> Result<()> {
    Box::pin(replace_volume(kube, profile, req, safety, safety_snap, clock, ui, bar))
        .await
        .map_err(|e| {
            e.context(format!(
                "putting the previous data back from {safety} failed too; both snapshots are kept: restore it with `phonebill-db restore --snapshot {safety}`"
            ))
        })
}

fn timeout(what: &str, after: Duration) -> anyhow::Error {
    user_error(format!(
        "timed out after {} waiting for {what}",
        humantime::format_duration(after)
    ))
    .hint("run the same command again: it goes on from where it stopped")
    .exit(ExitCode::Timeout)
    .into()
}

/// The snapshot a claim was made from.
fn made_from(c: &PersistentVolumeClaim) -> Option<&str> {
    let ds = c.spec.as_ref()?.data_source.as_ref()?;
    (ds.kind == "VolumeSnapshot").then_some(ds.name.as_str())
}

/// The claim the StatefulSet expects, made from `snapshot`: the old claim's class, labels and
/// access modes (or the profile's), and a size at least the snapshot's restoreSize.
fn claim_from(
    profile: &Profile,
    old: Option<&PersistentVolumeClaim>,
    snapshot: &str,
    snap: &VolumeSnapshot,
) -> PersistentVolumeClaim {
    let names = profile.names();
    // The data it will hold: the snapshot's (or, unmarked, the claim's it replaces).
    let data = snapshot::data_of(snap)
        .map(str::to_string)
        .or_else(|| old.and_then(snapshot::data_of_claim));
    let meta = ObjectMeta {
        name: Some(names.pvc.clone()),
        labels: Some(profile.primary_labels()),
        annotations: data.map(|d| [(snapshot::DATA_OF.to_string(), d)].into()),
        ..Default::default()
    };
    claim_from_snapshot(profile, meta, old, snapshot, snap)
}

/// A claim (`meta`) whose data comes from `snapshot`: `like`'s class and access modes (or the
/// profile's), and the profile's size, or the snapshot's restoreSize when that is larger.
pub fn claim_from_snapshot(
    profile: &Profile,
    meta: ObjectMeta,
    like: Option<&PersistentVolumeClaim>,
    snapshot: &str,
    snap: &VolumeSnapshot,
) -> PersistentVolumeClaim {
    let cluster = profile
        .cluster
        .as_ref()
        .expect("checked: an in-cluster release");
    let like_spec = like.and_then(|o| o.spec.clone()).unwrap_or_default();
    let want = crate::profile::rules::quantity(&cluster.storage.size).unwrap_or(0.0);
    let restore_size = snap.status.as_ref().and_then(|s| s.restore_size.clone());
    let size = match restore_size {
        Some(r) if crate::profile::rules::quantity(&r).unwrap_or(0.0) > want => r,
        _ => cluster.storage.size.clone(),
    };
    PersistentVolumeClaim {
        metadata: meta,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: like_spec
                .access_modes
                .or(Some(vec!["ReadWriteOnce".into()])),
            storage_class_name: like_spec
                .storage_class_name
                .or(Some(cluster.storage.class_name.clone())),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..Default::default()
            }),
            data_source: Some(TypedLocalObjectReference {
                api_group: Some("snapshot.storage.k8s.io".into()),
                kind: "VolumeSnapshot".into(),
                name: snapshot.into(),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// Set the StatefulSet's replicas.
async fn scale(kube: &Kube, profile: &Profile, replicas: i32) -> Result<()> {
    let doing = format!(
        "scaling StatefulSet {} to {replicas}",
        profile.names().stateful_set
    );
    patch_statefulset(
        kube,
        profile,
        json!({"spec": {"replicas": replicas}}),
        &doing,
    )
    .await
}

/// Record (or forget, with None) the restore under way on the StatefulSet.
async fn annotate(kube: &Kube, profile: &Profile, record: Option<&Record>) -> Result<()> {
    let value = record.map(|r| serde_json::to_string(r).expect("a record serializes"));
    let doing = format!(
        "recording the restore on StatefulSet {}",
        profile.names().stateful_set
    );
    let patch = json!({"metadata": {"annotations": {ANNOTATION: value}}});
    patch_statefulset(kube, profile, patch, &doing).await
}

/// A merge patch of the release's StatefulSet by the restore's own field manager.
async fn patch_statefulset(
    kube: &Kube,
    profile: &Profile,
    patch: serde_json::Value,
    doing: &str,
) -> Result<()> {
    Api::<StatefulSet>::namespaced(kube.client.clone(), &kube.namespace)
        .patch(
            &profile.names().stateful_set,
            &PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(patch),
        )
        .await
        .map_err(|e| api_error(e, doing, &kube.server))?;
    Ok(())
}

fn stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dt%H%M%Sz")
        .to_string()
}
