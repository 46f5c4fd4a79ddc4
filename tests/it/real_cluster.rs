//! The real-cluster tier: ignored by default; runs against the current kube context (kind or AKS).
//!
//!   PHONEBILL_DB_STORAGE_CLASS=standard cargo nextest run --run-ignored only real_cluster
//!
//! (kind's class is `standard`; on AKS use `managed-csi`.) The namespace is left behind: delete it.
//!
//! It installs into a throw-away namespace (`phonebill-db-e2e`, or $PHONEBILL_DB_NAMESPACE),
//! checks status, applies the schema (twice) and verifies through a port-forward, backs up and
//! restores through exec, re-installs (nothing may change), and uninstalls with --delete-data.

use std::process::Command;

fn bin(args: &[&str]) -> (i32, String, String) {
    let ns = std::env::var("PHONEBILL_DB_NAMESPACE").unwrap_or_else(|_| "phonebill-db-e2e".into());
    let out = Command::new(env!("CARGO_BIN_EXE_phonebill-db"))
        .args(args)
        .args(["--namespace", &ns])
        .output()
        .expect("run phonebill-db");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
#[ignore = "needs a real cluster: the current kube context"]
fn install_status_schema_verify_reinstall_uninstall_on_a_real_cluster() {
    let class = std::env::var("PHONEBILL_DB_STORAGE_CLASS").unwrap_or_else(|_| "standard".into());
    let (code, out, err) = bin(&[
        "install",
        "-o",
        "json",
        "--timeout",
        "10m",
        "--storage-class",
        &class,
    ]);
    assert_eq!(code, 0, "install: {out}\n{err}");
    let (code, out, err) = bin(&["status", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"state\": \"ready\""), "{out}");
    // The schema through a port-forward to the pod, twice (the second applies nothing), then the checklist.
    let (code, out, err) = bin(&["apply-schema"]);
    assert_eq!(code, 0, "apply-schema: {out}\n{err}");
    let (code, out, err) = bin(&["apply-schema"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nothing to apply"), "{out}");
    let (code, out, err) = bin(&["verify"]);
    assert_eq!(code, 0, "verify: {out}\n{err}");
    // pg_dump and the restore pipeline in the pod (its own tools, through exec).
    let dir = std::env::temp_dir().join(format!("phonebill-db-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("e2e.dump").display().to_string();
    let (code, out, err) = bin(&["backup", "--to", &file]);
    assert_eq!(code, 0, "backup: {out}\n{err}");
    let safety = dir.join("safety.dump").display().to_string();
    let (code, out, err) = bin(&["restore", "--from", &file, "--yes", "--safety-to", &safety]);
    assert_eq!(code, 0, "restore: {out}\n{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let (code, out, err) = bin(&["install", "--timeout", "5m", "--storage-class", &class]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(" 0 created, 0 configured"),
        "a second install changes nothing: {out}"
    );
    let (code, _, err) = bin(&["uninstall", "--delete-data", "--yes", "--timeout", "5m"]);
    assert_eq!(code, 0, "{err}");
}
