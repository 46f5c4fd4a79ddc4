//! The `scale` subresource of StatefulSets (and Deployments), as the API server serves it
//! (k8s.io/kubernetes pkg/registry/apps/statefulset/storage, `ScaleREST`): an autoscaling/v1
//! `Scale` read from the object, and written back into its `spec.replicas` only.
//!
//! - RBAC: the resource is `statefulsets/scale` (verbs get, update, patch), not `statefulsets`:
//!   a Role may grant scaling without any other write to the StatefulSet.
//! - get: name, namespace, uid, resourceVersion and creationTimestamp of the object; spec.replicas;
//!   status.replicas and the selector as a string.
//! - patch (merge) and update (a Scale body, apiVersion autoscaling/v1): the new replicas must be
//!   ≥ 0 (422 otherwise, the real message); a resourceVersion that is not the object's is a 409;
//!   the write goes through the store as an update of the object by the request's field manager
//!   (the generation moves, `spec.replicas` changes owner as it does on the real server).

use serde_json::{Value, json};

use crate::ResourceInfo;
use crate::select::LabelSelector;
use crate::status::ApiError;
use crate::store::{Cluster, WriteOpts};

/// The kinds this fake serves a scale subresource for.
pub const SCALABLE: &[&str] = &["StatefulSet", "Deployment"];

#[allow(clippy::too_many_arguments)]
pub fn handle(
    c: &mut Cluster,
    verb: &str,
    info: &'static ResourceInfo,
    ns: &str,
    name: &str,
    body: &Value,
    content_type: &str,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    let resource = format!("{}/scale", info.plural);
    if c.is_denied_named(verb, info.group, &resource, ns, name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "{}.{} \"{name}\" is forbidden: User \"fake-user\" cannot {verb} resource \"{resource}\" in API group \"{}\" in the namespace \"{ns}\"",
                info.plural, info.group, info.group
            ),
        ));
    }
    let current = c.get(info, ns, name)?;
    let scale = scale_of(&current);
    let wanted = match verb {
        "get" => return Ok(scale),
        "patch" if content_type.starts_with("application/merge-patch+json") => {
            let mut patched = scale.clone();
            crate::store::json_merge_patch(&mut patched, body);
            patched
        }
        "patch" => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type}); this fake takes merge patches of a Scale"
                ),
            ));
        }
        "update" => {
            let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
            let version = body
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if (kind, version) != ("Scale", "autoscaling/v1") {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a Scale: the body must be an autoscaling/v1 Scale"
                )));
            }
            body.clone()
        }
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!(
                    "the server does not allow this method on the requested resource ({verb} {resource})"
                ),
            ));
        }
    };
    let given_version = wanted
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty());
    if let Some(v) = given_version
        && Some(v)
            != current
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                info.plural, info.group
            ),
        ));
    }
    let replicas = match wanted.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal {v} into Go struct field ScaleSpec.spec.replicas of type int32"
            ))
        })?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale.autoscaling",
            name,
            vec![(
                "spec.replicas".into(),
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            )],
        ));
    }
    let updated = c.merge_patch(
        info,
        ns,
        name,
        &json!({"spec": {"replicas": replicas}}),
        false,
        opts,
    )?;
    Ok(scale_of(&updated))
}

/// The object's Scale, as autoscaling/v1 gives it.
fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector = obj
        .pointer("/spec/selector")
        .map(LabelSelector::text_of)
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}
