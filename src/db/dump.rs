//! Taking a backup: pg_dump runs where the tools are (the pod, or locally for a URL), its stdout
//! streams into a temporary file while being hashed, and only a successful exit — the exit status
//! reported by the tool, not the byte count — puts the file and its manifest in place.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio_postgres::Client;

use super::backup_file::{
    self, Format, Hashing, KIND, MANIFEST_VERSION, MANIFEST_VERSION_ENCRYPTED, Manifest, Partial,
};
use super::connect::Db;
use super::encryption::{Encryption, Recipients};
use super::process::{Exit, cause, tail};
use super::tools::{ToolVersion, Tools};
use crate::error::{ExitCode, user_error};

/// What to dump and how.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    pub format: Option<Format>,
    pub schema_only: bool,
    /// Only these tables' rows (public schema); empty: the whole database.
    pub tables: Vec<String>,
    /// `METHOD[:LEVEL]` or `LEVEL` as pg_dump's `--compress` takes it.
    pub compress: Option<String>,
    /// Encrypt the file to these age recipients (the manifest says so).
    pub encrypt: Option<Recipients>,
}

impl DumpOptions {
    pub fn format(&self) -> Format {
        self.format.unwrap_or(Format::Custom)
    }
}

/// The server a backup is taken from, as SQL sees it.
#[derive(Debug, Clone)]
pub struct Server {
    pub version: String,
    pub major: u32,
}

pub async fn server(admin: &Client) -> Result<Server> {
    let row = admin
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .await
        .context("reading the server's version")?;
    let num: i32 = row.get(1);
    Ok(Server {
        version: row.get(0),
        major: (num / 10000) as u32,
    })
}

/// Refuse table names that are not tables of the database (before anything is written).
pub async fn check_tables(admin: &Client, database: &str, tables: &[String]) -> Result<()> {
    for t in tables {
        let found = admin
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = 'public' AND tablename = $1",
                &[t],
            )
            .await
            .context("looking up the tables to back up")?;
        if found.is_none() {
            return Err(user_error(format!(
                "table `{t}` does not exist in database {database}"
            ))
            .hint("name tables of the public schema, e.g. --table auth_services --table auth_permissions")
            .exit(ExitCode::Usage)
            .into());
        }
    }
    Ok(())
}

/// A local tool must not be older than the server (pg_dump refuses, and pg_restore cannot read
/// newer archives): say so before anything runs.
/// `than` names what `major` belongs to ("the server", "the backup's pg_dump").
pub fn refuse_older_tool(tools: &Tools, tool: &ToolVersion, major: u32, than: &str) -> Result<()> {
    if matches!(tools, Tools::Local { .. }) && tool.major < major {
        return Err(user_error(format!(
            "{} `{}` is older than {than} ({major})",
            tools.whose(),
            tool.text
        ))
        .hint(format!(
            "install postgresql-client-{major} and point --pg-bin at its bin directory (Debian: /usr/lib/postgresql/{major}/bin)"
        ))
        .into());
    }
    Ok(())
}

/// pg_dump's arguments, and the compression as recorded in the manifest.
pub fn pg_dump_args(
    opts: &DumpOptions,
    database: &str,
    user: &str,
    tool_major: u32,
) -> Result<(Vec<String>, String)> {
    let format = opts.format();
    let mut args = vec![
        "pg_dump".to_string(),
        "--no-password".into(),
        format!("--username={user}"),
        format!("--dbname={database}"),
        format!("--format={}", format.as_str()),
    ];
    let (method, level) = parse_compress(opts.compress.as_deref(), format)?;
    let shown = match (&method, level) {
        (m, Some(l)) => format!("{m}:{l}"),
        (m, None) => m.clone(),
    };
    if tool_major >= 16 {
        match level {
            Some(l) => args.push(format!("--compress={method}:{l}")),
            None => args.push(format!("--compress={method}")),
        }
    } else {
        if method == "lz4" || method == "zstd" {
            return Err(user_error(format!(
                "--compress {method}: pg_dump {tool_major} compresses with gzip only"
            ))
            .hint("use --compress gzip:LEVEL (1-9) or none; lz4 and zstd need pg_dump 16 or later")
            .exit(ExitCode::Usage)
            .into());
        }
        let level = if method == "none" {
            0
        } else {
            level.unwrap_or(DEFAULT_GZIP_LEVEL)
        };
        args.push(format!("--compress={level}"));
    }
    if format == Format::Plain && opts.tables.is_empty() {
        // Plain SQL restores over an existing database only if it drops what it recreates; owners
        // and privileges stay out, as pg_restore leaves them out of custom ones (see restore.rs).
        args.extend([
            "--clean".into(),
            "--if-exists".into(),
            "--no-owner".into(),
            "--no-privileges".into(),
        ]);
    }
    if opts.schema_only {
        args.push("--schema-only".into());
    }
    if !opts.tables.is_empty() {
        args.push("--data-only".into());
        for t in &opts.tables {
            args.push(format!("--table=public.{t}"));
        }
    }
    Ok((args, shown))
}

/// The gzip level of a backup when `--compress` is not given.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;

/// `--compress` as `(method, level)`; plain backups are gzip files, always.
fn parse_compress(text: Option<&str>, format: Format) -> Result<(String, Option<u32>)> {
    let bad = |why: String| -> anyhow::Error {
        user_error(format!("--compress {}: {why}", text.unwrap_or_default()))
            .hint("use METHOD[:LEVEL] with METHOD gzip, lz4, zstd or none (e.g. gzip:6, zstd:3), or a gzip LEVEL 0-9")
            .exit(ExitCode::Usage)
            .into()
    };
    let (method, level) = match text {
        // gzip at level 1: the fastest that keeps dumps small on what this database holds
        // (docs/benchmarks.md: against pg_dump's default level, about 0.6 of the time for an
        // archive a few percent larger; lz4 and zstd need a pg_dump built with them).
        None => ("gzip".to_string(), Some(DEFAULT_GZIP_LEVEL)),
        Some(t) => {
            let (m, l) = match t.split_once(':') {
                Some((m, l)) => (m.to_string(), Some(l)),
                None if t.chars().all(|c| c.is_ascii_digit()) => ("gzip".into(), Some(t)),
                None => (t.to_string(), None),
            };
            let level = match l {
                Some(l) => Some(
                    l.parse::<u32>()
                        .map_err(|_| bad(format!("level `{l}` is not a number")))?,
                ),
                None => None,
            };
            match (m.as_str(), level) {
                ("gzip", Some(0)) => ("none".to_string(), None),
                ("gzip", Some(l)) if l > 9 => return Err(bad("gzip levels are 1-9".into())),
                ("lz4", Some(l)) if l > 12 => return Err(bad("lz4 levels are 1-12".into())),
                ("zstd", Some(l)) if l > 22 => return Err(bad("zstd levels are 1-22".into())),
                ("none", Some(_)) => return Err(bad("`none` takes no level".into())),
                ("gzip" | "lz4" | "zstd" | "none", l) => (m, l),
                _ => return Err(bad(format!("unknown method `{m}`"))),
            }
        }
    };
    if format == Format::Plain && method != "gzip" {
        return Err(bad(
            "plain backups are gzip-compressed SQL; use gzip:LEVEL, or --format custom".into(),
        ));
    }
    Ok((method, level))
}

/// What a finished backup reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taken {
    pub file: String,
    pub manifest: String,
    pub seconds: f64,
    #[serde(flatten)]
    pub details: Manifest,
}

/// Everything a backup needs to know about where it runs.
pub struct Source<'a> {
    pub db: &'a Db,
    pub admin: &'a Client,
    pub tools: &'a Tools,
    pub environment: &'a str,
}

/// Take a backup into `dest` (which must not exist), streaming with a progress bar.
pub async fn take(
    src: &Source<'_>,
    opts: &DumpOptions,
    dest: &Path,
    bar: &ProgressBar,
) -> Result<Taken> {
    backup_file::refuse_existing(dest)?;
    let server = server(src.admin).await?;
    check_tables(src.admin, &src.db.database, &opts.tables).await?;
    let tool = src.tools.version("pg_dump").await?;
    refuse_older_tool(src.tools, &tool, server.major, "the server")?;
    let (argv, compress) = pg_dump_args(opts, &src.db.database, &src.db.admin.user, tool.major)?;
    let start = Instant::now();
    let mut partial = Partial::create(dest)?;
    let written = stream(
        src.tools,
        &argv,
        &mut partial,
        opts.format(),
        opts.encrypt.as_ref(),
        bar,
    )
    .await?;
    partial.commit()?;
    let encryption = written.plaintext.map(|(size, sha)| Encryption {
        scheme: super::encryption::SCHEME.into(),
        recipients: opts
            .encrypt
            .as_ref()
            .map(|r| r.texts.clone())
            .unwrap_or_default(),
        plaintext_size: size,
        plaintext_sha256: sha,
    });
    let details = Manifest {
        kind: KIND.into(),
        manifest_version: if encryption.is_some() {
            MANIFEST_VERSION_ENCRYPTED
        } else {
            MANIFEST_VERSION
        },
        database: src.db.database.clone(),
        environment: src.environment.to_string(),
        source: src.db.describe_tools(),
        server_version: server.version,
        tool_version: tool.text,
        phonebill_db_version: env!("CARGO_PKG_VERSION").into(),
        format: opts.format(),
        schema_only: opts.schema_only,
        tables: opts.tables.clone(),
        compress,
        created_at: now_rfc3339(),
        size: written.size,
        sha256: written.sha256,
        encryption,
    };
    if let Err(e) = backup_file::write_manifest(dest, &details) {
        // Without its manifest the dump is not a backup: take it away again.
        let _ = std::fs::remove_file(dest);
        return Err(e);
    }
    Ok(Taken {
        file: dest.display().to_string(),
        manifest: backup_file::manifest_path(dest).display().to_string(),
        seconds: start.elapsed().as_secs_f64(),
        details,
    })
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// What a dump wrote: the file's size and SHA-256, and those of the dump inside when encrypted.
struct Written {
    size: u64,
    sha256: String,
    plaintext: Option<(u64, String)>,
}

/// Where the dump's bytes go: the file, hashed; or the encryptor (the dump hashed on its way in)
/// and the file, hashed as ciphertext.
enum Sink<W: Write> {
    Clear(Hashing<W>),
    Encrypted {
        plain: Hashing<std::io::Sink>,
        out: age::stream::StreamWriter<Hashing<W>>,
    },
}

impl<W: Write> Sink<W> {
    fn new(file: W, encrypt: Option<&Recipients>) -> Result<Sink<W>> {
        Ok(match encrypt {
            None => Sink::Clear(Hashing::new(file)),
            Some(r) => Sink::Encrypted {
                plain: Hashing::new(std::io::sink()),
                out: r.encrypt(Hashing::new(file))?,
            },
        })
    }

    /// Bytes of the dump taken so far.
    fn bytes(&self) -> u64 {
        match self {
            Sink::Clear(h) => h.bytes,
            Sink::Encrypted { plain, .. } => plain.bytes,
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Clear(h) => h.write_all(data),
            Sink::Encrypted { plain, out } => {
                plain.write_all(data)?;
                out.write_all(data)
            }
        }
    }

    /// The last bytes out (age's final chunk), flushed: what was written, and the writer.
    fn finish(self) -> Result<(Written, W)> {
        let (file, plaintext) = match self {
            Sink::Clear(h) => (h, None),
            Sink::Encrypted { plain, out } => {
                let size = plain.bytes;
                let (_, sha) = plain.finish();
                let file = out
                    .finish()
                    .context("writing the backup file (is the disk full?)")?;
                (file, Some((size, sha)))
            }
        };
        let size = file.bytes;
        let (mut w, sha256) = file.finish();
        w.flush()
            .context("writing the backup file (is the disk full?)")?;
        Ok((
            Written {
                size,
                sha256,
                plaintext,
            },
            w,
        ))
    }
}

/// Run pg_dump and copy its stdout into the partial file (through the encryptor, with
/// `encrypt`); the size and SHA-256 of what was written.
async fn stream(
    tools: &Tools,
    argv: &[String],
    partial: &mut Partial,
    format: Format,
    encrypt: Option<&Recipients>,
    bar: &ProgressBar,
) -> Result<Written> {
    let mut p = tools.spawn(argv, false).await?;
    let what = p.what.clone();
    let stderr = tokio::spawn(tail(p.stderr));
    let mut out = Sink::new(
        BufWriter::with_capacity(1024 * 1024, &mut partial.file),
        encrypt,
    )?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut first = true;
    loop {
        let n = p
            .stdout
            .read(&mut buf)
            .await
            .with_context(|| format!("reading the output of {what}"))?;
        if n == 0 {
            break;
        }
        if first {
            first = false;
            let magic = format.magic();
            if !buf[..n].starts_with(&magic[..magic.len().min(n)]) {
                return Err(
                    user_error(format!("{what} did not write a {} dump", format.as_str()))
                        .hint("the pod's pg_dump may be too old; nothing was kept")
                        .into(),
                );
            }
        }
        out.write_all(&buf[..n])
            .context("writing the backup file (is the disk full?)")?;
        bar.set_position(out.bytes());
    }
    let exit = p.exit.await?;
    let stderr = stderr.await.unwrap_or_default();
    if let Exit::Failed { message } = exit {
        return Err(user_error(format!(
            "{what} failed: {}",
            cause(&stderr).unwrap_or(message)
        ))
        .hint("no backup file was kept; fix the cause and run the backup again")
        .into());
    }
    if out.bytes() == 0 {
        return Err(user_error(format!("{what} wrote nothing"))
            .hint("no backup file was kept; run with -v and check the pod's logs")
            .into());
    }
    Ok(out.finish()?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(format: Format, compress: Option<&str>) -> DumpOptions {
        DumpOptions {
            format: Some(format),
            compress: compress.map(str::to_string),
            ..Default::default()
        }
    }

    fn args(o: &DumpOptions, major: u32) -> Result<(Vec<String>, String)> {
        pg_dump_args(o, "phonebill_auth", "postgres", major)
    }

    #[test]
    fn compression_follows_what_the_pods_pg_dump_understands() {
        let (a, shown) = args(&opts(Format::Custom, Some("zstd:3")), 16).unwrap();
        assert!(a.contains(&"--compress=zstd:3".to_string()));
        assert_eq!(shown, "zstd:3");
        let e = args(&opts(Format::Custom, Some("zstd:3")), 15).unwrap_err();
        assert!(e.to_string().contains("gzip only"), "{e}");
        let (a, _) = args(&opts(Format::Custom, Some("gzip:1")), 15).unwrap();
        assert!(a.contains(&"--compress=1".to_string()));
        let (a, shown) = args(&opts(Format::Custom, Some("none")), 15).unwrap();
        assert!(a.contains(&"--compress=0".to_string()));
        assert_eq!(shown, "none");
        let (a, _) = args(&opts(Format::Plain, None), 15).unwrap();
        assert!(a.contains(&"--compress=1".to_string()) && a.contains(&"--clean".to_string()));
        let (a, shown) = args(&opts(Format::Custom, None), 16).unwrap();
        assert!(a.contains(&"--compress=gzip:1".to_string()), "{a:?}");
        assert_eq!(shown, "gzip:1");
    }

    #[test]
    fn bad_compression_is_a_usage_error() {
        for bad in ["brotli", "gzip:10", "gzip:x", "none:3", "zstd:99"] {
            let e = args(&opts(Format::Custom, Some(bad)), 16).unwrap_err();
            let u = e.downcast_ref::<crate::error::UserError>().unwrap();
            assert_eq!(u.exit, ExitCode::Usage, "{bad}");
        }
        let e = args(&opts(Format::Plain, Some("zstd")), 16).unwrap_err();
        assert!(e.to_string().contains("plain backups are gzip"), "{e}");
        assert!(args(&opts(Format::Plain, Some("none")), 16).is_err());
    }

    #[test]
    fn table_backups_carry_the_rows_of_those_tables() {
        let o = DumpOptions {
            tables: vec!["auth_services".into(), "auth_permissions".into()],
            ..Default::default()
        };
        let (a, _) = args(&o, 16).unwrap();
        assert!(a.contains(&"--data-only".to_string()));
        assert!(a.contains(&"--table=public.auth_services".to_string()));
        assert!(a.contains(&"--table=public.auth_permissions".to_string()));
        assert!(a.contains(&"--format=custom".to_string()));
    }
}
