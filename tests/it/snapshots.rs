//! Snapshots on a schedule: the CronJob install renders (schema-valid, least privilege), its job's
//! command run as the CronJob runs it, retention that touches only the release's own snapshots,
//! `backup --list`, and what status and verify say of the schedule.

use serde_json::{Value, json};

use crate::support::{Cluster, NS, PVC, put_snapshot, snapshot_labels};

const SCHEDULE: &str = "auth-postgres-dev-snapshots";

/// A release with the snapshot class, ready for snapshots.
async fn installed() -> Cluster {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c
}

fn names_with_origin(c: &Cluster, origin: &str) -> Vec<String> {
    c.fake
        .list("VolumeSnapshot", NS)
        .iter()
        .filter(|s| s["metadata"]["labels"]["phonebill-db/origin"] == origin)
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_renders_the_schedule_with_least_privilege_and_switching_it_off_prunes_it() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let cj = c.fake.get("CronJob", NS, SCHEDULE).expect("the CronJob");
    assert_eq!(cj["spec"]["schedule"], "0 3 * * *");
    assert_eq!(cj["spec"]["timeZone"], "Asia/Seoul");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    assert!(cj["spec"]["startingDeadlineSeconds"].as_i64().unwrap() > 0);
    assert!(cj["spec"]["successfulJobsHistoryLimit"].as_i64().unwrap() <= 3);
    assert!(
        cj["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
            .as_i64()
            .unwrap()
            > 0
    );
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "phonebilldev.azurecr.io/phonebill-db:0.1.0"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        &args[..5],
        ["backup", "--snapshot", "--scheduled", "--keep", "7"]
    );
    // Hardened as the database pod: non-root, read-only root, no escalation, no capabilities,
    // seccomp, requests and limits; its own ServiceAccount with a short-lived token.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["serviceAccountName"], SCHEDULE);
    assert_eq!(pod["automountServiceAccountToken"], false);
    // Least privilege: the claim by name, and the snapshots; nothing else.
    let role = c.fake.get("Role", NS, SCHEDULE).unwrap();
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "resourceNames": [PVC], "verbs": ["get"]},
            {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"], "verbs": ["create", "get", "list", "delete"]}
        ])
    );
    let binding = c.fake.get("RoleBinding", NS, SCHEDULE).unwrap();
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": SCHEDULE, "namespace": NS}])
    );

    // Off: install prunes the CronJob, its account, rights and values; snapshots stay.
    put_snapshot(
        &c.fake,
        "kept",
        PVC,
        snapshot_labels("auth-postgres-dev", None),
    );
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "snapshots:\n  enabled: false\n").unwrap();
    let report = c.install_ok(&["--values", values.to_str().unwrap()]).await;
    let mut pruned = crate::support::pruned(&report);
    pruned.sort();
    assert_eq!(pruned, [SCHEDULE; 5], "{report}");
    for kind in [
        "CronJob",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "ConfigMap",
    ] {
        assert!(c.fake.get(kind, NS, SCHEDULE).is_none(), "{kind}");
    }
    assert!(c.fake.get("VolumeSnapshot", NS, "kept").is_some());
}

/// The CronJob's container, run as the CronJob runs it: its args exactly, its values file from
/// the ConfigMap it mounts, and only the rights of its Role.
async fn run_the_job(c: &Cluster) -> crate::support::Run {
    let cj = c.fake.get("CronJob", NS, SCHEDULE).unwrap();
    let container = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let values = c.fake.get("ConfigMap", NS, SCHEDULE).unwrap()["data"]["values.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    let mounted = c.dir.path().join("job-values.yaml");
    std::fs::write(&mounted, values).unwrap();
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("/etc/phonebill-db/values.yaml", mounted.to_str().unwrap())
        })
        .collect();
    let kc = c.kubeconfig.display().to_string();
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    // In the cluster it has in-cluster credentials; here the fake's user, with the same rights.
    all.extend(["--kubeconfig", &kc]);
    crate::support::run_bin(c.dir.path(), &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_command_snapshots_and_keeps_the_newest_with_only_its_roles_rights() {
    let c = installed().await;
    // Keep 3 (the profile's 7 works the same; fewer runs make the test quicker).
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "snapshots:\n  keep: 3\n").unwrap();
    c.install_ok(&["--values", values.to_str().unwrap()]).await;
    // Someone else's snapshot in the namespace, and one of another release: never touched.
    put_snapshot(&c.fake, "someone-elses", PVC, json!({}));
    put_snapshot(
        &c.fake,
        "other-release",
        "data-other-postgresql-0",
        snapshot_labels("other", Some("scheduled")),
    );
    // A manual snapshot of this release: a scheduled --keep does not count or prune it.
    let manual = c
        .run(&["backup", "--snapshot", "-o", "json"])
        .await
        .ok_json();
    let role = c.fake.get("Role", NS, SCHEDULE).unwrap();
    c.fake.allow_only(NS, role["rules"].clone());
    let mut taken = Vec::new();
    for _ in 0..5 {
        let run = run_the_job(&c).await;
        let report = run.ok_json();
        assert_eq!(report["origin"], "scheduled");
        taken.push(report["snapshot"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // distinct creation times
    }
    let mut kept = names_with_origin(&c, "scheduled");
    kept.retain(|n| n != "other-release");
    kept.sort();
    let mut newest: Vec<String> = taken[2..].to_vec();
    newest.sort();
    assert_eq!(kept, newest, "the newest 3 of the schedule's");
    for survivor in [
        "someone-elses",
        "other-release",
        manual["snapshot"].as_str().unwrap(),
    ] {
        assert!(
            c.fake.get("VolumeSnapshot", NS, survivor).is_some(),
            "{survivor}"
        );
    }
    // The Role is all it needed: a right less (list) and it cannot prune.
    c.fake.allow_only(NS, json!([
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "resourceNames": [PVC], "verbs": ["get"]},
        {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"], "verbs": ["create", "get", "delete"]}
    ]));
    let run = run_the_job(&c).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.error_line().contains("403"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_list_status_and_verify_see_the_snapshots_and_the_schedule() {
    let c = installed().await;
    let empty = c.run(&["backup", "--list", "-o", "json"]).await.ok_json();
    assert_eq!(empty, json!([]));
    c.run(&["backup", "--snapshot"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // creation times have seconds
    let job = run_the_job(&c).await;
    assert_eq!(job.code, 0, "{}", job.stderr);
    let rows = c.run(&["backup", "--list", "-o", "json"]).await.ok_json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["origin"], "scheduled", "newest first");
    assert_eq!(rows[1]["origin"], "manual");
    for r in rows {
        assert_eq!(r["claim"], PVC);
        assert_eq!(r["ready"], true);
        assert_eq!(r["restoreSize"], "20Gi");
        assert!(!r["created"].as_str().unwrap().is_empty());
    }
    let text = c.run(&["backup", "--list"]).await;
    assert!(text.stdout.starts_with("NAME"), "{}", text.stdout);

    // status: the schedule, its last run and result, the next run, the newest snapshot's age.
    c.fake.cronjob_ran(NS, SCHEDULE, true);
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    let sched = &status["snapshotSchedule"];
    assert_eq!(sched["schedule"], "0 3 * * *", "{status}");
    assert_eq!(sched["timeZone"], "Asia/Seoul");
    assert_eq!(sched["lastResult"], "succeeded");
    assert!(sched["lastRun"].is_string());
    let next: jiff::Timestamp = sched["nextRun"].as_str().unwrap().parse().unwrap();
    let in_seoul = next.to_zoned(jiff::tz::TimeZone::get("Asia/Seoul").unwrap());
    assert_eq!((in_seoul.hour(), in_seoul.minute()), (3, 0));
    assert!(sched["newestReadyAgeSeconds"].as_i64().unwrap() < 60);
    c.fake.cronjob_ran(NS, SCHEDULE, false);
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["snapshotSchedule"]["lastResult"], "failed");
    let text = c.run(&["status"]).await.stdout;
    assert!(
        text.lines()
            .any(|l| l.starts_with("Schedule ") && l.contains("0 3 * * * Asia/Seoul")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_warns_when_the_newest_scheduled_snapshot_is_old() {
    let c = installed().await;
    let check = |report: &Value| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "snapshot schedule")
            .cloned()
            .unwrap_or_else(|| panic!("{report}"))
    };
    // Just installed, nothing yet: fine (the first run is still to come).
    let report = c.run(&["verify", "-o", "json"]).await.json();
    assert_eq!(check(&report)["status"], "pass", "{report}");
    // A ready snapshot made 30 hours ago, none since: a warning, not a failure.
    put_snapshot(
        &c.fake,
        "old",
        PVC,
        snapshot_labels("auth-postgres-dev", Some("scheduled")),
    );
    let thirty_hours_ago =
        (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(30)).to_string();
    let mut old = c.fake.get("VolumeSnapshot", NS, "old").unwrap();
    old["metadata"]["creationTimestamp"] = json!(thirty_hours_ago);
    old["status"] =
        json!({"readyToUse": true, "creationTime": thirty_hours_ago, "restoreSize": "20Gi"});
    c.fake
        .cluster()
        .system_write(fake_kube::store::info_of("VolumeSnapshot"), NS, old);
    let run = c.run(&["verify", "-o", "json"]).await;
    let report = run.json();
    let snap = check(&report);
    assert_eq!(snap["status"], "warn", "{report}");
    assert!(
        snap["detail"].as_str().unwrap().contains("30 hours"),
        "{snap}"
    );
    // A fresh one: fine again.
    c.run(&["backup", "--snapshot", "--scheduled"]).await;
    let report = c.run(&["verify", "-o", "json"]).await.json();
    assert_eq!(check(&report)["status"], "pass", "{report}");
}

/// A schedule the API server would refuse (robfig/cron: day of week 0–6, so `7` is "end of range
/// (7) above maximum (6)") is refused by install before any change, in its words — not by the API
/// server at the CronJob, the last object applied, after the database ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_the_api_server_would_refuse_is_refused_before_anything() {
    let c = Cluster::with_plan_class().await;
    let values = c.dir.path().join("sunday.yaml");
    std::fs::write(&values, "snapshots:\n  schedule: \"0 3 * * 7\"\n").unwrap();
    let run = c
        .run(&["install", "--values", &values.display().to_string()])
        .await;
    run.refused(
        2,
        "key `snapshots.schedule`: `0 3 * * 7` is not allowed",
        "day of week: end of range (7) above maximum (6): 7",
    );
    assert!(
        run.error_line().contains("snapshots.schedule"),
        "{}",
        run.stderr
    );
    assert!(
        c.fake.inventory(NS).is_empty(),
        "{:?}",
        c.fake.inventory(NS)
    );
    // The fake refuses such a CronJob as the API server does (what caught the tool out before).
    c.install_ok(&[]).await;
    let refused = c
        .fake
        .merge_patch(
            "CronJob",
            NS,
            SCHEDULE,
            json!({"spec": {"schedule": "0 3 * * 7"}}),
        )
        .unwrap_err();
    assert_eq!(refused.code, 422);
    assert!(
        refused.body()["message"]
            .as_str()
            .unwrap()
            .contains("end of range (7) above maximum (6): 7"),
        "{}",
        refused.body()
    );
}

const JOB_IMAGE: &str = "phonebilldev.azurecr.io/phonebill-db:0.1.0";

/// Job pods run the real binary: the container's arguments, the files its volumes mount written
/// where the binary can read them, and (with `credentials`) the fake's kubeconfig for the
/// in-cluster credentials it has in a real pod; without, it has none.
fn run_job_pods_for_real(c: &Cluster, credentials: bool) {
    let home = c.dir.path().to_path_buf();
    let kubeconfig = c.kubeconfig.clone();
    c.fake
        .run_jobs_with(std::sync::Arc::new(move |job: &fake_kube::jobs::JobPod| {
            let root = tempfile::tempdir_in(&home).unwrap();
            let mut args = job.args.clone();
            for (path, content) in &job.files {
                let local = root.path().join(path.trim_start_matches('/'));
                std::fs::create_dir_all(local.parent().unwrap()).unwrap();
                std::fs::write(&local, content).unwrap();
                for a in &mut args {
                    *a = a.replace(path.as_str(), local.to_str().unwrap());
                }
            }
            if credentials {
                args.extend(["--kubeconfig".to_string(), kubeconfig.display().to_string()]);
            }
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonebill-db"))
                .args(&args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", root.path())
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run the job's command");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.code().unwrap_or(-1), text)
        }));
}

fn jobs(c: &Cluster) -> Vec<String> {
    c.fake
        .list("Job", NS)
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The schedule is proven at install: its job runs once, for real, and takes a snapshot; status
/// shows the run; a re-install of an unchanged, proven schedule does not run it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_runs_the_schedule_once_and_its_snapshot_is_there() {
    let c = Cluster::with_plan_class().await;
    run_job_pods_for_real(&c, true);
    let report = c.install_ok(&[]).await;
    let run = &report["firstSnapshot"];
    assert_eq!(run["result"], "succeeded", "{report}");
    let job = run["job"].as_str().unwrap();
    assert!(job.starts_with(&format!("{SCHEDULE}-install-")), "{job}");
    let made = c.fake.get("Job", NS, job).unwrap();
    assert_eq!(made["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(
        names_with_origin(&c, "scheduled").len(),
        1,
        "the job's snapshot"
    );
    let cj = c.fake.get("CronJob", NS, SCHEDULE).unwrap();
    let kept: Value = serde_json::from_str(
        cj["metadata"]["annotations"]["phonebill-db/first-run"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(kept["result"], "succeeded");

    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    let schedule = &status["snapshotSchedule"];
    assert_eq!(schedule["firstRun"]["result"], "succeeded", "{schedule}");
    assert_eq!(schedule["lastResult"], "succeeded", "{schedule}");
    assert!(schedule["newestReady"].is_string(), "{schedule}");

    let again = c.install_ok(&[]).await;
    assert!(again.get("firstSnapshot").is_none(), "{again}");
    assert_eq!(jobs(&c), [job], "no second run");
    assert_eq!(names_with_origin(&c, "scheduled").len(), 1);
}

/// An image the nodes cannot pull and a job that fails are said at install, with the cause (the
/// registry's answer; the tool's own error line) and what to do; the database stays installed,
/// the failed Job goes, status and the next install know; `--skip-first-snapshot` leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_that_cannot_run_is_said_at_install_with_its_cause() {
    let c = Cluster::with_plan_class().await;
    c.fake
        .fail_job_pulls(JOB_IMAGE, fake_kube::PullFailure::Unauthorized);
    let run = c.run(&["install", "--timeout", "30s"]).await;
    run.failed_saying(
        1,
        &[
            "installed, but the snapshot schedule's first run failed: the job's image phonebilldev.azurecr.io/phonebill-db:0.1.0 cannot be used (ImagePullBackOff)",
            "401 Unauthorized",
        ],
    );
    let hint = run.hint_line();
    for part in [
        "--attach-acr phonebilldev",
        "docker push",
        "snapshots.enabled: false",
    ] {
        assert!(hint.contains(part), "no `{part}` in {hint}");
    }
    assert!(run.stdout.contains("is ready after"), "{}", run.stdout);
    assert!(run.stdout.contains("its first run"), "{}", run.stdout);
    let gone = async {
        while !jobs(&c).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), gone)
        .await
        .expect("the failed Job is deleted");
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    let schedule = &status["snapshotSchedule"];
    assert_eq!(schedule["firstRun"]["result"], "failed", "{schedule}");
    assert_eq!(schedule["lastResult"], "failed (at install)", "{schedule}");
    let text = c.run(&["status"]).await;
    assert!(
        text.stdout
            .contains("first run at install failed: the job's image"),
        "{}",
        text.stdout
    );

    // Left for later: nothing runs, exit 0.
    let left = c.run(&["install", "--skip-first-snapshot"]).await;
    assert_eq!(left.code, 0, "{}", left.stderr);
    assert!(jobs(&c).is_empty());

    // The image pulls now, but the job has no credentials: its own error line is the cause.
    c.fake.cluster().kubelet.jobs.pull_failures.clear();
    run_job_pods_for_real(&c, false);
    let run = c.run(&["install", "--timeout", "30s"]).await;
    run.failed_saying(
        1,
        &["the snapshot schedule's first run failed: the snapshot job failed (BackoffLimitExceeded, exit 1): "],
    );
    assert!(run.error_line().contains("kubeconfig"), "{}", run.stderr);

    // Proven at last: the next install runs it again, since the last run failed.
    run_job_pods_for_real(&c, true);
    let report = c.install_ok(&[]).await;
    assert_eq!(report["firstSnapshot"]["result"], "succeeded", "{report}");
}

/// Without the snapshot class (as AKS ships) install refuses before changing anything and says
/// how to make it or go without the schedule; either way works; a cluster without the snapshot
/// API is told so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_checks_the_snapshot_class_and_api_first() {
    let c = Cluster::aks().await;
    c.fake.add_storage_class("managed-standard");
    let run = c.run(&["install"]).await;
    run.refused(
        1,
        "VolumeSnapshotClass `csi-azuredisk-vsc` does not exist (there are none); nothing was changed",
        "add --create-snapshot-class",
    );
    assert!(run.hint_line().contains("snapshots: {enabled: false}"));
    assert!(c.fake.inventory(NS).is_empty());

    let off = c.dir.path().join("off.yaml");
    std::fs::write(&off, "snapshots:\n  enabled: false\n").unwrap();
    let report = c.install_ok(&["--values", off.to_str().unwrap()]).await;
    assert!(report.get("firstSnapshot").is_none());
    assert!(c.fake.get("CronJob", NS, SCHEDULE).is_none());

    // Back on (the record kept `enabled: false`): the class made with it.
    let report = c
        .install_ok(&["--reset-values", "--create-snapshot-class"])
        .await;
    assert_eq!(report["snapshotClassCreated"], true);
    assert_eq!(report["firstSnapshot"]["result"], "succeeded");
    let class = c
        .fake
        .get("VolumeSnapshotClass", "", "csi-azuredisk-vsc")
        .unwrap();
    assert_eq!(class["driver"], "disk.csi.azure.com");

    let c = Cluster::with_plan_class().await;
    c.fake.inject(
        "/volumesnapshotclasses",
        Some("GET"),
        1,
        fake_kube::Fault::Status {
            code: 404,
            retry_after: None,
        },
    );
    c.run(&["install"]).await.refused(
        1,
        "this cluster has no VolumeSnapshot API (snapshot.storage.k8s.io/v1), which the snapshot schedule needs; nothing was changed",
        "snapshots: {enabled: false}",
    );
    assert!(c.fake.inventory(NS).is_empty());
}
