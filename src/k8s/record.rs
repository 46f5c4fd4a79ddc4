//! The release's record, as Helm keeps a release's values: what install applied (the profile keys
//! laid over the embedded profile by values files and install's flags), the tool's version, when
//! and by whom, in a Secret next to the release (as Helm does: whoever may write it chooses the
//! images that mount the passwords, and may read them already). The next install reuses the
//! values; every command that works on the release lays them under its own `--values`. A record
//! an older version kept in a ConfigMap of the same name is read once, and replaced by install.
//! No secret in it.

use anyhow::Result;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
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
    /// Where it was read from: "Secret", or "ConfigMap" (an older version's, until the next install).
    #[serde(skip)]
    pub kept_in: &'static str,
}

impl Record {
    /// The recorded values as a layer under a values file; named in every refusal of one of them.
    pub fn layer(&self, profile: &Profile) -> Layer {
        Layer::new(
            format!(
                "the values recorded in {} {} (`install --reset-values` forgets them)",
                self.kept_in,
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

/// The most a record may hold: what install writes is a few hundred bytes.
const MOST: usize = 64 * 1024;

/// The release's record; `None` when there is none, or when this user may not read it (the
/// snapshot schedule's job may not: it runs on its own values). The Secret, else an older
/// version's ConfigMap.
pub async fn read(kube: &Kube, profile: &Profile) -> Result<Option<Record>> {
    match fetch(kube, profile).await? {
        Some(kept) => parse(profile, kept).map(Some),
        None => Ok(None),
    }
}

/// The record as kept, not yet read: which kind holds it, and its data.
pub struct Kept {
    kept_in: &'static str,
    data: std::collections::BTreeMap<String, String>,
}

/// Fetch the record from the API (an error here is the cluster's, not the record's).
pub async fn fetch(kube: &Kube, profile: &Profile) -> Result<Option<Kept>> {
    let name = profile.names().record;
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let doing = |kind: &str| format!("reading {kind} {name} (what install applied)");
    let (kept_in, data) = match secrets.get_opt(&name).await {
        Ok(Some(s)) => (
            "Secret",
            s.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect(),
        ),
        Ok(None) => {
            let maps: Api<ConfigMap> = Api::namespaced(kube.client.clone(), &kube.namespace);
            match maps.get_opt(&name).await {
                Ok(Some(cm)) => ("ConfigMap", cm.data.unwrap_or_default()),
                Ok(None) => return Ok(None),
                Err(kube::Error::Api(s)) if s.code == 403 => return Ok(None),
                Err(e) => return Err(api_error(e, &doing("ConfigMap"), &kube.server)),
            }
        }
        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(None),
        Err(e) => return Err(api_error(e, &doing("Secret"), &kube.server)),
    };
    Ok(Some(Kept { kept_in, data }))
}

/// Read a fetched record: its size, its values, its upgrade state.
pub fn parse(profile: &Profile, kept: Kept) -> Result<Record> {
    let Kept { kept_in, data } = kept;
    let name = profile.names().record;
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MOST {
        return Err(user_error(format!(
            "{kept_in} {name} (the release's record) holds {size} bytes; a record is a few hundred: it is not one this tool wrote"
        ))
        .hint("look at it (`kubectl get … -o yaml`); `install --reset-values` replaces it with what that install applies")
        .exit(ExitCode::Usage)
        .into());
    }
    let field = |key: &str| data.get(key).cloned().unwrap_or_default();
    let layer =
        Layer::parse(format!("key {VALUES} of {kept_in} {name}"), &field(VALUES)).map_err(|e| {
            user_error(format!("{e}"))
                .hint("`install --reset-values` replaces it with what that install applies")
                .exit(ExitCode::Usage)
        })?;
    let upgrade = match data.get(UPGRADE) {
        None => None,
        Some(text) => Some(crate::profile::parse_yaml(text).and_then(|v| serde_yaml::from_value(v).map_err(|e| e.to_string())).map_err(|e| {
            user_error(format!(
                "key {UPGRADE} of {kept_in} {name} (the upgrade waiting to be finalized) cannot be read: {e}"
            ))
            .hint("it is the tool's own bookkeeping: restore it, or finish by hand (see docs/commands/upgrade.md)")
            .exit(ExitCode::Usage)
        })?),
    };
    Ok(Record {
        environment: field("environment"),
        values: layer.values,
        tool_version: field("toolVersion"),
        installed_at: field("installedAt"),
        installed_by: field("installedBy"),
        upgrade,
        kept_in,
    })
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
        kept_in: "Secret",
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
    let secret = crate::render::Object::Secret(crate::render::release_record(profile, &record)?)
        .with_secret_data();
    let opts = super::apply::ApplyOptions {
        dry_run: false,
        force_conflicts: true,
    };
    super::apply::apply(kube, &secret, opts).await?;
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
            kept_in: "Secret",
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

/// One value the release's record lays over the profile and `--values`: its key
/// (`networkPolicy.enabled`), the recorded value, and the value without the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Laid {
    pub key: String,
    pub recorded: String,
    pub without: String,
}

/// What the record changes: every key whose value differs between the profile with the record
/// (`with`) and without it (`without`: the embedded profile and `--values`). Pure.
pub fn laid(with: &Profile, without: &Profile) -> Vec<Laid> {
    let flat = |p: &Profile| {
        let mut out = std::collections::BTreeMap::new();
        flatten_json(&serde_json::to_value(p).unwrap_or_default(), "", &mut out);
        out
    };
    let (a, b) = (flat(with), flat(without));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Laid {
            key: k.clone(),
            recorded: a.get(k).cloned().unwrap_or_else(|| "(none)".into()),
            without: b.get(k).cloned().unwrap_or_else(|| "(none)".into()),
        })
        .collect()
}

/// The keys whose recorded value decides what runs with the passwords mounted, who may reach
/// the database, or prod's safety: a change of them by the record is confirmed.
fn sensitive(key: &str) -> bool {
    matches!(
        key,
        "image" | "metrics.image" | "snapshots.image" | "sampleData" | "production"
    ) || key.starts_with("networkPolicy.")
        || key.starts_with("metrics.scraperNamespaces")
}

/// Of `laid`, what would change the running release (`live`: its values as they run now, by the
/// same keys; absent when not there or not known), or lower a safety switch: to be confirmed.
/// Values the live release already runs with were applied before, and need nothing.
pub fn unconfirmed(laid: &[Laid], live: &std::collections::BTreeMap<String, String>) -> Vec<Laid> {
    laid.iter()
        .filter(|l| sensitive(&l.key))
        .filter(|l| match l.key.as_str() {
            // No live object shows them: only the unsafe direction is asked about.
            "sampleData" => l.recorded == "true",
            "production" => l.recorded == "false",
            key => live.get(key) != Some(&l.recorded),
        })
        .cloned()
        .collect()
}

fn flatten_json(
    v: &serde_json::Value,
    prefix: &str,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_json(v, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_json(v, &format!("{prefix}[{i}]"), out);
            }
            if items.is_empty() {
                out.insert(prefix.to_string(), "[]".into());
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod laid_tests {
    use super::*;

    #[test]
    fn what_the_record_changes_and_what_of_it_needs_a_yes() {
        let without = Profile::load("dev", None).unwrap();
        let planted: Value = serde_yaml::from_str(
            "image: evil.example.com/postgres:16\nnetworkPolicy: {enabled: false}\npostgresql: {workMem: 8MB}\n",
        )
        .unwrap();
        let with = Profile::load_layers(
            "dev",
            &[Layer::new(String::from("a planted record"), planted)],
        )
        .unwrap();
        let laid = laid(&with, &without);
        let keys: Vec<&str> = laid.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(
            keys,
            ["image", "networkPolicy.enabled", "postgresql.workMem"]
        );
        // Nothing live yet: both sensitive ones need a yes; the setting does not.
        let live = std::collections::BTreeMap::new();
        let asked: Vec<String> = unconfirmed(&laid, &live)
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(asked, ["image", "networkPolicy.enabled"]);
        // The release runs with them already (applied before): nothing to ask.
        let live: std::collections::BTreeMap<String, String> = [
            (
                "image".to_string(),
                "evil.example.com/postgres:16".to_string(),
            ),
            ("networkPolicy.enabled".to_string(), "false".to_string()),
        ]
        .into();
        assert!(unconfirmed(&laid, &live).is_empty());
    }
}
