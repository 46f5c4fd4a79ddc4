//! The resource metrics API (metrics.k8s.io/v1beta1, served by metrics-server on AKS): a pod's
//! containers' current CPU and memory, as `kubectl top pod` reads them.
//!
//! Every Running pod of this fake reports 64Mi and 5m per container unless the test set its
//! memory (`FakeKube::set_pod_memory`); with the API switched off (`FakeKube::set_metrics_api`,
//! a cluster without metrics-server) the group does not exist: 404, as the aggregator answers.
//! RBAC: `get` on `pods` in group `metrics.k8s.io`.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;

use crate::status::ApiError;
use crate::store::info_of;
use crate::{Shared, error, reply};

/// What a container uses when the test said nothing.
pub const DEFAULT_MEMORY: u64 = 64 * 1024 * 1024;

pub async fn handle(
    State(cluster): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let c = cluster.lock().expect("cluster lock");
    if !c.kubelet.metrics_api {
        return error(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if c.is_denied_named("get", "metrics.k8s.io", "pods", &ns, &name) {
        return error(ApiError::new(
            403,
            "Forbidden",
            format!(
                "pods.metrics.k8s.io \"{name}\" is forbidden: User \"fake-user\" cannot get resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"{ns}\""
            ),
        ));
    }
    let pod = match c.get(info_of("Pod"), &ns, &name) {
        Ok(p) if p.pointer("/status/phase").and_then(|v| v.as_str()) == Some("Running") => p,
        _ => {
            return error(
                ApiError::not_found("pods.metrics.k8s.io", &name)
                    .details(json!({"name": name, "group": "metrics.k8s.io", "kind": "pods"})),
            );
        }
    };
    let containers: Vec<serde_json::Value> = pod
        .pointer("/spec/containers")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .map(|ct| {
            let cname = ct["name"].as_str().unwrap_or_default().to_string();
            let bytes = c
                .kubelet
                .memory
                .get(&(ns.clone(), name.clone(), cname.clone()))
                .copied()
                .unwrap_or(DEFAULT_MEMORY);
            json!({"name": cname, "usage": {"cpu": "5m", "memory": format!("{}Ki", bytes / 1024)}})
        })
        .collect();
    reply(
        axum::http::StatusCode::OK,
        json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": crate::store::now(),
                "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({}))},
            "timestamp": crate::store::now(), "window": "15s", "containers": containers}),
    )
}
