//! Restore drills (`verify --restore-drill`): a backup file restored into a scratch copy on the
//! release's own server (the throwaway PostgreSQL behind the fake's pod), a snapshot into a claim
//! and pod of their own; the copy checked, counted and removed; the live database, its pod and its
//! claim never touched — each test compares the tables' hashes and the objects' uid and
//! resourceVersion before and after.

use serde_json::Value;

use crate::backup::{fingerprint, loaded};
use crate::pg::Release;
use crate::support::{NS, PVC, STS, check};

const POD: &str = "auth-postgres-dev-postgresql-0";

/// What must not move: every table's rows and hash, and the live pod's, claim's and
/// StatefulSet's uid and resourceVersion.
fn untouched(r: &Release) -> (std::collections::BTreeMap<&'static str, String>, Vec<Value>) {
    let objects = [
        ("Pod", POD),
        ("PersistentVolumeClaim", PVC),
        ("StatefulSet", STS),
    ]
    .iter()
    .map(|(kind, name)| {
        let o = r.cluster.fake.get(kind, NS, name).expect("there");
        serde_json::json!([o["metadata"]["uid"], o["metadata"]["resourceVersion"]])
    })
    .collect();
    (fingerprint(r), objects)
}

/// Nothing of a snapshot drill's copy (claim, pod, NetworkPolicy `auth-postgres-dev-drill`) is
/// left in the fake cluster.
fn no_copy_left(c: &crate::support::Cluster, when: &str) {
    let inventory = c.fake.inventory(NS);
    assert!(
        !inventory
            .iter()
            .any(|i| i.ends_with("/auth-postgres-dev-drill")),
        "{when}: {inventory:?}"
    );
}

/// The drill copies left on the shared server for this release's database.
fn copies(r: &Release) -> String {
    r.pg.psql(
        "postgres",
        &format!(
            "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '{}\\_drill\\_%'",
            &r.database
        ),
    )
}

fn path(dir: &std::path::Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_drill_restores_a_copy_checks_and_counts_it_and_leaves_the_release_untouched() {
    let r = loaded("drill", 1_000).await;
    let dir = tempfile::tempdir().unwrap();
    let older = path(dir.path(), "older.dump");
    r.run(&["backup", "--to", &older]).await.succeeded();
    r.psql("INSERT INTO auth_services (service_code, service_name) VALUES ('DRILL', 'drill')");
    let newest = path(dir.path(), "newest.dump");
    r.run(&["backup", "--to", &newest]).await.succeeded();
    let before = untouched(&r);
    let users: i64 = r.psql("SELECT count(*) FROM auth_users").parse().unwrap();

    // No drill yet: verify says so, as a skip.
    let v = r.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(check(&v, "restore drill")["status"], "skip", "{v}");

    // The directory: its newest backup.
    let d = r
        .run(&[
            "verify",
            "--restore-drill",
            "--from",
            &path(dir.path(), ""),
            "-o",
            "json",
        ])
        .await
        .ok_json();
    assert_eq!(d["passed"], true, "{d}");
    assert_eq!(d["kind"], "file");
    assert_eq!(d["source"], newest.as_str());
    assert_eq!(d["rows"]["public.auth_users"], users, "{d}");
    assert_eq!(
        d["rows"]["public.auth_services"],
        r.psql("SELECT count(*) FROM auth_services")
            .parse::<i64>()
            .unwrap(),
        "the newest backup's rows"
    );
    assert!(d["restoreSeconds"].as_f64().unwrap() > 0.0);
    assert!(d["rpoSeconds"].as_i64().unwrap() >= 0);
    assert_eq!(check(&d, "restore time")["status"], "pass");
    assert_eq!(
        check(&d, "tables")["status"],
        "pass",
        "verify's checks ran on the copy"
    );
    assert_eq!(check(&d, "app role connects")["status"], "pass");
    assert_eq!(d["copyRemoved"], true);
    assert!(
        d["copy"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}_drill_", r.database))
    );
    assert_eq!(copies(&r), "", "the copy was dropped");
    assert_eq!(untouched(&r), before, "the release was not touched");

    // Kept with the release: status shows it, verify is content.
    let s = r.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(s["restoreDrill"]["passed"], true, "{s}");
    assert_eq!(s["restoreDrill"]["source"], newest.as_str());
    let v = r.run(&["verify", "-o", "json"]).await.ok_json();
    assert_eq!(check(&v, "restore drill")["status"], "pass", "{v}");

    // A restore slower than the target fails the drill (a 1-minute target nothing meets here is
    // out of reach; a target below the restore's time is what counts).
    let slow = path(dir.path(), "slow.yaml");
    std::fs::write(
        &slow,
        std::fs::read_to_string(&r.values).unwrap() + "restoreDrill:\n  rtoTarget: 1m\n",
    )
    .unwrap();
    let run = r
        .cluster
        .run(&[
            "verify",
            "--restore-drill",
            "--from",
            &older,
            "--values",
            &slow,
            "-o",
            "json",
        ])
        .await;
    assert_eq!(run.code, 0, "a minute is plenty here: {}", run.stderr);

    // What is not this database's whole backup is no drill of it (exit 2, nothing recorded).
    let rows_only = path(dir.path(), "rows.dump");
    r.run(&["backup", "--table", "auth_services", "--to", &rows_only])
        .await
        .succeeded();
    r.run(&["verify", "--restore-drill", "--from", &rows_only])
        .await
        .refused(
            2,
            "a backup of the rows of auth_services only",
            "no --table",
        );
    r.run(&["verify", "--restore-drill"]).await.refused(
        2,
        "--restore-drill needs what to restore",
        "--from",
    );
    assert_eq!(copies(&r), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_or_unrestorable_backup_fails_its_drill_by_name_and_the_release_stays_as_it_was()
{
    let r = loaded("drillbad", 300).await;
    let dir = tempfile::tempdir().unwrap();
    let good = path(dir.path(), "good.dump");
    r.run(&["backup", "--to", &good]).await.succeeded();

    // One flipped byte: the checksum names it; nothing is made.
    let flipped = path(dir.path(), "flipped.dump");
    let mut bytes = std::fs::read(&good).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&flipped, &bytes).unwrap();
    std::fs::copy(format!("{good}.meta.json"), format!("{flipped}.meta.json")).unwrap();
    let before = untouched(&r);
    let run = r
        .run(&[
            "verify",
            "--restore-drill",
            "--from",
            &flipped,
            "-o",
            "json",
        ])
        .await;
    run.failed_saying(
        4,
        &[
            "the restore drill of",
            "corrupted: its SHA-256 checksum does not match",
        ],
    );
    assert!(
        run.hint_line()
            .contains("the live database was not touched")
    );
    assert_eq!(run.json()["passed"], false);
    assert_eq!(untouched(&r), before);
    let v = r.run(&["verify", "-o", "json"]).await.ok_json();
    let drill = check(&v, "restore drill");
    assert_eq!(drill["status"], "warn", "{v}");
    assert!(
        drill["detail"].as_str().unwrap().contains("FAILED: "),
        "{drill}"
    );

    // An intact file whose data breaks a foreign key: the restore itself fails, named.
    r.psql(
        "SET session_replication_role = replica; \
         INSERT INTO auth_user_permissions (user_id, permission_id) VALUES ('nobody', 999999)",
    );
    let broken = path(dir.path(), "broken.dump");
    r.run(&["backup", "--to", &broken]).await.succeeded();
    let before = untouched(&r);
    let run = r
        .run(&["verify", "--restore-drill", "--from", &broken, "-o", "json"])
        .await;
    run.failed_saying(4, &["the restore drill of", "foreign key"]);
    let d = run.json();
    assert_eq!(d["copyRemoved"], true, "{d}");
    assert_eq!(copies(&r), "", "the copy was dropped");
    assert_eq!(untouched(&r), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_drill_drops_its_copy_and_an_encrypted_backup_drills_with_its_key() {
    let r = loaded("drillint", 30_000).await;
    let dir = tempfile::tempdir().unwrap();
    let id = age::x25519::Identity::generate();
    let key = dir.path().join("key.txt");
    std::fs::write(
        &key,
        age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string() + "\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = path(dir.path(), "auth.dump.age");
    let recipient = id.to_public().to_string();
    r.run(&["backup", "--encrypt-to", &recipient, "--to", &file])
        .await
        .succeeded();
    let key = key.display().to_string();
    let before = untouched(&r);

    // Interrupted once its copy exists: the copy goes, the release stays.
    let kc = r.cluster.kubeconfig.display().to_string();
    let out = crate::support::ctrl_c_when(
        r.cluster.dir.path(),
        &[
            "verify",
            "--restore-drill",
            "--from",
            &file,
            "--identity",
            &key,
            "--values",
            &r.values,
            "--kubeconfig",
            &kc,
        ],
        || !copies(&r).is_empty(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("interrupted; the drill's copy"), "{stderr}");
    assert_eq!(copies(&r), "", "the copy was dropped: {stderr}");
    assert_eq!(untouched(&r), before);

    // Run to its end: the encrypted backup decrypts as it restores.
    let d = r
        .run(&[
            "verify",
            "--restore-drill",
            "--from",
            &file,
            "--identity",
            &key,
            "-o",
            "json",
        ])
        .await
        .ok_json();
    assert_eq!(d["passed"], true, "{d}");
    assert_eq!(
        d["rows"]["public.auth_users"],
        r.psql("SELECT count(*) FROM auth_users")
            .parse::<i64>()
            .unwrap(),
        "{d}"
    );
    // Without the key, the drill fails saying so.
    r.run(&["verify", "--restore-drill", "--from", &file])
        .await
        .failed_saying(4, &["is encrypted (age, to"]);
    assert_eq!(copies(&r), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_drill_starts_the_copy_in_a_pod_of_its_own_and_removes_it() {
    let r = Release::new("drillsnap").await;
    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    let c = &r.cluster;
    let snap = c.snapshot().await;
    let before = untouched(&r);
    let inventory = c.fake.inventory(NS);

    let d = r
        .run(&[
            "verify",
            "--restore-drill",
            "--snapshot",
            "latest",
            "-o",
            "json",
        ])
        .await
        .ok_json();
    assert_eq!(d["passed"], true, "{d}");
    assert_eq!(d["kind"], "snapshot");
    assert_eq!(d["source"], snap.as_str());
    assert_eq!(check(&d, "tables")["status"], "pass", "{d}");
    assert_eq!(d["copyRemoved"], true);
    // The copy was a claim from the snapshot and a pod of the release's template, closed by a
    // NetworkPolicy; all three are gone.
    let mut made: Vec<String> = c
        .fake
        .cluster()
        .writes
        .iter()
        .filter(|w| w.starts_with("CREATE") && w.ends_with("/auth-postgres-dev-drill"))
        .cloned()
        .collect();
    made.sort();
    assert_eq!(
        made,
        [
            "CREATE networkpolicies phonebill-dev/auth-postgres-dev-drill",
            "CREATE persistentvolumeclaims phonebill-dev/auth-postgres-dev-drill",
            "CREATE pods phonebill-dev/auth-postgres-dev-drill"
        ]
    );
    assert_eq!(
        c.fake
            .inventory(NS)
            .into_iter()
            .filter(|i| !i.contains("drill-record"))
            .collect::<Vec<_>>(),
        inventory,
        "nothing of the copy is left"
    );
    assert_eq!(untouched(&r), before);
    let s = r.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(s["restoreDrill"]["kind"], "snapshot", "{s}");

    // A snapshot whose disk cannot be made: the drill fails at its timeout, naming the
    // provisioner's error, and its copy goes.
    c.fake.fail_restore_from(Some(&snap));
    let run = r
        .run(&[
            "verify",
            "--restore-drill",
            "--snapshot",
            &snap,
            "--timeout",
            "3s",
            "-o",
            "json",
        ])
        .await;
    run.failed_saying(4, &["did not start", "ProvisioningFailed"]);
    assert_eq!(run.json()["copyRemoved"], true);
    no_copy_left(c, "after the failed drill");
    assert_eq!(untouched(&r), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_drill_schedules_job_drills_the_latest_snapshot_with_only_its_roles_rights() {
    let r = Release::new("drilljob").await;
    let mut values = std::fs::read_to_string(&r.values).unwrap();
    values.push_str("drillSchedule:\n  enabled: true\n");
    std::fs::write(&r.values, values).unwrap();
    r.install().await;
    assert_eq!(r.run(&["apply-schema"]).await.code, 0);
    let c = &r.cluster;
    let cj = c
        .fake
        .get("CronJob", NS, "auth-postgres-dev-drills")
        .unwrap();
    assert_eq!(cj["spec"]["schedule"], "0 4 * * 0");
    assert!(
        c.fake
            .get("ConfigMap", NS, "auth-postgres-dev-drill-record")
            .is_some(),
        "install makes the record's ConfigMap, so the job only patches it"
    );
    c.snapshot().await;
    let before = untouched(&r);
    let args =
        crate::support::job_command(c, "auth-postgres-dev-drills", "auth-postgres-dev-drills");
    let run = crate::support::run_as_role(c, "auth-postgres-dev-drills", &args).await;
    let d = run.ok_json();
    assert_eq!(d["passed"], true, "{d}");
    assert_eq!(d["recorded"], "ConfigMap auth-postgres-dev-drill-record");
    assert_eq!(untouched(&r), before);
    let s = r.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(s["restoreDrill"]["kind"], "snapshot", "{s}");

    // One right less: the drill fails (exit 4), says so, and leaves no copy behind.
    let role = c.fake.get("Role", NS, "auth-postgres-dev-drills").unwrap();
    for (resource, verb) in [("pods/portforward", "create"), ("pods", "create")] {
        let mut rules = role["rules"].clone();
        let kept: Vec<Value> = rules
            .as_array()
            .unwrap()
            .iter()
            .filter(|rule| {
                !(rule["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == resource)
                    && rule["verbs"].as_array().unwrap().iter().any(|v| v == verb))
            })
            .cloned()
            .collect();
        assert_eq!(
            kept.len() + 1,
            rules.as_array().unwrap().len(),
            "{resource}"
        );
        rules = Value::Array(kept);
        c.fake.allow_only(NS, rules);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = c.run(&argv).await;
        c.fake.allow_all();
        assert_eq!(run.code, 4, "{resource}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.error_line().contains("the restore drill of"),
            "{}",
            run.stderr
        );
        no_copy_left(c, resource);
    }
    assert_eq!(untouched(&r), before);
}
