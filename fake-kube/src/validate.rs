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
                // As ValidatePersistentVolumeClaimUpdate: the storage request may change only on
                // a Bound claim; volumeName may be set once (by the binder), then not again.
                let bound = obj.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
                let unnamed = old
                    .pointer("/spec/volumeName")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
                let strip = |v: &Value| {
                    let mut s = v.get("spec").cloned().unwrap_or_default();
                    if let Some(m) = s.as_object_mut() {
                        if bound
                            && let Some(r) = m
                                .get_mut("resources")
                                .and_then(|r| r.get_mut("requests"))
                                .and_then(Value::as_object_mut)
                        {
                            r.remove("storage");
                        }
                        if unnamed {
                            m.remove("volumeName");
                        }
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
            if let Err(e) = cron_schedule(schedule) {
                causes.push((
                    "spec.schedule".into(),
                    format!("Invalid value: \"{schedule}\": {e}"),
                ));
            }
            job_template(obj, "/spec/jobTemplate/spec", &mut causes);
        }
        "Job" => {
            job_template(obj, "/spec", &mut causes);
            if obj.pointer("/spec/selector").is_some()
                && obj.pointer("/spec/manualSelector") != Some(&Value::Bool(true))
            {
                causes.push((
                    "spec.selector".into(),
                    "Invalid value: `selector` will be auto-generated".into(),
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

/// A Job's spec at `at` (a Job's own, or a CronJob's template): a pod template with containers
/// and a restart policy a Job may have.
fn job_template(obj: &Value, at: &str, causes: &mut Vec<(String, String)>) {
    let field = |p: &str| {
        format!("{at}/template/spec/{p}")
            .trim_start_matches('/')
            .replace('/', ".")
    };
    if obj
        .pointer(&format!("{at}/template/spec/containers"))
        .is_none()
    {
        causes.push((field("containers"), "Required value".into()));
    }
    let policy = obj
        .pointer(&format!("{at}/template/spec/restartPolicy"))
        .and_then(Value::as_str);
    if !matches!(policy, Some("Never" | "OnFailure")) {
        causes.push((
            field("restartPolicy"),
            "Unsupported value: must be OnFailure or Never".into(),
        ));
    }
}

/// A CronJob's schedule as the API server parses it (robfig/cron `ParseStandard`): five fields or
/// a descriptor; each field's numbers (or three-letter names) within its bounds — day of week
/// 0–6 —, ranges, steps and lists; the parser's own messages.
fn cron_schedule(text: &str) -> Result<(), String> {
    let text = text.trim();
    if let Some(d) = text.strip_prefix('@') {
        return match d {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ if d.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {text}")),
        };
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {text}",
            fields.len()
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str], u32); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 1),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (lo, hi, names, first)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            let pieces: Vec<&str> = part.split('/').collect();
            if pieces.len() > 2 {
                return Err(format!("too many slashes: {part}"));
            }
            let number = |s: &str| -> Result<u32, String> {
                match names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
                    Some(i) => Ok(first + i as u32),
                    None => s
                        .parse()
                        .map_err(|_| format!("failed to parse int from {s}")),
                }
            };
            let range: Vec<&str> = pieces[0].split('-').collect();
            let (start, mut end) = if range[0] == "*" || range[0] == "?" {
                (lo, hi)
            } else {
                let start = number(range[0])?;
                match range.len() {
                    1 => (start, start),
                    2 => (start, number(range[1])?),
                    _ => return Err(format!("too many hyphens: {part}")),
                }
            };
            if let Some(step) = pieces.get(1) {
                let step: u32 = step
                    .parse()
                    .map_err(|_| format!("failed to parse int from {step}"))?;
                if range.len() == 1 {
                    end = hi;
                }
                if step == 0 {
                    return Err(format!("step of range should be a positive number: {part}"));
                }
            }
            if start < lo {
                return Err(format!(
                    "beginning of range ({start}) below minimum ({lo}): {part}"
                ));
            }
            if end > hi {
                return Err(format!("end of range ({end}) above maximum ({hi}): {part}"));
            }
            if start > end {
                return Err(format!(
                    "beginning of range ({start}) beyond end of range ({end}): {part}"
                ));
            }
        }
    }
    Ok(())
}
