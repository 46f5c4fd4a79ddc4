//! `backup` (runbook 6.1, 6.2, 11.2): a dump streamed into a local file with its manifest, or a
//! CSI snapshot of the data volume (`--snapshot`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::args::{DbArgs, PgBinArgs, parse_duration};
use crate::context::Ctx;
use crate::db::backup_file::Format;
use crate::db::backup_file::{default_name, stamp};
use crate::db::dump::{self, DumpOptions, Source, Taken};
use crate::db::encryption::{Recipients, profile_recipients};
use crate::db::tools::Tools;
use crate::k8s::snapshot;
use crate::ui::{Outcome, unless_interrupted};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// File to write (default: DATABASE-ENV-TIME.dump, or .sql.gz for plain, in this directory);
    /// its manifest goes beside it as FILE.meta.json
    #[arg(long, value_name = "FILE")]
    pub to: Option<PathBuf>,
    /// custom: pg_dump's archive (default); plain: gzip-compressed SQL
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Only the schema, no rows (runbook 11.2)
    #[arg(long, conflicts_with = "tables")]
    pub schema_only: bool,
    /// Only the rows of this table (repeat for more); restoring replaces just their rows
    #[arg(long = "table", value_name = "TABLE", value_parser = parse_table)]
    pub tables: Vec<String>,
    /// pg_dump compression: METHOD[:LEVEL] (gzip, lz4, zstd, none; lz4/zstd need pg_dump 16+)
    #[arg(long, value_name = "METHOD[:LEVEL]")]
    pub compress: Option<String>,
    /// Encrypt the file to this age recipient (age1…; repeat for more), instead of the profile's
    /// backups.encryptTo; `restore --identity KEYFILE` decrypts it
    #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,
    #[command(flatten)]
    pub pg_bin: PgBinArgs,
    /// Take a CSI VolumeSnapshot of the data volume instead of a dump
    #[arg(long, conflicts_with_all = ["to", "format", "schema_only", "tables", "compress", "database_url", "encrypt_to"])]
    pub snapshot: bool,
    /// VolumeSnapshotClass to use instead of the profile's
    #[arg(long, value_name = "NAME", requires = "snapshot")]
    pub snapshot_class: Option<String>,
    /// Create the profile's VolumeSnapshotClass when it is missing
    #[arg(long, requires = "snapshot")]
    pub create_snapshot_class: bool,
    /// How long to wait for the snapshot to become ready to use
    #[arg(long, default_value = "10m", value_parser = parse_duration, requires = "snapshot")]
    pub timeout: Duration,
    /// After the new snapshot is ready, delete this release's older ones of the same kind
    /// (manual, or scheduled with --scheduled) beyond the newest N
    #[arg(long, value_name = "N", requires = "snapshot", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub keep: Option<u32>,
    /// Label the snapshot as the schedule's (the CronJob install makes passes it)
    #[arg(long, requires = "snapshot")]
    pub scheduled: bool,
    /// List this release's snapshots (time, claim, size, ready, scheduled or manual) and stop
    #[arg(long, conflicts_with_all = ["snapshot", "to", "format", "schema_only", "tables", "compress", "database_url", "encrypt_to"])]
    pub list: bool,
}

/// Table names as the schema has them: lower-case SQL identifiers of the public schema.
fn parse_table(s: &str) -> Result<String, String> {
    let ok = s.len() <= 63
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err("a table name of the public schema: lower-case letters, digits and _".into())
    }
}

pub async fn run(ctx: &Ctx, args: &BackupArgs) -> Result<Outcome> {
    if args.snapshot {
        return take_snapshot(ctx, args).await;
    }
    if args.list {
        return list_snapshots(ctx).await;
    }
    let opts = DumpOptions {
        format: args.format,
        schema_only: args.schema_only,
        tables: args.tables.clone(),
        compress: args.compress.clone(),
        encrypt: recipients(ctx, args)?,
    };
    if let Some(to) = &args.to {
        crate::db::backup_file::check_destination("--to", to)?;
    }
    let spinner = ctx.ui.spinner("connecting");
    let db = ctx.db(&args.db).await?;
    let admin = db.admin().await?;
    spinner.finish_and_clear();
    let dest = args.to.clone().unwrap_or_else(|| {
        default_name(
            &db.database,
            &ctx.profile.environment,
            opts.format(),
            "",
            opts.encrypt.is_some(),
        )
    });
    let tools = Tools::for_db(
        &db,
        &ctx.profile.names().container,
        args.pg_bin.pg_bin.as_deref(),
    );
    let src = Source {
        db: &db,
        admin: &admin,
        tools: &tools,
        environment: &ctx.profile.environment,
    };
    let bar = ctx.ui.bytes(None, format!("backing up {}", db.database));
    ctx.ui.detail(format!(
        "backing up {} into {}",
        db.describe_tools(),
        dest.display()
    ));
    let taken = unless_interrupted(
        dump::take(&src, &opts, &dest, &bar),
        "no backup file was kept",
    )
    .await;
    bar.finish_and_clear();
    ctx.ui.emit(&taken?, text)?;
    Ok(Outcome::ok())
}

/// Who the file is encrypted to: `--encrypt-to`, else the profile's `backups.encryptTo`; none:
/// in the clear.
pub fn recipients(ctx: &Ctx, args: &BackupArgs) -> Result<Option<Recipients>> {
    if !args.encrypt_to.is_empty() {
        return Recipients::parse(&args.encrypt_to, "--encrypt-to").map(Some);
    }
    profile_recipients(&ctx.profile)
}

pub fn text(t: &Taken) -> String {
    let d = &t.details;
    let what = if !d.tables.is_empty() {
        format!("rows of {}", d.tables.join(", "))
    } else if d.schema_only {
        "schema only".into()
    } else {
        "schema and data".into()
    };
    let encrypted = d.encryption.as_ref().map_or(String::new(), |e| {
        format!(
            "  encrypted {} for {} ({} of dump inside)\n",
            e.scheme,
            e.recipients.join(", "),
            indicatif::BinaryBytes(e.plaintext_size)
        )
    });
    format!(
        "backup of {} from {} ({what})\n  file      {}\n  manifest  {}\n  format    {} (compression {}), {} in {:.1}s\n  sha256    {}\n{encrypted}  server    PostgreSQL {}, {}\n",
        d.database,
        d.source,
        t.file,
        t.manifest,
        d.format.as_str(),
        d.compress,
        indicatif::BinaryBytes(d.size),
        t.seconds,
        d.sha256,
        d.server_version,
        d.tool_version,
    )
}

async fn take_snapshot(ctx: &Ctx, args: &BackupArgs) -> Result<Outcome> {
    let cluster = ctx.profile.cluster("backup --snapshot")?;
    let kube = ctx.kube_within(args.timeout).await?;
    let class = args
        .snapshot_class
        .clone()
        .unwrap_or_else(|| cluster.snapshot.class_name.clone());
    // A DNS subdomain: the claim's name, the time (lower case) and a random suffix, so two
    // snapshots in one second do not collide.
    let mut suffix = [0u8; 2];
    getrandom::fill(&mut suffix).context("reading the OS random source")?;
    let name = format!(
        "{}-{}-{}",
        ctx.profile.names().pvc,
        stamp().to_ascii_lowercase(),
        hex::encode(suffix)
    );
    let origin = if args.scheduled {
        snapshot::Origin::Scheduled
    } else {
        snapshot::Origin::Manual
    };
    let req = snapshot::Request {
        class: &class,
        create_class: args.create_snapshot_class,
        name,
        timeout: args.timeout,
        origin,
    };
    let spinner = ctx.ui.spinner("checking the data volume");
    let taken = snapshot::take(&kube, &ctx.profile, &req, &ctx.ui, &spinner).await;
    spinner.finish_and_clear();
    let taken = taken?;
    // Only once the new one is ready: older ones of the same origin beyond --keep.
    let pruned = match args.keep {
        Some(keep) => snapshot::prune(&kube, &ctx.profile, origin, keep as usize).await?,
        None => vec![],
    };
    let report = SnapshotReport {
        taken,
        origin: origin.as_str(),
        pruned,
    };
    ctx.ui.emit(&report, |r| {
        let t = &r.taken;
        let mut out = format!(
            "VolumeSnapshot {}/{} of {} is ready to use ({}class {}{}, {}) in {:.1}s\n",
            t.namespace,
            t.snapshot,
            t.persistent_volume_claim,
            t.restore_size
                .as_deref()
                .map(|s| format!("{s}, "))
                .unwrap_or_default(),
            t.snapshot_class,
            if t.snapshot_class_created {
                ", created now"
            } else {
                ""
            },
            r.origin,
            t.seconds
        );
        for p in &r.pruned {
            out.push_str(&format!(
                "deleted the older {} snapshot {p} (--keep)\n",
                r.origin
            ));
        }
        out
    })?;
    Ok(Outcome::ok())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotReport {
    #[serde(flatten)]
    taken: snapshot::Taken,
    origin: &'static str,
    /// Older snapshots of the same origin deleted by --keep.
    pruned: Vec<String>,
}

/// `backup --list`: the release's snapshots, newest first.
async fn list_snapshots(ctx: &Ctx) -> Result<Outcome> {
    ctx.profile.cluster("backup --list")?;
    let kube = ctx.kube().await?;
    let rows = snapshot::rows(&kube, &ctx.profile).await?;
    ctx.ui.emit(&rows, |rows| {
        if rows.is_empty() {
            return format!(
                "no snapshots of release {} in namespace {}\n",
                ctx.profile.release, kube.namespace
            );
        }
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.created.clone(),
                    r.claim.clone(),
                    r.restore_size.clone().unwrap_or_else(|| "-".into()),
                    if r.ready {
                        "yes".into()
                    } else {
                        r.error.clone().map_or("no".into(), |e| format!("no: {e}"))
                    },
                    r.origin.clone(),
                ]
            })
            .collect();
        crate::ui::table(
            &["NAME", "CREATED", "CLAIM", "SIZE", "READY", "ORIGIN"],
            &table_rows,
        )
    })?;
    Ok(Outcome::ok())
}
