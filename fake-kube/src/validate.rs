//! The validation the real API server does that the tool can run into: names, required fields,
//! StatefulSet selectors and immutable fields. 422 Invalid with causes, as the real server answers.

use serde_json::Value;

use crate::resources::ResourceInfo;
use crate::status::ApiError;

pub fn validate(info: &ResourceInfo, old: Option<&Value>, obj: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes: Vec<(String, String)> = Vec::new();
    let label = matches!(info.kind, "Namespace" | "Service");
    if !valid_name(name, label) {
        let what = if label {
            "a lowercase RFC 1123 label"
        } else {
            "a lowercase RFC 1123 subdomain"
        };
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": must be {what}"),
        ));
    }
    match info.kind {
        "StatefulSet" => statefulset(old, obj, &mut causes),
        "Deployment" => pod_template(obj, &mut causes),
        "Service" => {
            for (i, p) in obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let port = p["port"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push((
                        format!("spec.ports[{i}].port"),
                        format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
                    ));
                }
            }
            if let (Some(o), Some(n)) = (
                old.and_then(|o| o.pointer("/spec/clusterIP")),
                obj.pointer("/spec/clusterIP"),
            ) && o != n
            {
                causes.push((
                    "spec.clusterIPs[0]".into(),
                    "Invalid value: field is immutable".into(),
                ));
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(old) = old {
                let strip = |v: &Value| {
                    let mut s = v.get("spec").cloned().unwrap_or_default();
                    if let Some(m) = s.as_object_mut() {
                        m.remove("resources");
                        m.remove("volumeName");
                    }
                    s
                };
                if strip(old) != strip(obj) {
                    causes.push(("spec".into(), "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into()));
                }
                let request = |v: &Value| {
                    crate::kubelet::bytes(
                        v.pointer("/spec/resources/requests/storage")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    )
                };
                if request(obj) < request(old) {
                    causes.push((
                        "spec.resources.requests.storage".into(),
                        "Forbidden: field can not be less than previous value".into(),
                    ));
                }
            }
        }
        "CronJob" => {
            let schedule = obj
                .pointer("/spec/schedule")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if schedule.split_whitespace().count() != 5 && !schedule.starts_with('@') {
                causes.push((
                    "spec.schedule".into(),
                    format!("Invalid value: \"{schedule}\": expected exactly 5 fields"),
                ));
            }
            if obj
                .pointer("/spec/jobTemplate/spec/template/spec/containers")
                .is_none()
            {
                causes.push((
                    "spec.jobTemplate.spec.template.spec.containers".into(),
                    "Required value".into(),
                ));
            }
            let policy = obj
                .pointer("/spec/jobTemplate/spec/template/spec/restartPolicy")
                .and_then(Value::as_str);
            if !matches!(policy, Some("Never" | "OnFailure")) {
                causes.push((
                    "spec.jobTemplate.spec.template.spec.restartPolicy".into(),
                    "Unsupported value: must be OnFailure or Never".into(),
                ));
            }
        }
        "Role" => {
            for (i, rule) in obj
                .pointer("/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                for field in ["verbs", "apiGroups", "resources"] {
                    if rule
                        .get(field)
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty)
                    {
                        causes.push((format!("rules[{i}].{field}"), "Required value".into()));
                    }
                }
            }
        }
        "RoleBinding" => {
            if let Some(old) = old
                && old.get("roleRef") != obj.get("roleRef")
            {
                causes.push((
                    "roleRef".into(),
                    "Invalid value: cannot change roleRef".into(),
                ));
            }
            if obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .is_none_or(|k| !matches!(k, "Role" | "ClusterRole"))
            {
                causes.push((
                    "roleRef.kind".into(),
                    "Unsupported value: must be Role or ClusterRole".into(),
                ));
            }
        }
        "Secret" => {
            if obj["type"] == "kubernetes.io/tls" {
                for key in ["tls.crt", "tls.key"] {
                    if obj.pointer(&format!("/data/{key}")).is_none() {
                        causes.push((format!("data[{key}]"), "Required value".into()));
                    }
                }
            }
            for (k, v) in obj
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let ok = v.as_str().is_some_and(|s| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).is_ok()
                });
                if !ok {
                    causes.push((format!("data[{k}]"), "Invalid value: must be base64".into()));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(info.kind, name, causes))
    }
}

fn statefulset(old: Option<&Value>, obj: &Value, causes: &mut Vec<(String, String)>) {
    pod_template(obj, causes);
    if let Some(old) = old {
        let mutable = [
            "replicas",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
            "ordinals",
            "revisionHistoryLimit",
        ];
        let strip = |v: &Value| {
            let mut s = v.get("spec").cloned().unwrap_or_default();
            if let Some(m) = s.as_object_mut() {
                m.retain(|k, _| !mutable.contains(&k.as_str()))
            }
            s
        };
        if strip(old) != strip(obj) {
            causes.push(("spec".into(), "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into()));
        }
    }
}

/// A workload's selector and pod template, as apps/v1 validates them (StatefulSet, Deployment).
fn pod_template(obj: &Value, causes: &mut Vec<(String, String)>) {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    let labels = obj.pointer("/spec/template/metadata/labels");
    match selector {
        None => causes.push(("spec.selector".into(), "Required value".into())),
        Some(sel) => {
            if !sel
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            {
                causes.push((
                    "spec.template.metadata.labels".into(),
                    "Invalid value: `selector` does not match template `labels`".into(),
                ));
            }
        }
    }
    for (i, c) in obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push((
                format!("spec.template.spec.containers[{i}].image"),
                "Required value".into(),
            ));
        }
    }
}

fn valid_name(name: &str, label: bool) -> bool {
    let max = if label { 63 } else { 253 };
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    !name.is_empty()
        && name.len() <= max
        && if label {
            ok_part(name)
        } else {
            name.split('.').all(ok_part)
        }
}
