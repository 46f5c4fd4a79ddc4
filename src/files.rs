//! Reading the small files a user gives (values, CA certificates, kubeconfigs, backup manifests)
//! within a bound: a device or a file that never ends (`/dev/zero`, `/dev/full`, a FIFO fed
//! forever) or a huge one is refused after [`LIMIT`] bytes, not read until memory runs out. Backup
//! files themselves are streamed and have no bound.

use std::io::Read;
use std::path::Path;

/// The most any such file may hold: 1 MiB.
pub const LIMIT: u64 = 1024 * 1024;

/// Why a small file could not be read.
#[derive(Debug)]
pub enum Unread {
    Io(std::io::Error),
    /// More than [`LIMIT`] bytes (or it never ends).
    TooLarge,
    NotText,
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Io(e) => write!(f, "{e}"),
            Unread::TooLarge => write!(f, "it holds more than {} MiB", LIMIT / (1024 * 1024)),
            Unread::NotText => f.write_str("it is not UTF-8 text"),
        }
    }
}

impl Unread {
    pub fn not_found(&self) -> bool {
        matches!(self, Unread::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The file's bytes, at most [`LIMIT`].
pub fn read(path: &Path) -> Result<Vec<u8>, Unread> {
    let file = std::fs::File::open(path).map_err(Unread::Io)?;
    let mut bytes = Vec::new();
    file.take(LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(Unread::Io)?;
    if bytes.len() as u64 > LIMIT {
        return Err(Unread::TooLarge);
    }
    Ok(bytes)
}

/// The file as text, at most [`LIMIT`] bytes.
pub fn read_text(path: &Path) -> Result<String, Unread> {
    String::from_utf8(read(path)?).map_err(|_| Unread::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_huge_files_are_refused_at_the_bound() {
        assert!(matches!(
            read(Path::new("/dev/zero")),
            Err(Unread::TooLarge)
        ));
        assert!(matches!(
            read(Path::new("/dev/full")),
            Err(Unread::TooLarge)
        ));
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("f");
        std::fs::write(&at, vec![b'a'; LIMIT as usize]).unwrap();
        assert_eq!(read_text(&at).unwrap().len(), LIMIT as usize);
        std::fs::write(&at, vec![b'a'; LIMIT as usize + 1]).unwrap();
        assert!(matches!(read_text(&at), Err(Unread::TooLarge)));
        std::fs::write(&at, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_text(&at), Err(Unread::NotText)));
        assert!(read(&dir.path().join("none")).unwrap_err().not_found());
    }
}
