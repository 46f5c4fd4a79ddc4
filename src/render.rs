//! Templates → typed Kubernetes objects. Pure: the same profile and passwords give the same bytes.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::certs::Tls;
use crate::profile::Profile;

/// The manifest templates, in apply order (dependencies first), embedded at compile time.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "10-serviceaccount.yaml",
        include_str!("../templates/manifests/10-serviceaccount.yaml"),
    ),
    (
        "20-secret-admin.yaml",
        include_str!("../templates/manifests/20-secret-admin.yaml"),
    ),
    (
        "21-secret-app.yaml",
        include_str!("../templates/manifests/21-secret-app.yaml"),
    ),
    (
        "22-secret-ca.yaml",
        include_str!("../templates/manifests/22-secret-ca.yaml"),
    ),
    (
        "23-secret-tls.yaml",
        include_str!("../templates/manifests/23-secret-tls.yaml"),
    ),
    (
        "30-configmap.yaml",
        include_str!("../templates/manifests/30-configmap.yaml"),
    ),
    (
        "40-service-headless.yaml",
        include_str!("../templates/manifests/40-service-headless.yaml"),
    ),
    (
        "41-service.yaml",
        include_str!("../templates/manifests/41-service.yaml"),
    ),
    (
        "42-service-metrics.yaml",
        include_str!("../templates/manifests/42-service-metrics.yaml"),
    ),
    (
        "50-statefulset.yaml",
        include_str!("../templates/manifests/50-statefulset.yaml"),
    ),
    (
        "60-networkpolicy.yaml",
        include_str!("../templates/manifests/60-networkpolicy.yaml"),
    ),
    (
        "70-snapshots-serviceaccount.yaml",
        include_str!("../templates/manifests/70-snapshots-serviceaccount.yaml"),
    ),
    (
        "71-snapshots-role.yaml",
        include_str!("../templates/manifests/71-snapshots-role.yaml"),
    ),
    (
        "72-snapshots-rolebinding.yaml",
        include_str!("../templates/manifests/72-snapshots-rolebinding.yaml"),
    ),
    (
        "73-snapshots-values.yaml",
        include_str!("../templates/manifests/73-snapshots-values.yaml"),
    ),
    (
        "74-snapshots-cronjob.yaml",
        include_str!("../templates/manifests/74-snapshots-cronjob.yaml"),
    ),
    (
        "75-off-hours-serviceaccount.yaml",
        include_str!("../templates/manifests/75-off-hours-serviceaccount.yaml"),
    ),
    (
        "76-off-hours-role.yaml",
        include_str!("../templates/manifests/76-off-hours-role.yaml"),
    ),
    (
        "77-off-hours-rolebinding.yaml",
        include_str!("../templates/manifests/77-off-hours-rolebinding.yaml"),
    ),
    (
        "78-off-hours-values.yaml",
        include_str!("../templates/manifests/78-off-hours-values.yaml"),
    ),
    (
        "79-off-hours-stop-cronjob.yaml",
        include_str!("../templates/manifests/79-off-hours-stop-cronjob.yaml"),
    ),
    (
        "80-off-hours-start-cronjob.yaml",
        include_str!("../templates/manifests/80-off-hours-start-cronjob.yaml"),
    ),
    (
        "81-drills-serviceaccount.yaml",
        include_str!("../templates/manifests/81-drills-serviceaccount.yaml"),
    ),
    (
        "82-drills-role.yaml",
        include_str!("../templates/manifests/82-drills-role.yaml"),
    ),
    (
        "83-drills-rolebinding.yaml",
        include_str!("../templates/manifests/83-drills-rolebinding.yaml"),
    ),
    (
        "84-drills-values.yaml",
        include_str!("../templates/manifests/84-drills-values.yaml"),
    ),
    (
        "85-drill-record.yaml",
        include_str!("../templates/manifests/85-drill-record.yaml"),
    ),
    (
        "86-drills-cronjob.yaml",
        include_str!("../templates/manifests/86-drills-cronjob.yaml"),
    ),
];
/// A managed server's release: only the Secrets (no StatefulSet, volume or service).
const MANAGED_TEMPLATES: &[(&str, &str)] = &[
    (
        "20-secret-server.yaml",
        include_str!("../templates/managed/20-secret-server.yaml"),
    ),
    (
        "21-secret-app.yaml",
        include_str!("../templates/manifests/21-secret-app.yaml"),
    ),
];
/// Pieces the manifest templates include (`{% include "job-pod.yaml" %}`).
const INCLUDES: &[(&str, &str)] = &[(
    "job-pod.yaml",
    include_str!("../templates/include/job-pod.yaml"),
)];
const STORAGE_CLASS: &str = include_str!("../templates/storageclass.yaml");
const EXTERNAL_SERVICE: &str = include_str!("../templates/external-service.yaml");
const EXTERNAL_POLICY: &str = include_str!("../templates/external-networkpolicy.yaml");
const SNAPSHOT_CLASS: &str = include_str!("../templates/volumesnapshotclass.yaml");
const RELEASE_RECORD: &str = include_str!("../templates/release-record.yaml");

/// What `render` shows instead of a password: nothing secret leaves the tool without a cluster.
pub const PASSWORD_PLACEHOLDER: &str = "GENERATED-AT-INSTALL";
/// A managed server's administrator password: the user gives it to install.
pub const GIVEN_PLACEHOLDER: &str = "GIVEN-AT-INSTALL";

/// The passwords of a release — the administrator's, the app's, the metrics exporter's — and the
/// SCRAM-SHA-256 verifiers of the app's and the exporter's (what the pod's first start gives
/// their roles: the server never sees the passwords themselves). `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Passwords {
    pub admin: String,
    pub app: String,
    pub app_scram: String,
    pub metrics: String,
    pub metrics_scram: String,
    /// The exporter's password was made now, for a release from before it had a login of its
    /// own: its role is not in the database yet (apply-schema makes it). Not rendered.
    pub metrics_added: bool,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords { .. }")
    }
}

impl Passwords {
    pub fn placeholders() -> Passwords {
        Passwords {
            admin: PASSWORD_PLACEHOLDER.into(),
            app: PASSWORD_PLACEHOLDER.into(),
            app_scram: PASSWORD_PLACEHOLDER.into(),
            metrics: PASSWORD_PLACEHOLDER.into(),
            metrics_scram: PASSWORD_PLACEHOLDER.into(),
            metrics_added: false,
        }
    }

    /// A release's passwords with new verifiers of the app's and the exporter's (random salts).
    pub fn with_new_verifier(admin: String, app: String, metrics: String) -> Passwords {
        let app_scram = crate::db::role::scram_verifier(&app);
        let metrics_scram = crate::db::role::scram_verifier(&metrics);
        Passwords {
            admin,
            app,
            app_scram,
            metrics,
            metrics_scram,
            metrics_added: false,
        }
    }

    /// [`Passwords::placeholders`], saying which password install generates and which it is given.
    pub fn placeholders_for(profile: &Profile) -> Passwords {
        Passwords {
            admin: if profile.managed.is_some() {
                GIVEN_PLACEHOLDER.into()
            } else {
                PASSWORD_PLACEHOLDER.into()
            },
            ..Passwords::placeholders()
        }
    }
}

/// One object install applies, typed. (A handful per run: the size difference is harmless.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    ServiceAccount(ServiceAccount),
    Secret(Secret),
    ConfigMap(ConfigMap),
    Service(Service),
    StatefulSet(StatefulSet),
    NetworkPolicy(NetworkPolicy),
    Role(Role),
    RoleBinding(RoleBinding),
    CronJob(CronJob),
}

/// Every variant's inner object, as `$o`, for code that treats them alike.
macro_rules! each_object {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            Object::ServiceAccount($o) => $body,
            Object::Secret($o) => $body,
            Object::ConfigMap($o) => $body,
            Object::Service($o) => $body,
            Object::StatefulSet($o) => $body,
            Object::NetworkPolicy($o) => $body,
            Object::Role($o) => $body,
            Object::RoleBinding($o) => $body,
            Object::CronJob($o) => $body,
        }
    };
}
pub(crate) use each_object;

impl Object {
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        each_object!(self, o => &o.metadata)
    }

    pub fn kind(&self) -> &'static str {
        fn kind_of<K: k8s_openapi::Resource>(_: &K) -> &'static str {
            K::KIND
        }
        each_object!(self, o => kind_of(o))
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    pub fn to_json(&self) -> serde_json::Value {
        each_object!(self, o => serde_json::to_value(o))
            .expect("k8s-openapi types always serialize")
    }

    /// Secrets go to the API as `data`, never `stringData`: the server stores only `data`, so
    /// applying `data` keeps re-applies exact no-ops.
    pub fn with_secret_data(self) -> Object {
        match self {
            Object::Secret(mut s) => {
                if let Some(strings) = s.string_data.take() {
                    let data = s.data.get_or_insert_with(BTreeMap::new);
                    for (k, v) in strings {
                        data.insert(k, ByteString(v.into_bytes()));
                    }
                }
                Object::Secret(s)
            }
            other => other,
        }
    }
}

/// Render every manifest of the profile with the given passwords: an in-cluster release, or the
/// Secrets of a managed server's.
pub fn render(profile: &Profile, passwords: &Passwords, tls: &Tls) -> Result<Vec<Object>> {
    let env = environment();
    let mut ctx = context(profile, passwords, tls);
    let templates = if profile.managed.is_some() {
        MANAGED_TEMPLATES
    } else {
        // The ConfigMap's checksum goes into the pod template, so a changed configuration rolls the pod.
        let (name, source) = TEMPLATES
            .iter()
            .find(|(n, _)| *n == "30-configmap.yaml")
            .expect("the ConfigMap template is listed");
        let config = render_one(&env, name, source, &ctx)?;
        ctx["configChecksum"] = json!(hex::encode(Sha256::digest(config.as_bytes())));
        TEMPLATES
    };
    let mut objects = Vec::new();
    for (name, source) in templates {
        let text = render_one(&env, name, source, &ctx)?;
        if let Some(object) = parse(name, &text)? {
            objects.push(object);
        }
    }
    Ok(objects)
}

/// The plan's StorageClass (`install --create-storage-class`).
pub fn storage_class(name: &str) -> Result<StorageClass> {
    let text = render_one(
        &environment(),
        "storageclass.yaml",
        STORAGE_CLASS,
        &json!({ "name": name }),
    )?;
    let raw: serde_json::Value =
        serde_yaml::from_str(&text).context("storageclass.yaml renders invalid YAML (a bug)")?;
    typed(&raw, "storageclass.yaml")
}

/// The developers' LoadBalancer service of `expose` (runbook 4.3): `ranges` as
/// loadBalancerSourceRanges (none: open to all), `internal` for an Azure internal load balancer.
pub fn external_service(profile: &Profile, ranges: &[String], internal: bool) -> Result<Service> {
    let ctx = external_context(profile, ranges, internal);
    let text = render_one(
        &environment(),
        "external-service.yaml",
        EXTERNAL_SERVICE,
        &ctx,
    )?;
    let raw: serde_json::Value = serde_yaml::from_str(&text)
        .context("external-service.yaml renders invalid YAML (a bug)")?;
    typed(&raw, "external-service.yaml")
}

/// `expose`'s NetworkPolicy: `ranges` (every range the load balancer lets through, `0.0.0.0/0`
/// and `::/0` for --allow-any) may reach the PostgreSQL port.
pub fn external_policy(profile: &Profile, ranges: &[String]) -> Result<NetworkPolicy> {
    let ctx = external_context(profile, ranges, false);
    let text = render_one(
        &environment(),
        "external-networkpolicy.yaml",
        EXTERNAL_POLICY,
        &ctx,
    )?;
    let raw: serde_json::Value = serde_yaml::from_str(&text)
        .context("external-networkpolicy.yaml renders invalid YAML (a bug)")?;
    typed(&raw, "external-networkpolicy.yaml")
}

fn external_context(profile: &Profile, ranges: &[String], internal: bool) -> serde_json::Value {
    json!({
        "profile": profile,
        "names": profile.names(),
        "namespace": profile.namespace,
        "labels": with(profile.common_labels(), "purpose", "external-access"),
        "selector": profile.serving_labels(),
        // The policy admits the release's pods whichever serves (an upgrade's switch moves the
        // Service, not the policy).
        "podSelector": profile.selector_labels(),
        "ranges": ranges,
        "internal": internal,
    })
}

/// The snapshot class of `backup --snapshot --create-snapshot-class`.
pub fn snapshot_class(
    name: &str,
    driver: &str,
) -> Result<crate::k8s::snapshot::VolumeSnapshotClass> {
    let text = render_one(
        &environment(),
        "volumesnapshotclass.yaml",
        SNAPSHOT_CLASS,
        &json!({ "name": name, "driver": driver }),
    )?;
    serde_yaml::from_str(&text).context("volumesnapshotclass.yaml renders an invalid class (a bug)")
}

/// The ConfigMap recording what install applied (`k8s::record`).
pub fn release_record(profile: &Profile, record: &crate::k8s::record::Record) -> Result<Secret> {
    let values = serde_yaml::to_string(&record.values).context("the recorded values (a bug)")?;
    let upgrade = record
        .upgrade
        .as_ref()
        .map(serde_yaml::to_string)
        .transpose()
        .context("the recorded upgrade (a bug)")?;
    let ctx = json!({
        "upgrade": upgrade,
        "names": profile.names(),
        "namespace": profile.namespace,
        "labels": with(profile.common_labels(), "app.kubernetes.io/component", "record"),
        "record": record,
        "values": values,
    });
    let text = render_one(&environment(), "release-record.yaml", RELEASE_RECORD, &ctx)?;
    let raw: serde_json::Value =
        serde_yaml::from_str(&text).context("release-record.yaml renders invalid YAML (a bug)")?;
    typed(&raw, "release-record.yaml")
}

/// An SQL template of `sql/` (strict; values escaped with the `ident` and `literal` filters).
pub fn render_sql(name: &str, source: &str, ctx: &serde_json::Value) -> Result<String> {
    render_one(&environment(), name, source, ctx)
}

/// Multi-document YAML, as `render` prints it.
pub fn to_yaml(objects: &[Object]) -> Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&o.to_json())?);
    }
    Ok(out)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Escaping is explicit: `tojson` for YAML values, `conf` and `ident` inside embedded files.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // What several manifests share, included by name.
    for (name, source) in INCLUDES {
        env.add_template(name, source)
            .expect("the embedded includes parse (a bug otherwise)");
    }
    // Each refuses what it cannot quote (a control character: a line break would start a new
    // postgresql.conf line or SQL statement) instead of passing it through.
    env.add_filter("conf", |v: String| {
        quotable(&v, "conf")?;
        Ok::<_, minijinja::Error>(format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''")))
    });
    env.add_filter("ident", |v: String| {
        quotable(&v, "ident")?;
        Ok::<_, minijinja::Error>(format!("\"{}\"", v.replace('"', "\"\"")))
    });
    env.add_filter("literal", |v: String| {
        quotable(&v, "literal")?;
        Ok::<_, minijinja::Error>(format!("'{}'", v.replace('\'', "''")))
    });
    env
}

/// A value a quoting filter can quote: no control characters, no NUL.
fn quotable(v: &str, filter: &str) -> Result<(), minijinja::Error> {
    match v.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "the {filter} filter cannot quote {:?} (a control character): refused",
                c
            ),
        )),
    }
}

fn context(profile: &Profile, passwords: &Passwords, tls: &Tls) -> serde_json::Value {
    let names = profile.names();
    // Where the app's URL points: the in-cluster service, or the managed server with its TLS mode.
    let server = match (&profile.managed, &profile.cluster) {
        (Some(m), _) => {
            json!({ "host": m.host, "port": m.port, "query": format!("?sslmode={}", m.ssl_mode), "ca": null })
        }
        // The app checks the server's certificate and its name, the Service's (the CA is in the
        // Secret as ca.crt).
        (None, Some(c)) => {
            json!({ "host": names.service, "port": c.service.port, "query": "?sslmode=verify-full", "ca": tls.ca_crt })
        }
        (None, None) => json!({ "ca": null }),
    };
    json!({
        "server": server,
        "profile": profile,
        "names": names,
        "namespace": profile.namespace,
        "labels": {
            "common": profile.common_labels(),
            "selector": profile.selector_labels(),
            "serving": profile.serving_labels(),
            "primary": profile.primary_labels(),
            "metrics": with(profile.common_labels(), "app.kubernetes.io/component", "metrics"),
            "snapshots": with(profile.common_labels(), "app.kubernetes.io/component", "snapshots"),
            "offHours": with(profile.common_labels(), "app.kubernetes.io/component", "off-hours"),
            "drills": with(
                profile.common_labels(),
                "app.kubernetes.io/component",
                crate::k8s::drill_record::COMPONENT,
            ),
        },
        "passwords": {
            "admin": passwords.admin,
            "app": passwords.app,
            "appUrlEncoded": url_encode(&passwords.app),
            "appScram": passwords.app_scram,
            "metrics": passwords.metrics,
            "metricsScram": passwords.metrics_scram,
        },
        "tls": {
            "caCrt": tls.ca_crt,
            "caKey": tls.ca_key,
            "crt": tls.crt,
            "key": tls.key,
            // The server certificate in the pod template: a renewed one rolls the pod.
            "checksum": hex::encode(Sha256::digest(tls.crt.as_bytes())),
        },
        "configChecksum": "",
        // What the snapshot schedule's job needs of the profile, as a values file.
        "snapshotValues": snapshot_values(profile),
        // Where the release is, for the off-hours and drill jobs.
        "jobValues": job_values(profile),
        // The off-hours CronJobs' schedules (the profile's times and weekdays, checked by its rules).
        "offHoursStop": off_hours_cron(profile, |o| &o.stop_at),
        "offHoursStart": off_hours_cron(profile, |o| &o.start_at),
    })
}

fn off_hours_cron(
    profile: &Profile,
    at: impl Fn(&crate::profile::OffHours) -> &String,
) -> Option<String> {
    let off = &profile.cluster.as_ref()?.off_hours;
    off.cron(at(off))
}

/// Where the release is, for the off-hours and drill jobs: namespace, release and the
/// StatefulSet's data set.
fn job_values(profile: &Profile) -> String {
    let Some(c) = &profile.cluster else {
        return String::new();
    };
    let mut values = json!({"namespace": profile.namespace, "release": profile.release});
    if let Some(set) = &c.data_set {
        values["dataSet"] = json!(set);
    }
    serde_yaml::to_string(&values).unwrap_or_default()
}

/// The keys `backup --snapshot` reads beyond the embedded profile's: where the release is and
/// which class its snapshots use.
fn snapshot_values(profile: &Profile) -> String {
    let Some(c) = &profile.cluster else {
        return String::new();
    };
    let mut values = json!({
        "namespace": profile.namespace,
        "release": profile.release,
        "snapshot": c.snapshot,
    });
    // After an upgrade, the volume is the new StatefulSet's.
    if let Some(set) = &c.data_set {
        values["dataSet"] = json!(set);
    }
    serde_yaml::to_string(&values).unwrap_or_default()
}

fn with(mut labels: BTreeMap<String, String>, k: &str, v: &str) -> BTreeMap<String, String> {
    labels.insert(k.into(), v.into());
    labels
}

fn render_one(
    env: &Environment<'_>,
    name: &str,
    source: &str,
    ctx: &impl Serialize,
) -> Result<String> {
    let template = env
        .template_from_named_str(name, source)
        .with_context(|| format!("template {name} does not parse (a bug)"))?;
    template
        .render(minijinja::value::Serde(ctx))
        .with_context(|| format!("rendering template {name}"))
}

fn parse(name: &str, text: &str) -> Result<Option<Object>> {
    let raw: serde_json::Value = serde_yaml::from_str(text)
        .with_context(|| format!("template {name} renders invalid YAML (a bug)"))?;
    if raw.is_null() {
        return Ok(None); // switched off by the profile
    }
    let kind = raw.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    Ok(Some(match kind {
        "ServiceAccount" => Object::ServiceAccount(typed(&raw, name)?),
        "Secret" => Object::Secret(typed(&raw, name)?),
        "ConfigMap" => Object::ConfigMap(typed(&raw, name)?),
        "Service" => Object::Service(typed(&raw, name)?),
        "StatefulSet" => Object::StatefulSet(typed(&raw, name)?),
        "NetworkPolicy" => Object::NetworkPolicy(typed(&raw, name)?),
        "Role" => Object::Role(typed(&raw, name)?),
        "RoleBinding" => Object::RoleBinding(typed(&raw, name)?),
        "CronJob" => Object::CronJob(typed(&raw, name)?),
        other => bail!("template {name} renders an unsupported kind `{other}` (a bug)"),
    }))
}

/// Parse into the k8s-openapi type and refuse anything the type would silently drop (a misspelt field).
fn typed<T: serde::de::DeserializeOwned + Serialize>(
    raw: &serde_json::Value,
    name: &str,
) -> Result<T> {
    let object: T = serde_path_to_error::deserialize(raw.clone())
        .map_err(|e| anyhow::anyhow!("template {name}: `{}`: {}", e.path(), e.inner()))?;
    let back = serde_json::to_value(&object)?;
    if let Some(path) = first_difference(raw, &back, String::new()) {
        bail!("template {name}: field `{path}` is not part of the Kubernetes type (a bug)");
    }
    Ok(object)
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => x.iter().find_map(|(k, v)| match y.get(k) {
            Some(w) => first_difference(v, w, format!("{path}.{k}")),
            None => Some(format!("{path}.{k}")),
        }),
        (Array(x), Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(path),
    }
}

/// Percent-encoding for the password part of a URL (RFC 3986 unreserved characters stay).
/// Percent-encoding of a URL's password as the app Secret's `database-url` carries it.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_unreserved_characters() {
        assert_eq!(url_encode("Ab9-._~"), "Ab9-._~");
        assert_eq!(url_encode("a!@b"), "a%21%40b");
    }

    #[test]
    fn the_quoting_filters_refuse_what_they_cannot_quote() {
        let env = environment();
        for filter in ["conf", "ident", "literal"] {
            let t = format!("x = {{{{ v | {filter} }}}}");
            let ok = render_one(&env, "t", &t, &json!({"v": "it's \"fine\""})).unwrap();
            assert!(ok.starts_with("x = "), "{ok}");
            for bad in ["two\nlines", "nul\u{0}", "tab\there", "cr\r"] {
                let e = render_one(&env, "t", &t, &json!({"v": bad})).unwrap_err();
                assert!(
                    format!("{e:#}").contains("cannot quote"),
                    "{filter} {bad:?}: {e:#}"
                );
            }
        }
        // What conf makes of quotes and backslashes stays one postgresql.conf value.
        let q = render_one(&env, "t", "{{ v | conf }}", &json!({"v": "a'b\\c"})).unwrap();
        assert_eq!(q, "'a''b\\\\c'");
    }

    #[test]
    fn a_misspelt_field_is_refused() {
        let raw = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "lables": {}}});
        let err = typed::<ConfigMap>(&raw, "t.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "template t.yaml: field `.metadata.lables` is not part of the Kubernetes type (a bug)"
        );
    }
}
