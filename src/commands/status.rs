//! `status` (runbook 4.2.3, 7.1): pod, PVC, services, Secrets, readiness, and the database's
//! server, connections and size, on one screen.

use anyhow::Result;
use clap::Args;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use serde::Serialize;

use crate::context::Ctx;
use crate::db::checks::{Usage, usage_of};
use crate::db::connect::Db;
use crate::k8s::diagnose::{Finding, diagnose};
use crate::k8s::release::{
    self, ReleaseState, pod_ready_count, pod_status_text, pvc_phase, restarts,
};
use crate::k8s::{preflight, wait};
use crate::profile::Names;
use crate::ui::{Outcome, table};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Managed server (prod): CA certificate (PEM) to verify it with (default: the system's roots)
    #[arg(
        long,
        value_name = "FILE",
        env = "PHONEBILL_CA_FILE",
        hide_env_values = true
    )]
    pub ca_file: Option<std::path::PathBuf>,
    /// Also the runbook's performance queries (8.1): the slowest statements (pg_stat_statements,
    /// by mean time), lock waits with both sessions, and connections by database, user and state
    #[arg(long)]
    pub queries: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    NotInstalled,
    /// Some of what install makes is missing (it stopped part way): `missing` says what.
    Incomplete,
    Ready,
    NotReady,
    /// `stop` scaled it to 0 (the data, Secrets and Services kept): `start` brings it back.
    Stopped,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub release: String,
    pub namespace: String,
    pub state: State,
    pub stateful_set: Option<Workload>,
    pub pods: Vec<PodRow>,
    pub pvcs: Vec<PvcRow>,
    pub services: Vec<ServiceRow>,
    pub secrets: Vec<String>,
    /// Server, connections and size, when the release is ready (runbook 7.1).
    pub database: Option<DatabaseRow>,
    /// The server certificate's expiry (in-cluster releases): install renews it under 30 days.
    pub server_certificate: Option<crate::check::Check>,
    /// The snapshot schedule: last run and its result, next run, newest ready snapshot's age.
    pub snapshot_schedule: Option<crate::k8s::schedule::ScheduleState>,
    /// The plan's alert thresholds (disk 80%, memory 85%, 5 restarts) for the running pod:
    /// warnings with what to do, never failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<crate::check::Check>,
    /// The last restore drill (`verify --restore-drill`), as the release keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_drill: Option<crate::k8s::drill_record::Drill>,
    /// The off-hours stop and start (when the profile has them on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub off_hours: Option<crate::k8s::off_hours::OffHoursState>,
    /// What install recorded: the values it applied, its version, when and by whom.
    pub installed: Option<crate::k8s::record::Record>,
    /// The release's StatefulSets beside the one holding the data (an upgrade under way).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_stateful_sets: Vec<String>,
    /// What install makes that is not there ("Kind/name"), when it stopped part way.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseRow {
    pub name: String,
    pub reachable: bool,
    #[serde(flatten)]
    pub usage: Option<Usage>,
    /// Why it could not be reached (status still succeeds: it reports, it does not judge).
    pub error: Option<String>,
    /// `--queries`: the slowest statements, lock waits and connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queries: Option<crate::db::queries::Queries>,
    /// What the database was before a restore swapped a new one in (kept until `restore
    /// --drop-previous` or the next restore): name and size in bytes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<(String, i64)>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub name: String,
    pub ready_replicas: i32,
    pub replicas: i32,
    pub image: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRow {
    pub name: String,
    pub status: String,
    pub ready: String,
    pub restarts: i32,
    pub node: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcRow {
    pub name: String,
    pub phase: String,
    pub capacity: Option<String>,
    pub storage_class: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRow {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "externalIP")]
    pub external_ip: Option<String>,
    pub ports: Vec<i32>,
}

pub async fn run(ctx: &Ctx, args: &StatusArgs) -> Result<Outcome> {
    let report = collect(ctx, args).await?;
    ctx.ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

/// The status report of the release (what `run` prints; `report` keeps it in its archive).
pub async fn collect(ctx: &Ctx, args: &StatusArgs) -> Result<StatusReport> {
    let kube = ctx.kube().await?;
    let names = ctx.profile.names();
    let state = release::observe(&kube, &ctx.profile).await?;
    // Diagnosis wants the StorageClasses; a user who may not list them still gets the rest.
    let classes = match preflight::storage_classes(&kube).await {
        Ok(Some(c)) => c,
        _ => state
            .pvcs
            .iter()
            .filter_map(|p| p.spec.as_ref()?.storage_class_name.clone())
            .collect(),
    };
    let managed = ctx.profile.managed.is_some();
    let mut report = build(
        &ctx.profile.release,
        &kube.namespace,
        &state,
        &names,
        &classes,
        managed,
    );
    report.installed = ctx.record.clone();
    if report.state != State::NotInstalled {
        match crate::k8s::drill_record::read(&kube, &ctx.profile).await {
            Ok(d) => report.restore_drill = d,
            Err(e) => ctx
                .ui
                .detail(format!("restore drill: {}", crate::error::report(&e).error)),
        }
    }
    if !managed {
        match crate::k8s::upgrade::others(&kube, &ctx.profile).await {
            Ok(others) => report.other_stateful_sets = others,
            Err(e) => ctx.ui.detail(format!(
                "other StatefulSets: {}",
                crate::error::report(&e).error
            )),
        }
    }
    if !managed && report.state != State::NotInstalled {
        match missing(&kube, &ctx.profile, ctx.record.is_some()).await {
            Ok(missing) if !missing.is_empty() => {
                report.state = State::Incomplete;
                report.missing = missing;
            }
            Ok(_) => {}
            // A user who may not list what install makes still sees the rest.
            Err(e) => ctx.ui.detail(format!(
                "what install made: {}",
                crate::error::report(&e).error
            )),
        }
        report.server_certificate = Some(crate::k8s::health::certificate(&kube, &names).await?);
        match crate::k8s::schedule::observe(&kube, &ctx.profile).await {
            Ok(s) => report.snapshot_schedule = s,
            // Status reports what it can: a user who may not read Jobs still sees the rest.
            Err(e) => ctx.ui.detail(format!(
                "snapshot schedule: {}",
                crate::error::report(&e).error
            )),
        }
        if let Some(pod) = state.running_pod(&names) {
            let spinner = ctx
                .ui
                .spinner("reading the pod's disk, memory and restarts");
            report.thresholds =
                crate::k8s::thresholds::checks(&kube, &ctx.profile, pod, &names.container).await;
            spinner.finish_and_clear();
        }
        match crate::k8s::off_hours::observe(&kube, &ctx.profile).await {
            Ok(s) => report.off_hours = s,
            Err(e) => ctx.ui.detail(format!(
                "off-hours schedule: {}",
                crate::error::report(&e).error
            )),
        }
    }
    let ready = report.state == State::Ready
        || (report.state == State::Incomplete
            && wait::release_ready(&state, &names)
            && !state
                .stateful_set
                .as_ref()
                .is_some_and(crate::k8s::power::stopped));
    if ready {
        let spinner = ctx.ui.spinner("asking the database");
        let usage = async {
            let db = if managed {
                Db::for_managed(kube.clone(), &ctx.profile, args.ca_file.as_deref(), None).await?
            } else {
                Db::for_release(kube.clone(), &ctx.profile).await?
            };
            let admin = db.admin().await?;
            let usage = usage_of(&admin).await?;
            let previous = crate::db::shadow::previous(&admin, &db.database)
                .await
                .unwrap_or_default();
            let queries = if args.queries {
                Some(crate::db::queries::read(&admin).await)
            } else {
                None
            };
            anyhow::Ok((usage, queries, previous))
        };
        report.database = Some(match usage.await {
            Ok((u, queries, previous)) => DatabaseRow {
                name: ctx.profile.database.clone(),
                reachable: true,
                usage: Some(u),
                error: None,
                queries,
                previous,
            },
            Err(e) => DatabaseRow {
                name: ctx.profile.database.clone(),
                reachable: false,
                usage: None,
                error: Some(crate::error::report(&e).error),
                queries: None,
                previous: vec![],
            },
        });
        spinner.finish_and_clear();
    }
    Ok(report)
}

/// What install makes for this profile that the cluster does not have ("Kind/name"): the
/// rendered objects, and the record, which install writes last.
async fn missing(
    kube: &crate::k8s::Kube,
    profile: &crate::profile::Profile,
    recorded: bool,
) -> Result<Vec<String>> {
    let rendered = crate::render::render(
        profile,
        &crate::render::Passwords::placeholders_for(profile),
        &crate::certs::Tls::placeholders(),
    )?;
    let mut there = crate::k8s::inventory::made(kube, profile).await?;
    there.extend(crate::k8s::inventory::data(kube, profile).await?);
    let mut missing: Vec<String> = rendered
        .iter()
        .map(|o| format!("{}/{}", o.kind(), o.name()))
        .filter(|id| !there.contains(id))
        .collect();
    if !recorded {
        missing.push(format!("Secret/{}", profile.names().record));
    }
    Ok(missing)
}

/// The status report of an observed release (pure).
pub fn build(
    release: &str,
    namespace: &str,
    state: &ReleaseState,
    names: &Names,
    classes: &[String],
    managed: bool,
) -> StatusReport {
    // A managed server's release is its Secrets: the database row says whether the server answers.
    let ready = if managed {
        [&names.admin_secret, &names.app_secret]
            .iter()
            .all(|n| state.secrets.contains(n))
    } else {
        wait::release_ready(state, names)
    };
    let status = if state.is_empty() && state.secrets.is_empty() {
        State::NotInstalled
    } else if !managed
        && state
            .stateful_set
            .as_ref()
            .is_some_and(crate::k8s::power::stopped)
    {
        State::Stopped
    } else if ready {
        State::Ready
    } else {
        State::NotReady
    };
    StatusReport {
        release: release.into(),
        namespace: namespace.into(),
        state: status,
        stateful_set: state.stateful_set.as_ref().map(|s| Workload {
            name: s.name_any(),
            ready_replicas: s
                .status
                .as_ref()
                .and_then(|st| st.ready_replicas)
                .unwrap_or(0),
            replicas: s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1),
            image: s
                .spec
                .as_ref()
                .and_then(|sp| sp.template.spec.as_ref())
                .and_then(|ps| ps.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
        }),
        // The schedule's Job pods carry the release's labels too; the Schedule row is theirs.
        pods: state
            .pods
            .iter()
            .filter(|p| p.owner_references().iter().all(|o| o.kind != "Job"))
            .map(|p| PodRow {
                name: p.name_any(),
                status: pod_status_text(p),
                ready: pod_ready_count(p),
                restarts: restarts(p),
                node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            })
            .collect(),
        pvcs: state
            .pvcs
            .iter()
            .map(|p| PvcRow {
                name: p.name_any(),
                phase: pvc_phase(Some(p)),
                capacity: p
                    .status
                    .as_ref()
                    .and_then(|s| s.capacity.as_ref())
                    .and_then(|c| c.get("storage"))
                    .map(|q| q.0.clone()),
                storage_class: p.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
            })
            .collect(),
        services: state.services.iter().map(service_row).collect(),
        secrets: state.secrets.clone(),
        database: None,
        server_certificate: None,
        snapshot_schedule: None,
        thresholds: vec![],
        restore_drill: None,
        off_hours: None,
        installed: None,
        other_stateful_sets: vec![],
        missing: vec![],
        findings: if status == State::NotReady {
            diagnose(state, names, classes)
        } else {
            vec![]
        },
    }
}

fn service_row(s: &Service) -> ServiceRow {
    let spec = s.spec.clone().unwrap_or_default();
    let external_ip = s
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.ip.clone().or_else(|| i.hostname.clone()));
    ServiceRow {
        name: s.name_any(),
        type_: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
        cluster_ip: spec.cluster_ip,
        external_ip,
        ports: spec
            .ports
            .unwrap_or_default()
            .iter()
            .map(|p| p.port)
            .collect(),
    }
}

fn text(r: &StatusReport) -> String {
    let state = match r.state {
        State::NotInstalled => "not installed",
        State::Incomplete => "INCOMPLETE",
        State::Ready => "ready",
        State::NotReady => "NOT ready",
        State::Stopped => "stopped",
    };
    let mut out = format!(
        "release {} in namespace {}: {state}\n",
        r.release, r.namespace
    );
    if r.state == State::NotInstalled {
        out.push_str("nothing found; install it with `phonebill-db install`\n");
        return out;
    }
    if r.state == State::Stopped {
        out.push_str(
            "no pod runs (`phonebill-db stop`); the data volume, Secrets and Services are kept; `phonebill-db start` starts it\n",
        );
    }
    if !r.missing.is_empty() {
        out.push_str(&format!(
            "install stopped part way: missing {}; run `phonebill-db install` again (it goes on from what is there)\n",
            r.missing.join(", ")
        ));
    }
    if let Some(i) = &r.installed {
        let values = i.flat_values();
        out.push_str(&format!(
            "installed by {} at {} with phonebill-db {}; values: {}\n",
            i.installed_by,
            i.installed_at,
            i.tool_version,
            if values.is_empty() {
                "the profile's".to_string()
            } else {
                values.join(", ")
            }
        ));
        if i.upgrade.is_none() && !r.other_stateful_sets.is_empty() {
            out.push_str(&format!(
                "an upgrade is under way, not switched: StatefulSet {} beside {}; `upgrade --major N` goes on, `upgrade --rollback` abandons it\n",
                r.other_stateful_sets.join(", "),
                r.stateful_set.as_ref().map_or("", |s| s.name.as_str())
            ));
        }
        if let Some(u) = &i.upgrade {
            out.push_str(&format!(
                "upgraded from PostgreSQL {} to {} at {}: {} and claim {} are kept until `upgrade --finalize` (`--rollback` switches back)\n",
                u.from_major, u.to_major, u.switched_at, u.from_stateful_set, u.from_claim
            ));
        }
    }
    let mut rows = Vec::new();
    if let Some(s) = &r.stateful_set {
        rows.push(vec![
            "StatefulSet".into(),
            s.name.clone(),
            format!("{}/{} ready", s.ready_replicas, s.replicas),
            s.image.clone(),
        ]);
    }
    for p in &r.pods {
        let node = p
            .node
            .clone()
            .map(|n| format!(", node {n}"))
            .unwrap_or_default();
        rows.push(vec![
            "Pod".into(),
            p.name.clone(),
            p.status.clone(),
            format!(
                "{} containers ready, {} restarts{node}",
                p.ready, p.restarts
            ),
        ]);
    }
    for p in &r.pvcs {
        let detail = [p.capacity.clone(), p.storage_class.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec!["PVC".into(), p.name.clone(), p.phase.clone(), detail]);
    }
    for s in &r.services {
        let ports = s
            .ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let ip = match (&s.external_ip, s.cluster_ip.as_deref()) {
            (Some(ext), _) => format!("external {ext}"),
            (None, Some("None")) => "headless".into(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => String::new(),
        };
        rows.push(vec![
            "Service".into(),
            s.name.clone(),
            s.type_.clone(),
            format!("{ip} port {ports}"),
        ]);
    }
    for name in &r.secrets {
        rows.push(vec![
            "Secret".into(),
            name.clone(),
            "present".into(),
            String::new(),
        ]);
    }
    if let Some(d) = &r.database {
        let (status, detail) = match (&d.usage, &d.error) {
            (Some(u), _) => (
                "reachable".to_string(),
                format!("{}, {} connections, {}", u.server, u.connections, u.size),
            ),
            (None, e) => ("UNREACHABLE".to_string(), e.clone().unwrap_or_default()),
        };
        rows.push(vec!["Database".into(), d.name.clone(), status, detail]);
        for (name, size) in &d.previous {
            rows.push(vec![
                "Database".into(),
                name.clone(),
                "previous".into(),
                format!(
                    "{}, as it was before a restore; `phonebill-db restore --drop-previous` drops it",
                    indicatif::BinaryBytes(*size as u64)
                ),
            ]);
        }
    }
    if let Some(s) = &r.snapshot_schedule {
        let age = s
            .newest_ready_age_seconds
            .map_or("no ready snapshot yet".to_string(), |a| {
                format!(
                    "newest ready snapshot {}h{:02}m old",
                    a / 3600,
                    a % 3600 / 60
                )
            });
        rows.push(vec![
            "Schedule".into(),
            format!("{} {}", s.schedule, s.time_zone),
            if s.installed {
                format!("last: {}", s.last_result)
            } else {
                "CronJob MISSING".into()
            },
            format!(
                "last run {}, next {}, keeps {}; {age}{}",
                s.last_run.as_deref().unwrap_or("never"),
                s.next_run.as_deref().unwrap_or("?"),
                s.keep,
                s.first_run
                    .as_ref()
                    .and_then(|f| f.cause.as_ref().filter(|_| f.failed()))
                    .map(|c| format!("; first run at install failed: {c}"))
                    .unwrap_or_default()
            ),
        ]);
    }
    if let Some(o) = &r.off_hours {
        rows.push(vec![
            "Off hours".into(),
            format!("{} / {}", o.stop_at, o.start_at),
            if o.installed {
                "scheduled".into()
            } else {
                "CronJobs MISSING".into()
            },
            crate::k8s::off_hours::describe(o),
        ]);
    }
    if let Some(d) = &r.restore_drill {
        rows.push(vec![
            "Drill".into(),
            format!("{} {}", d.kind, d.source),
            if d.passed {
                crate::check::Status::Pass.painted()
            } else {
                crate::check::Status::Fail.painted()
            },
            match &d.cause {
                Some(c) => format!("at {}: {c}", d.finished_at),
                None => format!(
                    "at {}: restored in {:.1}s (target {}s), data {}s old, {} tables checked",
                    d.finished_at,
                    d.restore_seconds.unwrap_or_default(),
                    d.rto_target_seconds,
                    d.rpo_seconds.unwrap_or_default(),
                    d.rows.len()
                ),
            },
        ]);
    }
    for c in &r.thresholds {
        rows.push(vec![
            "Threshold".into(),
            c.name.clone(),
            c.status.painted(),
            c.detail.clone(),
        ]);
    }
    if let Some(c) = &r.server_certificate {
        rows.push(vec![
            "Certificate".into(),
            "server".into(),
            c.status.painted(),
            c.detail.clone(),
        ]);
    }
    out.push_str(&table(&["KIND", "NAME", "STATUS", "DETAIL"], &rows));
    if let Some(q) = r.database.as_ref().and_then(|d| d.queries.as_ref()) {
        out.push_str(&crate::db::queries::text(q));
    }
    for f in &r.findings {
        out.push_str(&format!("{}: {}\n  hint: {}\n", f.object, f.cause, f.hint));
    }
    out
}
