//! `upgrade --major N` end to end on the fake cluster, with a real PostgreSQL behind each pod
//! (`PodServer`: started from what install and upgrade put in the cluster, as the image would).
//!
//! Across two real major versions: the old pod is Debian's PostgreSQL 15 (image tag
//! `postgres:15`), the new one the tests' 16 (`--major 16`), each with its own tools, as the two
//! images have them — the old pod's pg_dump 15 writes the backup, the new pod's pg_restore 16
//! reads it. The tool's part — read-only old server, backup, second StatefulSet and claim,
//! restore, verify (whose version check compares the new server with the image, 16 = 16),
//! switch, finalize, rollback, resume — runs for real.

use serde_json::Value;

use crate::pg::Pg;
use crate::pod::PodServer;
use crate::support::{Cluster, NS, PVC, Run, STS, bin_command};

const NEW_STS: &str = "auth-postgres-dev-postgresql-pg16";
const NEW_POD: &str = "auth-postgres-dev-postgresql-pg16-0";
const NEW_PVC: &str = "data-auth-postgres-dev-postgresql-pg16-0";
const DB: &str = "phonebill_auth";

/// A release installed on PostgreSQL 15 (Debian's server and tools in the pod), its schema
/// applied, two rows written by the app.
async fn old_release() -> (Cluster, PodServer) {
    let c = Cluster::with_plan_class().await;
    let old = Pg::old();
    assert_eq!(old.major(), 15, "the old pod's server");
    assert_eq!(Pg::get().major(), 16, "the new pod's server");
    let values = PodServer::before_install_on(&c, &old);
    c.install_ok(&[&values[0], &values[1]]).await;
    let old = PodServer::start_on(&c, STS, None, old);
    let applied = c.run(&["apply-schema", "-o", "json"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    for id in ["before-1", "before-2"] {
        write_row(&old, id).expect("the app writes on the old server");
    }
    (c, old)
}

/// The app role writes a row (a login, marked by its session id).
fn write_row(server: &PodServer, id: &str) -> Result<String, String> {
    server.sql(
        "auth_user",
        &server.app_password,
        DB,
        &format!(
            "INSERT INTO auth_login_history (login_type, login_status, session_id) VALUES ('LOGIN', 'SUCCESS', '{id}')"
        ),
    )
}

fn rows(server: &PodServer) -> Vec<String> {
    let out = server
        .sql(
            "postgres",
            &server.admin_password,
            DB,
            "SELECT session_id FROM auth_login_history WHERE session_id LIKE 'before-%' ORDER BY 1",
        )
        .expect("read the rows");
    out.lines().map(str::to_string).collect()
}

fn selector_pod(c: &Cluster, service: &str) -> String {
    let svc = c.fake.get("Service", NS, service).unwrap();
    svc["spec"]["selector"]["statefulset.kubernetes.io/pod-name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn exists(c: &Cluster, kind: &str, name: &str) -> bool {
    c.fake.get(kind, NS, name).is_some()
}

fn record(c: &Cluster) -> Value {
    crate::support::record_data(c)
}

/// `upgrade ARGS` run in the background while the test plays the new pod: held by the kubelet
/// until its server (started from the new StatefulSet) answers for it.
async fn upgrade_with_new_server(c: &Cluster, args: &[&str]) -> (Run, PodServer) {
    c.fake.hold_pod(NS, NEW_POD);
    let kc = c.kubeconfig.display().to_string();
    let mut all = vec!["upgrade"];
    all.extend(args);
    all.extend(["--kubeconfig", &kc]);
    let child = bin_command(c.dir.path(), &all)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !exists(c, "StatefulSet", NEW_STS) {
        assert!(
            std::time::Instant::now() < deadline,
            "upgrade made no StatefulSet {NEW_STS}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let server = PodServer::start_on(c, NEW_STS, Some(NEW_POD), Pg::get());
    c.fake.release_pod(NS, NEW_POD);
    let out = child.wait_with_output().await.unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_major_upgrade_moves_the_data_to_a_second_statefulset_and_finalizes() {
    let (c, old) = old_release().await;
    let exposed = c
        .run(&[
            "expose",
            "--allow",
            "203.0.113.0/24",
            "--internal",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(exposed.code, 0, "{}", exposed.stderr);
    let (run, new) = upgrade_with_new_server(&c, &["--major", "16", "--yes", "-o", "json"]).await;
    let report = run.ok_json();
    assert_eq!(report["outcome"], "upgraded", "{report}");
    assert_eq!(report["fromMajor"], 15);
    assert_eq!(report["toMajor"], 16);
    assert_eq!(report["serving"], NEW_STS);
    assert_eq!(report["passed"], true, "{report}");
    let version = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "server version")
        .expect("verify's version check ran on the new server")
        .clone();
    assert_eq!(version["status"], "pass", "{version}");
    let backup = report["backup"].as_str().unwrap();
    let backup = if std::path::Path::new(backup).is_absolute() {
        std::path::PathBuf::from(backup)
    } else {
        c.dir.path().join(backup)
    };
    // Written by the old pod's own pg_dump 15 from the 15 server (and restored by the new pod's
    // pg_restore 16, which read it: the rows below are there).
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.meta.json", backup.display())).unwrap(),
    )
    .unwrap();
    assert!(
        manifest["serverVersion"]
            .as_str()
            .unwrap()
            .starts_with("15."),
        "{manifest}"
    );
    assert!(
        manifest["toolVersion"]
            .as_str()
            .unwrap()
            .contains("PostgreSQL) 15."),
        "{manifest}"
    );

    // The rows are on the new server; the Services lead to its pod; the old one is kept.
    assert_eq!(rows(&new), ["before-1", "before-2"]);
    for service in [
        "auth-postgres-dev-postgresql",
        "auth-postgres-dev-postgresql-hl",
        "auth-postgres-dev-postgresql-metrics",
        "auth-postgres-external",
    ] {
        assert_eq!(selector_pod(&c, service), NEW_POD, "{service}");
    }
    // expose's LoadBalancer kept what expose gave it.
    let external = c.fake.get("Service", NS, "auth-postgres-external").unwrap();
    assert_eq!(
        external["spec"]["loadBalancerSourceRanges"],
        serde_json::json!(["203.0.113.0/24"])
    );
    assert_eq!(
        external["metadata"]["annotations"]["service.beta.kubernetes.io/azure-load-balancer-internal"],
        "true"
    );
    assert!(exists(&c, "StatefulSet", STS) && exists(&c, "PersistentVolumeClaim", PVC));
    let sts = c.fake.get("StatefulSet", NS, NEW_STS).unwrap();
    // The switch did not touch the new StatefulSet (its pod was not restarted).
    assert_eq!(sts["metadata"]["generation"], 1, "{sts}");
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "docker.io/library/postgres:16"
    );
    // The old server refuses the app (nothing written there after the backup is lost): it may
    // not log in at all, whatever a session would set.
    let refused = write_row(&old, "after-switch").unwrap_err();
    assert!(refused.contains("not permitted to log in"), "{refused}");
    write_row(&new, "after-switch").expect("the app writes on the new server");
    let data = record(&c);
    assert!(
        data["values.yaml"]
            .as_str()
            .unwrap()
            .contains("dataSet: pg16"),
        "{data}"
    );
    assert!(
        data["upgrade.yaml"]
            .as_str()
            .unwrap()
            .contains("fromMajor: 15")
    );

    // Every command now works on the new StatefulSet.
    let verify = c.run(&["verify", "-o", "json"]).await;
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    let status = c.run(&["status"]).await;
    assert!(
        status.stdout.contains("upgraded from PostgreSQL 15 to 16"),
        "{}",
        status.stdout
    );
    // install leaves the choice to upgrade while two StatefulSets run; nothing changes.
    let before = c.versions();
    c.run(&["install"])
        .await
        .refused(2, "has an upgrade under way", "upgrade --finalize");
    // Neither server may change alone while both run.
    c.run(&["resize", "--storage", "30Gi", "--yes"])
        .await
        .refused(2, "has an upgrade under way", "upgrade --finalize");
    c.run(&["rotate-password", "--role", "app", "--yes"])
        .await
        .refused(2, "has an upgrade under way", "upgrade --finalize");
    // The same command again: already switched, nothing to do.
    let again = c
        .run(&["upgrade", "--major", "16", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(again["outcome"], "alreadySwitched");
    assert_eq!(c.versions(), before);

    // The plan's class keeps a deleted claim's disk.
    c.fake
        .merge_patch(
            "StorageClass",
            "",
            "managed-standard",
            serde_json::json!({"reclaimPolicy": "Retain"}),
        )
        .unwrap();
    let old_volume =
        c.fake.get("PersistentVolumeClaim", NS, PVC).unwrap()["spec"]["volumeName"].clone();
    let done = c
        .run(&["upgrade", "--finalize", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(done["outcome"], "finalized");
    assert_eq!(
        done["releasedVolumes"],
        serde_json::json!([old_volume]),
        "{done}"
    );
    assert!(!exists(&c, "StatefulSet", STS));
    assert!(
        c.fake
            .get("PersistentVolumeClaim", NS, PVC)
            .is_none_or(|p| p["metadata"]["deletionTimestamp"].is_string()),
        "the old claim is deleted"
    );
    assert!(record(&c).get("upgrade.yaml").is_none());
    // A plain install afterwards finds the release as upgrade left it: nothing to change.
    let installed = c.install_ok(&[]).await;
    let changed: Vec<&Value> = installed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["change"] != "unchanged")
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    assert_eq!(rows(&new), ["before-1", "before-2"]);
    let kept = new
        .sql(
            "postgres",
            &new.admin_password,
            DB,
            "SELECT count(*) FROM auth_login_history WHERE session_id = 'after-switch'",
        )
        .unwrap();
    assert_eq!(kept, "1", "what the app wrote after the switch stays");

    // A snapshot of the old claim holds PostgreSQL 15 data: not restored over the new volume, and
    // not `latest`.
    crate::support::put_snapshot(
        &c.fake,
        "before-upgrade",
        PVC,
        crate::support::snapshot_labels("auth-postgres-dev", Some("manual")),
    );
    c.run(&["restore", "--snapshot", "before-upgrade", "--yes"])
        .await
        .refused(
            2,
            &format!("is of claim {PVC}, not of the release's data volume {NEW_PVC}"),
            "restore --from",
        );
    c.run(&["restore", "--snapshot", "latest", "--yes"])
        .await
        .refused(2, "has no ready snapshot to restore", "backup --list");

    // uninstall keeps the record with the data (a Secret beside the passwords): it says where
    // the data is, and the next install runs on it.
    let gone = c.run(&["uninstall", "--yes"]).await;
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    c.install_ok(&[]).await;
    assert_eq!(selector_pod(&c, "auth-postgres-dev-postgresql"), NEW_POD);
    // Without it (an older version's uninstall deleted its ConfigMap record): install does not
    // start an empty database beside the data, and runs on it once told.
    let gone = c.run(&["uninstall", "--yes"]).await;
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    c.fake.cluster().purge(
        fake_kube::store::info_of("Secret"),
        NS,
        "auth-postgres-dev-values",
    );
    c.run(&["install"]).await.refused(
        2,
        "where an upgrade to PostgreSQL 16 moved it",
        "dataSet: pg16",
    );
    let moved = c.dir.path().join("moved.yaml");
    std::fs::write(
        &moved,
        "dataSet: pg16\nimage: docker.io/library/postgres:16\n",
    )
    .unwrap();
    c.install_ok(&["--values", &moved.display().to_string()])
        .await;
    assert_eq!(selector_pod(&c, "auth-postgres-dev-postgresql"), NEW_POD);
    assert_eq!(rows(&new), ["before-1", "before-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_switches_back_and_the_old_server_takes_writes_again() {
    let (c, old) = old_release().await;
    let (run, new) = upgrade_with_new_server(&c, &["--major", "16", "--yes", "-o", "json"]).await;
    assert_eq!(run.ok_json()["outcome"], "upgraded");
    write_row(&new, "after-switch").unwrap();
    let old_sts = c.fake.get("StatefulSet", NS, STS).unwrap();

    let back = c
        .run(&["upgrade", "--rollback", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(back["outcome"], "rolledBack", "{back}");
    assert_eq!(back["serving"], STS);
    assert_eq!(back["kept"], serde_json::json!([NEW_PVC]));
    assert_eq!(
        selector_pod(&c, "auth-postgres-dev-postgresql"),
        "auth-postgres-dev-postgresql-0"
    );
    assert!(!exists(&c, "StatefulSet", NEW_STS));
    assert!(
        exists(&c, "PersistentVolumeClaim", NEW_PVC),
        "the new claim keeps what was written since the switch"
    );
    // The old StatefulSet was not rolled (same certificate, same template).
    assert_eq!(
        c.fake.get("StatefulSet", NS, STS).unwrap()["metadata"]["generation"],
        old_sts["metadata"]["generation"]
    );
    write_row(&old, "after-rollback").expect("the app writes on the old server again");
    let data = record(&c);
    assert!(data.get("upgrade.yaml").is_none(), "{data}");
    let values = data["values.yaml"].as_str().unwrap();
    assert!(
        !values.contains("dataSet") && values.contains("postgres:15"),
        "{values}"
    );
    // Nothing left to roll back or finalize (once the deleted StatefulSet's pod is gone).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while exists(&c, "Pod", NEW_POD) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let before = c.versions();
    c.run(&["upgrade", "--rollback", "--yes"]).await.refused(
        2,
        "has no upgrade to roll back",
        "status",
    );
    c.run(&["upgrade", "--finalize", "--yes"]).await.refused(
        2,
        "no switched upgrade to finalize",
        "upgrade --major N",
    );
    // Upgrading again would restore over what the app wrote on the kept claim after the switch.
    c.run(&["upgrade", "--major", "16", "--yes"]).await.refused(
        2,
        "served the application from",
        "kubectl delete pvc",
    );
    assert_eq!(c.versions(), before);

    // A tool killed between taking the app's write privileges and giving them back leaves no
    // second StatefulSet; --rollback still gives them back.
    old.sql(
        "postgres",
        &old.admin_password,
        DB,
        "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM auth_user",
    )
    .unwrap();
    assert!(write_row(&old, "frozen").is_err());
    let thawed = c
        .run(&["upgrade", "--rollback", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(thawed["outcome"], "rolledBack");
    assert_eq!(thawed["deleted"], serde_json::json!([]));
    write_row(&old, "thawed").expect("the app writes again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_that_stops_part_way_switches_nothing_and_the_same_command_goes_on() {
    let (c, old) = old_release().await;
    // The new pod never starts within the timeout.
    c.fake.hold_pod(NS, NEW_POD);
    let run = c
        .run(&["upgrade", "--major", "16", "--yes", "--timeout", "3s"])
        .await;
    run.failed_saying(
        3,
        &[
            "timed out",
            NEW_STS,
            "did not switch",
            "run the same command again",
        ],
    );
    assert_eq!(
        selector_pod(&c, "auth-postgres-dev-postgresql"),
        "auth-postgres-dev-postgresql-0"
    );
    assert!(record(&c).get("upgrade.yaml").is_none());
    write_row(&old, "before-3").expect("the old server takes the app's writes again");
    let status = c.run(&["status"]).await;
    assert!(
        status.stdout.contains(&format!(
            "an upgrade is under way, not switched: StatefulSet {NEW_STS}"
        )),
        "{}",
        status.stdout
    );
    let json = c.run(&["status", "-o", "json"]).await.json();
    assert_eq!(json["otherStatefulSets"], serde_json::json!([NEW_STS]));
    // install will not choose between the two StatefulSets.
    c.run(&["install"])
        .await
        .refused(2, "has an upgrade under way", "upgrade --rollback");

    // Run again: the StatefulSet made the first time is used, the data moved, the switch made.
    let (run, new) = upgrade_with_new_server(&c, &["--major", "16", "--yes", "-o", "json"]).await;
    let report = run.ok_json();
    assert_eq!(report["outcome"], "upgraded", "{report}");
    assert_eq!(rows(&new), ["before-1", "before-2", "before-3"]);
    assert_eq!(selector_pod(&c, "auth-postgres-dev-postgresql"), NEW_POD);

    // Abandoning an upgrade that never switched: the second StatefulSet goes, its claim stays.
    let c2 = {
        let (c2, _old2) = old_release().await;
        c2.fake.hold_pod(NS, NEW_POD);
        let run = c2
            .run(&["upgrade", "--major", "16", "--yes", "--timeout", "2s"])
            .await;
        assert_eq!(run.code, 3, "{}", run.stderr);
        let back = c2
            .run(&["upgrade", "--rollback", "--yes", "-o", "json"])
            .await
            .ok_json();
        assert_eq!(back["outcome"], "rolledBack");
        assert_eq!(
            back["deleted"],
            serde_json::json!([format!("StatefulSet/{NEW_STS}")])
        );
        assert_eq!(back["kept"], serde_json::json!([NEW_PVC]));
        c2
    };
    assert!(!exists(&c2, "StatefulSet", NEW_STS));
    c2.install_ok(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_changes_nothing() {
    // Not installed.
    let empty = Cluster::with_plan_class().await;
    empty
        .run(&["upgrade", "--major", "17", "--yes"])
        .await
        .refused(2, "is not installed", "phonebill-db install");

    let (c, old) = old_release().await;
    let before = c.versions();
    for (args, error, hint) in [
        (
            vec!["--major", "15", "--yes"],
            "already runs PostgreSQL 15",
            "above 15",
        ),
        (
            vec!["--major", "14", "--yes"],
            "cannot move data from major version 15 down to 14",
            "restore a backup",
        ),
        (
            vec!["--major", "16", "--image", "postgres:17", "--yes"],
            "does not name PostgreSQL 16",
            "postgres:16",
        ),
        (vec!["--major", "16"], "", "--yes"),
        (
            vec!["--major", "16", "--env", "prod", "--yes"],
            "managed server",
            "az postgres flexible-server upgrade",
        ),
        (
            vec!["--finalize", "--yes"],
            "no switched upgrade to finalize",
            "upgrade --major N",
        ),
        (
            vec!["--rollback", "--yes"],
            "has no upgrade to roll back",
            "status",
        ),
    ] {
        let mut all = vec!["upgrade"];
        all.extend(args.iter().copied());
        c.run(&all).await.refused(2, error, hint);
    }
    // A --to file that exists: refused before the old server is touched.
    let taken = c.dir.path().join("taken.dump");
    std::fs::write(&taken, "x").unwrap();
    c.run(&[
        "upgrade",
        "--major",
        "16",
        "--yes",
        "--to",
        &taken.display().to_string(),
    ])
    .await
    .refused(2, "a backup by that name exists", "another name with --to");
    let values = c.dir.path().join("v.yaml");
    std::fs::write(&values, "image: postgres:16\n").unwrap();
    let v = values.display().to_string();
    c.run(&["upgrade", "--major", "16", "--yes", "--values", &v])
        .await
        .refused(2, "--values is install's", "install --values FILE");
    // clap: one action, a version PostgreSQL has.
    assert_eq!(c.run(&["upgrade", "--yes"]).await.code, 2);
    assert_eq!(
        c.run(&["upgrade", "--major", "16", "--finalize"])
            .await
            .code,
        2
    );
    assert_eq!(c.run(&["upgrade", "--major", "9"]).await.code, 2);
    // install will not change the major version over the data.
    std::fs::write(&values, "image: docker.io/library/postgres:17\n").unwrap();
    c.run(&["install", "--values", &v]).await.refused(
        2,
        "holds PostgreSQL 15 data",
        "upgrade --major 17",
    );
    std::fs::write(&values, "image: docker.io/library/postgres:latest\n").unwrap();
    c.run(&["install", "--values", &v])
        .await
        .refused(2, "cannot tell whether docker.io/library/postgres:latest is the same PostgreSQL major version", "postgres:16.4@sha256");
    std::fs::write(&values, "image: docker.io/library/postgres:14\n").unwrap();
    c.run(&["install", "--values", &v]).await.refused(
        2,
        "which would not start on it",
        "keep `image` at 15",
    );
    assert_eq!(c.versions(), before);
    write_row(&old, "after-refusals").expect("no refusal left the old server read-only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_image_change_rolls_out_then_verifies_and_verify_names_a_major_mismatch() {
    let c = Cluster::with_plan_class().await;
    let values = PodServer::before_install(&c);
    c.install_ok(&[&values[0], &values[1]]).await;
    let _server = PodServer::start(&c);
    let applied = c.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let major = crate::pg::Pg::get().major();

    let minor = c.dir.path().join("minor.yaml");
    std::fs::write(
        &minor,
        format!("image: docker.io/library/postgres:{major}.99-bookworm\n"),
    )
    .unwrap();
    let report = c
        .install_ok(&["--values", &minor.display().to_string()])
        .await;
    assert_eq!(
        report["imageChangedFrom"],
        format!("docker.io/library/postgres:{major}"),
        "{report}"
    );
    let checks = report["checks"].as_array().expect("verify ran");
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "server version" && c["status"] == "pass"),
        "{report}"
    );
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{report}");
    // The same image again: nothing rolled, no verify.
    let again = c.install_ok(&[]).await;
    assert!(again.get("checks").is_none(), "{again}");

    // A profile whose image is another major version than the server's: verify fails and says how.
    let other = c.dir.path().join("other.yaml");
    std::fs::write(
        &other,
        format!("image: docker.io/library/postgres:{}\n", major + 1),
    )
    .unwrap();
    let run = c
        .run(&[
            "verify",
            "-o",
            "json",
            "--values",
            &other.display().to_string(),
        ])
        .await;
    assert_eq!(run.code, 4, "{}", run.stdout);
    let version = run.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "server version")
        .unwrap()
        .clone();
    assert_eq!(version["status"], "fail");
    assert!(
        version["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("is major {}", major + 1)),
        "{version}"
    );
    assert!(
        run.hint_line().contains("upgrade --major N"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_the_new_server_starts_then_the_same_command_finishes_it() {
    let (c, old) = old_release().await;
    c.fake.hold_pod(NS, NEW_POD);
    let kc = c.kubeconfig.display().to_string();
    let child = bin_command(
        c.dir.path(),
        &["upgrade", "--major", "16", "--yes", "--kubeconfig", &kc],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !exists(&c, "Pod", NEW_POD) {
        assert!(std::time::Instant::now() < deadline, "no new pod");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = crate::support::ctrl_c(child).await;
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("interrupted") && stderr.contains("run the same command again"),
        "{stderr}"
    );
    // Nothing switched, and the old server is the application's again.
    assert_eq!(
        selector_pod(&c, "auth-postgres-dev-postgresql"),
        "auth-postgres-dev-postgresql-0"
    );
    assert!(record(&c).get("upgrade.yaml").is_none());
    assert!(stderr.contains("untouched"), "{stderr}");
    write_row(&old, "while-stopped").expect("the app writes on the old server again");

    let (run, new) = upgrade_with_new_server(&c, &["--major", "16", "--yes", "-o", "json"]).await;
    assert_eq!(run.ok_json()["outcome"], "upgraded");
    assert_eq!(rows(&new), ["before-1", "before-2"]);
    let kept = new
        .sql(
            "postgres",
            &new.admin_password,
            DB,
            "SELECT count(*) FROM auth_login_history WHERE session_id = 'while-stopped'",
        )
        .unwrap();
    assert_eq!(
        kept, "1",
        "what the app wrote between the attempts moved too"
    );
    assert_eq!(selector_pod(&c, "auth-postgres-dev-postgresql"), NEW_POD);
}

/// The freeze stops every way the app role writes, not only its table privileges: a group role's
/// grant, an admin-owned SECURITY DEFINER function, nextval, a large object, a read-only default
/// switched off — and a session opened before the upgrade, with a write not yet committed, cannot
/// commit it after the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_freeze_stops_every_path_the_app_writes_by() {
    let (c, old) = old_release().await;
    let admin = |sql: &str| old.sql("postgres", &old.admin_password, DB, sql).unwrap();
    admin(
        "CREATE ROLE writers NOLOGIN; GRANT INSERT ON auth_login_history TO writers; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO writers; GRANT writers TO auth_user;
         CREATE FUNCTION public.log_in(id text) RETURNS void LANGUAGE sql SECURITY DEFINER AS
           $$ INSERT INTO auth_login_history (login_type, login_status, session_id) VALUES ('LOGIN', 'SUCCESS', id) $$;
         CREATE SEQUENCE public.atk_seq; GRANT USAGE ON SEQUENCE public.atk_seq TO auth_user;",
    );
    let paths = [
        (
            "group",
            "SET ROLE writers; INSERT INTO auth_login_history (login_type, login_status, session_id) VALUES ('LOGIN', 'SUCCESS', 'via-group')",
        ),
        ("definer", "SELECT public.log_in('via-definer')"),
        ("nextval", "SELECT nextval('public.atk_seq')"),
        ("large object", "SELECT lo_from_bytea(0, 'x')"),
        (
            "read-only off",
            "SET default_transaction_read_only = off; INSERT INTO auth_login_history (login_type, login_status, session_id) VALUES ('LOGIN', 'SUCCESS', 'via-default')",
        ),
    ];
    // Each path writes before the upgrade.
    for (name, sql) in paths {
        old.sql("auth_user", &old.app_password, DB, sql)
            .unwrap_or_else(|e| panic!("{name} before the upgrade: {e}"));
    }
    let count = |what: &str| -> String {
        admin(&format!(
            "SELECT (SELECT count(*) FROM auth_login_history WHERE session_id LIKE 'via-%') || '/' || \
             (SELECT last_value FROM public.atk_seq) || '/' || (SELECT count(*) FROM pg_largeobject_metadata) || ' {what}'"
        ))
    };
    let before = count("");
    // A session from before the upgrade, its write not yet committed.
    use std::io::Write;
    let mut open = old.session("auth_user", &old.app_password, DB);
    let stdin = open.stdin.as_mut().unwrap();
    stdin
        .write_all(b"BEGIN;\nINSERT INTO auth_login_history (login_type, login_status, session_id) VALUES ('LOGIN', 'SUCCESS', 'via-open');\n")
        .unwrap();
    stdin.flush().unwrap();
    let (run, _new) = upgrade_with_new_server(&c, &["--major", "16", "--yes", "-o", "json"]).await;
    assert_eq!(run.ok_json()["outcome"], "upgraded");
    for (name, sql) in paths {
        let e = old
            .sql("auth_user", &old.app_password, DB, sql)
            .expect_err(name);
        assert!(e.contains("not permitted to log in"), "{name}: {e}");
    }
    let stdin = open.stdin.as_mut().unwrap();
    let _ = stdin.write_all(b"COMMIT;\n");
    drop(open.stdin.take());
    let out = open.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the open session's COMMIT went through"
    );
    assert_eq!(
        count(""),
        before,
        "nothing was written on the old server after the freeze"
    );
    assert_eq!(
        admin("SELECT count(*) FROM auth_login_history WHERE session_id = 'via-open'"),
        "0"
    );
}
