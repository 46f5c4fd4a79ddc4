//! The release's record, as Helm keeps a release's values: what install applied (the profile keys
//! laid over the embedded profile by values files and install's flags), the tool's version, when
//! and by whom, in a ConfigMap next to the release. The next install reuses the values; every
//! command that works on the release lays them under its own `--values`. No secret in it.

use anyhow::Result;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use super::client::{Kube, api_error};
use crate::error::{ExitCode, user_error};
use crate::profile::{Layer, Profile};

const VALUES: &str = "values.yaml";
const UPGRADE: &str = "upgrade.yaml";

/// A major upgrade switched to its new StatefulSet and keeps the old one until
/// `upgrade --finalize` (or `--rollback` switches back to it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeState {
    /// The recorded values before the upgrade: what `--rollback` records again.
    pub from_values: Value,
    pub from_major: u32,
    pub from_stateful_set: String,
    pub from_claim: String,
    pub to_major: u32,
    /// The backup the new server was restored from.
    pub backup: String,
    /// When the Services moved to the new StatefulSet (RFC 3339, UTC).
    pub switched_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The environment (profile) install used.
    pub environment: String,
    /// The profile keys install laid over the embedded profile (a mapping; empty: none).
    pub values: Value,
    /// This tool's version that installed.
    pub tool_version: String,
    /// When (RFC 3339, UTC) the values or the version last changed.
    pub installed_at: String,
    /// Who installed, as the API server knows them (SelfSubjectReview).
    pub installed_by: String,
    /// A major upgrade waiting for `--finalize` or `--rollback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeState>,
}

impl Record {
    /// The recorded values as a layer under a values file; named in every refusal of one of them.
    pub fn layer(&self, profile: &Profile) -> Layer {
        Layer::new(
            format!(
                "the values recorded in ConfigMap {} (`install --reset-values` forgets them)",
                profile.names().record
            ),
            self.values.clone(),
        )
    }

    /// Each recorded key as `dotted.key=value`, for a person.
    pub fn flat_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        flatten(&self.values, "", &mut out);
        out
    }
}

/// The release's record; `None` when there is none, or when this user may not read it (the
/// snapshot schedule's job may not: it runs on its own values).
pub async fn read(kube: &Kube, profile: &Profile) -> Result<Option<Record>> {
    let name = profile.names().record;
    let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let cm = match api.get_opt(&name).await {
        Ok(cm) => cm,
        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(None),
        Err(e) => {
            return Err(api_error(
                e,
                &format!("reading ConfigMap {name} (what install applied)"),
                &kube.server,
            ));
        }
    };
    let Some(data) = cm.and_then(|c| c.data) else {
        return Ok(None);
    };
    let field = |key: &str| data.get(key).cloned().unwrap_or_default();
    let layer =
        Layer::parse(format!("key {VALUES} of ConfigMap {name}"), &field(VALUES)).map_err(|e| {
            user_error(format!("{e}"))
                .hint("`install --reset-values` replaces it with what that install applies")
                .exit(ExitCode::Usage)
        })?;
    let upgrade = match data.get(UPGRADE) {
        None => None,
        Some(text) => Some(serde_yaml::from_str(text).map_err(|e| {
            user_error(format!(
                "key {UPGRADE} of ConfigMap {name} (the upgrade waiting to be finalized) cannot be read: {e}"
            ))
            .hint("it is the tool's own bookkeeping: restore it, or finish by hand (see docs/commands/upgrade.md)")
            .exit(ExitCode::Usage)
        })?),
    };
    Ok(Some(Record {
        environment: field("environment"),
        values: layer.values,
        tool_version: field("toolVersion"),
        installed_at: field("installedAt"),
        installed_by: field("installedBy"),
        upgrade,
    }))
}

/// What install records now: `values` (keys in order; where the release is — namespace and
/// name — is where the record is, so not among them). The time and the user stay those of
/// `old` when neither the values nor the tool's version changed: a re-install that changes
/// nothing leaves the record as it was too.
pub async fn next(kube: &Kube, old: Option<&Record>, environment: &str, values: &Value) -> Record {
    let mut values = sorted(values);
    if let Value::Mapping(m) = &mut values {
        m.remove("namespace");
        m.remove("release");
    }
    let tool_version = env!("CARGO_PKG_VERSION").to_string();
    if let Some(old) = old
        && old.environment == environment
        && old.values == values
        && old.tool_version == tool_version
    {
        return old.clone();
    }
    Record {
        environment: environment.to_string(),
        values,
        tool_version,
        installed_at: now(),
        installed_by: whoami(kube).await,
        upgrade: None,
    }
}

/// Now as the record writes times: RFC 3339, UTC, whole seconds.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Record `values` as what was applied (after a command that changes one of them, as resize does
/// with the size).
pub async fn write(
    kube: &Kube,
    profile: &Profile,
    old: Option<&Record>,
    values: &Value,
) -> Result<()> {
    write_with(kube, profile, old, values, None).await
}

/// [`write`], with the state of a major upgrade waiting to be finalized (or none).
pub async fn write_with(
    kube: &Kube,
    profile: &Profile,
    old: Option<&Record>,
    values: &Value,
    upgrade: Option<UpgradeState>,
) -> Result<()> {
    let mut record = next(kube, old, &profile.environment, values).await;
    record.upgrade = upgrade;
    let map = crate::render::release_record(profile, &record)?;
    let api: Api<ConfigMap> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let opts = super::apply::ApplyOptions {
        dry_run: false,
        force_conflicts: true,
    };
    super::apply::apply_typed(kube, api, &map, opts).await?;
    Ok(())
}

/// The user the API server sees (a SelfSubjectReview, Kubernetes 1.28 and later); "unknown"
/// when it cannot say.
pub async fn whoami(kube: &Kube) -> String {
    let api: Api<SelfSubjectReview> = Api::all(kube.client.clone());
    match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(review) => review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_else(|| "unknown".into()),
        Err(_) => "unknown".into(),
    }
}

/// Mappings with their keys in order, at every level: the same values give the same bytes.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Mapping(m) => {
            let mut entries: Vec<(Value, Value)> =
                m.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
            entries.sort_by_key(|(a, _)| key_text(a));
            Value::Mapping(entries.into_iter().collect::<Mapping>())
        }
        Value::Sequence(items) => Value::Sequence(items.iter().map(sorted).collect()),
        Value::Null => Value::Mapping(Mapping::new()),
        other => other.clone(),
    }
}

fn key_text(key: &Value) -> String {
    key.as_str()
        .map_or_else(|| format!("{key:?}"), str::to_string)
}

fn flatten(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Mapping(m) if !m.is_empty() || prefix.is_empty() => {
            for (k, v) in m {
                let key = key_text(k);
                let path = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(v, &path, out);
            }
        }
        other => {
            let text = serde_json::to_string(other).unwrap_or_default();
            out.push(format!("{prefix}={}", text.trim_matches('"')));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level_and_flattened_for_people() {
        let values: Value = serde_yaml::from_str(
            "storage: {size: 30Gi, className: managed-csi}\nimage: postgres:16\n",
        )
        .unwrap();
        let record = Record {
            environment: "dev".into(),
            values: sorted(&values),
            tool_version: "0".into(),
            installed_at: String::new(),
            installed_by: String::new(),
            upgrade: None,
        };
        assert_eq!(
            serde_yaml::to_string(&record.values).unwrap(),
            "image: postgres:16\nstorage:\n  className: managed-csi\n  size: 30Gi\n"
        );
        assert_eq!(
            record.flat_values(),
            [
                "image=postgres:16",
                "storage.className=managed-csi",
                "storage.size=30Gi"
            ]
        );
        assert_eq!(sorted(&Value::Null), Value::Mapping(Mapping::new()));
    }
}
