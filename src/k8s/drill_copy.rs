//! A snapshot restore drill's copy: a claim made from the snapshot, a pod running the release's
//! own server on it (the StatefulSet's pod template, the database container alone, restartPolicy
//! Never, labels no Service selects), and a NetworkPolicy that lets nothing reach that pod — the
//! tool reaches it through the API server's port-forward. All three are named `<release>-drill`,
//! carry the release's labels with component `restore-drill`, and go when the drill ends; a copy
//! an earlier drill left behind is removed before a new one is made.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ObjectMeta};

use super::client::{Kube, api_error, create_once, delete_if_there};
use super::release::{pod_ready, pod_status_text, pvc_phase};
use super::snapshot::VolumeSnapshot;
use super::watches::Wake;
use crate::error::user_error;
use crate::profile::{DATA_TEMPLATE, Profile};
use crate::ui::Ui;

/// What the copy's objects carry: the release's labels, component `restore-drill` (not the
/// selector's: no Service and no policy of the release's picks them up).
pub fn labels(profile: &Profile) -> BTreeMap<String, String> {
    let mut l = profile.common_labels();
    l.insert("app.kubernetes.io/component".into(), "restore-drill".into());
    l
}

/// The three objects of a copy.
pub struct Copy {
    pub claim: PersistentVolumeClaim,
    pub pod: Pod,
    pub policy: NetworkPolicy,
}

/// The copy of `snap` (named `snap_name`) for the release whose StatefulSet is `sts` and whose
/// data volume is `live` (its class and size; else the profile's).
pub fn plan(
    profile: &Profile,
    sts: &StatefulSet,
    live: Option<&PersistentVolumeClaim>,
    snap_name: &str,
    snap: &VolumeSnapshot,
) -> Result<Copy> {
    let names = profile.names();
    profile.cluster("a snapshot restore drill")?;
    let meta = || ObjectMeta {
        name: Some(names.drill.clone()),
        namespace: Some(profile.namespace.clone()),
        labels: Some(labels(profile)),
        ..Default::default()
    };
    let claim = super::volume_restore::claim_from_snapshot(profile, meta(), live, snap_name, snap);
    let template = sts
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .ok_or_else(|| anyhow::anyhow!("StatefulSet {} has no pod template", names.stateful_set))?;
    let mut spec = template.spec.unwrap_or_default();
    // The database container alone, on the copy's claim; it runs once.
    spec.containers.retain(|c| c.name == names.container);
    if spec.containers.is_empty() {
        anyhow::bail!(
            "StatefulSet {} has no container {}",
            names.stateful_set,
            names.container
        );
    }
    let used: Vec<String> = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten().map(|m| m.name.clone()))
        .collect();
    let mut volumes: Vec<Volume> = spec
        .volumes
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| used.contains(&v.name) && v.name != DATA_TEMPLATE)
        .collect();
    volumes.push(Volume {
        name: DATA_TEMPLATE.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: names.drill.clone(),
            read_only: None,
        }),
        ..Default::default()
    });
    spec.volumes = Some(volumes);
    spec.restart_policy = Some("Never".into());
    spec.hostname = None;
    spec.subdomain = None;
    let pod = Pod {
        metadata: meta(),
        spec: Some(spec),
        status: None,
    };
    // Ingress only, and none allowed: nothing reaches the copy over the network.
    let policy = NetworkPolicy {
        metadata: meta(),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(profile)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![]),
            ..Default::default()
        }),
    };
    Ok(Copy { claim, pod, policy })
}

/// Make the copy: the policy first (the pod is never open), then the claim, then the pod.
pub async fn create(kube: &Kube, copy: &Copy) -> Result<()> {
    let doing = |what: &str| format!("making the drill's {what}");
    let policies: Api<NetworkPolicy> = Api::namespaced(kube.client.clone(), &kube.namespace);
    create_once(
        kube,
        &policies,
        &copy.policy,
        &doing("NetworkPolicy"),
        |p| p.spec == copy.policy.spec,
    )
    .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let want = copy.claim.spec.as_ref().and_then(|s| s.data_source.clone());
    create_once(kube, &claims, &copy.claim, &doing("claim"), |c| {
        c.spec.as_ref().and_then(|s| s.data_source.clone()) == want
    })
    .await?;
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    create_once(kube, &pods, &copy.pod, &doing("pod"), |p| {
        p.metadata.labels == copy.pod.metadata.labels
    })
    .await?;
    Ok(())
}

/// Until the copy's pod is ready (the server started on the restored data), within `timeout`:
/// Ok with the time it took, or the cause it is not (the claim's last warning, the pod's state).
pub async fn wait_ready(
    kube: &Kube,
    profile: &Profile,
    timeout: Duration,
    ui: &Ui,
    bar: &ProgressBar,
) -> Result<Result<Duration, String>> {
    let names = profile.names();
    let started = Instant::now();
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut wake = Wake::polling();
    let look = || async {
        let pod = pods
            .get_opt(&names.drill)
            .await
            .map_err(|e| api_error(e, &format!("reading pod {}", names.drill), &kube.server))?;
        let claim = super::release::claim(kube, &names.drill).await?;
        anyhow::Ok((pod, claim))
    };
    let waited = super::wait::poll(
        timeout,
        ui,
        bar,
        &mut wake,
        look,
        |(pod, _)| pod.as_ref().is_some_and(pod_ready) || pod.as_ref().is_some_and(ended),
        |(pod, claim)| {
            format!(
                "the drill's copy: claim {}, pod {}",
                pvc_phase(claim.as_ref()),
                pod.as_ref().map_or("not there".into(), pod_status_text)
            )
        },
    )
    .await?;
    let (pod, claim) = match waited {
        Ok((Some(p), _)) if pod_ready(&p) => return Ok(Ok(started.elapsed())),
        Ok(last) => last,
        Err(t) => t.last,
    };
    let mut cause = match (&claim, &pod) {
        (Some(c), _) if pvc_phase(Some(c)) != "Bound" => {
            format!("its claim from the snapshot is {}", pvc_phase(Some(c)))
        }
        (_, Some(p)) => format!("its pod is {}", pod_status_text(p)),
        _ => "its pod was not made".into(),
    };
    // The claim's and pod's last warning says why, where events may be read (the drill
    // schedule's Role may not list them).
    let events = super::release::events(kube, &names, std::slice::from_ref(&names.drill))
        .await
        .unwrap_or_default();
    if let Some(e) = events
        .iter()
        .rev()
        .find(|e| e.type_.as_deref() == Some("Warning"))
    {
        cause.push_str(&format!(
            " ({}: {})",
            e.reason.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default()
        ));
    }
    if !ended_pod(&pod) {
        cause.push_str(&format!(
            "; not ready after {}",
            humantime::format_duration(Duration::from_secs(timeout.as_secs()))
        ));
    }
    Ok(Err(cause))
}

/// The pod stopped for good (restartPolicy Never: its server exited).
fn ended(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed") | Some("Succeeded")
    )
}

fn ended_pod(p: &Option<Pod>) -> bool {
    p.as_ref().is_some_and(ended)
}

/// Remove the copy (pod, claim, policy) and wait until the pod and the claim are gone; Ok(false)
/// when there was nothing to remove.
pub async fn remove(kube: &Kube, profile: &Profile, timeout: Duration) -> Result<bool> {
    let names = profile.names();
    let name = &names.drill;
    let bg = DeleteParams::background();
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let policies: Api<NetworkPolicy> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let doing = |what: &str| format!("removing the drill's {what} {name}");
    let mut any = delete_if_there(kube, &pods, name, &bg, &doing("pod")).await?;
    any |= delete_if_there(kube, &claims, name, &bg, &doing("claim")).await?;
    let started = Instant::now();
    loop {
        let pod = pods
            .get_opt(name)
            .await
            .map_err(|e| api_error(e, &doing("pod"), &kube.server))?;
        let claim = super::release::claim(kube, name).await?;
        if pod.is_none() && claim.is_none() {
            break;
        }
        if started.elapsed() >= timeout {
            return Err(user_error(format!(
                "the drill's copy is still there after {}: {}",
                humantime::format_duration(Duration::from_secs(timeout.as_secs())),
                [
                    pod.map(|_| format!("pod {name}")),
                    claim.map(|_| format!("claim {name}"))
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" and ")
            ))
            .hint("the next drill removes it; `phonebill-db status` shows it meanwhile")
            .exit(crate::error::ExitCode::Timeout)
            .into());
        }
        tokio::time::sleep(super::watches::POLL_INTERVAL).await;
    }
    // Last: the pod it kept closed is gone.
    any |= delete_if_there(kube, &policies, name, &bg, &doing("NetworkPolicy")).await?;
    Ok(any)
}
