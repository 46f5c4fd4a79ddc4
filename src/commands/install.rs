//! `install` (runbook 4.1–4.2): preflight, server-side apply, wait until ready, diagnose if not.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use serde::Serialize;

use crate::args::parse_duration;
use crate::check::{self, Check};
use crate::context::Ctx;
use crate::error::{ExitCode, user_error};
use crate::k8s::apply::{self, Applied, ApplyOptions, Change, apply_each, diffs, objects_table};
use crate::k8s::diagnose::{Finding, diagnose, storage_class_hint};
use crate::k8s::first_run::{self, FirstRun};
use crate::k8s::namespace::{create_namespace, namespace_exists};
use crate::k8s::preflight::deny_check;
use crate::k8s::preflight::{self, InstallNeeds};
use crate::k8s::record::{self, Record};
use crate::k8s::snapshot::{self, ClassState};
use crate::k8s::watches::Wake;
use crate::k8s::{Kube, inventory, resize, upgrade, wait};
use crate::passwords::{self, Origin};
use crate::profile::merged;
use crate::profile::{image_major, image_with_major};
use crate::render;
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// How long to wait for the database to become ready
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Server-side dry run: validate and show what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// StorageClass for the data volume instead of the profile's (recorded: the next install
    /// uses it too)
    #[arg(long, value_name = "NAME")]
    pub storage_class: Option<String>,
    /// Start from the profile (and --values) instead of the values the last install recorded
    #[arg(long)]
    pub reset_values: bool,
    /// Create the plan's StorageClass (Azure disk CSI, Standard_LRS, Retain) when it is missing
    #[arg(long)]
    pub create_storage_class: bool,
    /// Create the profile's VolumeSnapshotClass (Azure disk CSI) for the snapshot schedule when
    /// it is missing
    #[arg(long)]
    pub create_snapshot_class: bool,
    /// Do not run the snapshot schedule once after install to prove it (its first run is then at
    /// the schedule's time)
    #[arg(long)]
    pub skip_first_snapshot: bool,
    /// Take over fields another field manager owns instead of stopping at the conflict
    #[arg(long)]
    pub force_conflicts: bool,
    /// Replace the release's certificate authority (and so its server certificate): needed once
    /// the CA has under 30 days left; every client that saved the old CA must be given the new one
    #[arg(long)]
    pub renew_ca: bool,
    /// Managed server (prod): its host name, or its Azure server name (NAME.postgres.database.azure.com)
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// Managed server (prod): the administrator login instead of the profile's adminUser
    /// (password: $PHONEBILL_ADMIN_PASSWORD, else asked on the terminal; never kept in the cluster)
    #[arg(long, value_name = "USER")]
    pub admin_user: Option<String>,
    /// Managed server (prod): CA certificate (PEM) that signed the server's certificate
    /// (default: the system's trusted roots)
    #[arg(
        long,
        value_name = "FILE",
        env = "PHONEBILL_CA_FILE",
        hide_env_values = true
    )]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallReport {
    pub release: String,
    pub namespace: String,
    pub server: String,
    pub server_version: String,
    pub dry_run: bool,
    pub namespace_created: bool,
    pub storage_class: String,
    pub storage_class_created: bool,
    pub passwords: Origin,
    /// The server certificate: kept, new, or renewed (and why), and when it expires.
    pub tls: crate::certs::Origin,
    pub server_certificate_expires: String,
    /// What to plan about the release's CA (its end in sight, or made without name constraints).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_notes: Vec<String>,
    pub objects: Vec<Applied>,
    /// What the release's record laid over the profile and --values (each said on stderr too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<record::Laid>,
    /// Every object applied; false when install stopped part way (`objects` says where).
    pub complete: bool,
    pub ready: bool,
    pub waited_seconds: f64,
    pub findings: Vec<Finding>,
    /// The image the pod ran before this install (a new minor version), when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_changed_from: Option<String>,
    /// verify's database checks after a new minor version rolled out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    pub snapshot_class_created: bool,
    /// The snapshot schedule's run at install (when it is new, changed, or not yet proven).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_snapshot: Option<FirstRun>,
}

/// The flags the environment has no place for, refused before the cluster is asked (exit 2).
pub fn precheck(profile: &crate::profile::Profile, args: &InstallArgs) -> Result<()> {
    let env = &profile.environment;
    let (misplaced, belongs): (Vec<(bool, &str)>, &str) = if profile.managed.is_some() {
        (
            vec![
                (args.storage_class.is_some(), "--storage-class"),
                (args.create_storage_class, "--create-storage-class"),
                (args.renew_ca, "--renew-ca"),
                (args.create_snapshot_class, "--create-snapshot-class"),
                (args.skip_first_snapshot, "--skip-first-snapshot"),
            ],
            "an in-cluster database (dev)",
        )
    } else {
        (
            vec![
                (args.server.is_some(), "--server"),
                (args.admin_user.is_some(), "--admin-user"),
            ],
            "a managed server (prod)",
        )
    };
    match misplaced.into_iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(flag_not_here(flag, env, belongs)),
        None => Ok(()),
    }
}

pub async fn run(ctx: &Ctx, args: &InstallArgs) -> Result<Outcome> {
    precheck(&ctx.profile, args)?;
    if ctx.profile.managed.is_some() {
        return super::install_managed::run(ctx, args).await;
    }
    let mut profile = ctx.profile.clone();
    let cluster = profile
        .cluster
        .as_mut()
        .expect("not managed, so in the cluster");
    if let Some(class) = &args.storage_class {
        cluster.storage.class_name = class.clone();
    }
    let ui = &ctx.ui;
    let kube = ctx.kube_within(args.timeout).await?;
    // The record this install replaces: with --reset-values it was not laid under the profile,
    // but it is still replaced, and where an upgrade moved the data is no value to reset.
    let previous = match &ctx.record {
        Some(r) => Some(r.clone()),
        None if args.reset_values => record::read(&kube, &ctx.profile).await.ok().flatten(),
        None => None,
    };
    if args.reset_values
        && let Some(set) = previous
            .as_ref()
            .and_then(|r| r.values.get("dataSet")?.as_str())
    {
        cluster.data_set = Some(set.to_string());
    }
    let names = profile.names();
    let server_version = preflight::server_version(&kube).await?;
    ui.note(
        None,
        format!(
            "API server {} ({server_version}), namespace {}",
            kube.server, kube.namespace
        ),
    );

    let namespace_exists = namespace_exists(&kube).await?;
    let mut class = profile
        .cluster
        .as_ref()
        .expect("not managed")
        .storage
        .class_name
        .clone();
    let listed = preflight::storage_classes(&kube).await?;
    if listed.is_none() {
        ui.note(
            None,
            format!(
                "warning: not allowed to list StorageClasses; cannot check that `{class}` exists"
            ),
        );
    }
    let classes = listed.clone().unwrap_or_default();
    let create_class = listed.is_some() && !classes.contains(&class);
    if create_class && !args.create_storage_class {
        return Err(user_error(format!(
            "StorageClass `{class}` does not exist on this cluster; nothing was changed"
        ))
        .hint(storage_class_hint(&classes))
        .into());
    }
    let snapshots = snapshot_prerequisites(&kube, &profile, args, ui).await?;
    let first_run = snapshots.enabled && !args.skip_first_snapshot && !args.dry_run;
    check_rbac(
        &kube,
        InstallNeeds {
            create_namespace: !namespace_exists,
            create_storage_class: create_class,
            create_snapshot_class: snapshots.create_class,
            first_run,
        },
    )
    .await?;
    ui.detail("RBAC: every verb install uses is allowed");
    // The data volume of an installed release cannot change class or size by install, nor its
    // PostgreSQL major version; a minor version's image is followed by verify.
    let mut image_change = None;
    let mut kept = None;
    let mut running = std::collections::BTreeMap::new();
    if namespace_exists {
        let live = crate::k8s::release::live_statefulset(&kube, &profile).await?;
        running = crate::k8s::release::running_values(&kube, &profile, live.as_ref()).await;
        // A data volume kept by uninstall (its StatefulSet and record gone): its size and class
        // are the data's — what resize grew it to, what --storage-class chose —, whatever the
        // profile says.
        if live.is_none() {
            kept = resize::kept_volume(&kube, &profile, args.storage_class.as_deref()).await?;
        }
        if let Some(k) = &kept {
            let cluster = profile.cluster.as_mut().expect("not managed");
            if k.size != cluster.storage.size || k.class != cluster.storage.class_name {
                ui.note(
                    None,
                    format!(
                        "the data volume {} kept from before has {} on {}: installed with that (the profile says {} on {})",
                        names.pvc, k.size, k.class, cluster.storage.size, cluster.storage.class_name
                    ),
                );
            }
            cluster.storage.size = k.size.clone();
            cluster.storage.class_name = k.class.clone();
            class = k.class.clone();
        }
        // Applying the StatefulSet (replicas: 1) would start a stopped release behind its
        // user's back: install refuses, `start` first.
        if live.as_ref().is_some_and(crate::k8s::power::stopped) {
            return Err(crate::k8s::power::stopped_error(&profile, "install"));
        }
        if let Some(refusal) = live
            .as_ref()
            .and_then(|sts| resize::volume_change(sts, &profile))
        {
            return Err(refusal);
        }
        upgrade::refuse_under_way(&kube, &profile).await?;
        image_change = match live.as_ref() {
            Some(sts) => image_change_of(sts, &profile)?,
            None => {
                upgrade::refuse_moved_data(&kube, &profile).await?;
                None
            }
        };
    }

    let (passwords, origin) = passwords::resolve(&kube, &names).await?;
    ui.detail(format!("passwords: {origin:?} (never printed)"));
    if let Some(c) = profile.cluster.as_ref().filter(|c| c.metrics.enabled)
        && passwords.metrics_added
    {
        ui.note(
            None,
            format!(
                "the metrics exporter now logs in as its own role {} (a member of pg_monitor), not as the administrator: run `phonebill-db apply-schema` to make it on this database (until then the exporter reports pg_up 0)",
                c.metrics.user
            ),
        );
    }
    let (tls, tls_origin) = passwords::tls(&kube, &profile, args.renew_ca).await?;
    ui.detail(format!("TLS: {tls_origin:?}"));
    let ca_notes = crate::certs::ca_notes(&tls, &profile, std::time::SystemTime::now());
    for note in &ca_notes {
        ui.note(None, note);
    }
    let server_certificate = crate::certs::inspect(&tls.crt)
        .map(|i| i.expires())
        .unwrap_or_default();
    let objects = render::render(&profile, &passwords, &tls)?;
    let record = render::Object::Secret(render::release_record(
        &profile,
        &next_record(
            ctx,
            args,
            &kube,
            previous.as_ref(),
            profile.cluster.as_ref().and_then(|c| c.data_set.as_deref()),
            kept.as_ref(),
        )
        .await?,
    )?);
    // What an earlier install made that this profile no longer renders (e.g. metrics switched off).
    let rendered: Vec<String> = objects
        .iter()
        .chain([&record])
        .map(|o| format!("{}/{}", o.kind(), o.name()))
        .collect();
    // `expose`'s service and policy are the release's too (uninstall removes them) but not
    // install's to prune — except its policy once the release's is off: alone it would shut the
    // application tier out.
    let policy_on = profile
        .cluster
        .as_ref()
        .is_some_and(|c| c.network_policy.enabled);
    let exposed: Vec<String> = names
        .external_service
        .iter()
        .flat_map(|name| {
            let mut ids = vec![format!("Service/{name}")];
            if policy_on {
                ids.push(format!("NetworkPolicy/{name}"));
            }
            ids
        })
        .collect();
    // Restore drills' too: the last drill's record, and the NetworkPolicy of a drill under way.
    let drills = [
        format!("ConfigMap/{}", names.drill_record),
        format!("NetworkPolicy/{}", names.drill),
    ];
    let prune: Vec<String> = if namespace_exists {
        inventory::made(&kube, &profile)
            .await?
            .into_iter()
            .filter(|id| !rendered.contains(id) && !exposed.contains(id) && !drills.contains(id))
            .collect()
    } else {
        vec![]
    };
    if !prune.is_empty() {
        deny_check(
            &kube,
            inventory::accesses(&inventory::kinds_of(&prune), "delete"),
        )
        .await?;
    }

    // The API server would refuse the release's Roles part way if their rights are not held.
    crate::k8s::grants::require_grantable(&kube, &objects, "nothing was changed").await?;

    // What the record lays over the profile, said; what of it would change what runs, confirmed.
    let recorded = match &ctx.record {
        Some(r) => {
            let laid = record::laid(&ctx.profile, &ctx.profile_without_record()?);
            for l in &laid {
                ui.note(
                    None,
                    format!(
                        "the release's record ({} {}) sets {}={} (the profile and --values: {})",
                        r.kept_in, names.record, l.key, l.recorded, l.without
                    ),
                );
            }
            laid
        }
        None => vec![],
    };
    let asked = record::unconfirmed(&recorded, &running);
    if !asked.is_empty() {
        let said: Vec<String> = asked
            .iter()
            .map(|l| match running.get(&l.key) {
                Some(now) => format!("{} {now} → {}", l.key, l.recorded),
                None => format!("{}={}", l.key, l.recorded),
            })
            .collect();
        if args.dry_run {
            ui.note(
                None,
                format!(
                    "warning: the release's record would change what runs ({}): a real install asks to confirm it",
                    said.join("; ")
                ),
            );
        } else {
            ui.confirm_typed(
                &format!(
                    "The release's record ({}) would change what runs: {}. Whoever may write it chose this, maybe not you. Type the release name to apply it",
                    names.record,
                    said.join("; ")
                ),
                &profile.release,
            )?;
        }
    }

    let opts = ApplyOptions {
        dry_run: args.dry_run,
        force_conflicts: args.force_conflicts,
    };
    if !namespace_exists {
        let doing = if args.dry_run {
            "would create"
        } else {
            "creating"
        };
        ui.note(None, format!("{doing} namespace {}", kube.namespace));
        create_namespace(&kube, args.dry_run).await?;
    }
    if create_class {
        ui.note(
            None,
            format!("creating StorageClass {class} (Azure disk CSI, Standard_LRS, Retain)"),
        );
        let sc = render::storage_class(&class)?;
        apply::apply_typed(
            &kube,
            Api::<StorageClass>::all(kube.client.clone()),
            &sc,
            opts,
        )
        .await?;
    }
    if snapshots.create_class {
        let class = &profile.cluster("install")?.snapshot.class_name;
        if args.dry_run {
            ui.note(None, format!("would create VolumeSnapshotClass {class}"));
        } else {
            ui.note(None, format!("creating VolumeSnapshotClass {class}"));
            snapshot::create_class(&kube, &profile, class).await?;
        }
    }

    // Recorded last, once everything else applied: what the next install starts from. The
    // tool's own bookkeeping, written whole each time: a hand edit of it is taken over.
    let forced = ApplyOptions {
        force_conflicts: true,
        ..opts
    };
    let record_id = (record.kind().to_string(), record.name().to_string());
    let mut report = InstallReport {
        release: profile.release.clone(),
        namespace: kube.namespace.clone(),
        server: kube.server.clone(),
        server_version,
        dry_run: args.dry_run,
        namespace_created: !namespace_exists,
        storage_class: class.clone(),
        storage_class_created: create_class,
        passwords: origin,
        tls: tls_origin,
        server_certificate_expires: server_certificate,
        ca_notes,
        objects: vec![],
        recorded,
        complete: true,
        ready: false,
        waited_seconds: 0.0,
        findings: vec![],
        image_changed_from: None,
        checks: vec![],
        snapshot_class_created: snapshots.create_class && !args.dry_run,
        first_snapshot: None,
    };
    let applied = match apply_each(&kube, ui, objects, opts, namespace_exists).await {
        Ok(mut applied) => {
            match apply_each(&kube, ui, vec![record], forced, namespace_exists).await {
                Ok(r) => {
                    applied.extend(r);
                    Ok(applied)
                }
                Err(mut stopped) => {
                    applied.append(&mut stopped.objects);
                    stopped.objects = applied;
                    Err(stopped)
                }
            }
        }
        Err(mut stopped) => {
            let (kind, name) = &record_id;
            stopped
                .objects
                .push(Applied::new(kind, name, Change::NotApplied));
            Err(stopped)
        }
    };
    let mut applied = match applied {
        Ok(a) => a,
        Err(stopped) => {
            // Part way: what is there and what is not, then the cause. A re-run goes on.
            report.objects = stopped.objects.clone();
            report.complete = false;
            ui.emit(&report, text)?;
            return Err(stopped.into_error().context(format!(
                "install of release {} is incomplete",
                profile.release
            )));
        }
    };

    for id in &prune {
        inventory::delete(&kube, id, args.dry_run).await?;
        let (kind, name) = id.split_once('/').expect("ids are Kind/name");
        applied.push(Applied::new(kind, name, Change::Pruned));
    }
    report.objects = applied;
    if args.dry_run {
        ui.emit(&report, text)?;
        return Ok(Outcome::ok());
    }

    let bar = ui.spinner(format!(
        "waiting for {} to become ready",
        names.stateful_set
    ));
    let mut wake = Wake::release(&kube, &profile);
    let waited = wait::rollout(&kube, &profile, args.timeout, ui, &bar, &mut wake).await?;
    let elapsed = bar.elapsed();
    bar.finish_and_clear();
    report.waited_seconds = (elapsed.as_secs_f64() * 10.0).round() / 10.0;
    match waited {
        Ok(_) => {
            report.ready = true;
            if let Some(from) = image_change {
                let spinner = ui.spinner("verifying the new minor version");
                report.image_changed_from = Some(from);
                report.checks = crate::db::checks::release_checks(&kube, &profile).await;
                spinner.finish_and_clear();
            }
            // The CronJob, or what its job runs with (its values, its rights), new or changed.
            let schedule_changed = report.objects.iter().any(|o| {
                o.name == names.snapshot_schedule
                    && matches!(o.change, Change::Created | Change::Configured)
            });
            if first_run && first_run::wanted(&kube, &profile, schedule_changed).await? {
                // A client of its own: the rollout may have spent the first one's retry budget.
                let kube = ctx.kube_within(args.timeout).await?;
                let bar = ui.spinner("running the snapshot schedule once");
                report.first_snapshot =
                    Some(first_run::run(&kube, &profile, args.timeout, ui, &bar).await);
                bar.finish_and_clear();
            }
            ui.emit(&report, text)?;
            check::refuse_failed(
                "installed, but after the new image ",
                &report.checks,
                &crate::db::checks::hint(&report.checks),
            )?;
            if let Some(run) = report.first_snapshot.as_ref().filter(|r| r.failed()) {
                return Err(user_error(format!(
                    "installed, but the snapshot schedule's first run failed: {}",
                    run.cause.as_deref().unwrap_or("see the Job's pod")
                ))
                .hint(run.hint.clone().unwrap_or_default())
                .into());
            }
            Ok(Outcome::ok())
        }
        Err(timed_out) => {
            let classes = match preflight::storage_classes(&kube).await {
                Ok(Some(now)) => now,
                _ => listed.unwrap_or_else(|| vec![class.clone()]),
            };
            report.findings = diagnose(&timed_out.last, &names, &classes);
            ui.emit(&report, text)?;
            let first = report.findings.first();
            let cause = first.map_or_else(
                || wait::progress_text(&timed_out.last, &names),
                |f| f.cause.clone(),
            );
            Err(user_error(format!(
                "timed out after {} waiting for {} to become ready: {cause}",
                humantime::format_duration(Duration::from_secs(timed_out.after.as_secs())),
                names.stateful_set
            ))
            .hint(first.map_or_else(
                || "raise --timeout, or see `phonebill-db status`".to_string(),
                |f| f.hint.clone(),
            ))
            .exit(ExitCode::Timeout)
            .into())
        }
    }
}

/// The running image when this install changes it within its major version; a refusal when the
/// major version changes (PostgreSQL does not start on another major version's data directory).
fn image_change_of(sts: &StatefulSet, profile: &crate::profile::Profile) -> Result<Option<String>> {
    let names = profile.names();
    let cluster = profile.cluster("install")?;
    let Some(running) = upgrade::container_image(sts, &names.container) else {
        return Ok(None);
    };
    if running == cluster.image {
        return Ok(None);
    }
    let (from, to) = (image_major(&running), cluster.image_major());
    if from.is_none() || to.is_none() {
        return Err(user_error(format!(
            "StatefulSet {} runs {running}; cannot tell whether {} is the same PostgreSQL major version; nothing was changed",
            names.stateful_set, cluster.image
        ))
        .hint("name the major version in both tags (a digest may follow it: postgres:16.4@sha256:…)")
        .exit(ExitCode::Usage)
        .into());
    }
    match (from, to) {
        (Some(from), Some(to)) if from != to => {
            let hint = if to > from {
                format!(
                    "`phonebill-db upgrade --major {to}` moves the data to PostgreSQL {to} side by side (backup, restore, verify, switch)"
                )
            } else {
                format!(
                    "PostgreSQL cannot go back to an older major version: keep `image` at {from} (e.g. {})",
                    image_with_major(&cluster.image, from)
                )
            };
            Err(user_error(format!(
                "StatefulSet {} holds PostgreSQL {from} data ({running}); the image {} is PostgreSQL {to}, which would not start on it; nothing was changed",
                names.stateful_set, cluster.image
            ))
            .hint(hint)
            .exit(ExitCode::Usage)
            .into())
        }
        _ => Ok(Some(running)),
    }
}

/// What this install records: the values it started from (the last install's, unless
/// --reset-values), `--values` laid over them, and the flags that change the render.
async fn next_record(
    ctx: &Ctx,
    args: &InstallArgs,
    kube: &Kube,
    previous: Option<&Record>,
    data_set: Option<&str>,
    kept: Option<&resize::KeptVolume>,
) -> Result<Record> {
    // With --reset-values nothing was adopted: empty.
    let mut values = ctx.recorded_values();
    // --reset-values keeps where an upgrade moved the data.
    if args.reset_values
        && let Some(set) = data_set
    {
        let kept: serde_yaml::Value =
            serde_yaml::from_str(&format!("dataSet: {}", serde_json::to_string(set)?))?;
        values = merged(&values, &kept);
    }
    if let Some(layer) = &ctx.values {
        values = merged(&values, &layer.values);
    }
    if let Some(class) = &args.storage_class {
        let flag: serde_yaml::Value = serde_yaml::from_str(&format!(
            "storage: {{className: {}}}",
            serde_json::to_string(class)?
        ))?;
        values = merged(&values, &flag);
    }
    if let Some(k) = kept {
        let volume: serde_yaml::Value = serde_yaml::from_str(&format!(
            "storage: {{size: {}, className: {}}}",
            serde_json::to_string(&k.size)?,
            serde_json::to_string(&k.class)?
        ))?;
        values = merged(&values, &volume);
    }
    Ok(record::next(kube, previous, &ctx.profile.environment, &values).await)
}

/// A flag of install that the environment's kind does not use: refused, nothing done.
pub fn flag_not_here(flag: &str, env: &str, for_what: &str) -> anyhow::Error {
    user_error(format!(
        "install {flag}: environment `{env}` does not use it; nothing was changed"
    ))
    .hint(format!("{flag} is for {for_what}"))
    .exit(ExitCode::Usage)
    .into()
}

/// Every verb install will use, asked before anything changes; all denials in one message.
async fn check_rbac(kube: &Kube, needs: InstallNeeds) -> Result<()> {
    deny_check(kube, preflight::install_accesses(needs)).await
}

/// The snapshot schedule's needs, checked before anything changes.
struct SnapshotPrerequisites {
    enabled: bool,
    /// The VolumeSnapshotClass is missing and --create-snapshot-class makes it.
    create_class: bool,
}

/// With the schedule on: the VolumeSnapshot API and the profile's class (made with
/// --create-snapshot-class), or a refusal that says how to go without the schedule.
async fn snapshot_prerequisites(
    kube: &Kube,
    profile: &crate::profile::Profile,
    args: &InstallArgs,
    ui: &crate::ui::Ui,
) -> Result<SnapshotPrerequisites> {
    let cluster = profile.cluster("install")?;
    let mut out = SnapshotPrerequisites {
        enabled: cluster.snapshots.enabled,
        create_class: false,
    };
    if !out.enabled {
        return Ok(out);
    }
    let class = &cluster.snapshot.class_name;
    let without = "go without the schedule: a --values file with `snapshots: {enabled: false}`";
    match snapshot::class_state(kube, class).await? {
        ClassState::Present => {}
        ClassState::Unknown => {
            ui.note(
                None,
                format!("warning: not allowed to list VolumeSnapshotClasses; cannot check that `{class}` exists (the schedule's first run will tell)"),
            );
            out.create_class = args.create_snapshot_class;
        }
        ClassState::NoApi => {
            return Err(user_error(
                "this cluster has no VolumeSnapshot API (snapshot.storage.k8s.io/v1), which the snapshot schedule needs; nothing was changed",
            )
            .hint(format!(
                "AKS has it with its disk CSI driver; elsewhere install the CSI external-snapshotter CRDs and controller, or {without}"
            ))
            .into());
        }
        ClassState::Missing(names) if !args.create_snapshot_class => {
            return Err(snapshot::missing_class(
                class,
                &names,
                &cluster.snapshot.driver,
                without,
            ));
        }
        ClassState::Missing(_) => out.create_class = true,
    }
    Ok(out)
}

fn text(r: &InstallReport) -> String {
    let mut out = objects_table(&r.objects, r.dry_run);
    out.push_str(&diffs(&r.objects));
    let count = |c: Change| r.objects.iter().filter(|o| o.change == c).count();
    let mut summary = format!(
        "{} created, {} configured, {} unchanged",
        count(Change::Created),
        count(Change::Configured),
        count(Change::Unchanged)
    );
    if count(Change::Pruned) > 0 {
        summary.push_str(&format!(", {} pruned", count(Change::Pruned)));
    }
    let mut passwords = match r.passwords {
        Origin::Generated => "generated new passwords (stored only in Secrets)",
        Origin::Existing => "kept the existing passwords",
    }
    .to_string();
    match &r.tls {
        crate::certs::Origin::Renewed(why) => passwords.push_str(&format!(
            "; issued a new server certificate ({why}), valid until {}",
            r.server_certificate_expires
        )),
        crate::certs::Origin::NewCa(why) => passwords.push_str(&format!(
            "; made a new CA and server certificate ({why}), valid until {}: give outside clients the new CA (`phonebill-db expose --ca-out FILE`) and restart the app so it reads it",
            r.server_certificate_expires
        )),
        _ => {}
    }
    if !r.complete {
        out.push_str(&format!(
            "release {} is INCOMPLETE: install stopped part way ({summary}; {} not applied); fix the cause below and run install again, it goes on from here\n",
            r.release,
            count(Change::Failed) + count(Change::NotApplied)
        ));
    } else if r.dry_run && count(Change::Unchecked) > 0 {
        out.push_str(&format!(
            "dry run: namespace {} does not exist yet, so the API server could not check the {} objects it would hold (it checked the RBAC rights and the StorageClass); nothing was changed\n",
            r.namespace,
            count(Change::Unchecked)
        ));
    } else if r.dry_run {
        out.push_str(&format!("dry run: {summary}; nothing was changed\n"));
    } else if r.ready {
        out.push_str(&format!(
            "release {} in namespace {} is ready after {}s ({summary}; {passwords})\n",
            r.release, r.namespace, r.waited_seconds
        ));
    } else {
        out.push_str(&format!(
            "release {} is NOT ready after {}s ({summary})\n",
            r.release, r.waited_seconds
        ));
        for f in &r.findings {
            out.push_str(&format!(
                "  {}: {}\n    hint: {}\n",
                f.object, f.cause, f.hint
            ));
        }
    }
    if let Some(run) = &r.first_snapshot {
        let how = match (run.result.as_str(), &run.cause) {
            ("succeeded", _) => "succeeded: a snapshot of the data volume is there".to_string(),
            ("failed", Some(cause)) => format!("FAILED: {cause}"),
            (_, cause) => format!(
                "still running when install stopped waiting ({}); `phonebill-db status` shows how it ends",
                cause.as_deref().unwrap_or("no news")
            ),
        };
        out.push_str(&format!(
            "snapshot schedule: its first run (Job {}) {how}\n",
            run.job
        ));
    }
    if let Some(from) = &r.image_changed_from {
        out.push_str(&format!(
            "the pod moved from {from} to a new minor version; verify:\n{}",
            check::table(&r.checks)
        ));
    }
    out
}
