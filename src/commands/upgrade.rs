//! `upgrade --major N`: move the release's data to a new PostgreSQL major version side by side —
//! the app role kept from logging in to the old server, a backup, a second StatefulSet and volume on the new
//! image, the backup restored into it, verify, then the Services switched to it; the old
//! StatefulSet and volume stay until `upgrade --finalize` (or `--rollback` switches back).
//! Every step is resumable: run the same command again. Nothing is deleted before the new server
//! has passed verify and the Services lead to it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use serde::Serialize;
use tokio_postgres::Client;

use crate::args::parse_duration;
use crate::check::{self, Check, Status};
use crate::context::Ctx;
use crate::db::backup_file::default_name;
use crate::db::backup_file::{self, Format};
use crate::db::checks::database_checks;
use crate::db::connect::Db;
use crate::db::dump::{self, DumpOptions, Source};
use crate::db::freeze;
use crate::db::restore;
use crate::db::tools::Tools;
use crate::error::{ExitCode, user_error};
use crate::k8s::apply::apply_all;
use crate::k8s::apply::{ApplyOptions, apply_typed};
use crate::k8s::client::api_error;
use crate::k8s::preflight::deny_check;
use crate::k8s::preflight::{APPLIED, Access, OBSERVED};
use crate::k8s::record::{self, UpgradeState};
use crate::k8s::upgrade::{self as live, claim_of};
use crate::k8s::volume_restore::reclaim_policy;
use crate::k8s::wait;
use crate::k8s::watches::Wake;
use crate::k8s::{Kube, inventory};
use crate::profile::{Layer, Profile, image_major, image_with_major, merged};
use crate::render::{self, Object};
use crate::ui::{Outcome, unless_interrupted};

/// Marks a claim the Services led to once: what it holds may be newer than any backup.
const SWITCHED: &str = "phonebill-db/switched-at";

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["major", "finalize", "rollback"])))]
pub struct UpgradeArgs {
    /// Move the data to PostgreSQL major version N (higher than the running one), on the
    /// profile's image with the tag N
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(10..1000))]
    pub major: Option<u32>,
    /// The new server's image, when not the profile's image with the tag N (its tag must name N)
    #[arg(long, value_name = "IMAGE", requires = "major")]
    pub image: Option<String>,
    /// Where the backup of the old server goes (default: DATABASE-ENV-before-pgN-TIMESTAMP.dump here)
    #[arg(long, value_name = "FILE", requires = "major")]
    pub to: Option<PathBuf>,
    /// After a switched upgrade: delete the old StatefulSet and its claim (with a Retain class the
    /// disk stays as a Released volume)
    #[arg(long)]
    pub finalize: bool,
    /// Switch the Services back to the old StatefulSet and delete the new one (its claim stays),
    /// or abandon an upgrade that did not switch
    #[arg(long)]
    pub rollback: bool,
    /// How long to wait for the new server to become ready
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeReport {
    pub release: String,
    pub namespace: String,
    /// upgraded, alreadySwitched, finalized or rolledBack.
    pub outcome: &'static str,
    pub from_major: Option<u32>,
    pub to_major: Option<u32>,
    /// The StatefulSet the Services lead to now.
    pub serving: String,
    /// The backup the new server was restored from.
    pub backup: Option<String>,
    /// StatefulSets and claims left in place (for `--rollback`, or holding data).
    pub kept: Vec<String>,
    pub deleted: Vec<String>,
    /// Disks that stay as Released PersistentVolumes (a Retain class).
    pub released_volumes: Vec<String>,
    pub checks: Vec<Check>,
    pub passed: bool,
    pub seconds: f64,
}

/// A managed server's major version is Azure's to upgrade: refused before the cluster is asked.
pub fn precheck(profile: &Profile) -> Result<()> {
    if let Some(m) = &profile.managed {
        return Err(user_error(format!(
            "upgrade: environment `{}` runs on the managed server {}, whose major version Azure upgrades",
            profile.environment, m.host
        ))
        .hint("use the Flexible Server's in-place major version upgrade (Azure portal or `az postgres flexible-server upgrade`), after a backup")
        .exit(ExitCode::Usage)
        .into());
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, args: &UpgradeArgs) -> Result<Outcome> {
    precheck(&ctx.profile)?;
    if ctx.values.is_some() {
        return Err(
            user_error("upgrade moves the release as installed; --values is install's")
                .hint("run `install --values FILE` first, then upgrade")
                .exit(ExitCode::Usage)
                .into(),
        );
    }
    let kube = ctx.kube_within(args.timeout).await?;
    // What install applies and observes (the switch applies the whole release), and more.
    let mut wanted = vec![
        Access::ns("create", "", "pods/exec"),
        Access::ns("create", "", "pods/portforward"),
        Access::ns("get", "", "persistentvolumeclaims"),
        Access::ns("patch", "", "persistentvolumeclaims"),
        Access::ns("delete", "", "persistentvolumeclaims"),
        Access::ns("delete", "apps", "statefulsets"),
    ];
    for (group, resource) in APPLIED {
        for verb in ["get", "create", "patch"] {
            wanted.push(Access::ns(verb, group, resource));
        }
    }
    for (group, resource) in OBSERVED {
        wanted.push(Access::ns("list", group, resource));
    }
    deny_check(&kube, wanted).await?;
    // An upgrade restores into a second StatefulSet and switches to it: a stopped release would
    // come back running. Refused: `start` first.
    crate::k8s::power::refuse_stopped(&kube, &ctx.profile, "upgrade").await?;
    let started = Instant::now();
    let mut report = match (args.major, args.finalize) {
        (Some(to), _) => upgrade(ctx, &kube, args, to).await?,
        (None, true) => finalize(ctx, &kube).await?,
        (None, false) => rollback(ctx, &kube).await?,
    };
    report.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    ctx.ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

fn report(ctx: &Ctx, kube: &Kube, outcome: &'static str, serving: String) -> UpgradeReport {
    UpgradeReport {
        release: ctx.profile.release.clone(),
        namespace: kube.namespace.clone(),
        outcome,
        from_major: None,
        to_major: None,
        serving,
        backup: None,
        kept: vec![],
        deleted: vec![],
        released_volumes: vec![],
        checks: vec![],
        passed: true,
        seconds: 0.0,
    }
}

async fn upgrade(ctx: &Ctx, kube: &Kube, args: &UpgradeArgs, to: u32) -> Result<UpgradeReport> {
    let recorded = ctx.record.as_ref().and_then(|r| r.upgrade.clone());
    if let Some(up) = recorded {
        if up.to_major != to {
            return Err(waiting(ctx, &up));
        }
        // Switched already (perhaps interrupted while switching): make sure of the switch.
        let pvc = ctx.profile.names().pvc;
        live::annotate_claim(kube, &pvc, SWITCHED, &up.switched_at).await?;
        switch(ctx, kube, &ctx.profile).await?;
        let mut r = report(
            ctx,
            kube,
            "alreadySwitched",
            ctx.profile.names().stateful_set,
        );
        r.from_major = Some(up.from_major);
        r.to_major = Some(to);
        r.backup = Some(up.backup);
        r.kept = vec![up.from_stateful_set, up.from_claim];
        return Ok(r);
    }
    let cluster = ctx.profile.cluster("upgrade")?;
    let names = ctx.profile.names();
    let running = live::running(kube, &ctx.profile).await?.ok_or_else(|| {
        anyhow::Error::from(
            user_error(format!(
                "release {} is not installed in namespace {} (no StatefulSet {}); nothing to upgrade",
                ctx.profile.release, kube.namespace, names.stateful_set
            ))
            .hint("`phonebill-db install` installs it on the profile's image")
            .exit(ExitCode::Usage),
        )
    })?;
    let from = running.major.ok_or_else(|| {
        anyhow::Error::from(
            user_error(format!(
                "cannot tell the major version of StatefulSet {}'s image {}; nothing was changed",
                running.stateful_set, running.image
            ))
            .hint("its tag must start with the major version (postgres:16, postgres:16.4-bookworm)")
            .exit(ExitCode::Usage),
        )
    })?;
    if to <= from {
        let why = if to == from {
            format!(
                "release {} already runs PostgreSQL {from}",
                ctx.profile.release
            )
        } else {
            format!(
                "PostgreSQL cannot move data from major version {from} down to {to}: release {} keeps {from}",
                ctx.profile.release
            )
        };
        return Err(user_error(format!("{why}; nothing was changed"))
            .hint(format!(
                "give a major version above {from}; to go back to older data, restore a backup taken on it"
            ))
            .exit(ExitCode::Usage)
            .into());
    }
    let image = args
        .image
        .clone()
        .unwrap_or_else(|| image_with_major(&cluster.image, to));
    if image_major(&image) != Some(to) {
        return Err(user_error(format!(
            "--image {image} does not name PostgreSQL {to} in its tag; nothing was changed"
        ))
        .hint(format!(
            "give an image tagged {to} (e.g. {})",
            image_with_major(&image, to)
        ))
        .exit(ExitCode::Usage)
        .into());
    }
    let layer = Layer::parse(
        "upgrade".into(),
        &format!(
            "image: {}\ndataSet: pg{to}\n",
            serde_json::to_string(&image)?
        ),
    )?;
    let next = ctx.profile_with(layer.clone())?;
    let next_names = next.names();
    let others = live::others(kube, &ctx.profile).await?;
    let strangers: Vec<String> = others
        .iter()
        .filter(|o| **o != next_names.stateful_set)
        .cloned()
        .collect();
    if !strangers.is_empty() {
        return Err(live::under_way(&strangers, &ctx.profile));
    }
    let dest = backup_path(ctx, args, to)?;
    // A claim the Services once led to (an upgrade rolled back) may hold the only copy of what
    // was written after that switch: a restore into it would drop it.
    if let Some(at) = live::annotation_of_claim(kube, &next_names.pvc, SWITCHED).await? {
        return Err(user_error(format!(
            "claim {} served the application from {at} until a rollback; what was written there since is nowhere else; nothing was changed",
            next_names.pvc
        ))
        .hint(format!(
            "save what you need from it, then `kubectl delete pvc {} -n {}` and upgrade again",
            next_names.pvc, kube.namespace
        ))
        .exit(ExitCode::Usage)
        .into());
    }
    let (beside, rest) = beside(kube, &next).await?;
    // The switch applies the release's Roles again: the API server judges their rights then.
    crate::k8s::grants::require_grantable(kube, &rest, "nothing was changed").await?;
    ctx.ui.confirm_typed(
        &format!(
            "Move release {}'s data from PostgreSQL {from} ({}) to {to} ({image})? The application cannot log in to the old server from the freeze to the switch (its sessions are ended). Type the release name to go on",
            ctx.profile.release, running.stateful_set
        ),
        &ctx.profile.release,
    )?;

    // 1. The new server beside the old one, until ready: the application still writes meanwhile.
    start_beside(ctx, kube, args, &next, beside)
        .await
        .context(format!(
            "upgrading to PostgreSQL {to} did not switch; the Services still lead to {}, untouched; run the same command again to go on",
            running.stateful_set
        ))?;

    // 2. The old server: the app role may not log in, its sessions end (nothing it writes after
    // the backup could be lost).
    let old = Db::for_release(kube.clone(), &ctx.profile).await?;
    let old_admin = old.admin().await?;
    freeze::freeze(&old_admin, &ctx.profile)
        .await
        .context("stopping the app role's logins on the old server; nothing was changed there")?;
    ctx.ui.note(
        None,
        format!(
            "the app role {} may not log in to {} until the switch",
            ctx.profile.app_user, running.stateful_set
        ),
    );
    let ended = freeze::end_sessions(&old_admin, &ctx.profile).await;
    let moved = match ended {
        Ok(()) => move_data(ctx, kube, &dest, &old, &old_admin, &next).await,
        Err(e) => Err(e),
    };
    let (backup, checks) = match moved {
        Ok(m) => m,
        Err(e) => {
            // Not switched: the old server is the application's again.
            let thawed = freeze::thaw(&old_admin, &ctx.profile).await;
            let left = match thawed {
                Ok(()) => format!(
                    "the Services still lead to {}, which the application may write again",
                    running.stateful_set
                ),
                Err(t) => format!(
                    "the Services still lead to {}; the app role still may not log in there ({}): `upgrade --rollback` lifts it",
                    running.stateful_set,
                    crate::error::report(&t).error
                ),
            };
            return Err(e.context(format!(
                "upgrading to PostgreSQL {to} did not switch; {left}; run the same command again to go on"
            )));
        }
    };

    // 3. The switch: recorded first, so that an interrupted switch is finished by a re-run.
    let before = ctx.recorded_values();
    let values = merged(&before, &layer.values);
    let state = UpgradeState {
        from_values: before,
        from_major: from,
        from_stateful_set: running.stateful_set.clone(),
        from_claim: names.pvc.clone(),
        to_major: to,
        backup: backup.clone(),
        switched_at: record::now(),
    };
    record::write_with(
        kube,
        &next,
        ctx.record.as_ref(),
        &values,
        Some(state.clone()),
    )
    .await
    .context("recording the upgrade with the release; nothing was switched")?;
    live::annotate_claim(kube, &next_names.pvc, SWITCHED, &state.switched_at).await?;
    switch_with(ctx, kube, &next, rest).await?;
    let mut r = report(ctx, kube, "upgraded", next_names.stateful_set);
    r.from_major = Some(from);
    r.to_major = Some(to);
    r.backup = Some(backup);
    r.kept = vec![running.stateful_set, names.pvc];
    r.passed = check::passed(&checks);
    r.checks = checks;
    Ok(r)
}

/// Backup of the old server, the restore into the new one and verify: the backup file and the
/// new server's checks. The Services are not touched.
async fn move_data(
    ctx: &Ctx,
    kube: &Kube,
    dest: &Path,
    old: &Db,
    old_admin: &Client,
    next: &Profile,
) -> Result<(String, Vec<Check>)> {
    let ui = &ctx.ui;
    let container = next.names().container;
    let interrupted = "run the same command again to go on, or `upgrade --rollback` to give the old server back to the application";
    let tools = Tools::for_db(old, &container, None);
    let src = Source {
        db: old,
        admin: old_admin,
        tools: &tools,
        environment: &ctx.profile.environment,
    };
    let bar = ui.bytes(None, format!("backing up {}", old.database));
    ui.note(Some(&bar), format!("backup into {}", dest.display()));
    let taken = unless_interrupted(
        dump::take(&src, &DumpOptions::default(), dest, &bar),
        interrupted,
    )
    .await;
    bar.finish_and_clear();
    let taken = taken.context("backing up the old server")?;

    let names = next.names();
    let new = Db::for_release(kube.clone(), next).await?;
    // Its own backup, in the clear: restored at once by this command (never encrypted).
    let manifest = backup_file::inspect(dest, None)?.manifest;
    let new_tools = Tools::for_db(&new, &container, None);
    let bar = ui.bytes(
        Some(manifest.size),
        format!("restoring into {}", names.stateful_set),
    );
    let restored = unless_interrupted(
        restore::run(
            &new_tools,
            &restore::Source::new(dest, None),
            &manifest,
            &restore::Target::of(&new),
            &bar,
            None,
        ),
        interrupted,
    )
    .await;
    bar.finish_and_clear();
    restored.with_context(|| format!("restoring {} into {}", dest.display(), names.pod))?;

    let spinner = ui.spinner("verifying the new server");
    let checks = database_checks(next, &new).await;
    spinner.finish_and_clear();
    if !check::passed(&checks) {
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        return Err(user_error(format!(
            "the new server {} did not pass verify: {}",
            names.pod,
            failed.join("; ")
        ))
        .hint(crate::db::checks::hint(&checks))
        .exit(ExitCode::ChecksFailed)
        .into());
    }
    Ok((taken.file, checks))
}

/// Where the backup goes: `--to` (which must not exist yet), else a new name here — a re-run
/// within the same second as a failed attempt does not meet that attempt's file.
fn backup_path(ctx: &Ctx, args: &UpgradeArgs, to: u32) -> Result<PathBuf> {
    if let Some(path) = &args.to {
        if path.exists() || backup_file::manifest_path(path).exists() {
            return Err(user_error(format!(
                "--to {}: a backup by that name exists; nothing was changed",
                path.display()
            ))
            .hint("choose another name with --to, or leave it out for a new one here")
            .exit(ExitCode::Usage)
            .into());
        }
        return Ok(path.clone());
    }
    let name = |label: String| {
        default_name(
            &ctx.profile.database,
            &ctx.profile.environment,
            Format::Custom,
            &label,
            false,
        )
    };
    let mut dest = name(format!("before-pg{to}"));
    let mut n = 2;
    while dest.exists() {
        dest = name(format!("before-pg{to}-{n}"));
        n += 1;
    }
    Ok(dest)
}

/// Apply everything `profile` renders but the StatefulSets: the Services then select its pod.
/// No pod is rolled: the StatefulSet switched to keeps its template (after a rollback the old
/// pod keeps the certificate it started with; the next install rolls it onto the renewed one).
async fn switch(ctx: &Ctx, kube: &Kube, profile: &Profile) -> Result<()> {
    let (objects, _) = crate::passwords::rendered(kube, profile).await?;
    let objects = objects
        .into_iter()
        .filter(|o| !matches!(o, Object::StatefulSet(_)))
        .collect();
    switch_with(ctx, kube, profile, objects).await
}

/// [`switch`] with the objects already rendered (none of them a StatefulSet).
async fn switch_with(
    ctx: &Ctx,
    kube: &Kube,
    profile: &Profile,
    objects: Vec<Object>,
) -> Result<()> {
    let names = profile.names();
    apply_all(kube, &ctx.ui, objects, ApplyOptions::default(), true)
        .await
        .with_context(|| format!("switching the Services to {}", names.stateful_set))?;
    // expose's LoadBalancer, if there is one: as expose made it, selecting the new pod.
    let Some(external) = &names.external_service else {
        return Ok(());
    };
    let api: Api<Service> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let live = api
        .get_opt(external)
        .await
        .map_err(|e| api_error(e, &format!("reading Service {external}"), &kube.server))?;
    if let Some(live) = live {
        let ranges = live
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_source_ranges.clone())
            .unwrap_or_default();
        let internal = crate::k8s::load_balancer::is_internal(&live);
        let service = render::external_service(profile, &ranges, internal)?;
        apply_typed(kube, api, &service, ApplyOptions::default())
            .await
            .with_context(|| format!("switching Service {external} to {}", names.pod))?;
    }
    Ok(())
}

/// Apply the new StatefulSet and its certificate Secret, and wait for its rollout.
async fn start_beside(
    ctx: &Ctx,
    kube: &Kube,
    args: &UpgradeArgs,
    next: &Profile,
    objects: Vec<Object>,
) -> Result<()> {
    let ui = &ctx.ui;
    let names = next.names();
    for object in objects {
        crate::k8s::apply::apply(kube, &object.with_secret_data(), ApplyOptions::default()).await?;
    }
    let bar = ui.spinner(format!(
        "waiting for {} to become ready",
        names.stateful_set
    ));
    let mut wake = Wake::release(kube, next);
    let waited = unless_interrupted(
        wait::rollout(kube, next, args.timeout, ui, &bar, &mut wake),
        "run the same command again to go on, or `upgrade --rollback` to take the new StatefulSet away",
    )
    .await;
    bar.finish_and_clear();
    if let Err(timed_out) = waited? {
        return Err(user_error(format!(
            "timed out after {} waiting for {}: {}",
            humantime::format_duration(Duration::from_secs(timed_out.after.as_secs())),
            names.stateful_set,
            wait::progress_text(&timed_out.last, &names)
        ))
        .hint("`phonebill-db status` and `kubectl describe pod` say why; raise --timeout and run again")
        .exit(ExitCode::Timeout)
        .into());
    }
    Ok(())
}

/// What `profile` renders, in two parts: what a StatefulSet beside the serving one needs (itself
/// and the server certificate's Secret), and the rest, which the switch applies. A missing CA is
/// install's to make (`--renew-ca`: every client's trust changes): refused, as is a CA that
/// cannot go on (by [`crate::certs::resolve`]).
async fn beside(kube: &Kube, profile: &Profile) -> Result<(Vec<Object>, Vec<Object>)> {
    let names = profile.names();
    let (objects, origin) = crate::passwords::rendered(kube, profile).await?;
    if matches!(
        origin,
        crate::certs::Origin::Generated | crate::certs::Origin::NewCa(_)
    ) {
        return Err(user_error(format!(
            "release {}'s certificate authority is missing; nothing was changed",
            profile.release
        ))
        .hint("run `phonebill-db install --renew-ca` first (it makes a new CA and rolls the pod), then upgrade")
        .exit(ExitCode::Usage)
        .into());
    }
    let (beside, rest): (Vec<Object>, Vec<Object>) = objects.into_iter().partition(|o| match o {
        Object::StatefulSet(_) => true,
        Object::Secret(s) => s.metadata.name.as_deref() == Some(&names.tls_secret),
        _ => false,
    });
    anyhow::ensure!(
        beside.len() == 2,
        "the profile renders no StatefulSet or certificate Secret (a bug)"
    );
    Ok((beside, rest))
}

async fn finalize(ctx: &Ctx, kube: &Kube) -> Result<UpgradeReport> {
    let record = ctx.record.as_ref();
    let up = record.and_then(|r| r.upgrade.clone()).ok_or_else(|| {
        anyhow::Error::from(
            user_error(format!(
                "release {} has no switched upgrade to finalize; nothing was changed",
                ctx.profile.release
            ))
            .hint("`phonebill-db upgrade --major N` upgrades; `phonebill-db status` shows the release")
            .exit(ExitCode::Usage),
        )
    })?;
    ctx.ui.confirm_typed(
        &format!(
            "Delete StatefulSet {} and its claim {} (the PostgreSQL {} data, kept since the switch to {})? `--rollback` is no longer possible after. Type the release name to go on",
            up.from_stateful_set, up.from_claim, up.from_major, up.to_major
        ),
        &ctx.profile.release,
    )?;
    // An interrupted switch is finished first: nothing may select what is deleted.
    switch(ctx, kube, &ctx.profile).await?;
    let volume = live::volume_of(kube, &up.from_claim).await?;
    let class = ctx.profile.cluster("upgrade")?.storage.class_name.clone();
    let retained = reclaim_policy(kube, &class).await.as_deref() == Some("Retain");
    let mut r = report(ctx, kube, "finalized", ctx.profile.names().stateful_set);
    for id in [
        format!("StatefulSet/{}", up.from_stateful_set),
        format!("PersistentVolumeClaim/{}", up.from_claim),
    ] {
        inventory::delete(kube, &id, false).await?;
        r.deleted.push(id);
    }
    if retained {
        r.released_volumes.extend(volume);
    }
    let values = record.map(|r| r.values.clone()).unwrap_or_default();
    record::write_with(kube, &ctx.profile, record, &values, None)
        .await
        .context("recording the finished upgrade with the release")?;
    r.from_major = Some(up.from_major);
    r.to_major = Some(up.to_major);
    r.backup = Some(up.backup);
    Ok(r)
}

async fn rollback(ctx: &Ctx, kube: &Kube) -> Result<UpgradeReport> {
    let record = ctx.record.as_ref();
    let Some(up) = record.and_then(|r| r.upgrade.clone()) else {
        return abandon(ctx, kube).await;
    };
    let mut old = Profile::load_layers(
        &ctx.global.env,
        &[Layer::new(
            "the values before the upgrade",
            up.from_values.clone(),
        )],
    )?;
    old.namespace = ctx.profile.namespace.clone();
    old.release = ctx.profile.release.clone();
    if live::running(kube, &old).await?.is_none() {
        return Err(user_error(format!(
            "StatefulSet {} (PostgreSQL {}) is gone; there is nothing to switch back to",
            up.from_stateful_set, up.from_major
        ))
        .hint("`phonebill-db upgrade --finalize` records the upgrade as finished; the backup it was made from is ".to_string() + &up.backup)
        .exit(ExitCode::Usage)
        .into());
    }
    let new = ctx.profile.names();
    ctx.ui.confirm_typed(
        &format!(
            "Switch release {} back to StatefulSet {} (PostgreSQL {})? What the application wrote since the switch stays only on claim {}. Type the release name to go on",
            ctx.profile.release, up.from_stateful_set, up.from_major, new.pvc
        ),
        &ctx.profile.release,
    )?;
    // The old server takes writes again before the Services lead to it.
    let db = Db::for_release(kube.clone(), &old).await?;
    freeze::thaw(&db.admin().await?, &old)
        .await
        .context("letting the app role write on the old server again; nothing was switched")?;
    switch(ctx, kube, &old).await?;
    record::write_with(kube, &old, record, &up.from_values, None)
        .await
        .context("recording the rollback with the release")?;
    let id = format!("StatefulSet/{}", new.stateful_set);
    inventory::delete(kube, &id, false).await?;
    let mut r = report(ctx, kube, "rolledBack", up.from_stateful_set);
    r.from_major = Some(up.to_major);
    r.to_major = Some(up.from_major);
    r.deleted.push(id);
    r.kept.push(new.pvc);
    Ok(r)
}

/// `--rollback` of an upgrade that did not switch: the app role writes on the old server again
/// and the new StatefulSet goes (its claim stays, a re-run of the upgrade uses it again).
async fn abandon(ctx: &Ctx, kube: &Kube) -> Result<UpgradeReport> {
    let others = live::others(kube, &ctx.profile).await?;
    let db = Db::for_release(kube.clone(), &ctx.profile).await?;
    let admin = db.admin().await?;
    // A tool stopped between the freeze and its end leaves the server frozen, even with no
    // second StatefulSet to show for it.
    let frozen = freeze::is_frozen(&admin, &ctx.profile).await?;
    if others.is_empty() && !frozen {
        return Err(user_error(format!(
            "release {} has no upgrade to roll back; nothing was changed",
            ctx.profile.release
        ))
        .hint("`phonebill-db status` shows the release")
        .exit(ExitCode::Usage)
        .into());
    }
    let what = if others.is_empty() {
        String::new()
    } else {
        format!(
            " delete StatefulSet {} (its claim stays) and",
            others.join(", ")
        )
    };
    ctx.ui.confirm_typed(
        &format!(
            "Abandon the upgrade of release {}:{what} let the application write on {} again? Type the release name to go on",
            ctx.profile.release,
            ctx.profile.names().stateful_set
        ),
        &ctx.profile.release,
    )?;
    freeze::thaw(&admin, &ctx.profile)
        .await
        .context("letting the app role write again; nothing was deleted")?;
    let mut r = report(ctx, kube, "rolledBack", ctx.profile.names().stateful_set);
    for name in others {
        let id = format!("StatefulSet/{name}");
        inventory::delete(kube, &id, false).await?;
        r.deleted.push(id);
        r.kept.push(claim_of(&name));
    }
    Ok(r)
}

fn waiting(ctx: &Ctx, up: &UpgradeState) -> anyhow::Error {
    user_error(format!(
        "release {} was switched to PostgreSQL {} and keeps {} until the upgrade is finished; nothing was changed",
        ctx.profile.release, up.to_major, up.from_stateful_set
    ))
    .hint("`phonebill-db upgrade --finalize` finishes it, `--rollback` goes back; then upgrade again")
    .exit(ExitCode::Usage)
    .into()
}

fn text(r: &UpgradeReport) -> String {
    let mut out = match r.outcome {
        "upgraded" => format!(
            "release {} moved from PostgreSQL {} to {} in {:.1}s: the Services lead to {}\n",
            r.release,
            r.from_major.unwrap_or_default(),
            r.to_major.unwrap_or_default(),
            r.seconds,
            r.serving
        ),
        "alreadySwitched" => format!(
            "release {} was already switched to PostgreSQL {}: the Services lead to {}\n",
            r.release,
            r.to_major.unwrap_or_default(),
            r.serving
        ),
        "finalized" => format!(
            "release {} runs PostgreSQL {} on {}; the upgrade is finished\n",
            r.release,
            r.to_major.unwrap_or_default(),
            r.serving
        ),
        _ => format!(
            "release {}: the Services lead to {} again\n",
            r.release, r.serving
        ),
    };
    if let Some(b) = &r.backup {
        out.push_str(&format!("backup of the old server: {b}\n"));
    }
    if !r.checks.is_empty() {
        out.push_str(&check::table(&r.checks));
    }
    for d in &r.deleted {
        out.push_str(&format!("deleted {d}\n"));
    }
    for v in &r.released_volumes {
        out.push_str(&format!(
            "the old disk stays as the Released PersistentVolume {v} (Retain class): `kubectl delete pv {v}` removes it\n"
        ));
    }
    if !r.kept.is_empty() {
        out.push_str(&format!("kept: {}\n", r.kept.join(", ")));
    }
    match r.outcome {
        "upgraded" | "alreadySwitched" => out.push_str(
            "`phonebill-db upgrade --finalize` deletes the old StatefulSet and claim; `--rollback` switches back\n",
        ),
        "rolledBack" => out.push_str(
            "the application may write on the old server again; a claim left here is deleted by `kubectl delete pvc NAME`\n",
        ),
        _ => {}
    }
    out
}
