//! The release's live objects for a support report: every kind install makes, its claims, pods,
//! the schedule's Jobs and the Secrets (their keys and sizes only), cleaned of what only the
//! server needs; the decoded Secret values, for the redactor alone; and the drift of each live
//! object from what install would render now.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::k8s::{Kube, inventory};
use crate::profile::Profile;

/// What could be read of the release's objects.
#[derive(Debug, Default)]
pub struct Live {
    /// "Kind/name" → the object, cleaned (Secrets without their values).
    pub objects: BTreeMap<String, Value>,
    /// Each Secret's decoded values: what the redactor scrubs, never written.
    pub secret_values: Vec<String>,
    /// "listing Kinds: cause", for each kind that could not be read.
    pub unreadable: Vec<(String, String)>,
}

/// Keys of the release's Secrets that hold what a report must show (the app's user name, the
/// certificates): their values are not scrubbed from the other files.
const PUBLIC_KEYS: &[&str] = &[
    "username", "user", "database", "host", "port", "ca.crt", "tls.crt",
];

/// Read every kind of the release's objects by its labels; a kind that cannot be read (no
/// rights, a broken API) is listed as unreadable and the rest still read.
pub async fn read(kube: &Kube, profile: &Profile) -> Live {
    let mut live = Live::default();
    collect::<StatefulSet>(kube, profile, &mut live).await;
    collect::<Pod>(kube, profile, &mut live).await;
    collect::<PersistentVolumeClaim>(kube, profile, &mut live).await;
    collect::<Service>(kube, profile, &mut live).await;
    collect::<ConfigMap>(kube, profile, &mut live).await;
    collect::<ServiceAccount>(kube, profile, &mut live).await;
    collect::<NetworkPolicy>(kube, profile, &mut live).await;
    collect::<CronJob>(kube, profile, &mut live).await;
    collect::<Job>(kube, profile, &mut live).await;
    collect::<Role>(kube, profile, &mut live).await;
    collect::<RoleBinding>(kube, profile, &mut live).await;
    secrets(kube, profile, &mut live).await;
    live
}

async fn collect<K>(kube: &Kube, profile: &Profile, live: &mut Live)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize,
{
    let kind = K::kind(&()).to_string();
    match inventory::objects::<K>(kube, profile).await {
        Ok(items) => {
            for o in items {
                live.objects
                    .insert(format!("{kind}/{}", o.name_any()), cleaned(&o));
            }
        }
        Err(e) => live
            .unreadable
            .push((format!("{kind}s"), crate::error::report(&e).error)),
    }
}

/// The release's Secrets: read whole where allowed (their values feed only the redactor), else
/// their metadata; written as their keys and sizes.
async fn secrets(kube: &Kube, profile: &Profile, live: &mut Live) {
    match inventory::objects::<Secret>(kube, profile).await {
        Ok(items) => {
            let record = profile.names().record;
            for s in items {
                // The record holds values, not secrets: its keys (who installed, when) stay.
                let scrubbed = s.name_any() != record;
                let data = s
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()));
                let strings = s.string_data.iter().flatten().map(|(k, v)| (k, v.clone()));
                for (key, value) in data.chain(strings) {
                    if scrubbed && !PUBLIC_KEYS.contains(&key.as_str()) {
                        live.secret_values.push(value);
                    }
                }
                live.objects
                    .insert(format!("Secret/{}", s.name_any()), cleaned(&s));
            }
        }
        Err(e) => {
            let cause = crate::error::report(&e).error;
            // Not allowed to read their values: their names still say which are there.
            let names = inventory::names::<Secret>(kube, profile).await;
            match names {
                Ok(names) => {
                    for n in names {
                        live.objects.insert(
                            format!("Secret/{n}"),
                            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                                "metadata": {"name": n, "namespace": kube.namespace}}),
                        );
                    }
                    live.unreadable.push((
                        "Secrets' keys (their names are listed; log lines are scrubbed by pattern only)".into(),
                        cause,
                    ));
                }
                Err(_) => live.unreadable.push(("Secrets".into(), cause)),
            }
        }
    }
}

/// An object as a reader of the report wants it: without managedFields and the last-applied
/// annotation (a copy of the object as applied, Secret data included); a Secret's values
/// replaced by their sizes.
pub fn cleaned<K: Serialize>(object: &K) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or_default();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if v.get("kind").and_then(Value::as_str) == Some("Secret")
        && let Some(map) = v.as_object_mut()
    {
        map.remove("stringData");
        if let Some(data) = map.get_mut("data").and_then(Value::as_object_mut) {
            for value in data.values_mut() {
                let size = value
                    .as_str()
                    .map_or(0, |b64| b64.trim_end_matches('=').len() * 3 / 4);
                *value = Value::String(format!("<{size} bytes, not included>"));
            }
        }
    }
    v
}

/// The pod template's annotation that rolls the pod when the server certificate changes.
const TLS_CHECKSUM: &str = "phonebill-db/tls-checksum";

/// How each rendered object (not the Secrets, whose values are not compared) differs from its
/// live copy, in the fields the render sets: a unified diff per object, "missing" for one that
/// is not there, nothing for one that matches.
pub fn drift(rendered: &[crate::render::Object], live: &BTreeMap<String, Value>) -> String {
    let mut out = String::new();
    for o in rendered.iter().filter(|o| o.kind() != "Secret") {
        let id = format!("{}/{}", o.kind(), o.name());
        let mut want = o.to_json();
        match live.get(&id) {
            None => out.push_str(&format!("{id}: missing\n")),
            Some(have) => {
                let mut have = projected(have, &want);
                // The pod template's checksum of the TLS Secret follows the Secret's values,
                // which the render here does not have.
                for v in [&mut want, &mut have] {
                    if let Some(a) = v
                        .pointer_mut("/spec/template/metadata/annotations")
                        .and_then(Value::as_object_mut)
                    {
                        a.remove(TLS_CHECKSUM);
                    }
                }
                if have != want {
                    out.push_str(&format!("{id}:\n"));
                    out.push_str(&crate::k8s::apply::diff(o.kind(), &have, &want));
                }
            }
        }
    }
    if !out.is_empty() {
        out.insert_str(
            0,
            "# --- live: the object in the cluster; +++ applied: what install would apply now\n",
        );
    }
    if out.is_empty() {
        out.push_str("every rendered object matches its live copy in the fields the render sets\n");
    }
    out.push_str("(Secrets are not compared: their values are not part of the report)\n");
    out
}

/// `have` restricted to the fields `want` sets (lists item by item): what the server and
/// controllers add (status, uid, defaults) is not drift.
fn projected(have: &Value, want: &Value) -> Value {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => Value::Object(
            w.iter()
                .filter_map(|(k, wv)| Some((k.clone(), projected(h.get(k)?, wv))))
                .collect(),
        ),
        (Value::Array(h), Value::Array(w)) => Value::Array(
            h.iter()
                .enumerate()
                .map(|(i, hv)| w.get(i).map_or_else(|| hv.clone(), |wv| projected(hv, wv)))
                .collect(),
        ),
        _ => have.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_keeps_its_keys_and_loses_its_values_and_copies() {
        let s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "x", "managedFields": [{}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"p\":\"c2VjcmV0\"}}", "keep": "me"}},
            "data": {"p": "c2VjcmV0", "q": "YWJjZA=="}, "stringData": {"r": "plain"}});
        let c = cleaned(&s);
        assert_eq!(c["data"]["p"], "<6 bytes, not included>");
        assert_eq!(c["data"]["q"], "<4 bytes, not included>");
        assert!(c.get("stringData").is_none());
        assert!(c["metadata"].get("managedFields").is_none());
        assert_eq!(c["metadata"]["annotations"], json!({"keep": "me"}));
    }

    #[test]
    fn only_what_the_render_sets_is_drift() {
        let want = json!({"spec": {"replicas": 1, "ports": [{"port": 5432}]}});
        let have = json!({"spec": {"replicas": 1, "ports": [{"port": 5432, "protocol": "TCP"}],
            "revisionHistoryLimit": 10}, "status": {"ready": 1}});
        assert_eq!(projected(&have, &want), want);
        let changed = json!({"spec": {"replicas": 0, "ports": [{"port": 5432}]}});
        assert_ne!(projected(&changed, &want), want);
        // A field the render sets that the live copy lacks shows as gone.
        let lacking = json!({"spec": {"ports": [{"port": 5432}]}});
        assert_eq!(projected(&lacking, &want), lacking);
    }
}
