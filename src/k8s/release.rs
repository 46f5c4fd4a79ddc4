//! What a release looks like on the cluster right now: one read of every object it consists of.

use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::client::{Kube, api_error};
use crate::profile::{Names, Profile};

#[derive(Debug, Clone, Default)]
pub struct ReleaseState {
    pub stateful_set: Option<StatefulSet>,
    pub pods: Vec<Pod>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub services: Vec<Service>,
    /// Names of the release's Secrets that exist.
    pub secrets: Vec<String>,
    /// Events about the StatefulSet, its pods and PVCs, oldest first.
    pub events: Vec<Event>,
}

/// Read the release's objects (by name and by label) from the namespace.
pub async fn observe(kube: &Kube, profile: &Profile) -> Result<ReleaseState> {
    let names = profile.names();
    let c = kube.client.clone();
    let ns = kube.namespace.as_str();
    let err = |what: &str| {
        let doing = format!("reading {what} in namespace {ns}");
        move |e| api_error(e, &doing, &kube.server)
    };
    let by_instance =
        ListParams::default().labels(&format!("app.kubernetes.io/instance={}", profile.release));
    let stateful_set = Api::<StatefulSet>::namespaced(c.clone(), ns)
        .get_opt(&names.stateful_set)
        .await
        .map_err(err("statefulsets"))?;
    let pods = Api::<Pod>::namespaced(c.clone(), ns)
        .list(&by_instance)
        .await
        .map_err(err("pods"))?
        .items;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(c.clone(), ns)
        .list(&by_instance)
        .await
        .map_err(err("persistentvolumeclaims"))?
        .items;
    let services = Api::<Service>::namespaced(c.clone(), ns)
        .list(&by_instance)
        .await
        .map_err(err("services"))?
        .items;
    let secret_api = Api::<Secret>::namespaced(c.clone(), ns);
    let mut secrets = Vec::new();
    for name in [&names.admin_secret, &names.app_secret] {
        if secret_api
            .get_metadata_opt(name)
            .await
            .map_err(err("secrets"))?
            .is_some()
        {
            secrets.push(name.clone());
        }
    }
    let involved: Vec<String> = pods
        .iter()
        .map(|p| p.name_any())
        .chain(pvcs.iter().map(|p| p.name_any()))
        .collect();
    let events = events(kube, &names, &involved).await?;
    Ok(ReleaseState {
        stateful_set,
        pods,
        pvcs,
        services,
        secrets,
        events,
    })
}

/// The namespace's events about the release's StatefulSet, its pod and claim by name, and
/// the objects named in `also` (its pods and claims as listed), oldest first.
pub async fn events(kube: &Kube, names: &Names, also: &[String]) -> Result<Vec<Event>> {
    let mut events = Api::<Event>::namespaced(kube.client.clone(), &kube.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!("reading events in namespace {}", kube.namespace),
                &kube.server,
            )
        })?
        .items;
    let involved =
        |n: &String| [&names.stateful_set, &names.pvc, &names.pod].contains(&n) || also.contains(n);
    events.retain(|e| e.involved_object.name.as_ref().is_some_and(involved));
    events.sort_by_key(event_time);
    Ok(events)
}

pub fn event_time(e: &Event) -> String {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
        })
        .unwrap_or_default()
}

impl ReleaseState {
    pub fn is_empty(&self) -> bool {
        self.stateful_set.is_none()
            && self.pods.is_empty()
            && self.pvcs.is_empty()
            && self.services.is_empty()
    }

    /// The release's database pod, when it is running (what the thresholds are read from).
    pub fn running_pod(&self, names: &Names) -> Option<&Pod> {
        self.pods.iter().find(|p| {
            p.metadata.name.as_ref() == Some(&names.pod)
                && p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
    }

    pub fn pvc(&self, names: &Names) -> Option<&PersistentVolumeClaim> {
        self.pvcs.iter().find(|p| p.name_any() == names.pvc)
    }
}

/// Phase of a PVC ("Pending", "Bound", …), or "Missing".
pub fn pvc_phase(pvc: Option<&PersistentVolumeClaim>) -> String {
    pvc.map(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into())
    })
    .unwrap_or_else(|| "Missing".into())
}

/// Is the pod's Ready condition true?
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod's phase with the most telling container reason, like kubectl's STATUS column.
pub fn pod_status_text(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    if pod.metadata.deletion_timestamp.is_some() {
        return "Terminating".into();
    }
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| {
            c.state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .and_then(|w| w.reason.clone())
        });
    waiting.unwrap_or_else(|| {
        status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into())
    })
}

/// Containers ready / total, e.g. "1/2".
pub fn pod_ready_count(pod: &Pod) -> String {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let total = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let ready = statuses.map_or(0, |cs| cs.iter().filter(|c| c.ready).count());
    format!("{ready}/{total}")
}

pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

/// The StatefulSet the profile names (the one holding the data), if it exists.
/// The claim `name` of the namespace, if it exists.
pub async fn claim(kube: &Kube, name: &str) -> Result<Option<PersistentVolumeClaim>> {
    Api::<PersistentVolumeClaim>::namespaced(kube.client.clone(), &kube.namespace)
        .get_opt(name)
        .await
        .map_err(|e| api_error(e, &format!("reading claim {name}"), &kube.server))
}

pub async fn live_statefulset(kube: &Kube, profile: &Profile) -> Result<Option<StatefulSet>> {
    let name = profile.names().stateful_set;
    Api::<StatefulSet>::namespaced(kube.client.clone(), &kube.namespace)
        .get_opt(&name)
        .await
        .map_err(|e| api_error(e, &format!("reading StatefulSet {name}"), &kube.server))
}

/// What the running release runs with, by the profile's keys (`image`, `metrics.image`,
/// `snapshots.image`, `networkPolicy.enabled`, `networkPolicy.allowFromPodLabels.K`,
/// `metrics.scraperNamespaces[i]`), read from its StatefulSet (`live`), CronJob and NetworkPolicy.
/// What cannot be read is left out.
pub async fn running_values(
    kube: &Kube,
    profile: &Profile,
    live: Option<&StatefulSet>,
) -> std::collections::BTreeMap<String, String> {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let names = profile.names();
    let mut out = std::collections::BTreeMap::new();
    let containers = live
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.clone())
        .unwrap_or_default();
    for c in &containers {
        let key = if c.name == names.container {
            "image"
        } else if c.name == "metrics" {
            "metrics.image"
        } else {
            continue;
        };
        if let Some(image) = &c.image {
            out.insert(key.to_string(), image.clone());
        }
    }
    let jobs: Api<CronJob> = Api::namespaced(kube.client.clone(), &kube.namespace);
    if let Ok(Some(cj)) = jobs.get_opt(&names.snapshot_schedule).await
        && let Some(image) = cj
            .spec
            .and_then(|s| s.job_template.spec)
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers.into_iter().next())
            .and_then(|c| c.image)
    {
        out.insert("snapshots.image".into(), image);
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(kube.client.clone(), &kube.namespace);
    if let Ok(policy) = policies.get_opt(&names.network_policy).await {
        out.insert("networkPolicy.enabled".into(), policy.is_some().to_string());
        let rules = policy
            .and_then(|p| p.spec)
            .and_then(|s| s.ingress)
            .unwrap_or_default();
        let peers = |i: usize| {
            rules
                .get(i)
                .and_then(|r| r.from.clone())
                .unwrap_or_default()
        };
        for peer in peers(0) {
            for (k, v) in peer
                .pod_selector
                .and_then(|s| s.match_labels)
                .unwrap_or_default()
            {
                out.insert(format!("networkPolicy.allowFromPodLabels.{k}"), v);
            }
        }
        for (i, peer) in peers(1).into_iter().enumerate() {
            if let Some(ns) = peer
                .namespace_selector
                .and_then(|s| s.match_labels)
                .and_then(|l| l.get("kubernetes.io/metadata.name").cloned())
            {
                out.insert(format!("metrics.scraperNamespaces[{i}]"), ns);
            }
        }
    }
    out
}
