//! A support report: one archive with what an escalation needs to see of a release, gathered
//! part by part (a part that cannot be read is listed, not fatal), scrubbed of every secret.
//!
//! - [`objects`]: the live objects, Secrets as keys and sizes, and their drift from the render
//! - [`database`]: settings, sessions, lock waits, sizes (sql/report/)
//! - [`redact`]: what is removed from every file before it is written
//! - [`archive`]: the tar.gz, written 0600 under a temporary name and put in place at the end

pub mod archive;
pub mod database;
pub mod objects;
pub mod redact;

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde::Serialize;

use crate::context::Ctx;
use crate::error::report as error_line;
use redact::Redactor;

/// The most of one container's log kept (the newest lines are what an escalation reads).
const LOG_LIMIT_BYTES: i64 = 16 * 1024 * 1024;

/// What to gather.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only log lines newer than this.
    pub since: Option<Duration>,
    /// Include the sessions' query texts (they may hold data).
    pub with_queries: bool,
    /// `--ca-file` for a managed server.
    pub ca_file: Option<std::path::PathBuf>,
}

/// One file of the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub text: String,
}

/// A part that could not be read, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub part: String,
    pub cause: String,
}

/// The archive's index (`report.json`): what the report is of and what it holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub tool_version: String,
    pub created_at: String,
    pub release: String,
    pub namespace: String,
    pub environment: String,
    pub with_queries: bool,
    pub logs_since_seconds: Option<u64>,
    pub files: Vec<String>,
    pub unreadable: Vec<Unreadable>,
    /// How many secret values every file was scrubbed of (beside credential-shaped strings).
    pub secret_values_scrubbed: usize,
}

/// Everything gathered, scrubbed, ready to be written.
#[derive(Debug)]
pub struct Gathered {
    pub index: Index,
    pub entries: Vec<Entry>,
}

#[derive(Default)]
struct Parts {
    entries: Vec<Entry>,
    unreadable: Vec<Unreadable>,
}

impl Parts {
    fn add(&mut self, path: impl Into<String>, text: impl Into<String>) {
        self.entries.push(Entry {
            path: path.into(),
            text: text.into(),
        });
    }

    fn json<T: Serialize>(&mut self, path: &str, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => self.add(path, text + "\n"),
            Err(e) => self.missing(path, e.to_string()),
        }
    }

    fn yaml<T: Serialize>(&mut self, path: &str, value: &T) {
        match serde_yaml::to_string(value) {
            Ok(text) => self.add(path, text),
            Err(e) => self.missing(path, e.to_string()),
        }
    }

    fn missing(&mut self, part: impl Into<String>, cause: impl Into<String>) {
        self.unreadable.push(Unreadable {
            part: part.into(),
            cause: cause.into(),
        });
    }

    fn result<T: Serialize>(&mut self, path: &str, r: Result<T>) {
        match r {
            Ok(v) => self.json(path, &v),
            Err(e) => self.missing(path, error_line(&e).error),
        }
    }
}

/// Gather the report of the release `ctx` names (the cluster must answer; what it refuses is
/// listed in the report).
pub async fn gather(ctx: &Ctx, opts: &Options) -> Result<Gathered> {
    let kube = ctx.kube().await?;
    let profile = &ctx.profile;
    let names = profile.names();
    let mut parts = Parts::default();

    let live = objects::read(&kube, profile).await;
    for (part, cause) in &live.unreadable {
        parts.missing(part.clone(), cause.clone());
    }
    for (id, object) in &live.objects {
        parts.yaml(&format!("objects/{}.yaml", id.replace('/', "-")), object);
    }
    let rendered = crate::render::render(
        profile,
        &crate::render::Passwords::placeholders_for(profile),
        &crate::certs::Tls::placeholders(),
    );
    match rendered {
        Ok(r) if profile.managed.is_none() => {
            parts.add("drift.diff", objects::drift(&r, &live.objects))
        }
        Ok(_) => {}
        Err(e) => parts.missing("drift.diff", error_line(&e).error),
    }

    // The database's own parts (sessions, locks, settings) are the report's `database/` files.
    let status_args = crate::commands::status::StatusArgs {
        ca_file: opts.ca_file.clone(),
        queries: false,
    };
    parts.result(
        "status.json",
        crate::commands::status::collect(ctx, &status_args).await,
    );
    let verify_args = crate::commands::verify::VerifyArgs::checklist(crate::args::DbArgs {
        ca_file: opts.ca_file.clone(),
        ..Default::default()
    });
    parts.result(
        "verify.json",
        crate::commands::verify::collect(ctx, &verify_args).await,
    );

    let pods: Vec<_> = live
        .objects
        .iter()
        .filter(|(id, _)| id.starts_with("Pod/"))
        .map(|(_, p)| pod_state(p))
        .collect();
    parts.yaml("pods.yaml", &pods);
    let listed: Vec<String> = live
        .objects
        .keys()
        .filter_map(|id| {
            id.strip_prefix("Pod/")
                .or(id.strip_prefix("PersistentVolumeClaim/"))
        })
        .map(str::to_string)
        .collect();
    match crate::k8s::release::events(&kube, &names, &listed).await {
        Ok(events) => {
            let events: Vec<_> = events.iter().map(objects::cleaned).collect();
            parts.yaml("events.yaml", &events);
        }
        Err(e) => parts.missing("events.yaml", error_line(&e).error),
    }

    if profile.managed.is_none() {
        let mut containers = vec![names.container.clone()];
        if profile.cluster("report").is_ok_and(|c| c.metrics.enabled) {
            containers.push("metrics".into());
        }
        let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
        for container in &containers {
            for previous in [false, true] {
                let file = format!(
                    "logs/{container}{}.log",
                    if previous { ".previous" } else { "" }
                );
                let params = LogParams {
                    container: Some(container.clone()),
                    previous,
                    since_seconds: opts.since.map(|d| d.as_secs().max(1) as i64),
                    limit_bytes: Some(LOG_LIMIT_BYTES),
                    timestamps: true,
                    ..Default::default()
                };
                match pods.logs(&names.pod, &params).await {
                    Ok(text) => parts.add(file, text),
                    // No restart yet: not a failure, just nothing to show.
                    Err(kube::Error::Api(s)) if previous && s.code == 400 => {
                        parts.add(file, format!("(no previous instance: {})\n", s.message))
                    }
                    Err(e) => parts.missing(
                        file,
                        error_line(&crate::k8s::client::api_error(
                            e,
                            &format!("reading the log of {container} in pod {}", names.pod),
                            &kube.server,
                        ))
                        .error,
                    ),
                }
            }
        }
        parts.result(
            "snapshots.json",
            crate::k8s::snapshot::rows(&kube, profile).await,
        );
    }

    match database(ctx, opts).await {
        Ok(results) => {
            for (file, rows) in results {
                parts.result(&format!("database/{file}.json"), rows);
            }
        }
        Err(e) => parts.missing("database/", error_line(&e).error),
    }

    match &ctx.record {
        Some(r) => parts.yaml("values.yaml", &r.values),
        None => parts.add(
            "values.yaml",
            "# no values are recorded with this release\n",
        ),
    }
    parts.add(
        "version.txt",
        format!("phonebill-db {}\n", crate::cli::VERSION),
    );

    let redactor = Redactor::new(live.secret_values.iter().cloned());
    let mut entries: Vec<Entry> = parts
        .entries
        .into_iter()
        .map(|e| Entry {
            text: redactor.scrub(&e.text),
            path: e.path,
        })
        .collect();
    let unreadable: Vec<Unreadable> = parts
        .unreadable
        .into_iter()
        .map(|u| Unreadable {
            part: u.part,
            cause: redactor.scrub(&u.cause),
        })
        .collect();
    let mut files: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
    files.insert(0, "report.json".into());
    let index = Index {
        tool_version: crate::cli::VERSION.to_string(),
        created_at: crate::k8s::record::now(),
        release: profile.release.clone(),
        namespace: kube.namespace.clone(),
        environment: profile.environment.clone(),
        with_queries: opts.with_queries,
        logs_since_seconds: opts.since.map(|d| d.as_secs()),
        files,
        unreadable,
        secret_values_scrubbed: redactor.known(),
    };
    let text = serde_json::to_string_pretty(&index)? + "\n";
    entries.insert(
        0,
        Entry {
            path: "report.json".into(),
            text: redactor.scrub(&text),
        },
    );
    Ok(Gathered { index, entries })
}

/// The database's own view, as the admin.
async fn database(
    ctx: &Ctx,
    opts: &Options,
) -> Result<Vec<(&'static str, Result<database::Rows>)>> {
    let db = ctx
        .db(&crate::args::DbArgs {
            ca_file: opts.ca_file.clone(),
            ..Default::default()
        })
        .await?;
    let admin = db.admin().await?;
    Ok(database::gather(&admin, opts.with_queries).await)
}

/// A pod's conditions and container states (current and last), as the report shows them.
fn pod_state(pod: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "name": pod.pointer("/metadata/name"),
        "phase": pod.pointer("/status/phase"),
        "node": pod.pointer("/spec/nodeName"),
        "conditions": pod.pointer("/status/conditions"),
        "containers": pod.pointer("/status/containerStatuses"),
        "initContainers": pod.pointer("/status/initContainerStatuses"),
    })
}
