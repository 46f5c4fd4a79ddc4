//! Puts the git commit the binary is built from into `--version` (PHONEBILL_DB_COMMIT): from the
//! environment variable of that name when it is set (the container build passes it in), else from
//! git; outside a git checkout (a source tarball) it says `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PHONEBILL_DB_COMMIT");
    if let Ok(commit) = std::env::var("PHONEBILL_DB_COMMIT")
        && !commit.is_empty()
    {
        println!("cargo:rustc-env=PHONEBILL_DB_COMMIT={commit}");
        return;
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PHONEBILL_DB_COMMIT={commit}");
    // Build again when HEAD moves: HEAD itself (a checkout), the branch it points at (a commit).
    let git = Path::new(".git");
    if git.join("HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
            && let Some(reference) = head.trim().strip_prefix("ref: ")
        {
            // Only files that exist: cargo runs the script on every build for a missing one. A
            // branch whose ref is only packed (after `git gc`) gets its loose file back with the
            // next commit: its directory is watched then, so that the commit is seen.
            let loose = format!(".git/{reference}");
            if Path::new(&loose).exists() {
                println!("cargo:rerun-if-changed={loose}");
            } else if let Some(dir) = Path::new(&loose).parent().filter(|d| d.exists()) {
                println!("cargo:rerun-if-changed={}", dir.display());
            }
            if Path::new(".git/packed-refs").exists() {
                println!("cargo:rerun-if-changed=.git/packed-refs");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
