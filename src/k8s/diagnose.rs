//! Why a release is not ready: the failures of the troubleshooting table in "Kubernetes: deploying databases", read from pod
//! status, PVC status and events, each with what to do. Pure: tests feed it observed state.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use serde::Serialize;

use super::release::{ReleaseState, pod_ready};
use crate::profile::Names;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    StorageClassMissing,
    VolumeNotProvisioned,
    Unschedulable,
    ImagePull,
    CrashLoop,
    ConfigError,
    VolumeMount,
    ProbeFailing,
    NoPod,
    Starting,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub problem: Problem,
    pub object: String,
    pub cause: String,
    pub hint: String,
}

/// Everything that keeps the release from being ready, most fundamental first.
pub fn diagnose(state: &ReleaseState, names: &Names, storage_classes: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(pvc) = state.pvc(names) {
        let phase = pvc
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        if phase == "Pending" {
            let class = pvc
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone())
                .unwrap_or_default();
            let object = format!("PersistentVolumeClaim {}", pvc.name_any());
            if !class.is_empty() && !storage_classes.contains(&class) {
                findings.push(Finding {
                    problem: Problem::StorageClassMissing,
                    object,
                    cause: format!("the volume is Pending: StorageClass `{class}` does not exist"),
                    hint: storage_class_hint(storage_classes),
                });
            } else if let Some(e) = latest(&state.events, &pvc.name_any(), &["ProvisioningFailed"])
            {
                findings.push(Finding {
                    problem: Problem::VolumeNotProvisioned,
                    object,
                    cause: format!("the volume cannot be provisioned: {}", message(e)),
                    hint: "check the StorageClass's provisioner (on AKS the Azure disk CSI driver: `kubectl -n kube-system logs -l app=csi-azuredisk-controller`) and that the access mode is ReadWriteOnce".into(),
                });
            }
        }
    }
    let pod = state.pods.iter().find(|p| p.name_any() == names.pod);
    match pod {
        None if state.stateful_set.is_some() => {
            let cause = latest(&state.events, &names.stateful_set, &["FailedCreate"])
                .map(|e| format!("the StatefulSet cannot create its pod: {}", message(e)))
                .unwrap_or_else(|| "the StatefulSet has not created its pod yet".into());
            findings.push(Finding {
                problem: Problem::NoPod,
                object: format!("StatefulSet {}", names.stateful_set),
                cause,
                hint: "check quotas and admission policies in the namespace (`kubectl describe statefulset NAME`)".into(),
            });
        }
        None => {}
        Some(pod) => findings.extend(diagnose_pod(pod, &state.events)),
    }
    findings
}

fn diagnose_pod(pod: &Pod, events: &[Event]) -> Vec<Finding> {
    let name = pod.name_any();
    let object = format!("Pod {name}");
    let mut out = Vec::new();
    let status = pod.status.clone().unwrap_or_default();
    let unscheduled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(c) = unscheduled {
        let msg = latest(events, &name, &["FailedScheduling"])
            .map(message)
            .or_else(|| c.message.clone())
            .unwrap_or_default();
        let (problem, hint) = if msg.contains("unbound") || msg.contains("PersistentVolumeClaim") {
            (Problem::VolumeNotProvisioned, "the pod waits for its volume; see the PersistentVolumeClaim finding, or `kubectl describe pvc`".to_string())
        } else {
            (
                Problem::Unschedulable,
                "no node has room for the requests: lower `resources.requests` with --values, or add nodes (`az aks nodepool scale`)".to_string(),
            )
        };
        out.push(Finding {
            problem,
            object: object.clone(),
            cause: format!("the pod cannot be scheduled: {msg}"),
            hint,
        });
        return out;
    }
    for cs in status.container_statuses.iter().flatten() {
        let container = &cs.name;
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting
            .and_then(|w| w.reason.as_deref())
            .unwrap_or_default();
        let wmsg = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
                let cause = pull_cause(events, &name, &cs.image, &wmsg);
                out.push(Finding {
                    problem: Problem::ImagePull,
                    object: object.clone(),
                    cause: format!("container {container} cannot pull image {}: {reason}: {cause}", cs.image),
                    hint: pull_hint(&cause, &cs.image),
                });
            }
            "CrashLoopBackOff" => {
                let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                let code = last.map_or(String::new(), |t| format!(" (exit code {})", t.exit_code));
                let msg = last.and_then(|t| t.message.clone()).map(|m| format!(": {m}")).unwrap_or_default();
                out.push(Finding {
                    problem: Problem::CrashLoop,
                    object: object.clone(),
                    cause: format!("container {container} keeps crashing{code}, restarted {} times{msg}", cs.restart_count),
                    hint: format!("read its log: `kubectl logs -n NAMESPACE {name} -c {container} --previous`; a permission error means securityContext runAsUser/fsGroup do not fit the image"),
                });
            }
            "CreateContainerConfigError" | "CreateContainerError" => out.push(Finding {
                problem: Problem::ConfigError,
                object: object.clone(),
                cause: format!("container {container} cannot be created: {wmsg}"),
                hint: "a Secret or ConfigMap it needs is missing or wrong; re-run `phonebill-db install`".into(),
            }),
            "ContainerCreating" | "PodInitializing" => {
                if let Some(e) = latest(events, &name, &["FailedMount", "FailedAttachVolume"]) {
                    out.push(Finding {
                        problem: Problem::VolumeMount,
                        object: object.clone(),
                        cause: format!("the volume cannot be mounted: {}", message(e)),
                        hint: "check the CSI driver and that the disk is in the node's zone (`kubectl describe pod`)".into(),
                    });
                }
            }
            _ => {}
        }
    }
    if out.is_empty() && !pod_ready(pod) {
        let running = status.phase.as_deref() == Some("Running");
        match latest(events, &name, &["Unhealthy"]) {
            Some(e) if running => out.push(Finding {
                problem: Problem::ProbeFailing,
                object,
                cause: format!("the pod runs but is not ready: {}", message(e)),
                hint: "PostgreSQL does not accept connections yet: read the log (`kubectl logs`); on slow disks raise --timeout".into(),
            }),
            _ => out.push(Finding {
                problem: Problem::Starting,
                object,
                cause: format!("the pod is still starting ({})", status.phase.unwrap_or_else(|| "Pending".into())),
                hint: "give it more time with --timeout, or see `kubectl describe pod`".into(),
            }),
        }
    }
    out
}

/// Why an image does not pull. The kubelet says it once, in the event "Failed to pull image
/// …: rpc error: …"; its later events only name the state ("Error: ImagePullBackOff"), and the
/// container status keeps the cause in its waiting message ("Back-off pulling image …:
/// ErrImagePull: rpc error …"). The cause first, wherever it is.
fn pull_cause(events: &[Event], pod: &str, image: &str, waiting: &str) -> String {
    let said = events.iter().rev().find(|e| {
        e.involved_object.name.as_deref() == Some(pod)
            && e.reason.as_deref() == Some("Failed")
            && e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("Failed to pull image") && m.contains(image))
    });
    if let Some(e) = said {
        let m = message(e);
        return m
            .split_once("\": ")
            .map_or(m.clone(), |(_, cause)| cause.to_string());
    }
    if let Some((_, cause)) = waiting.split_once("ErrImagePull: ") {
        return cause.trim().to_string();
    }
    if !waiting.is_empty() {
        return waiting.trim().to_string();
    }
    latest(events, pod, &["Failed"])
        .map(message)
        .unwrap_or_default()
}

/// What to do about a pull that fails, by its cause: on AKS the registry not attached (401), a
/// wrong name or tag (not found), a registry name that does not resolve (DNS).
fn pull_hint(cause: &str, image: &str) -> String {
    let registry = image
        .split_once('/')
        .map(|(r, _)| r)
        .filter(|r| r.contains('.') || r.contains(':'))
        .unwrap_or("docker.io");
    let lower = cause.to_ascii_lowercase();
    if lower.contains("401")
        || lower.contains("unauthorized")
        || lower.contains("failed to authorize")
        || lower.contains("denied")
    {
        match registry.strip_suffix(".azurecr.io") {
            Some(acr) => format!(
                "the registry {registry} refused the nodes' credentials: attach it to the cluster (`az aks update -n CLUSTER -g RG --attach-acr {acr}`)"
            ),
            None => format!(
                "the registry {registry} refused the nodes' credentials: a private image needs a registry the nodes may pull from (an Azure Container Registry attached with `az aks update --attach-acr`), or a public image"
            ),
        }
    } else if lower.contains("no such host") || lower.contains("lookup ") {
        format!(
            "the nodes cannot resolve {registry}: check the registry's name in `image`, and the cluster's DNS and egress (a private registry needs its private DNS zone linked to the cluster's network)"
        )
    } else if lower.contains("not found") || lower.contains("manifest unknown") {
        format!(
            "{image} does not exist in {registry}: check the name and tag of `image` (or `metrics.image`, the snapshot job's image) in the profile or --values; an image of this tool must be built and pushed first"
        )
    } else {
        "check the `image` value of the profile (or --values) and that the nodes may pull from its registry (AKS: `az aks update --attach-acr`)".into()
    }
}

pub fn storage_class_hint(existing: &[String]) -> String {
    let list = if existing.is_empty() {
        "none".to_string()
    } else {
        existing.join(", ")
    };
    format!(
        "StorageClasses on this cluster: {list}. Choose one with --storage-class NAME (or `storage.className` in --values), or let --create-storage-class create the plan's class"
    )
}

/// The newest event about `object` with one of `reasons`.
fn latest<'a>(events: &'a [Event], object: &str, reasons: &[&str]) -> Option<&'a Event> {
    events.iter().rev().find(|e| {
        e.involved_object.name.as_deref() == Some(object)
            && e.reason.as_deref().is_some_and(|r| reasons.contains(&r))
    })
}

fn message(e: &Event) -> String {
    e.message
        .clone()
        .unwrap_or_default()
        .trim()
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_pull_from_an_acr_names_the_registry_to_attach() {
        let hint = pull_hint(
            "rpc error: code = Unknown desc = failed to authorize: 401 Unauthorized",
            "phonebilldev.azurecr.io/phonebill-db:0.1.0",
        );
        assert!(hint.contains("--attach-acr phonebilldev`"), "{hint}");
        let hint = pull_hint("... 401 Unauthorized", "docker.io/library/postgres:16");
        assert!(hint.contains("a private image needs"), "{hint}");
    }
}
