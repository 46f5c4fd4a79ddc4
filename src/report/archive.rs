//! The report's archive: a gzip-compressed tar of its files under one directory, mode 0600,
//! written under a temporary name beside its destination and put in place only when whole.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::Entry;
use crate::db::backup_file::Partial;

/// Write `entries` as `dest` (tar.gz), each under `dir/`; nothing is left at `dest` or beside it
/// when it fails.
pub fn write(dest: &Path, dir: &str, entries: &[Entry]) -> Result<()> {
    let partial = Partial::create(dest)?;
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let gz = GzEncoder::new(&partial.file, Compression::default());
    let mut tar = tar::Builder::new(gz);
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(e.text.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{dir}/{}", e.path), e.text.as_bytes())
            .with_context(|| format!("writing {} into {}", e.path, dest.display()))?;
    }
    let mut gz = tar
        .into_inner()
        .with_context(|| format!("finishing {}", dest.display()))?;
    gz.flush()
        .and_then(|_| gz.try_finish())
        .with_context(|| format!("finishing {}", dest.display()))?;
    drop(gz);
    partial.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_archive_holds_each_file_under_its_directory_and_only_its_owner_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("r.tar.gz");
        let entries = vec![
            Entry {
                path: "report.json".into(),
                text: "{}\n".into(),
            },
            Entry {
                path: "logs/postgresql.log".into(),
                text: "a line\n".into(),
            },
        ];
        write(&dest, "top", &entries).unwrap();
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let file = std::fs::File::open(&dest).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut text = String::new();
            e.read_to_string(&mut text).unwrap();
            seen.push((e.path().unwrap().display().to_string(), text));
        }
        assert_eq!(
            seen,
            vec![
                ("top/report.json".to_string(), "{}\n".to_string()),
                (
                    "top/logs/postgresql.log".to_string(),
                    "a line\n".to_string()
                )
            ]
        );
        // Only the archive is there: no temporary file beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
