//! Backups encrypted on the client (runbook 9.2, "backups stored encrypted"), with age
//! (age-encryption.org/v1, X25519 recipients; the `age` crate): `backup --encrypt-to age1…`
//! streams pg_dump's output through the encryptor into the file, with constant memory; `restore
//! --identity FILE` decrypts while it streams the file into the restore.
//!
//! What is on disk is ciphertext; the manifest's `size` and `sha256` are the file's (checked
//! without any key), and `encryption` records the scheme, the recipients and the size and SHA-256
//! of the dump inside (checked after decryption). age authenticates every 64 KiB chunk, so a
//! changed byte anywhere fails the decryption itself, not only the checksum.

use std::io::{BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ExitCode, UserError, user_error};

/// The scheme the manifest names.
pub const SCHEME: &str = "age";
/// How every age file starts (age-encryption.org/v1's header line).
pub const MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The plaintext handed across from the decrypting thread at a time, and how many may wait.
const CHUNK: usize = 256 * 1024;
const IN_FLIGHT: usize = 4;

/// What the manifest says of an encrypted backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    pub scheme: String,
    /// Who can decrypt it: the age recipients (public keys) it was encrypted to.
    pub recipients: Vec<String>,
    /// The size and SHA-256 of the dump inside.
    pub plaintext_size: u64,
    pub plaintext_sha256: String,
}

/// The recipients a backup is encrypted to, parsed.
#[derive(Clone)]
pub struct Recipients {
    pub texts: Vec<String>,
    keys: Vec<age::x25519::Recipient>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipients({:?})", self.texts)
    }
}

impl Recipients {
    /// `age1…` public keys (`--encrypt-to`, or `backups.encryptTo`); a bad one is named (exit 2).
    pub fn parse(texts: &[String], source: &str) -> Result<Recipients> {
        let mut keys = Vec::new();
        for t in texts {
            let key = age::x25519::Recipient::from_str(t.trim()).map_err(|why| {
                user_error(format!(
                    "{source} `{}` is not an age recipient ({why}); nothing was written",
                    crate::error::shown(t)
                ))
                .hint("give an X25519 public key as `age-keygen -y KEYFILE` prints it (age1…)")
                .exit(ExitCode::Usage)
            })?;
            keys.push(key);
        }
        Ok(Recipients {
            texts: keys.iter().map(ToString::to_string).collect(),
            keys,
        })
    }

    /// A writer that encrypts what it is given into `out`.
    pub fn encrypt<W: Write>(&self, out: W) -> Result<age::stream::StreamWriter<W>> {
        let encryptor =
            age::Encryptor::with_recipients(self.keys.iter().map(|k| k as &dyn age::Recipient))
                .context("setting up the encryption (a bug: the recipients parsed)")?;
        encryptor
            .wrap_output(out)
            .context("writing the encrypted backup's header (is the disk full?)")
    }
}

/// The profile's `backups.encryptTo` (already checked by its rules), or None when it is empty.
pub fn profile_recipients(profile: &crate::profile::Profile) -> Result<Option<Recipients>> {
    let keys = &profile.backups.encrypt_to;
    if keys.is_empty() {
        return Ok(None);
    }
    Recipients::parse(keys, "backups.encryptTo").map(Some)
}

/// The identities a restore decrypts with (`--identity FILE`, `$PHONEBILL_AGE_IDENTITY`).
pub struct Identities {
    pub file: PathBuf,
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities {{ file: {:?}, .. }}", self.file)
    }
}

impl Identities {
    /// Read an age identity file (as `age-keygen` writes it: comments, one `AGE-SECRET-KEY-1…`
    /// a line). Refused (exit 2): a file others may read (a private key), one that is not there,
    /// or one without an X25519 identity.
    pub fn read(file: &Path) -> Result<Identities> {
        let refuse = |what: String, hint: &str| -> anyhow::Error {
            user_error(format!(
                "--identity {}: {what}; nothing was restored",
                file.display()
            ))
            .hint(hint)
            .exit(ExitCode::Usage)
            .into()
        };
        let meta = std::fs::metadata(file).map_err(|e| {
            refuse(
                format!("cannot be read: {e}"),
                "give the file `age-keygen -o FILE` wrote (or set PHONEBILL_AGE_IDENTITY)",
            )
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(refuse(
                format!(
                    "others may read it (mode {:o}), and it holds a private key",
                    meta.permissions().mode() & 0o777
                ),
                &format!("make it yours alone: chmod 600 {}", file.display()),
            ));
        }
        let text = crate::files::read_text(file).map_err(|e| {
            refuse(
                format!("cannot be read: {e}"),
                "give the file `age-keygen -o FILE` wrote",
            )
        })?;
        let mut keys: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = age::x25519::Identity::from_str(line).map_err(|_| {
                refuse(
                    format!("line {} is not an age identity (AGE-SECRET-KEY-1…)", i + 1),
                    "give the file `age-keygen -o FILE` wrote: comments and AGE-SECRET-KEY-1… lines",
                )
            })?;
            keys.push(Box::new(key));
        }
        if keys.is_empty() {
            return Err(refuse(
                "it holds no identity".into(),
                "give the file `age-keygen -o FILE` wrote: comments and AGE-SECRET-KEY-1… lines",
            ));
        }
        Ok(Identities {
            file: file.to_path_buf(),
            keys,
        })
    }

    /// A reader of the plaintext of `input` (an age file).
    fn decrypt<R: Read>(&self, input: R) -> Result<age::stream::StreamReader<R>, DecryptFailed> {
        let decryptor = age::Decryptor::new(input).map_err(DecryptFailed::from)?;
        decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
            .map_err(DecryptFailed::from)
    }
}

/// Why a file did not decrypt, in the words a restore reports.
#[derive(Debug)]
pub enum DecryptFailed {
    /// None of the identities is one of its recipients.
    NoMatchingKey,
    /// It is not what was encrypted: changed, cut short, or not an age file.
    Damaged(String),
    Io(std::io::Error),
}

impl From<age::DecryptError> for DecryptFailed {
    fn from(e: age::DecryptError) -> Self {
        match e {
            age::DecryptError::NoMatchingKeys => DecryptFailed::NoMatchingKey,
            age::DecryptError::Io(e) => DecryptFailed::Io(e),
            other => DecryptFailed::Damaged(other.to_string()),
        }
    }
}

impl DecryptFailed {
    /// The refusal (exit 4, nothing touched) for backup `file` encrypted to `recipients`.
    pub fn refusal(self, file: &Path, identities: &Identities, recipients: &[String]) -> UserError {
        let (why, hint) = match self {
            DecryptFailed::NoMatchingKey => (
                format!(
                    "none of the identities in {} can decrypt it (it is encrypted to {})",
                    identities.file.display(),
                    recipients.join(", ")
                ),
                "give the identity of one of those recipients with --identity FILE".to_string(),
            ),
            DecryptFailed::Damaged(why) => (
                format!("it does not decrypt: {why}"),
                "the file changed after the backup was taken; use another backup".to_string(),
            ),
            DecryptFailed::Io(e) => (
                format!("reading it failed while decrypting: {e}"),
                "check the disk, then restore again".to_string(),
            ),
        };
        user_error(format!("{}: {why}; nothing was restored", file.display()))
            .hint(hint)
            .exit(ExitCode::ChecksFailed)
    }
}

/// An encrypted backup without an identity to read it (exit 4, nothing touched).
pub fn no_identity(file: &Path, recipients: &[String]) -> UserError {
    user_error(format!(
        "{} is encrypted (age, to {}) and no identity was given; nothing was restored",
        file.display(),
        recipients.join(", ")
    ))
    .hint("give the private key of one of those recipients with --identity FILE (or PHONEBILL_AGE_IDENTITY)")
    .exit(ExitCode::ChecksFailed)
}

/// Decrypt `file` once from start to end, handing each piece of plaintext to `each`: the check
/// before a restore (nothing is touched until the whole file decrypted and its plaintext matched).
pub fn read_through(
    file: &Path,
    identities: &Identities,
    mut each: impl FnMut(&[u8]),
) -> Result<(u64, String), DecryptFailed> {
    let input = std::fs::File::open(file).map_err(DecryptFailed::Io)?;
    let mut reader = identities.decrypt(BufReader::with_capacity(CHUNK, input))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(DecryptFailed::Damaged(e.to_string()));
            }
            Err(e) => return Err(DecryptFailed::Io(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        each(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// The plaintext of `file`, decrypted on a thread of its own and handed over in pieces, a few at
/// a time (memory stays flat): the stream a restore sends. An error ends it.
pub fn stream(
    file: &Path,
    identities: std::sync::Arc<Identities>,
) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    let file = file.to_path_buf();
    std::thread::spawn(move || {
        let send = |item| tx.blocking_send(item).is_ok();
        let opened = std::fs::File::open(&file)
            .map_err(DecryptFailed::Io)
            .and_then(|f| identities.decrypt(BufReader::with_capacity(CHUNK, f)));
        let mut reader = match opened {
            Ok(r) => r,
            Err(e) => {
                send(Err(std::io::Error::other(format!("{e:?}"))));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; CHUNK];
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    // The receiver went away: the restore stopped.
                    if !send(Ok(buf)) {
                        return;
                    }
                }
                Err(e) => {
                    send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (String, String) {
        let id = age::x25519::Identity::generate();
        (
            id.to_public().to_string(),
            age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string(),
        )
    }

    fn identity_file(dir: &Path, secret: &str, mode: u32) -> PathBuf {
        let path = dir.join("key.txt");
        std::fs::write(
            &path,
            format!("# created: now\n# public key: x\n{secret}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn what_is_encrypted_to_a_recipient_decrypts_with_its_identity_only() {
        let dir = tempfile::tempdir().unwrap();
        let (public, secret) = keypair();
        let (_, other_secret) = keypair();
        let recipients = Recipients::parse(std::slice::from_ref(&public), "--encrypt-to").unwrap();
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let file = dir.path().join("b.age");
        let mut w = recipients
            .encrypt(std::fs::File::create(&file).unwrap())
            .unwrap();
        w.write_all(&plain).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&file).unwrap();
        assert!(bytes.starts_with(MAGIC));

        let ids = Identities::read(&identity_file(dir.path(), &secret, 0o600)).unwrap();
        let mut back = Vec::new();
        let (size, sha) = read_through(&file, &ids, |b| back.extend_from_slice(b)).unwrap();
        assert_eq!(back, plain);
        assert_eq!(size, plain.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&plain)));

        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let wrong = Identities::read(&identity_file(&other, &other_secret, 0o600)).unwrap();
        assert!(matches!(
            read_through(&file, &wrong, |_| {}),
            Err(DecryptFailed::NoMatchingKey)
        ));

        // One flipped byte in the payload: the chunk's authentication fails.
        let mut tampered = bytes.clone();
        let at = tampered.len() - 1000;
        tampered[at] ^= 1;
        std::fs::write(&file, &tampered).unwrap();
        assert!(matches!(
            read_through(&file, &ids, |_| {}),
            Err(DecryptFailed::Damaged(_))
        ));
        // Cut short: the last chunk is missing.
        std::fs::write(&file, &bytes[..bytes.len() - 70_000]).unwrap();
        assert!(matches!(
            read_through(&file, &ids, |_| {}),
            Err(DecryptFailed::Damaged(_))
        ));
    }

    #[test]
    fn bad_recipients_and_identity_files_are_refused_with_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        let e = Recipients::parse(&["age1nope".into()], "--encrypt-to")
            .err()
            .unwrap();
        let r = crate::error::report(&e);
        assert_eq!(r.exit_code, 2);
        assert!(
            r.error.contains("`age1nope` is not an age recipient"),
            "{}",
            r.error
        );

        let (_, secret) = keypair();
        let open = identity_file(dir.path(), &secret, 0o644);
        let r = crate::error::report(&Identities::read(&open).unwrap_err());
        assert_eq!(r.exit_code, 2);
        assert!(
            r.error.contains("others may read it (mode 644)"),
            "{}",
            r.error
        );
        assert!(r.hint.unwrap().contains("chmod 600"));

        let junk = identity_file(dir.path(), "AGE-SECRET-KEY-1NOTAKEY", 0o600);
        let r = crate::error::report(&Identities::read(&junk).unwrap_err());
        assert!(
            r.error.contains("line 3 is not an age identity"),
            "{}",
            r.error
        );
        let missing = dir.path().join("nope");
        let r = crate::error::report(&Identities::read(&missing).unwrap_err());
        assert_eq!(r.exit_code, 2);
        assert!(r.error.contains("cannot be read"), "{}", r.error);
    }
}
