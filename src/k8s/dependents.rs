//! The workloads that read a Secret (Deployments and StatefulSets whose pod template takes it as
//! environment or as a volume), and their restart as `kubectl rollout restart` does it: a new
//! annotation on the pod template, then the rollout waited for.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodSpec;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::json;

use super::client::{Kube, api_error};
use super::watches::Wake;
use crate::error::{ExitCode, user_error};
use crate::ui::Ui;

/// The pod-template annotation a restart sets (what makes the controller roll the pods).
pub const RESTARTED_AT: &str = "phonebill-db/restartedAt";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reader {
    /// Deployment or StatefulSet.
    pub kind: String,
    pub name: String,
    /// How it reads the Secret: "env DB_URL in container api", "volume db".
    pub via: Vec<String>,
}

/// Where a pod template reads `secret` (pure).
pub fn reads(spec: &PodSpec, secret: &str) -> Vec<String> {
    let mut via = Vec::new();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for e in c.env.iter().flatten() {
            let from = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref());
            if from.is_some_and(|r| r.name == secret) {
                via.push(format!("env {} in container {}", e.name, c.name));
            }
        }
        for e in c.env_from.iter().flatten() {
            if e.secret_ref.as_ref().is_some_and(|r| r.name == secret) {
                via.push(format!("envFrom in container {}", c.name));
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        let direct = v
            .secret
            .as_ref()
            .is_some_and(|s| s.secret_name.as_deref() == Some(secret));
        let projected = v.projected.as_ref().is_some_and(|p| {
            p.sources
                .iter()
                .flatten()
                .any(|s| s.secret.as_ref().is_some_and(|s| s.name == secret))
        });
        if direct || projected {
            via.push(format!("volume {}", v.name));
        }
    }
    via
}

/// The Deployments and StatefulSets in the namespace that read `secret`, except `skip` (the
/// release's own StatefulSet).
pub async fn readers_of(kube: &Kube, secret: &str, skip: &str) -> Result<Vec<Reader>> {
    let deployments = Api::<Deployment>::namespaced(kube.client.clone(), &kube.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            api_error(
                e,
                "listing Deployments (who reads the Secret)",
                &kube.server,
            )
        })?;
    let sets = Api::<StatefulSet>::namespaced(kube.client.clone(), &kube.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            api_error(
                e,
                "listing StatefulSets (who reads the Secret)",
                &kube.server,
            )
        })?;
    let workloads = deployments
        .iter()
        .map(|d| {
            let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            ("Deployment", d.name_any(), spec)
        })
        .chain(sets.iter().filter(|s| s.name_any() != skip).map(|s| {
            let spec = s.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            ("StatefulSet", s.name_any(), spec)
        }));
    Ok(workloads
        .filter_map(|(kind, name, spec)| {
            let via = spec.map(|s| reads(s, secret)).unwrap_or_default();
            (!via.is_empty()).then(|| Reader {
                kind: kind.into(),
                name,
                via,
            })
        })
        .collect())
}

/// Restart each reader (a new `phonebill-db/restartedAt` on its pod template) and wait until
/// every one has rolled out, within `timeout` (exit 3 naming those still rolling).
pub async fn restart(kube: &Kube, readers: &[Reader], timeout: Duration, ui: &Ui) -> Result<f64> {
    let started = Instant::now();
    let stamp = jiff::Timestamp::now().to_string();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}});
    let params = PatchParams {
        field_manager: Some(super::apply::FIELD_MANAGER.into()),
        ..Default::default()
    };
    for r in readers {
        let doing = format!("restarting {} {}", r.kind, r.name);
        let result = match r.kind.as_str() {
            "Deployment" => Api::<Deployment>::namespaced(kube.client.clone(), &kube.namespace)
                .patch(&r.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
            _ => Api::<StatefulSet>::namespaced(kube.client.clone(), &kube.namespace)
                .patch(&r.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        };
        result.map_err(|e| api_error(e, &doing, &kube.server))?;
    }
    let bar = ui.spinner("waiting for the restarted workloads to roll out");
    let waited = super::wait::poll(
        timeout.saturating_sub(started.elapsed()),
        ui,
        &bar,
        &mut Wake::polling(),
        || rolling(kube, readers),
        Vec::is_empty,
        |rolling| format!("waiting for {} to roll out", rolling.join(", ")),
    )
    .await;
    bar.finish_and_clear();
    match waited? {
        Ok(_) => Ok((started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
        Err(timed_out) => Err(user_error(format!(
            "timed out after {} waiting for {} to roll out (the new password is in place; they were restarted)",
            humantime::format_duration(Duration::from_secs(timeout.as_secs())),
            timed_out.last.join(", ")
        ))
        .hint("`kubectl rollout status` on them shows why; pods that cannot start with the new password say so in their logs")
        .exit(ExitCode::Timeout)
        .into()),
    }
}

/// The readers that have not rolled out yet, as "Kind name".
async fn rolling(kube: &Kube, readers: &[Reader]) -> Result<Vec<String>> {
    let mut rolling = Vec::new();
    for r in readers {
        if !rolled_out(kube, r).await? {
            rolling.push(format!("{} {}", r.kind, r.name));
        }
    }
    Ok(rolling)
}

/// Whether a workload has rolled its pods out to its latest template, as `kubectl rollout
/// status` judges it.
async fn rolled_out(kube: &Kube, r: &Reader) -> Result<bool> {
    let doing = format!("reading {} {}", r.kind, r.name);
    if r.kind == "Deployment" {
        let d = Api::<Deployment>::namespaced(kube.client.clone(), &kube.namespace)
            .get(&r.name)
            .await
            .map_err(|e| api_error(e, &doing, &kube.server))?;
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let Some(st) = d.status else {
            return Ok(false);
        };
        Ok(
            st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
                && st.updated_replicas.unwrap_or(0) >= want
                && st.available_replicas.unwrap_or(0) >= want
                && st.replicas.unwrap_or(0) <= want,
        )
    } else {
        let s = Api::<StatefulSet>::namespaced(kube.client.clone(), &kube.namespace)
            .get(&r.name)
            .await
            .map_err(|e| api_error(e, &doing, &kube.server))?;
        let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let Some(st) = s.status else {
            return Ok(false);
        };
        Ok(
            st.observed_generation.unwrap_or(0) >= s.metadata.generation.unwrap_or(0)
                && st.updated_replicas.unwrap_or(0) >= want
                && st.ready_replicas.unwrap_or(0) >= want
                && st.current_revision == st.update_revision,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_a_pod_template_reads_a_secret_is_found() {
        let spec: PodSpec = serde_json::from_value(json!({
            "initContainers": [{"name": "migrate", "envFrom": [{"secretRef": {"name": "auth-db-secret"}}]}],
            "containers": [
                {"name": "api", "env": [
                    {"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": "auth-db-secret", "key": "database-url"}}},
                    {"name": "OTHER", "valueFrom": {"secretKeyRef": {"name": "other", "key": "x"}}},
                    {"name": "PLAIN", "value": "auth-db-secret"}
                ]}
            ],
            "volumes": [
                {"name": "db", "secret": {"secretName": "auth-db-secret"}},
                {"name": "bundle", "projected": {"sources": [{"secret": {"name": "auth-db-secret"}}]}},
                {"name": "unrelated", "secret": {"secretName": "tls"}}
            ]
        }))
        .unwrap();
        assert_eq!(
            reads(&spec, "auth-db-secret"),
            [
                "envFrom in container migrate",
                "env DB_URL in container api",
                "volume db",
                "volume bundle"
            ]
        );
        assert!(reads(&spec, "nothing").is_empty());
    }
}
