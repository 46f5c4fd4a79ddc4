//! A backup on disk: the dump itself (a pg_dump custom archive, or gzip-compressed SQL — files the
//! plain PostgreSQL tools read too) and its manifest `FILE.meta.json` beside it (database,
//! versions, format, options, time, size, SHA-256).
//!
//! Writing: both go to temporary names in the target directory, are fsynced, and are renamed into
//! place only when the dump succeeded — the manifest last, so a dump without its manifest is never
//! taken for a valid backup. Reading: [`inspect`] checks a file against its manifest before a
//! restore touches anything.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::encryption::Identities;
use super::plain_sql::{GzGuard, Refused, Summary};
use crate::error::{ExitCode, UserError, user_error};

/// What `kind` says in every manifest this tool writes.
pub const KIND: &str = "phonebill-db backup";
/// The manifest layout this tool writes for a backup in the clear (and reads).
pub const MANIFEST_VERSION: u32 = 1;
/// The layout of an encrypted backup's manifest: version 1 and `encryption`. A phonebill-db that
/// reads only version 1 refuses it as a newer tool's instead of misreading the file.
pub const MANIFEST_VERSION_ENCRYPTED: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    // pg_dump's custom archive (pg_restore reads it)
    Custom,
    // SQL text, gzip-compressed (psql reads it after gunzip)
    Plain,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Custom => "custom",
            Format::Plain => "plain",
        }
    }

    /// The first bytes every file of this format starts with.
    pub fn magic(self) -> &'static [u8] {
        match self {
            Format::Custom => b"PGDMP",
            Format::Plain => &[0x1f, 0x8b],
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Custom => "dump",
            Format::Plain => "sql.gz",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub kind: String,
    pub manifest_version: u32,
    pub database: String,
    pub environment: String,
    /// Where the dump came from ("pod NS/NAME" or the URL without its password).
    pub source: String,
    pub server_version: String,
    pub tool_version: String,
    pub phonebill_db_version: String,
    pub format: Format,
    pub schema_only: bool,
    /// Only these tables' rows (empty: the whole database).
    pub tables: Vec<String>,
    pub compress: String,
    pub created_at: String,
    /// The file's size and SHA-256, as it is on disk (the ciphertext, when encrypted).
    pub size: u64,
    pub sha256: String,
    /// Encrypted (manifest version 2): for whom, and the size and SHA-256 of the dump inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<super::encryption::Encryption>,
}

impl Manifest {
    /// The size and SHA-256 of the dump itself (inside the encryption, if any).
    pub fn dump_size_and_sha256(&self) -> (u64, &str) {
        match &self.encryption {
            Some(e) => (e.plaintext_size, &e.plaintext_sha256),
            None => (self.size, &self.sha256),
        }
    }
}

/// The manifest's path: `FILE.meta.json`.
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".meta.json");
    PathBuf::from(name)
}

/// A file being written under a temporary name next to its destination; removed when dropped
/// unless [`Partial::commit`] renamed it into place.
pub struct Partial {
    pub file: File,
    temp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Partial {
    pub fn create(dest: &Path) -> Result<Partial> {
        let dir = parent(dest);
        let name = dest
            .file_name()
            .with_context(|| format!("{} is not a file name", dest.display()))?;
        let temp = dir.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        // 0600 whatever the umask: a dump holds every row, password hashes included.
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| {
                anyhow::Error::new(
                    user_error(format!("cannot write in {}: {e}", dir.display()))
                        .hint("choose a directory you can write to with --to"),
                )
            })?;
        Ok(Partial {
            file,
            temp,
            dest: dest.to_path_buf(),
            done: false,
        })
    }

    /// Flush to disk and put it in place under its name, never over a file that appeared there
    /// meanwhile: a hard link fails when the name exists (an atomic no-clobber rename), then the
    /// temporary name goes.
    pub fn commit(mut self) -> Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("flushing {} to disk", self.temp.display()))?;
        match fs::hard_link(&self.temp, &self.dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(user_error(format!(
                    "{} appeared while the backup ran; it was left as it is and the new backup was not kept",
                    self.dest.display()
                ))
                .hint("choose another name with --to and run the backup again")
                .into());
            }
            // A file system without hard links (FAT, some network shares): check, then rename.
            Err(_) if !self.dest.exists() => {
                fs::rename(&self.temp, &self.dest).with_context(|| {
                    format!(
                        "putting {} in place as {}",
                        self.temp.display(),
                        self.dest.display()
                    )
                })?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "putting {} in place as {}",
                        self.temp.display(),
                        self.dest.display()
                    )
                });
            }
        }
        self.done = true;
        let _ = fs::remove_file(&self.temp);
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Put a finished dump (already committed to `dest`) and its manifest in place, manifest last,
/// then flush the directory so both names survive a crash.
pub fn write_manifest(dest: &Path, manifest: &Manifest) -> Result<()> {
    let mut partial = Partial::create(&manifest_path(dest))?;
    let text = serde_json::to_vec_pretty(manifest)?;
    partial
        .file
        .write_all(&text)
        .context("writing the backup's manifest")?;
    partial.commit()?;
    if let Ok(dir) = File::open(parent(dest)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Where a backup is to go, checked before anything connects (a dump of an hour must not fail
/// at its end): a file name, not a directory; its directory exists and takes a new file; nothing
/// there yet. Exit 2.
/// Before the cluster is asked: the file `flag` names is there to be read; what it is and holds
/// is [`inspect`]'s to judge (exit 4).
pub fn check_source(flag: &str, file: &Path) -> Result<()> {
    let refuse = |what: String| -> anyhow::Error {
        user_error(format!(
            "{flag} {}: {what}; nothing was changed",
            file.display()
        ))
        .hint("give the path of a backup file written by `phonebill-db backup --to FILE`")
        .exit(ExitCode::Usage)
        .into()
    };
    match fs::metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(refuse("no such file".into())),
        Err(e) => Err(refuse(format!("cannot be read: {e}"))),
        Ok(_) => Ok(()),
    }
}

pub fn check_destination(flag: &str, dest: &Path) -> Result<()> {
    let usage = |what: String, hint: String| -> anyhow::Error {
        user_error(format!(
            "{flag} {}: {what}; nothing was changed",
            dest.display()
        ))
        .hint(hint)
        .exit(ExitCode::Usage)
        .into()
    };
    if dest.as_os_str().to_string_lossy().ends_with('/') || dest.is_dir() {
        return Err(usage(
            "is a directory".into(),
            format!("give a file name in it, e.g. {flag} backups/auth.dump"),
        ));
    }
    let dir = parent(dest);
    if !dir.is_dir() {
        return Err(usage(
            format!("directory {} does not exist", dir.display()),
            format!("create the directory first, or choose another {flag}"),
        ));
    }
    for p in [dest.to_path_buf(), manifest_path(dest)] {
        if p.exists() {
            return Err(usage(
                format!("{} already exists", p.display()),
                format!("choose another name with {flag}, or move the old backup away first"),
            ));
        }
    }
    // A file it may make there: made and removed at once (the dump's own is made likewise).
    let probe = dir.join(format!(".phonebill-db-probe-{}", std::process::id()));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(usage(
            format!("cannot write in {}: {e}", dir.display()),
            format!("choose a directory you can write to with {flag}"),
        )),
    }
}

/// The newest whole-database backup of `database` in directory `dir` (by its manifest's time),
/// what a restore drill of a directory of backups takes.
pub fn newest_in(dir: &Path, database: &str) -> Result<Option<PathBuf>> {
    let mut best: Option<((String, Option<std::time::SystemTime>), PathBuf)> = None;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(file) = path
            .to_str()
            .and_then(|p| p.strip_suffix(".meta.json"))
            .map(PathBuf::from)
        else {
            continue;
        };
        let Ok(text) = crate::files::read_text(&path) else {
            continue;
        };
        let Ok(m) = parse_manifest(&text) else {
            continue;
        };
        if m.database != database || !m.tables.is_empty() || m.schema_only || !file.is_file() {
            continue;
        }
        // Manifests say the second; within one, the file written last.
        let written = fs::metadata(&file).and_then(|m| m.modified()).ok();
        let key = (m.created_at, written);
        if best.as_ref().is_none_or(|(at, _)| key > *at) {
            best = Some((key, file));
        }
    }
    Ok(best.map(|(_, f)| f))
}

/// Refuse to write over something that exists (a backup is never replaced by accident).
pub fn refuse_existing(dest: &Path) -> Result<()> {
    for p in [dest.to_path_buf(), manifest_path(dest)] {
        if p.exists() {
            return Err(user_error(format!("{} already exists", p.display()))
                .hint("choose another name with --to, or move the old backup away first")
                .into());
        }
    }
    Ok(())
}

/// Why a file is not a backup a restore may use.
fn refused(file: &Path, why: impl std::fmt::Display, hint: &str) -> UserError {
    user_error(format!("{}: {why}; nothing was restored", file.display()))
        .hint(hint)
        .exit(ExitCode::ChecksFailed)
}

/// A backup that passed [`inspect`].
#[derive(Debug, Clone)]
pub struct Checked {
    pub manifest: Manifest,
    /// A plain backup's SQL, as psql will read it.
    pub sql: Option<Summary>,
}

/// Check a backup against its manifest: present, readable, of a known format, complete (size)
/// and intact (SHA-256), and a plain one's SQL as pg_dump writes it. Reads the whole file once
/// (an encrypted one twice: as it is, then decrypted with `identities`); memory stays flat.
pub fn inspect(file: &Path, identities: Option<&Identities>) -> Result<Checked> {
    let meta = fs::metadata(file).map_err(|e| {
        anyhow::Error::new(
            user_error(format!("cannot read {}: {e}", file.display()))
                .hint("give the path of a file written by `phonebill-db backup --to FILE`"),
        )
    })?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, pipe or socket)"
        };
        return Err(refused(
            file,
            format!("it is {what}"),
            "give the path of a backup file written by `phonebill-db backup --to FILE`",
        )
        .into());
    }
    let mpath = manifest_path(file);
    let text = match crate::files::read_text(&mpath) {
        Ok(t) => t,
        Err(e) if e.not_found() => {
            return Err(refused(
                file,
                format!("its manifest {} is missing", mpath.display()),
                "restore reads only backups written by `phonebill-db backup`, whose manifest records size and checksum; keep the .meta.json beside the file",
            )
            .into());
        }
        Err(e) => {
            return Err(refused(
                file,
                format!("its manifest {} cannot be read: {e}", mpath.display()),
                "restore reads only backups written by `phonebill-db backup`, whose manifest is a small JSON file beside it",
            )
            .into());
        }
    };
    let manifest = parse_manifest(&text).map_err(|why| {
        refused(
            file,
            format!("unknown format: {why}"),
            "this is not a manifest of a phonebill-db backup this version can read",
        )
    })?;
    let size = meta.len();
    if size == 0 {
        return Err(refused(
            file,
            format!(
                "the file is empty (the manifest says {} bytes)",
                manifest.size
            ),
            "the backup was never written completely; use another backup",
        )
        .into());
    }
    let mut reader = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut head = [0u8; super::encryption::MAGIC.len()];
    let n = read_up_to(&mut reader, &mut head)?;
    let (magic, what) = match &manifest.encryption {
        Some(_) => (
            super::encryption::MAGIC,
            "an age-encrypted file".to_string(),
        ),
        None => (
            manifest.format.magic(),
            format!("a {} dump", manifest.format.as_str()),
        ),
    };
    if !head[..n].starts_with(magic) {
        return Err(refused(
            file,
            format!(
                "unknown format: the manifest says {what}, but the file does not start like one"
            ),
            "the file was replaced or damaged; use another backup",
        )
        .into());
    }
    if size < manifest.size {
        return Err(refused(
            file,
            format!("truncated: {size} of {} bytes", manifest.size),
            "the copy is incomplete; copy the backup again from where it was made",
        )
        .into());
    }
    if size > manifest.size {
        return Err(refused(
            file,
            format!(
                "longer than its manifest says ({size} bytes, recorded {})",
                manifest.size
            ),
            "the file was appended to or replaced; use another backup",
        )
        .into());
    }
    // A plain backup's SQL is read as psql would read it, in the same pass (plain_sql.rs); an
    // encrypted one's in the pass that decrypts it.
    let encrypted = manifest.encryption.is_some();
    let mut sql = (manifest.format == Format::Plain && !encrypted).then(GzGuard::new);
    let mut refusal = None;
    let mut hasher = Sha256::new();
    let mut take = |bytes: &[u8], sql: &mut Option<GzGuard>| {
        hasher.update(bytes);
        if refusal.is_none()
            && let Some(g) = sql.as_mut()
            && let Err(e) = g.push(bytes, None)
        {
            refusal = Some(e);
        }
    };
    take(&head[..n], &mut sql);
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("reading {}", file.display()))?;
        if n == 0 {
            break;
        }
        take(&buf[..n], &mut sql);
    }
    let sum = hex::encode(hasher.finalize());
    if sum != manifest.sha256 {
        return Err(refused(
            file,
            "corrupted: its SHA-256 checksum does not match the manifest",
            "the file changed after the backup was taken (disk or copy error); use another backup",
        )
        .into());
    }
    if let Some(e) = &manifest.encryption {
        return check_decrypted(file, manifest.clone(), e, identities);
    }
    let sql = match (refusal, sql) {
        (Some(e), _) => return Err(refused_sql(file, &e).into()),
        (None, Some(g)) => Some(g.finish(None).map_err(|e| refused_sql(file, &e))?),
        (None, None) => None,
    };
    Ok(Checked { manifest, sql })
}

/// The second pass over an encrypted backup whose file matched its manifest: decrypted with
/// `identities`, the dump inside must start as its format does, have the size and SHA-256 the
/// manifest recorded, and (plain) be SQL as pg_dump writes it.
fn check_decrypted(
    file: &Path,
    manifest: Manifest,
    e: &super::encryption::Encryption,
    identities: Option<&Identities>,
) -> Result<Checked> {
    let ids = identities.ok_or_else(|| super::encryption::no_identity(file, &e.recipients))?;
    let mut sql = (manifest.format == Format::Plain).then(GzGuard::new);
    let mut refusal = None;
    let mut head: Vec<u8> = Vec::new();
    let magic = manifest.format.magic();
    let (size, sha) = super::encryption::read_through(file, ids, |bytes| {
        if head.len() < magic.len() {
            head.extend(bytes.iter().take(magic.len() - head.len()));
        }
        if refusal.is_none()
            && let Some(g) = sql.as_mut()
            && let Err(e) = g.push(bytes, None)
        {
            refusal = Some(e);
        }
    })
    .map_err(|why| why.refusal(file, ids, &e.recipients))?;
    if !head.starts_with(magic) {
        return Err(refused(
            file,
            format!(
                "unknown format: the manifest says a {} dump is inside, but what decrypts does not start like one",
                manifest.format.as_str()
            ),
            "the file was replaced; use another backup",
        )
        .into());
    }
    if size != e.plaintext_size || sha != e.plaintext_sha256 {
        return Err(refused(
            file,
            format!(
                "corrupted: the dump inside ({size} bytes) does not match its manifest ({} bytes, SHA-256 recorded)",
                e.plaintext_size
            ),
            "the file was encrypted anew or replaced after the backup was taken; use another backup",
        )
        .into());
    }
    let sql = match (refusal, sql) {
        (Some(e), _) => return Err(refused_sql(file, &e).into()),
        (None, Some(g)) => Some(g.finish(None).map_err(|e| refused_sql(file, &e))?),
        (None, None) => None,
    };
    Ok(Checked { manifest, sql })
}

/// A plain backup whose SQL is not what pg_dump writes.
pub fn refused_sql(file: &Path, e: &Refused) -> UserError {
    refused(
        file,
        format!("not restored as SQL: {e}"),
        "a plain backup is restored only as pg_dump writes one (a checksum anyone can recompute proves no origin): the file was edited or made by hand; use another backup, or a custom-format one",
    )
}

fn read_up_to(r: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

fn parse_manifest(text: &str) -> std::result::Result<Manifest, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the manifest is not JSON ({e})"))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
        return Err("the manifest is not a phonebill-db backup's".into());
    }
    let version = value.get("manifestVersion").and_then(|v| v.as_u64());
    if ![MANIFEST_VERSION, MANIFEST_VERSION_ENCRYPTED].contains(&(version.unwrap_or(0) as u32)) {
        return Err(format!(
            "manifest version {} (this tool reads {MANIFEST_VERSION} and {MANIFEST_VERSION_ENCRYPTED}); use the phonebill-db that wrote it",
            version.map_or("none".to_string(), |v| v.to_string())
        ));
    }
    let manifest: Manifest =
        serde_json::from_value(value).map_err(|e| format!("the manifest is incomplete ({e})"))?;
    let encrypted = version == Some(MANIFEST_VERSION_ENCRYPTED.into());
    match &manifest.encryption {
        Some(e) if !encrypted || e.scheme != super::encryption::SCHEME => Err(format!(
            "encryption `{}` in a manifest of version {} (this tool reads age in version {MANIFEST_VERSION_ENCRYPTED})",
            e.scheme,
            version.unwrap_or(0)
        )),
        None if encrypted => Err("a version 2 manifest without its encryption".into()),
        _ => Ok(manifest),
    }
}

/// Hashes and counts what passes through on its way to a writer.
pub struct Hashing<W> {
    pub inner: W,
    hasher: Sha256,
    pub bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (W, String) {
        (self.inner, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `DATABASE-ENV[-LABEL]-20261123T101500Z.dump` in the current directory (`….dump.age` when
/// `encrypted`).
pub fn default_name(
    database: &str,
    env: &str,
    format: Format,
    label: &str,
    encrypted: bool,
) -> PathBuf {
    let stamp = stamp();
    let label = if label.is_empty() {
        String::new()
    } else {
        format!("-{label}")
    };
    let age = if encrypted { ".age" } else { "" };
    Path::new(".").join(format!(
        "{database}-{env}{label}-{stamp}.{}{age}",
        format.extension()
    ))
}

/// The time now as `20261123T101500Z`.
pub fn stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(format: Format, data: &[u8]) -> Manifest {
        Manifest {
            kind: KIND.into(),
            manifest_version: MANIFEST_VERSION,
            database: "phonebill_auth".into(),
            environment: "dev".into(),
            source: "test".into(),
            server_version: "16.4".into(),
            tool_version: "pg_dump (PostgreSQL) 16.4".into(),
            phonebill_db_version: "0".into(),
            format,
            schema_only: false,
            tables: vec![],
            compress: "gzip:6".into(),
            created_at: "2026-11-23T00:00:00Z".into(),
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(data)),
            encryption: None,
        }
    }

    fn written(dir: &Path, data: &[u8], format: Format) -> PathBuf {
        let path = dir.join("b.dump");
        let mut p = Partial::create(&path).unwrap();
        p.file.write_all(data).unwrap();
        p.commit().unwrap();
        write_manifest(&path, &manifest(format, data)).unwrap();
        path
    }

    fn refusal(path: &Path) -> String {
        let e = inspect(path, None).unwrap_err();
        let u = e.downcast_ref::<UserError>().expect("a user error");
        assert_eq!(u.exit, ExitCode::ChecksFailed, "{}", u.message);
        u.message.clone()
    }

    #[test]
    fn an_intact_file_passes_and_each_damage_has_its_own_message() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = b"PGDMP"
            .iter()
            .copied()
            .chain((0..100_000u32).map(|i| (i % 251) as u8))
            .collect();
        let path = written(dir.path(), &data, Format::Custom);
        assert_eq!(
            inspect(&path, None).unwrap().manifest.size,
            data.len() as u64
        );

        fs::write(&path, &data[..50_000]).unwrap();
        assert!(refusal(&path).contains("truncated: 50000 of 100005 bytes"));

        let mut flipped = data.clone();
        flipped[70_000] ^= 0x01;
        fs::write(&path, &flipped).unwrap();
        assert!(refusal(&path).contains("corrupted"));

        fs::write(&path, b"").unwrap();
        assert!(refusal(&path).contains("empty"));

        fs::write(&path, [&b"SELECT"[..], &data[6..]].concat()).unwrap();
        assert!(refusal(&path).contains("unknown format"));

        fs::write(&path, [&data[..], b"x"].concat()).unwrap();
        assert!(refusal(&path).contains("longer than its manifest"));

        fs::write(&path, &data).unwrap();
        fs::remove_file(manifest_path(&path)).unwrap();
        assert!(refusal(&path).contains("manifest") && refusal(&path).contains("missing"));

        fs::write(manifest_path(&path), r#"{"kind": "something else"}"#).unwrap();
        assert!(refusal(&path).contains("unknown format"));
    }

    #[test]
    fn a_partial_file_vanishes_unless_committed_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.dump");
        {
            let mut p = Partial::create(&dest).unwrap();
            p.file.write_all(b"PGDMP half").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let path = written(dir.path(), b"\x1f\x8bplain", Format::Plain);
        assert!(refuse_existing(&path).is_err());
        assert!(refuse_existing(&dir.path().join("other.dump")).is_ok());
    }

    #[test]
    fn files_are_private_and_never_replace_one_that_appeared() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.dump");
        let mut p = Partial::create(&dest).unwrap();
        p.file.write_all(b"PGDMP data").unwrap();
        // Someone else's file appears under the name while the backup runs.
        fs::write(&dest, b"theirs").unwrap();
        let err = crate::error::report(&p.commit().unwrap_err());
        assert!(
            err.error.contains("appeared while the backup ran"),
            "{}",
            err.error
        );
        assert_eq!(fs::read(&dest).unwrap(), b"theirs");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the temporary file is gone"
        );

        fs::remove_file(&dest).unwrap();
        let mut p = Partial::create(&dest).unwrap();
        p.file.write_all(b"PGDMP data").unwrap();
        p.commit().unwrap();
        let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_or_a_device_is_not_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let r = crate::error::report(&inspect(dir.path(), None).unwrap_err());
        assert_eq!(r.exit_code, 4);
        assert!(r.error.contains("it is a directory"), "{}", r.error);
        let r = crate::error::report(&inspect(Path::new("/dev/null"), None).unwrap_err());
        assert_eq!(r.exit_code, 4);
        assert!(r.error.contains("not a regular file"), "{}", r.error);
    }
}
