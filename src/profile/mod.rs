//! Environment profiles: one YAML file per environment under `templates/profiles/`, embedded in the
//! binary, optionally overridden by a values file (`--values FILE`, like a Helm values file).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::error::{ExitCode, user_error};

mod layers;
pub mod rules;
pub mod type_errors;

pub use layers::{LAYER_LIMIT, Layer, merged, parse_yaml};
use layers::{Misfit, check_keys, merge, unknown_key};

/// The embedded profiles, by environment name.
const PROFILES: &[(&str, &str)] = &[
    ("dev", include_str!("../../templates/profiles/dev.yaml")),
    ("prod", include_str!("../../templates/profiles/prod.yaml")),
];

pub fn environments() -> Vec<&'static str> {
    PROFILES.iter().map(|(name, _)| *name).collect()
}

/// An environment: what every environment has, and either an in-cluster database (`cluster`, whose
/// keys sit at the top level of the profile file) or a managed server outside the cluster
/// (`managed:`). Which one is fixed by the embedded profile: a values file cannot add keys.
///
/// Not `deny_unknown_fields` (serde cannot combine it with `flatten`): values files are checked
/// key by key against the embedded profile, and a unit test reads every embedded profile back
/// unchanged, so a misspelt key in either is still refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub environment: String,
    pub namespace: String,
    pub release: String,
    pub database: String,
    pub admin_user: String,
    pub app_user: String,
    pub extensions: Vec<String>,
    /// Load the dev-only sample accounts (`sql/dev/`) with apply-schema; never in prod.
    pub sample_data: bool,
    /// A production environment: restore asks for the environment's name as well as the database's.
    pub production: bool,
    /// Backup files: who they are encrypted to.
    pub backups: Backups,
    /// Restore drills: the restore time they must stay within, and how often one is due.
    pub restore_drill: RestoreDrill,
    #[serde(flatten)]
    pub cluster: Option<Cluster>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<Managed>,
}

/// Backup files (`backup --to`, restore's safety backup).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backups {
    /// age recipients (`age1…`) every backup file is encrypted to (`backup --encrypt-to` instead);
    /// empty: backups are written in the clear (0600).
    pub encrypt_to: Vec<String>,
}

/// Restore drills (`verify --restore-drill`): the prod plan's recovery time objective (30
/// minutes) as the restore's limit, and how old the last drill may be before verify warns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreDrill {
    /// A duration (`30m`): a drill whose restore takes longer fails.
    pub rto_target: String,
    /// A duration (`7d`): verify warns when the last drill is older, or failed.
    pub every: String,
}

/// Restore drills on a schedule: a CronJob of this tool's image runs `verify --restore-drill
/// --snapshot latest` (a copy of the newest snapshot in a pod of its own, checked, removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrillSchedule {
    pub enabled: bool,
    /// Five-field cron, in `timeZone`.
    pub schedule: String,
    pub time_zone: String,
}

/// The database install runs in the cluster: a StatefulSet, its volume, services and Secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub image: String,
    pub image_pull_policy: String,
    pub architecture: Architecture,
    pub resources: Resources,
    pub storage: Storage,
    pub postgresql: PostgresSettings,
    pub service: ServiceSettings,
    pub security_context: SecurityContext,
    pub metrics: Metrics,
    pub network_policy: NetworkPolicySettings,
    pub snapshot: SnapshotSettings,
    pub snapshots: SnapshotSchedule,
    pub off_hours: OffHours,
    pub drill_schedule: DrillSchedule,
    pub expose: ExposeSettings,
    /// Where the data lives after `upgrade` moved it to a new major version: the StatefulSet
    /// `<release>-postgresql-<dataSet>` (e.g. `pg17`). Written by upgrade into the release's
    /// record, not by hand; absent: `<release>-postgresql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_set: Option<String>,
}

impl Cluster {
    /// The major version of the PostgreSQL image (`postgres:16`, `postgres:16.4-bookworm` → 16);
    /// `None` for a tag that does not start with one (`latest`, a digest only).
    pub fn image_major(&self) -> Option<u32> {
        image_major(&self.image)
    }
}

/// The major version an image reference's tag names, if it names one.
pub fn image_major(image: &str) -> Option<u32> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let (_, tag) = last.split_once(':')?;
    let digits: String = tag.chars().take_while(char::is_ascii_digit).collect();
    let rest = &tag[digits.len()..];
    if digits.is_empty() || !(rest.is_empty() || rest.starts_with(['.', '-'])) {
        return None;
    }
    digits.parse().ok()
}

/// `image` with its tag replaced by `major` (its digest dropped: it named the old image).
pub fn image_with_major(image: &str, major: u32) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (path, last) = match without_digest.rsplit_once('/') {
        Some((p, l)) => (format!("{p}/"), l),
        None => (String::new(), without_digest),
    };
    let name = last.split(':').next().unwrap_or(last);
    format!("{path}{name}:{major}")
}

/// A managed server outside the cluster (prod: Azure Database for PostgreSQL Flexible Server,
/// prod physical architecture, section 5.1). Install only records how to reach it, in the release's Secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Managed {
    /// The server's host name (install's `--server` overrides it).
    pub host: String,
    pub port: u16,
    /// libpq's sslmode for every connection, the app's too: verify-ca or verify-full.
    pub ssl_mode: String,
    /// The domain a bare server name (`--server NAME`) is completed with.
    pub domain: String,
}

/// `expose`: the developers' LoadBalancer service (runbook 4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExposeSettings {
    pub service_name: String,
}

/// Snapshots on a schedule (dev physical architecture 5.2.2: daily, kept 7 days): a CronJob that
/// runs this tool's image, `backup --snapshot --scheduled --keep N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotSchedule {
    pub enabled: bool,
    /// Five-field cron, in `timeZone`.
    pub schedule: String,
    pub time_zone: String,
    /// How many of the schedule's snapshots stay; older ones are deleted after each new one.
    pub keep: u32,
    /// This tool's container image (Dockerfile; docs/container.md).
    pub image: String,
}

/// Off-hours stop and start (runbook 10.1; dev physical architecture 10.1.2): two CronJobs of this
/// tool's image (`snapshots.image`) run `stop --scheduled` at `stopAt` and `start --scheduled` at
/// `startAt` on `weekdays`, in `timeZone`, with a Role that may only read and scale the StatefulSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffHours {
    pub enabled: bool,
    /// `HH:MM`, in `timeZone`.
    pub stop_at: String,
    pub start_at: String,
    pub time_zone: String,
    /// The days both run on: `mon` … `sun`.
    pub weekdays: Vec<String>,
}

/// The weekdays' names, in cron's numbering (0 = Sunday).
pub const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl OffHours {
    /// The five-field cron schedule of `at` (`HH:MM`) on the weekdays: `0 20 * * 1,2,3,4,5`.
    /// `None` when `at` is not a time of day or a weekday is unknown (the rules say which).
    pub fn cron(&self, at: &str) -> Option<String> {
        let (h, m) = time_of_day(at)?;
        let mut days: Vec<usize> = self
            .weekdays
            .iter()
            .map(|d| WEEKDAYS.iter().position(|w| w == d))
            .collect::<Option<_>>()?;
        days.sort();
        days.dedup();
        let days: Vec<String> = days.iter().map(usize::to_string).collect();
        Some(format!("{m} {h} * * {}", days.join(",")))
    }
}

/// `HH:MM` (00:00 to 23:59) as hour and minute.
pub fn time_of_day(text: &str) -> Option<(u32, u32)> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

/// `backup --snapshot`: the VolumeSnapshotClass of the data volume's CSI driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotSettings {
    pub class_name: String,
    /// The CSI driver `--create-snapshot-class` makes the class for.
    pub driver: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Standalone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub requests: CpuMemory,
    pub limits: CpuMemory,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuMemory {
    pub cpu: String,
    pub memory: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Storage {
    pub class_name: String,
    pub size: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresSettings {
    pub shared_buffers: String,
    pub effective_cache_size: String,
    pub max_connections: u32,
    pub work_mem: String,
    pub maintenance_work_mem: String,
    pub time_zone: String,
    /// Preload pg_stat_statements (`shared_preload_libraries`): the slowest statements of
    /// `status --queries` (runbook 8.1). Changing it restarts the server.
    pub stat_statements: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    pub run_as_user: i64,
    pub fs_group: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    pub enabled: bool,
    pub image: String,
    pub port: u16,
    /// The exporter's own login (`pg_monitor`, nothing else): not the administrator, so that
    /// rotating the admin password leaves the exporter logged in.
    pub user: String,
    /// The namespaces whose pods may scrape the metrics port when the NetworkPolicy is on.
    pub scraper_namespaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySettings {
    pub enabled: bool,
    pub allow_from_pod_labels: BTreeMap<String, String>,
}

/// Names of every object, derived from the profile in one place (spec: compatibility section).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Names {
    pub release: String,
    pub stateful_set: String,
    pub pod: String,
    pub pvc: String,
    pub service: String,
    pub headless_service: String,
    pub metrics_service: String,
    pub config_map: String,
    pub admin_secret: String,
    pub app_secret: String,
    /// The CA that signs the server's certificate (ca.crt, ca.key); never mounted.
    pub ca_secret: String,
    /// The server's certificate and key (kubernetes.io/tls, plus ca.crt), mounted in the pod.
    pub tls_secret: String,
    pub service_account: String,
    pub network_policy: String,
    /// The snapshot schedule's CronJob, and its ServiceAccount, Role, RoleBinding and ConfigMap
    /// (CronJob names may have 52 characters: the release's name and `-snapshots`).
    pub snapshot_schedule: String,
    /// The ConfigMap recording what install applied (`k8s::record`).
    pub record: String,
    /// The off-hours schedule's ServiceAccount, Role, RoleBinding and ConfigMap.
    pub off_hours: String,
    /// The off-hours schedule's CronJobs: `stop --scheduled` and `start --scheduled`.
    pub stop_schedule: String,
    pub start_schedule: String,
    /// A snapshot restore drill's copy: its claim, pod and NetworkPolicy (removed after each drill).
    pub drill: String,
    /// The ConfigMap with the last restore drill's result.
    pub drill_record: String,
    /// The drill schedule's CronJob, ServiceAccount, Role, RoleBinding and ConfigMap.
    pub drill_schedule: String,
    /// The PostgreSQL container of the pod (exec runs pg_dump/pg_restore in it).
    pub container: String,
    /// The LoadBalancer service `expose` makes (runbook 4.3); none for a managed server.
    pub external_service: Option<String>,
}

pub const APP_SECRET: &str = "auth-db-secret";
/// The StatefulSet's volume claim template of the data volume (templates/manifests/50-statefulset.yaml):
/// its claim is `data-<statefulset>-0`.
pub const DATA_TEMPLATE: &str = "data";
pub const MANAGED_BY: &str = "phonebill-db";

impl Profile {
    /// The embedded profile of `env`, with the values file (if any) laid over it.
    pub fn load(env: &str, values: Option<&Path>) -> Result<Profile> {
        let layers: Vec<Layer> = values
            .map(Layer::from_file)
            .transpose()?
            .into_iter()
            .collect();
        Profile::load_layers(env, &layers)
    }

    /// The embedded profile of `env` with `layers` laid over it in order (the release's recorded
    /// values, then a values file): each layer's keys must exist in the profile; a broken key is
    /// named with the layer that gave it.
    pub fn load_layers(env: &str, layers: &[Layer]) -> Result<Profile> {
        let (_, text) = PROFILES
            .iter()
            .find(|(name, _)| *name == env)
            .ok_or_else(|| {
                user_error(format!(
                    "unknown environment `{}`",
                    crate::error::shown(env)
                ))
                .hint(format!("choose one of: {}", environments().join(", ")))
                .exit(ExitCode::Usage)
            })?;
        let mut base: Value = serde_yaml::from_str(text)
            .with_context(|| format!("the embedded profile `{env}` is not valid YAML (a bug)"))?;
        let embedded_values = base.clone();
        for layer in layers {
            if let Some(key) = rules::control_character(&layer.values, "") {
                return Err(layer
                    .refusal(format!(
                        "key `{key}`: control characters (a line break, a tab, …) are not allowed"
                    ))
                    .hint("write the value on one line, without control characters")
                    .into());
            }
            match check_keys(&base, &layer.values, "") {
                Ok(()) => {}
                Err(Misfit::Unknown(key)) => return Err(unknown_key(layer, &key, &base)),
                Err(Misfit::NotAMapping(key, found)) => {
                    return Err(layer
                        .refusal(format!(
                            "key `{key}`: expected a mapping of keys, as in the profile, found {found}"
                        ))
                        .hint(format!(
                            "set the keys below `{key}` one by one, or leave `{key}` out (`phonebill-db values --env {env}` prints them)"
                        ))
                        .into());
                }
            }
            merge(&mut base, layer.values.clone());
        }
        let embedded = format!("the embedded profile `{env}`");
        // The layer a broken key came from: the last one that sets it.
        let source = |key: &str| {
            layers
                .iter()
                .rev()
                .find(|l| l.sets(key))
                .map_or(embedded.clone(), |l| l.source.clone())
        };
        let bad_value = |e: serde_path_to_error::Error<serde_yaml::Error>| {
            let key = e.path().to_string();
            let (cause, hint) = type_errors::words(
                &e.inner().to_string(),
                &crate::error::shown(&key),
                type_errors::at(&embedded_values, &key),
            );
            user_error(format!("{}: {cause}", source(&key)))
                .hint(hint.replace("--env ENV", &format!("--env {env}")))
                .exit(ExitCode::Usage)
        };
        let profile: Profile = serde_path_to_error::deserialize(base.clone()).map_err(bad_value)?;
        match (&profile.cluster, &profile.managed) {
            (Some(_), None) | (None, Some(_)) => {}
            // serde's `flatten` turns a bad in-cluster value into "no in-cluster keys": read the
            // in-cluster part alone to name the key.
            (None, None) => {
                serde_path_to_error::deserialize::<_, Cluster>(base).map_err(bad_value)?;
                anyhow::bail!("profile `{env}` has neither in-cluster keys nor `managed:` (a bug)");
            }
            (Some(_), Some(_)) => {
                anyhow::bail!("profile `{env}` has both in-cluster keys and `managed:` (a bug)")
            }
        }
        if let Some(b) = rules::check(&profile, env) {
            return Err(user_error(format!(
                "{}: key `{}`: `{}` is not allowed",
                source(&b.key),
                crate::error::shown(&b.key),
                crate::error::shown(&b.value)
            ))
            .hint(format!("allowed: {}", b.allowed))
            .exit(ExitCode::Usage)
            .into());
        }
        Ok(profile)
    }

    pub fn names(&self) -> Names {
        let base = format!("{}-postgresql", self.release);
        let stateful_set = match self.cluster.as_ref().and_then(|c| c.data_set.as_ref()) {
            Some(set) => format!("{base}-{set}"),
            None => base.clone(),
        };
        Names {
            release: self.release.clone(),
            pod: format!("{stateful_set}-0"),
            pvc: format!("{DATA_TEMPLATE}-{stateful_set}-0"),
            service: base.clone(),
            headless_service: format!("{base}-hl"),
            metrics_service: format!("{base}-metrics"),
            config_map: format!("{base}-configuration"),
            admin_secret: base.clone(),
            app_secret: APP_SECRET.to_string(),
            ca_secret: format!("{base}-ca"),
            tls_secret: format!("{base}-tls"),
            service_account: base.clone(),
            network_policy: base.clone(),
            snapshot_schedule: format!("{}-snapshots", self.release),
            record: format!("{}-values", self.release),
            off_hours: format!("{}-off-hours", self.release),
            stop_schedule: format!("{}-stop", self.release),
            start_schedule: format!("{}-start", self.release),
            drill: format!("{}-drill", self.release),
            drill_record: format!("{}-drill-record", self.release),
            drill_schedule: format!("{}-drills", self.release),
            container: "postgresql".to_string(),
            external_service: self.cluster.as_ref().map(|c| c.expose.service_name.clone()),
            stateful_set,
        }
    }

    /// The in-cluster database's settings, or a one-line refusal naming `what` needed them.
    pub fn cluster(&self, what: &str) -> Result<&Cluster> {
        match (&self.cluster, &self.managed) {
            (Some(c), _) => Ok(c),
            (None, m) => Err(user_error(format!(
                "{what}: environment `{}` has no database in the cluster; it runs on the managed server {}",
                self.environment,
                m.as_ref().map_or("(unknown)", |m| m.host.as_str())
            ))
            .hint("reach it from inside its network with apply-schema, verify, backup and restore, which connect to the server over TLS")
            .exit(ExitCode::Usage)
            .into()),
        }
    }

    /// `app.kubernetes.io/*` labels every object carries.
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "postgresql".to_string(),
            ),
            (
                "app.kubernetes.io/instance".to_string(),
                self.release.clone(),
            ),
            (
                "app.kubernetes.io/managed-by".to_string(),
                MANAGED_BY.to_string(),
            ),
        ])
    }

    /// What selects the primary pod (the runbook's selector in 4.3.1 and 4.4.1).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "postgresql".to_string(),
            ),
            (
                "app.kubernetes.io/instance".to_string(),
                self.release.clone(),
            ),
            (
                "app.kubernetes.io/component".to_string(),
                "primary".to_string(),
            ),
        ])
    }

    /// The labels of the release's primary: its pod, its data volume and the snapshots of it.
    pub fn primary_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.common_labels();
        labels.insert("app.kubernetes.io/component".into(), "primary".into());
        labels
    }

    /// Label selector string for everything install made.
    /// What the Services select: the primary pod of the StatefulSet that holds the data, by the
    /// pod-name label the StatefulSet controller sets. During an upgrade a second StatefulSet's
    /// pod carries the same labels; only `upgrade`'s switch moves the Services to it.
    pub fn serving_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert(
            "statefulset.kubernetes.io/pod-name".into(),
            self.names().pod,
        );
        labels
    }

    pub fn managed_selector(&self) -> String {
        format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGED_BY}",
            self.release
        )
    }
}

/// A DNS name (RFC 1123 labels joined by dots) or an IPv4 address.
pub fn is_host_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// RFC 1123 label: what Kubernetes accepts for namespaces and most object names.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn values(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn dev_profile_has_the_plan_values() {
        let p = Profile::load("dev", None).unwrap();
        assert_eq!(p.namespace, "phonebill-dev");
        assert_eq!(p.database, "phonebill_auth");
        assert_eq!(p.app_user, "auth_user");
        assert!(p.managed.is_none());
        let c = p.cluster("test").unwrap();
        assert_eq!(c.storage.class_name, "managed-standard");
        assert_eq!(c.storage.size, "20Gi");
        assert_eq!(c.resources.requests.cpu, "500m");
        assert_eq!(c.resources.limits.memory, "2Gi");
        assert_eq!(c.postgresql.max_connections, 100);
        assert!(c.metrics.enabled);
        assert!(c.network_policy.enabled);
        let n = p.names();
        assert_eq!(n.stateful_set, "auth-postgres-dev-postgresql");
        assert_eq!(n.headless_service, "auth-postgres-dev-postgresql-hl");
        assert_eq!(n.pvc, "data-auth-postgres-dev-postgresql-0");
    }

    #[test]
    fn the_image_tag_names_the_major_version() {
        for (image, major) in [
            ("docker.io/library/postgres:16", Some(16)),
            ("postgres:16.4-bookworm", Some(16)),
            ("registry.local:5000/postgres:17-alpine", Some(17)),
            ("postgres:9.6", Some(9)),
            ("postgres:latest", None),
            ("postgres", None),
            ("registry.local:5000/postgres", None),
            ("postgres:16beta1", None),
            (
                "postgres@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                None,
            ),
        ] {
            assert_eq!(image_major(image), major, "{image}");
        }
        assert_eq!(
            image_with_major("docker.io/library/postgres:16.4@sha256:ab", 17),
            "docker.io/library/postgres:17"
        );
        assert_eq!(
            image_with_major("registry.local:5000/postgres", 17),
            "registry.local:5000/postgres:17"
        );
    }

    #[test]
    fn an_upgraded_release_lives_in_the_data_set_statefulset() {
        let f = values("dataSet: pg17\n");
        let p = Profile::load("dev", Some(f.path())).unwrap();
        let n = p.names();
        assert_eq!(n.stateful_set, "auth-postgres-dev-postgresql-pg17");
        assert_eq!(n.pod, "auth-postgres-dev-postgresql-pg17-0");
        assert_eq!(n.pvc, "data-auth-postgres-dev-postgresql-pg17-0");
        // The Services keep their names: clients do not change.
        assert_eq!(n.service, "auth-postgres-dev-postgresql");
        assert_eq!(n.headless_service, "auth-postgres-dev-postgresql-hl");
        for bad in [
            "dataSet: v17\n",
            "dataSet: pg\n",
            "dataSet: pg17\nrelease: a-release-name-of-thirty-nine-chars-xx\n",
        ] {
            let f = values(bad);
            let e = crate::error::report(&Profile::load("dev", Some(f.path())).unwrap_err());
            assert!(e.error.contains("key `dataSet`"), "{bad}: {}", e.error);
        }
    }

    #[test]
    fn values_override_nested_keys_only() {
        let f = values("storage:\n  className: managed-csi\npostgresql:\n  maxConnections: 200\n");
        let p = Profile::load("dev", Some(f.path())).unwrap();
        let c = p.cluster("test").unwrap();
        assert_eq!(c.storage.class_name, "managed-csi");
        assert_eq!(c.storage.size, "20Gi");
        assert_eq!(c.postgresql.max_connections, 200);
        assert_eq!(c.postgresql.work_mem, "4MB");
    }

    #[test]
    fn prod_is_the_managed_server() {
        let p = Profile::load("prod", None).unwrap();
        assert_eq!(p.namespace, "phonebill-prod");
        assert!(!p.sample_data);
        assert!(p.production);
        let m = p.managed.as_ref().unwrap();
        assert_eq!(m.host, "phonebill-postgresql.postgres.database.azure.com");
        assert_eq!(m.ssl_mode, "verify-full");
        assert!(p.cluster.is_none());
        let r = crate::error::report(&p.cluster("expose").unwrap_err());
        assert!(
            r.error.contains("managed server phonebill-postgresql"),
            "{}",
            r.error
        );
        assert_eq!(p.names().external_service, None);
        assert_eq!(p.names().app_secret, "auth-db-secret");
    }

    #[test]
    fn every_key_of_the_embedded_profiles_is_read() {
        // Without deny_unknown_fields at the top, a misspelt key would be dropped: the profile read
        // back must equal its file.
        for (env, text) in PROFILES {
            let file: Value = serde_yaml::from_str(text).unwrap();
            let back = serde_yaml::to_value(Profile::load(env, None).unwrap()).unwrap();
            assert_eq!(back, file, "profile {env}");
        }
    }

    #[test]
    fn a_values_file_cannot_turn_one_kind_into_the_other() {
        let f = values("storage:\n  size: 1Gi\n");
        let r = crate::error::report(&Profile::load("prod", Some(f.path())).unwrap_err());
        assert!(r.error.contains("unknown key `storage`"), "{}", r.error);
        let f = values("managed:\n  port: 6432\n");
        let r = crate::error::report(&Profile::load("dev", Some(f.path())).unwrap_err());
        assert!(r.error.contains("unknown key `managed`"), "{}", r.error);
    }

    #[test]
    fn a_managed_server_must_be_verified() {
        let f = values("managed:\n  sslMode: require\n");
        let r = crate::error::report(&Profile::load("prod", Some(f.path())).unwrap_err());
        assert!(r.error.contains("managed.sslMode"), "{}", r.error);
        let f = values("managed:\n  host: Phonebill_DB\n");
        let r = crate::error::report(&Profile::load("prod", Some(f.path())).unwrap_err());
        assert!(r.error.contains("managed.host"), "{}", r.error);
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let f = values("storage:\n  clasName: x\n");
        let err = Profile::load("dev", Some(f.path())).unwrap_err();
        let r = crate::error::report(&err);
        assert!(
            r.error.contains("unknown key `storage.clasName`"),
            "{}",
            r.error
        );
        assert!(r.error.contains(&f.path().display().to_string()));
        assert!(r.hint.unwrap().contains("className"));
    }

    #[test]
    fn a_mapping_replaced_by_null_or_a_scalar_is_named_with_the_file() {
        for (env, text, key, found) in [
            ("prod", "managed: null\n", "managed", "null"),
            ("prod", "managed: [a]\n", "managed", "a list"),
            (
                "dev",
                "snapshots:\n  enabled: true\n  image: x\nstorage: {className: null}\nresources: ~\n",
                "resources",
                "null",
            ),
            ("dev", "storage: 5\n", "storage", "a number"),
        ] {
            let f = values(text);
            let r = crate::error::report(&Profile::load(env, Some(f.path())).unwrap_err());
            assert_eq!(r.exit_code, 2, "{}", r.error);
            assert!(
                r.error.contains(&f.path().display().to_string())
                    && r.error.contains(&format!("key `{key}`"))
                    && r.error.contains(found),
                "{text}: {}",
                r.error
            );
            assert!(r.hint.unwrap().contains(key));
        }
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let f = values("postgresql:\n  maxConnections: lots\n");
        let r = crate::error::report(&Profile::load("dev", Some(f.path())).unwrap_err());
        assert!(
            r.error.contains(
                "key `postgresql.maxConnections` is the text \"lots\", not a whole number"
            ),
            "{}",
            r.error
        );
        assert!(r.hint.unwrap().contains("`postgresql.maxConnections: 100`"));
    }

    #[test]
    fn unknown_environment_lists_the_known_ones() {
        let r = crate::error::report(&Profile::load("qa", None).unwrap_err());
        assert_eq!(r.error, "unknown environment `qa`");
        assert!(r.hint.unwrap().contains("dev"));
    }

    #[test]
    fn invalid_names_are_refused() {
        let f = values("namespace: Phonebill_Dev\n");
        let r = crate::error::report(&Profile::load("dev", Some(f.path())).unwrap_err());
        assert!(r.error.contains("key `namespace`"), "{}", r.error);
    }
}
