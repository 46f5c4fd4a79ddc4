//! Growing the data volume: the claim's request, then the StatefulSet made again with the new
//! size in its volume template (its pod left running: deleted with orphan propagation, the same
//! pod template applied, the pod adopted), then the CSI resizer waited for — online, or offline,
//! where the file system grows only when a pod mounts the volume again (the pod is restarted
//! then, and the report says so). Each step is idempotent: an interrupted resize is finished by
//! running it again.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PropagationPolicy};
use serde::Serialize;
use serde_json::json;

use super::apply::{self, ApplyOptions};
use super::client::{Kube, api_error, delete_if_there};
use super::watches::Wake;
use super::{release, wait};
use crate::error::{ExitCode, user_error};
use crate::profile::rules::quantity;
use crate::profile::{DATA_TEMPLATE, Profile};
use crate::ui::Ui;

/// What is asked and what is there, checked before anything changes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub claim: String,
    pub class: String,
    /// The claim's request now.
    pub from: String,
    pub to: String,
    /// Nothing to do: the claim, the StatefulSet's template and the volume have the size.
    pub done: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resized {
    #[serde(flatten)]
    pub plan: Plan,
    /// The volume's size now (the claim's capacity).
    pub capacity: String,
    /// The StatefulSet was made again with the new volume template.
    pub stateful_set_recreated: bool,
    /// Offline expansion: the pod restarted so that the file system grows (its name).
    pub pod_restarted: Option<String>,
    pub seconds: f64,
}

fn size_of(q: Option<&Quantity>) -> String {
    q.map(|q| q.0.clone()).unwrap_or_default()
}

fn request(claim: &PersistentVolumeClaim) -> String {
    size_of(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage")),
    )
}

fn capacity(claim: &PersistentVolumeClaim) -> String {
    size_of(
        claim
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage")),
    )
}

/// The StatefulSet's volume claim template of the data volume.
fn data_template(sts: &StatefulSet) -> Option<&PersistentVolumeClaim> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|t| t.metadata.name.as_deref() == Some(DATA_TEMPLATE))
}

/// The size in the StatefulSet's data volume template.
fn template_size(sts: &StatefulSet) -> Option<String> {
    data_template(sts).map(request)
}

fn bytes(q: &str) -> f64 {
    quantity(q).unwrap_or(0.0)
}

/// The data volume's size and class, when the claim is there without its StatefulSet (kept by
/// uninstall).
#[derive(Debug, Clone)]
pub struct KeptVolume {
    pub size: String,
    pub class: String,
}

/// [`KeptVolume`] of a release without its StatefulSet, if its claim is there; a
/// `--storage-class` of another class is refused (the data is on the claim's).
pub async fn kept_volume(
    kube: &Kube,
    profile: &Profile,
    storage_class: Option<&str>,
) -> Result<Option<KeptVolume>> {
    let names = profile.names();
    let Some(claim) = release::claim(kube, &names.pvc).await? else {
        return Ok(None);
    };
    let class = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    if let Some(flag) = storage_class.filter(|f| !class.is_empty() && *f != class) {
        return Err(user_error(format!(
            "--storage-class {flag}: the data volume {} kept from before is on {class}; nothing was changed",
            names.pvc
        ))
        .hint(format!(
            "leave out --storage-class (or give {class}); another class means a new volume: backup, uninstall --delete-data, install, restore"
        ))
        .exit(ExitCode::Usage)
        .into());
    }
    let size = request(&claim);
    Ok((!size.is_empty() && !class.is_empty()).then_some(KeptVolume { size, class }))
}

/// What install must refuse before applying: a profile whose data volume differs from the one
/// the release's StatefulSet was made with (volume templates cannot change). `None`: the same.
pub fn volume_change(sts: &StatefulSet, profile: &Profile) -> Option<anyhow::Error> {
    let cluster = profile.cluster.as_ref()?;
    let t = data_template(sts)?;
    let size = request(t);
    let class = t
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let want = &cluster.storage;
    let refuse = |what: String, hint: String| {
        Some(
            user_error(format!(
                "{what}: a StatefulSet's volume template cannot change; nothing was changed"
            ))
            .hint(hint)
            .exit(ExitCode::Usage)
            .into(),
        )
    };
    if class != want.class_name {
        return refuse(
            format!(
                "storage.className is {} but the release's volume is on {class}",
                want.class_name
            ),
            format!(
                "keep storage.className {class} (`--storage-class {class}`); another class means a new volume: backup, uninstall --delete-data, install, restore"
            ),
        );
    }
    if bytes(&size) < bytes(&want.size) {
        return refuse(
            format!(
                "storage.size is {} but the release's volume was made with {size}",
                want.size
            ),
            format!(
                "`phonebill-db resize --storage {}` grows the volume and records the size; then install",
                want.size
            ),
        );
    }
    if bytes(&size) > bytes(&want.size) {
        return refuse(
            format!(
                "storage.size is {} but the release's volume has {size}",
                want.size
            ),
            format!(
                "a volume cannot shrink: keep storage.size at {size} (`install --reset-values` drops recorded values; check --values)"
            ),
        );
    }
    None
}

/// Refusals before any change: no claim, a smaller size, a class that cannot expand.
pub async fn plan(kube: &Kube, profile: &Profile, to: &str, ui: &Ui) -> Result<Plan> {
    let names = profile.names();
    let claim = release::claim(kube, &names.pvc).await?.ok_or_else(|| {
        user_error(format!(
            "release {} has no data volume (claim {}) in namespace {}; nothing was changed",
            profile.release, names.pvc, kube.namespace
        ))
        .hint("install it first (`phonebill-db install`), or give -n NAMESPACE")
    })?;
    // The API server lets a claim's request change only once it is Bound; a class that binds on
    // first use (WaitForFirstConsumer: AKS's and the plan's) binds when the pod is scheduled.
    let phase = super::release::pvc_phase(Some(&claim));
    if phase != "Bound" {
        return Err(user_error(format!(
            "claim {} is {phase}, not bound to a volume yet: a claim grows only once its volume exists; nothing was changed",
            names.pvc
        ))
        .hint("its class binds it when the database pod is scheduled: `phonebill-db status` says why the pod waits; before there is data, `install` with `storage.size` in --values sets the size")
        .into());
    }
    let from = request(&claim);
    if bytes(to) < bytes(&from) {
        return Err(user_error(format!(
            "claim {} has {from}; {to} is smaller and a volume cannot shrink; nothing was changed",
            names.pvc
        ))
        .hint(format!("give a size of at least {from}; to make it smaller: backup, uninstall --delete-data, install with the size, restore"))
        .exit(ExitCode::Usage)
        .into());
    }
    let class = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    match Api::<StorageClass>::all(kube.client.clone())
        .get_opt(&class)
        .await
    {
        Ok(Some(sc)) if sc.allow_volume_expansion == Some(true) => {}
        Ok(_) => {
            return Err(user_error(format!(
                "StorageClass {class} of claim {} does not allow volume expansion (allowVolumeExpansion is not true); nothing was changed",
                names.pvc
            ))
            .hint("a cluster admin can set allowVolumeExpansion: true on the class (AKS's built-in classes and the plan's have it); moving to another class is backup, uninstall --delete-data, install, restore")
            .exit(ExitCode::Usage)
            .into());
        }
        // Not allowed to read classes: the API server's admission says it if the class cannot.
        Err(kube::Error::Api(s)) if s.code == 403 => ui.note(
            None,
            format!("warning: not allowed to read StorageClass {class}; cannot check that it allows expansion"),
        ),
        Err(e) => {
            return Err(api_error(
                e,
                &format!("reading StorageClass {class}"),
                &kube.server,
            ));
        }
    }
    let sts = super::release::live_statefulset(kube, profile).await?;
    let in_template = sts.as_ref().and_then(template_size);
    let done = bytes(&from) == bytes(to)
        && in_template.is_some_and(|t| bytes(&t) == bytes(to))
        && bytes(&capacity(&claim)) >= bytes(to);
    Ok(Plan {
        claim: names.pvc,
        class,
        from,
        to: to.to_string(),
        done,
    })
}

/// Grow the volume to `plan.to`. `render` gives the StatefulSet as install renders it with the new
/// size (`None` when that would also change its pod, e.g. a certificate due for renewal: then the
/// live one is copied with the new volume template).
pub async fn run(
    kube: &Kube,
    profile: &Profile,
    plan: Plan,
    timeout: Duration,
    ui: &Ui,
    render: impl AsyncFnOnce() -> Result<Option<StatefulSet>>,
) -> Result<Resized> {
    let started = Instant::now();
    let names = profile.names();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let sets: Api<StatefulSet> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let params = PatchParams {
        field_manager: Some(apply::FIELD_MANAGER.into()),
        ..Default::default()
    };
    let bar = ui.spinner(format!("growing claim {} to {}", plan.claim, plan.to));

    // 1. The claim asks for the new size (the resizer starts on it).
    claims
        .patch(
            &plan.claim,
            &params,
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": plan.to}}}})),
        )
        .await
        .map_err(|e| api_error(e, &format!("growing claim {}", plan.claim), &kube.server))?;

    // 2. The StatefulSet with the new volume template (immutable: made again, its pod kept).
    let mut wake = Wake::release(kube, profile);
    let next = match release::live_statefulset(kube, profile).await? {
        Some(sts) if template_size(&sts).is_some_and(|t| bytes(&t) == bytes(&plan.to)) => None,
        Some(sts) => {
            let next = render().await?.unwrap_or_else(|| with_size(&sts, &plan.to));
            bar.set_message(format!(
                "making StatefulSet {} again with a {} volume template (its pod keeps running)",
                names.stateful_set, plan.to
            ));
            let orphan = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Orphan),
                ..Default::default()
            };
            let doing = format!("deleting StatefulSet {} (orphaning its pod)", names.stateful_set);
            delete_if_there(kube, &sets, &names.stateful_set, &orphan, &doing).await?;
            let gone = wait::poll(
                timeout,
                ui,
                &bar,
                &mut wake,
                || release::live_statefulset(kube, profile),
                Option::is_none,
                |_| format!("waiting for StatefulSet {} to go", names.stateful_set),
            )
            .await?;
            if gone.is_err() {
                return Err(timed_out(&format!("StatefulSet {} to go", names.stateful_set), timeout));
            }
            Some(next)
        }
        None => Some(render().await?.ok_or_else(|| {
            user_error(format!(
                "StatefulSet {} is missing and its server certificate is due for renewal; nothing more was changed",
                names.stateful_set
            ))
            .hint("run `phonebill-db install` (it renews the certificate and makes the StatefulSet), then resize again")
        })?),
    };
    let recreated = next.is_some();
    if let Some(next) = next {
        apply::apply_typed(kube, sets.clone(), &next, ApplyOptions::default()).await?;
    }

    // 3. The resizer: online, or the file system waits for a pod to mount the volume again.
    let mut restarted = None;
    loop {
        let claim = claims
            .get(&plan.claim)
            .await
            .map_err(|e| api_error(e, &format!("reading claim {}", plan.claim), &kube.server))?;
        let has = capacity(&claim);
        if bytes(&has) >= bytes(&plan.to) {
            break;
        }
        let pending = claim
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "FileSystemResizePending" && c.status == "True")
            });
        if pending && restarted.is_none() {
            ui.note(
                Some(&bar),
                format!(
                    "the volume grew; its file system grows when it is mounted again (offline expansion): restarting pod {}",
                    names.pod
                ),
            );
            Api::<Pod>::namespaced(kube.client.clone(), &kube.namespace)
                .delete(&names.pod, &DeleteParams::default())
                .await
                .map_err(|e| {
                    api_error(e, &format!("restarting pod {}", names.pod), &kube.server)
                })?;
            restarted = Some(names.pod.clone());
        }
        bar.set_message(format!(
            "waiting for claim {} to grow to {} (now {has}{})",
            plan.claim,
            plan.to,
            if pending { ", file system pending" } else { "" }
        ));
        if started.elapsed() >= timeout {
            let why = release::observe(kube, profile)
                .await
                .ok()
                .and_then(|s| {
                    s.events
                        .iter()
                        .rev()
                        .find(|e| {
                            e.type_.as_deref() == Some("Warning")
                                && e.involved_object.name.as_deref() == Some(&plan.claim)
                        })
                        .and_then(|e| e.message.clone())
                })
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            bar.finish_and_clear();
            return Err(user_error(format!(
                "timed out after {} waiting for claim {} to grow to {} (it has {has}){why}",
                humantime::format_duration(Duration::from_secs(timeout.as_secs())),
                plan.claim,
                plan.to
            ))
            .hint("the request stays: the resizer goes on trying; `phonebill-db resize` again waits for it, `kubectl describe pvc` shows its events")
            .exit(ExitCode::Timeout)
            .into());
        }
        wake.sleep(Duration::from_secs(2)).await;
    }

    // 4. The release as install leaves it: rolled out (at once unless the pod restarted).
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(1));
    let ready = wait::rollout(kube, profile, left, ui, &bar, &mut wake).await?;
    bar.finish_and_clear();
    if ready.is_err() {
        return Err(timed_out(
            &format!("{} to be ready after the resize", names.stateful_set),
            timeout,
        ));
    }
    let claim = claims
        .get(&plan.claim)
        .await
        .map_err(|e| api_error(e, &format!("reading claim {}", plan.claim), &kube.server))?;
    Ok(Resized {
        capacity: capacity(&claim),
        plan,
        stateful_set_recreated: recreated,
        pod_restarted: restarted,
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
}

/// The StatefulSet to apply: the live one's spec with `size` in the volume template, without
/// what the server keeps (status, uid, resourceVersion, managedFields).
fn with_size(sts: &StatefulSet, size: &str) -> StatefulSet {
    let mut spec = sts.spec.clone().unwrap_or_default();
    for t in spec.volume_claim_templates.iter_mut().flatten() {
        if t.metadata.name.as_deref() == Some(DATA_TEMPLATE)
            && let Some(resources) = t.spec.as_mut().and_then(|s| s.resources.as_mut())
        {
            resources
                .requests
                .get_or_insert_with(Default::default)
                .insert("storage".into(), Quantity(size.into()));
        }
    }
    StatefulSet {
        metadata: ObjectMeta {
            name: sts.metadata.name.clone(),
            namespace: sts.metadata.namespace.clone(),
            labels: sts.metadata.labels.clone(),
            annotations: sts.metadata.annotations.clone(),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn timed_out(what: &str, after: Duration) -> anyhow::Error {
    user_error(format!(
        "timed out after {} waiting for {what}",
        humantime::format_duration(Duration::from_secs(after.as_secs()))
    ))
    .hint("run the same resize again: it goes on from where it stopped")
    .exit(ExitCode::Timeout)
    .into()
}
