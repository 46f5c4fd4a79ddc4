//! Encrypted backups (runbook 9.2): `backup --encrypt-to` writes age ciphertext with a manifest
//! that says so; `restore --identity` decrypts while it streams; without the right key, or with a
//! changed file, nothing is touched (exit 4). Against the throwaway PostgreSQL, through the pod's
//! exec and through --database-url.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backup::{damage, fingerprint, loaded};
use crate::pg::Release;
use crate::support::{Run, run_bin_env};

/// A new age key pair: the recipient (age1…) and the identity file (0600) holding its secret.
fn keypair(dir: &Path, name: &str) -> (String, PathBuf) {
    let id = age::x25519::Identity::generate();
    let file = dir.join(name);
    let secret = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
    std::fs::write(&file, format!("# created by the test\n{secret}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    (id.to_public().to_string(), file)
}

/// Run on the release's pod path with these environment variables.
async fn run_env(r: &Release, args: &[&str], env: &[(&str, &str)]) -> Run {
    let kc = r.cluster.kubeconfig.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--values", &r.values, "--kubeconfig", &kc]);
    run_bin_env(r.cluster.dir.path(), &all, env).await
}

fn manifest(file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{file}.meta.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_backup_restores_only_with_its_key_and_never_half() {
    let r = loaded("enc", 3_000).await;
    let original = fingerprint(&r);
    let dir = tempfile::tempdir().unwrap();
    let (alice, alice_key) = keypair(dir.path(), "alice.key");
    let (bob, bob_key) = keypair(dir.path(), "bob.key");
    let (_, eve_key) = keypair(dir.path(), "eve.key");

    let file = dir.path().join("auth.dump.age").display().to_string();
    let b = r
        .run(&[
            "backup",
            "--encrypt-to",
            &alice,
            "--encrypt-to",
            &bob,
            "--to",
            &file,
            "-o",
            "json",
        ])
        .await
        .ok_json();
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.starts_with(b"age-encryption.org/v1\n"),
        "age's header"
    );
    assert!(
        !bytes.windows(5).any(|w| w == b"PGDMP"),
        "no dump in the clear"
    );
    let m = manifest(&file);
    assert_eq!(m["manifestVersion"], 2);
    assert_eq!(m["encryption"]["scheme"], "age");
    assert_eq!(
        m["encryption"]["recipients"],
        serde_json::json!([alice, bob])
    );
    assert_eq!(m["size"], bytes.len() as u64, "the size on disk");
    use sha2::Digest;
    assert_eq!(
        m["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)),
        "the checksum of what is on disk"
    );
    assert!(m["encryption"]["plaintextSize"].as_u64().unwrap() > 1000);
    assert_eq!(b["encryption"], m["encryption"]);

    damage(&r);
    let damaged = fingerprint(&r);
    // No key, a wrong key, a key file others can read: refused before anything is touched.
    r.run(&["restore", "--from", &file, "--yes"]).await.refused(
        4,
        "is encrypted (age, to",
        "--identity FILE",
    );
    let eve = eve_key.display().to_string();
    r.run(&["restore", "--from", &file, "--yes", "--identity", &eve])
        .await
        .refused(4, "none of the identities in", "--identity FILE");
    std::fs::set_permissions(&bob_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bob_path = bob_key.display().to_string();
    r.run(&["restore", "--from", &file, "--yes", "--identity", &bob_path])
        .await
        .refused(2, "others may read it (mode 644)", "chmod 600");
    std::fs::set_permissions(&bob_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A byte changed inside the ciphertext, the manifest's checksum made to match: age's
    // authentication still refuses it.
    let tampered = dir.path().join("tampered.dump.age").display().to_string();
    let mut t = bytes.clone();
    let at = t.len() - 100;
    t[at] ^= 0x40;
    std::fs::write(&tampered, &t).unwrap();
    let mut tm = m.clone();
    tm["sha256"] = Value::String(hex::encode(sha2::Sha256::digest(&t)));
    std::fs::write(format!("{tampered}.meta.json"), tm.to_string()).unwrap();
    let alice_path = alice_key.display().to_string();
    r.run(&[
        "restore",
        "--from",
        &tampered,
        "--yes",
        "--identity",
        &alice_path,
    ])
    .await
    .refused(4, "it does not decrypt", "use another backup");
    assert_eq!(fingerprint(&r), damaged, "nothing was touched");

    // Bob's key, from the environment: every row back, decrypted as it streamed.
    let restored = run_env(
        &r,
        &[
            "restore",
            "--from",
            &file,
            "--yes",
            "--no-safety-backup",
            "-o",
            "json",
        ],
        &[("PHONEBILL_AGE_IDENTITY", &bob_path)],
    )
    .await
    .ok_json();
    assert_eq!(restored["passed"], true, "{restored}");
    assert_eq!(fingerprint(&r), original);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_profiles_recipients_encrypt_every_backup_and_a_plain_one_restores_through_a_url() {
    let r = loaded("encp", 500).await;
    let original = fingerprint(&r);
    let dir = tempfile::tempdir().unwrap();
    let (key, identity) = keypair(dir.path(), "ops.key");
    let identity = identity.display().to_string();
    // backups.encryptTo in the values: the default name ends in .age, the safety backup too.
    let mut values = std::fs::read_to_string(&r.values).unwrap();
    values.push_str(&format!("backups:\n  encryptTo: [{key}]\n"));
    std::fs::write(&r.values, values).unwrap();
    let b = r.run(&["backup", "-o", "json"]).await.ok_json();
    let file = b["file"].as_str().unwrap().to_string();
    assert!(file.ends_with(".dump.age"), "{file}");
    assert_eq!(b["encryption"]["recipients"][0], key.as_str());

    let plain = dir.path().join("auth.sql.gz.age").display().to_string();
    let p = r
        .run(&["backup", "--format", "plain", "--to", &plain, "-o", "json"])
        .await
        .ok_json();
    assert_eq!(p["format"], "plain");
    assert!(
        std::fs::read(&plain)
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n")
    );

    damage(&r);
    // Through the URL and the local tools: the plain SQL is decrypted, checked and restored.
    let safety = dir.path().join("safety.dump.age").display().to_string();
    let restored = r
        .via_url(&[
            "restore",
            "--from",
            &plain,
            "--yes",
            "--identity",
            &identity,
            "--safety-to",
            &safety,
            "-o",
            "json",
        ])
        .await
        .ok_json();
    assert_eq!(restored["passed"], true, "{restored}");
    assert_eq!(fingerprint(&r), original);
    let s = manifest(&safety);
    assert_eq!(s["encryption"]["recipients"][0], key.as_str(), "{s}");
    assert!(
        std::fs::read(&safety)
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n")
    );

    // A recipient that is not one: refused before anything (exit 2).
    r.run(&[
        "backup",
        "--encrypt-to",
        "age1nope",
        "--to",
        &path(dir.path(), "x.dump"),
    ])
    .await
    .refused(2, "`age1nope` is not an age recipient", "age-keygen -y");
    assert!(!dir.path().join("x.dump").exists());
    let mut values = std::fs::read_to_string(&r.values).unwrap();
    values = values.replace(&key, "age1broken");
    std::fs::write(&r.values, values).unwrap();
    r.run(&["backup"])
        .await
        .refused(2, "backups.encryptTo[0]", "age1");
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}
