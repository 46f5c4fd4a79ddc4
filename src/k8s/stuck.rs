//! Why something that was deleted is still there: a finalizer nobody releases, a pod terminating
//! on a node whose kubelet is gone, or just not yet. Read once, when a wait for deletion ran out.

use anyhow::Result;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta};
use serde::Serialize;

use super::client::{Kube, is_not_found};
use super::inventory::{DATA, MADE};

/// One object still there, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stuck {
    pub object: String,
    pub why: String,
    pub hint: String,
}

/// The reasons for each of `ids` ("Kind/name") still there; gone ones are left out.
pub async fn explain(kube: &Kube, ids: &[String]) -> Result<Vec<Stuck>> {
    let mut out = Vec::new();
    for id in ids {
        let (kind, name) = id.split_once('/').expect("ids are Kind/name");
        let Some((meta, node_name)) = metadata(kube, kind, name).await? else {
            continue;
        };
        let node = match node_name {
            Some(node) => node_state(kube, node).await,
            None => None,
        };
        let (why, hint) = why(kind, name, &meta, node.as_ref(), &kube.namespace);
        out.push(Stuck {
            object: id.clone(),
            why,
            hint,
        });
    }
    Ok(out)
}

/// The object's metadata, and for a pod the node it is on (None: gone, or not a kind of ours).
async fn metadata(
    kube: &Kube,
    kind: &str,
    name: &str,
) -> Result<Option<(ObjectMeta, Option<String>)>> {
    let Some((_, group, plural)) = MADE
        .iter()
        .chain(DATA)
        .chain(&[("Pod", "", "pods")])
        .find(|(k, _, _)| *k == kind)
    else {
        return Ok(None);
    };
    let api_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    let ar = ApiResource {
        group: group.to_string(),
        version: "v1".into(),
        api_version,
        kind: kind.into(),
        plural: plural.to_string(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(kube.client.clone(), &kube.namespace, &ar);
    match api.get(name).await {
        Ok(o) => {
            let node = o.data["spec"]["nodeName"].as_str().map(str::to_string);
            Ok(Some((o.metadata, node.filter(|_| kind == "Pod"))))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        // Explaining is a courtesy: when it cannot read the object, it says so below.
        Err(_) => Ok(Some((ObjectMeta::default(), None))),
    }
}

/// A pod's node and whether it is Ready (None: the node cannot be read).
async fn node_state(kube: &Kube, node: String) -> Option<(String, bool)> {
    let n = Api::<Node>::all(kube.client.clone())
        .get(&node)
        .await
        .ok()?;
    let ready = n
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Some((node, ready))
}

/// Why `kind/name` with `meta` is still there (pure).
pub fn why(
    kind: &str,
    name: &str,
    meta: &ObjectMeta,
    node: Option<&(String, bool)>,
    namespace: &str,
) -> (String, String) {
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    let lower = kind.to_lowercase();
    if meta.deletion_timestamp.is_none() {
        return (
            "not deleted yet: its owner's garbage collection has not reached it".into(),
            "wait longer (--timeout), then run uninstall again".into(),
        );
    }
    if kind == "Pod"
        && let Some((node, false)) = node
    {
        return (
            format!(
                "terminating on node {node}, which is NotReady: no kubelet confirms the pod stopped"
            ),
            format!(
                "bring the node back; if it is gone for good: `kubectl -n {namespace} delete pod {name} --grace-period=0 --force`"
            ),
        );
    }
    if let Some(f) = finalizers.first() {
        let hint = if f == "kubernetes.io/pvc-protection" {
            format!(
                "a pod still uses the claim: `kubectl -n {namespace} get pods` shows which; it goes when that pod does"
            )
        } else {
            format!(
                "the controller that owns `{f}` has not released it; if that controller is gone: `kubectl -n {namespace} patch {lower} {name} --type merge -p '{{\"metadata\":{{\"finalizers\":null}}}}'`"
            )
        };
        return (
            format!("held by the finalizer {}", finalizers.join(", ")),
            hint,
        );
    }
    if kind == "Pod" {
        return (
            "still terminating (its grace period)".into(),
            "wait longer (--timeout), then run uninstall again".into(),
        );
    }
    (
        "deletion under way".into(),
        "wait longer (--timeout), then run uninstall again".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn deleting(finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            deletion_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
            finalizers: Some(finalizers.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn each_reason_with_its_hint() {
        let (why_, hint) = why(
            "Pod",
            "p-0",
            &deleting(&[]),
            Some(&("node-1".into(), false)),
            "ns",
        );
        assert!(why_.contains("node-1, which is NotReady"), "{why_}");
        assert!(hint.contains("--grace-period=0 --force"), "{hint}");
        let (why_, hint) = why(
            "PersistentVolumeClaim",
            "data",
            &deleting(&["example.com/hold"]),
            None,
            "ns",
        );
        assert_eq!(why_, "held by the finalizer example.com/hold");
        assert!(hint.contains("patch persistentvolumeclaim data"), "{hint}");
        let (_, hint) = why(
            "PersistentVolumeClaim",
            "data",
            &deleting(&["kubernetes.io/pvc-protection"]),
            None,
            "ns",
        );
        assert!(hint.contains("a pod still uses the claim"), "{hint}");
        let (why_, _) = why(
            "Pod",
            "p-0",
            &deleting(&[]),
            Some(&("node-1".into(), true)),
            "ns",
        );
        assert!(why_.contains("grace period"), "{why_}");
        let (why_, _) = why("Service", "s", &ObjectMeta::default(), None, "ns");
        assert!(why_.contains("not deleted yet"), "{why_}");
    }
}
