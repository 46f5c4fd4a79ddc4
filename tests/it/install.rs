//! `install` end to end: the real binary against the fake API server and its kubelet.

use std::time::Duration;

use fake_kube::{PodBehavior, VolumeBehavior};
use serde_json::json;

use crate::support::{ADMIN_SECRET, APP_SECRET, Cluster, NS, PVC, STS, expected_inventory};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_creates_exactly_the_release_and_waits_for_readiness() {
    let c = Cluster::with_plan_class().await;
    c.fake.set_pods(PodBehavior::Ready {
        after: Duration::from_millis(1500),
    });
    let report = c.install_ok(&[]).await;
    assert_eq!(report["ready"], true);
    assert_eq!(report["namespaceCreated"], true);
    assert_eq!(report["passwords"], "generated");
    assert!(
        report["waitedSeconds"].as_f64().unwrap() >= 1.0,
        "it waited for the kubelet: {report}"
    );
    let changes: Vec<&str> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, vec!["created"; 17]);
    assert_eq!(
        crate::support::release_inventory(&c.fake),
        expected_inventory()
    );
    let sts = c.fake.get("StatefulSet", NS, STS).unwrap();
    assert_eq!(sts["status"]["readyReplicas"], 1);
    assert_eq!(
        c.fake.get("PersistentVolumeClaim", NS, PVC).unwrap()["status"]["phase"],
        "Bound"
    );
    // Applied by one field manager, server-side.
    let managers: Vec<String> = sts["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(managers, vec!["phonebill-db/Apply"]);
    // Passwords: random, distinct, stored only in the Secrets, never printed.
    let admin = c.secret_data(ADMIN_SECRET);
    let pw = |k: &str| String::from_utf8(base64_decode(admin[k].as_str().unwrap())).unwrap();
    assert_eq!(pw("postgres-password").len(), 32);
    assert_ne!(pw("postgres-password"), pw("password"));
    let url = String::from_utf8(base64_decode(
        c.secret_data(APP_SECRET)["database-url"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(
        url,
        format!(
            "postgresql://auth_user:{}@auth-postgres-dev-postgresql:5432/phonebill_auth?sslmode=verify-full",
            pw("password")
        )
    );
    // TLS: the CA in the app's Secret signed the server's certificate, made for the Service names.
    let crt = c.secret_text("auth-postgres-dev-postgresql-tls", "tls.crt");
    let app_ca = c.secret_text(APP_SECRET, "ca.crt");
    assert!(phonebill_db::certs::signed_by(&crt, &app_ca));
    let info = phonebill_db::certs::inspect(&crt).unwrap();
    assert!(
        info.names
            .contains(&"auth-postgres-dev-postgresql".to_string())
    );
    assert!(info.days_left(std::time::SystemTime::now()) >= 364);
    assert_eq!(report["tls"]["action"], "generated");
    // The app password's verifier for the pod's first start: a SCRAM verifier, not the password.
    assert!(pw("app-password-scram").starts_with("SCRAM-SHA-256$4096:"));
    assert!(
        c.fake
            .get("Secret", NS, ADMIN_SECRET)
            .unwrap()
            .get("stringData")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_install_changes_nothing_and_keeps_the_passwords() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let secrets = (c.secret_data(ADMIN_SECRET), c.secret_data(APP_SECRET));
    let run = c.reinstall_changes_nothing().await;
    assert!(
        run.stdout.contains("kept the existing passwords"),
        "{}",
        run.stdout
    );
    assert_eq!(
        (c.secret_data(ADMIN_SECRET), c.secret_data(APP_SECRET)),
        secrets
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_value_reconfigures_only_what_it_touches_and_waits_for_the_new_pod() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let old_pod_uid =
        c.fake.get("Pod", NS, &format!("{STS}-0")).unwrap()["metadata"]["uid"].clone();
    // The old pod stays Ready while it terminates for a second, as PostgreSQL shutting down does.
    c.fake.set_termination(Duration::from_millis(1000));
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "postgresql:\n  maxConnections: 150\n").unwrap();
    let report = c.install_ok(&["--values", values.to_str().unwrap()]).await;
    let changed: Vec<String> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["change"] != "unchanged")
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    // The ConfigMap changes, and the StatefulSet's config checksum with it (the pod rolls); the
    // record holds the new values.
    assert_eq!(
        changed,
        vec![
            "auth-postgres-dev-postgresql-configuration",
            STS,
            "auth-postgres-dev-values"
        ]
    );
    assert!(crate::support::postgresql_conf(&c).contains("max_connections = 150"));
    // Install returned only once the new pod of the new revision was ready.
    assert!(report["waitedSeconds"].as_f64().unwrap() >= 1.0, "{report}");
    let pod = c.fake.get("Pod", NS, &format!("{STS}-0")).unwrap();
    let sts = c.fake.get("StatefulSet", NS, STS).unwrap();
    assert_ne!(pod["metadata"]["uid"], old_pod_uid, "a new pod");
    assert_eq!(
        pod["metadata"]["labels"]["controller-revision-hash"],
        sts["status"]["updateRevision"]
    );
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_storage_class_fails_before_anything_is_created() {
    let c = Cluster::aks().await;
    let run = c.run(&["install"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.error_line(),
        "error: StorageClass `managed-standard` does not exist on this cluster; nothing was changed"
    );
    let hint = run.hint_line();
    assert!(
        hint.contains("azurefile-csi, default, managed-csi, managed-csi-premium"),
        "{hint}"
    );
    assert!(
        hint.contains("--storage-class") && hint.contains("--create-storage-class"),
        "{hint}"
    );
    assert!(
        c.fake.get("Namespace", "", NS).is_none(),
        "not even the namespace"
    );
    let writes = c.fake.cluster().writes.clone();
    assert!(writes.is_empty(), "no write at all: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_class_can_be_chosen_or_created() {
    let c = Cluster::aks().await;
    let report = c
        .install_ok(&["--storage-class", "managed-csi", "--create-snapshot-class"])
        .await;
    assert_eq!(report["storageClass"], "managed-csi");
    assert_eq!(
        c.fake.get("PersistentVolumeClaim", NS, PVC).unwrap()["spec"]["storageClassName"],
        "managed-csi"
    );

    let c = Cluster::aks().await;
    let report = c
        .install_ok(&["--create-storage-class", "--create-snapshot-class"])
        .await;
    assert_eq!(report["storageClassCreated"], true);
    let sc = c.fake.get("StorageClass", "", "managed-standard").unwrap();
    assert_eq!(sc["provisioner"], "disk.csi.azure.com");
    assert_eq!(sc["parameters"]["skuName"], "Standard_LRS");
    assert_eq!(sc["reclaimPolicy"], "Retain");
    assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(sc["allowVolumeExpansion"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_rbac_names_every_verb_and_resource_and_changes_nothing() {
    let c = Cluster::with_plan_class().await;
    c.create_namespace();
    c.fake.deny("create", "apps", "statefulsets");
    c.fake.deny("patch", "", "secrets");
    let run = c.run(&["install"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.error_line(),
        "error: not allowed to patch secrets in namespace phonebill-dev; create statefulsets.apps in namespace phonebill-dev; nothing was changed"
    );
    assert!(run.hint_line().contains("RBAC"));
    assert!(c.fake.inventory(NS).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let c = Cluster::with_plan_class().await;
    let run = c.run(&["install", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("would create namespace phonebill-dev")
            && !run.stderr.contains("creating namespace"),
        "{}",
        run.stderr
    );
    // The namespace does not exist: the server could check nothing of what it would hold, and the
    // report says so instead of calling them created.
    assert!(run.stdout.contains("namespace phonebill-dev does not exist yet, so the API server could not check the 17 objects"), "{}", run.stdout);
    assert_eq!(
        run.stdout
            .matches("would be created (not checked: no namespace yet)")
            .count(),
        17,
        "{}",
        run.stdout
    );
    let json = c
        .run(&["install", "--dry-run", "-o", "json"])
        .await
        .ok_json();
    assert!(
        json["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["change"] == "unchecked"),
        "{json}"
    );
    assert!(c.fake.get("Namespace", "", NS).is_none());

    c.install_ok(&[]).await;
    let before = c.versions();
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "postgresql:\n  workMem: 8MB\n").unwrap();
    let run = c
        .run(&[
            "install",
            "--dry-run",
            "-o",
            "json",
            "--values",
            values.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = run.json();
    let changed: Vec<&str> = j["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["change"] == "configured")
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(changed, vec!["ConfigMap", "StatefulSet", "Secret"]);
    // Each change as a diff of the live object and the server's answer: the setting, the pod
    // template's checksum, the recorded values.
    let diff = |kind: &str, name: &str| {
        j["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == kind && o["name"] == name)
            .and_then(|o| o["diff"].as_str())
            .unwrap_or_else(|| panic!("no diff of {name}: {j}"))
            .to_string()
    };
    let config = diff("ConfigMap", "auth-postgres-dev-postgresql-configuration");
    assert!(
        config
            .lines()
            .any(|l| l.starts_with('-') && l.contains("work_mem = '4MB'"))
            && config
                .lines()
                .any(|l| l.starts_with('+') && l.contains("work_mem = '8MB'")),
        "{config}"
    );
    let sts = diff("StatefulSet", STS);
    assert!(
        sts.lines()
            .any(|l| l.starts_with('+') && l.contains("config-checksum")),
        "{sts}"
    );
    // The record is a Secret: its diff masks the values, as for every Secret.
    let record = diff("Secret", "auth-postgres-dev-values");
    assert!(record.contains("values.yaml: '*** (before)'"), "{record}");
    assert!(
        j["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["change"] == "configured" || o.get("diff").is_none()),
        "only changes have diffs: {j}"
    );
    assert_eq!(c.versions(), before, "a server-side dry run stores nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_owned_by_another_manager_stops_install_unless_forced() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    // Someone ran `kubectl apply --server-side` with a different max_connections.
    {
        let mut cl = c.fake.cluster();
        let info = fake_kube::store::info_of("ConfigMap");
        let opts = fake_kube::store::WriteOpts {
            manager: "kubectl",
            dry_run: false,
        };
        let patch = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "auth-postgres-dev-postgresql-configuration"}, "data": {"postgresql.conf": "max_connections = 5\n"}});
        cl.apply(
            info,
            NS,
            "auth-postgres-dev-postgresql-configuration",
            patch,
            true,
            &opts,
        )
        .unwrap();
    }
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "postgresql:\n  maxConnections: 120\n").unwrap();
    let run = c
        .run(&["install", "--values", values.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 1);
    let line = run.error_line();
    assert!(
        line.contains("applying ConfigMap auth-postgres-dev-postgresql-configuration")
            && line.contains("conflict with \"kubectl\": .data.postgresql.conf"),
        "{line}"
    );
    assert!(run.hint_line().contains("--force-conflicts"));
    c.install_ok(&["--values", values.to_str().unwrap(), "--force-conflicts"])
        .await;
    assert!(crate::support::postgresql_conf(&c).contains("max_connections = 120"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_volume_without_its_secret_is_refused() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake
        .cluster()
        .purge(fake_kube::store::info_of("Secret"), NS, ADMIN_SECRET);
    let before = c.versions();
    let run = c.run(&["install"]).await;
    assert_eq!(run.code, 1);
    assert!(run.error_line().contains("the data volume data-auth-postgres-dev-postgresql-0 exists but Secret auth-postgres-dev-postgresql with its passwords is gone"), "{}", run.stderr);
    assert!(run.hint_line().contains("--delete-data"));
    assert_eq!(c.versions(), before);
}

/// Install with a kubelet that fails in one way; expect exit 3 and the diagnosis.
async fn timeout_diagnosis(
    pods: PodBehavior,
    volumes: VolumeBehavior,
    class: Option<&str>,
) -> (crate::support::Run, serde_json::Value) {
    let c = Cluster::with_plan_class().await;
    c.fake.set_pods(pods);
    c.fake.set_volumes(volumes);
    let mut args = vec!["install", "--timeout", "2s", "-o", "json"];
    if let Some(class) = class {
        // A class that is there at preflight and gone by the time the claim is made.
        c.fake.add_storage_class(class);
        args.extend(["--storage-class", class]);
    }
    let fake = &c.fake;
    let run = if class.is_some() {
        let remover = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                assert!(
                    std::time::Instant::now() < deadline,
                    "install never made the namespace"
                );
                if fake.get("Namespace", "", NS).is_some() {
                    fake.cluster().purge(
                        fake_kube::store::info_of("StorageClass"),
                        "",
                        class.unwrap(),
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let (run, _) = tokio::join!(c.run(&args), remover);
        run
    } else {
        c.run(&args).await
    };
    assert_eq!(run.code, 3, "timeout exit code; stderr:\n{}", run.stderr);
    let report = run.json();
    assert_eq!(report["ready"], false);
    (run, report)
}

/// The cause of a failed pull is in the kubelet's first "Failed" event and in the container
/// status, not in its latest events ("Error: ImagePullBackOff"): each cause named, with what to do
/// on AKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_diagnoses_an_image_that_cannot_be_pulled_by_its_cause() {
    use fake_kube::PullFailure;
    for (failure, cause, hint) in [
        (
            PullFailure::NotFound,
            "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/postgres:16\"",
            "does not exist in docker.io: check the name and tag of `image`",
        ),
        (
            PullFailure::Unauthorized,
            "401 Unauthorized",
            "refused the nodes' credentials",
        ),
        (
            PullFailure::NoSuchHost,
            "no such host",
            "cannot resolve docker.io",
        ),
    ] {
        let (run, report) = timeout_diagnosis(
            PodBehavior::ImagePullError(failure),
            VolumeBehavior::Bind,
            None,
        )
        .await;
        assert_eq!(report["findings"][0]["problem"], "image-pull");
        let line = run.error_line();
        assert!(line.starts_with("error: timed out after 2s waiting for auth-postgres-dev-postgresql to become ready: container postgresql cannot pull image docker.io/library/postgres:16: ImagePullBackOff: rpc error"), "{line}");
        assert!(line.contains(cause), "{failure:?}: {line}");
        assert!(!line.contains("Error: ImagePullBackOff"), "{line}");
        assert!(
            run.hint_line().contains(hint),
            "{failure:?}: {}",
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_diagnoses_a_crash_loop() {
    let behavior = PodBehavior::CrashLoop {
        exit_code: 1,
        message: "initdb: error: could not change permissions of directory".into(),
    };
    let (run, report) = timeout_diagnosis(behavior, VolumeBehavior::Bind, None).await;
    assert_eq!(report["findings"][0]["problem"], "crash-loop");
    let line = run.error_line();
    assert!(
        line.contains(
            "container postgresql keeps crashing (exit code 1), restarted 3 times: initdb: error"
        ),
        "{line}"
    );
    assert!(run.hint_line().contains("--previous"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_diagnoses_a_failing_readiness_probe() {
    let (run, report) =
        timeout_diagnosis(PodBehavior::ProbeFailing, VolumeBehavior::Bind, None).await;
    assert_eq!(report["findings"][0]["problem"], "probe-failing");
    assert!(
        run.error_line()
            .contains("the pod runs but is not ready: Readiness probe failed"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_diagnoses_an_unschedulable_pod() {
    let (run, report) =
        timeout_diagnosis(PodBehavior::Unschedulable, VolumeBehavior::Bind, None).await;
    assert_eq!(report["findings"][0]["problem"], "unschedulable");
    assert!(
        run.error_line()
            .contains("the pod cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("resources.requests"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_diagnoses_a_volume_that_is_not_provisioned() {
    let (run, report) = timeout_diagnosis(
        PodBehavior::Ready {
            after: Duration::ZERO,
        },
        VolumeBehavior::Fail,
        None,
    )
    .await;
    assert_eq!(report["findings"][0]["problem"], "volume-not-provisioned");
    assert!(
        run.error_line()
            .contains("the volume cannot be provisioned: failed to provision volume"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_diagnoses_a_storage_class_that_went_missing() {
    let (run, report) = timeout_diagnosis(
        PodBehavior::Ready {
            after: Duration::ZERO,
        },
        VolumeBehavior::Bind,
        Some("vanishing"),
    )
    .await;
    assert_eq!(report["findings"][0]["problem"], "storage-class-missing");
    assert!(
        run.error_line()
            .contains("the volume is Pending: StorageClass `vanishing` does not exist"),
        "{}",
        run.stderr
    );
    assert!(run.hint_line().contains("managed-standard"));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_list_storage_classes_still_installs_with_a_warning() {
    let c = Cluster::with_plan_class().await;
    c.fake.deny("list", "storage.k8s.io", "storageclasses");
    let run = c.run(&["install", "--timeout", "30s"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning: not allowed to list StorageClasses; cannot check that `managed-standard` exists"), "{}", run.stderr);
    assert_eq!(
        crate::support::release_inventory(&c.fake),
        expected_inventory()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_the_profile_no_longer_renders_are_pruned() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "metrics:\n  enabled: false\n").unwrap();
    let run = c
        .run(&["install", "--dry-run", "--values", values.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line: Vec<&str> = run
        .stdout
        .lines()
        .find(|l| l.contains("-metrics"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        line,
        [
            "Service",
            "auth-postgres-dev-postgresql-metrics",
            "would",
            "be",
            "pruned",
            "(dry",
            "run)"
        ],
        "{}",
        run.stdout
    );
    assert!(
        c.fake
            .get("Service", NS, "auth-postgres-dev-postgresql-metrics")
            .is_some(),
        "a dry run prunes nothing"
    );
    let report = c.install_ok(&["--values", values.to_str().unwrap()]).await;
    let pruned = crate::support::pruned(&report);
    assert_eq!(pruned, ["auth-postgres-dev-postgresql-metrics"]);
    assert!(
        c.fake
            .get("Service", NS, "auth-postgres-dev-postgresql-metrics")
            .is_none()
    );
    // Secrets and the claim are never pruned.
    assert!(c.fake.get("PersistentVolumeClaim", NS, PVC).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_install_uses_is_checked_first() {
    let c = Cluster::with_plan_class().await;
    c.create_namespace();
    c.fake.deny("get", "", "persistentvolumeclaims");
    c.fake.deny("list", "", "events");
    let run = c.run(&["install"]).await;
    assert_eq!(run.code, 1);
    let line = run.error_line();
    assert!(
        line.contains("list events in namespace phonebill-dev")
            && line.contains("get persistentvolumeclaims in namespace phonebill-dev"),
        "{line}"
    );
    assert!(c.fake.inventory(NS).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_policy_switch_applies_and_prunes_the_policy() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let np = c
        .fake
        .get("NetworkPolicy", NS, STS)
        .expect("the policy, named like the StatefulSet");
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["tier"],
        "application"
    );
    assert_eq!(
        np["spec"]["ingress"][1]["ports"][0]["port"], 9187,
        "the scraper"
    );
    // Off: install prunes it.
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "networkPolicy:\n  enabled: false\n").unwrap();
    let report = c.install_ok(&["--values", values.to_str().unwrap()]).await;
    assert!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "NetworkPolicy" && o["change"] == "pruned"),
        "{report}"
    );
    assert!(c.fake.get("NetworkPolicy", NS, STS).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_watches_and_falls_back_to_polling_when_watch_is_denied() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    assert!(
        c.fake.requests_matching("watch=true") >= 3,
        "install's wait watched the StatefulSet, pods and claims"
    );
    // A user who may list but not watch: the watches are refused (403), the wait polls instead
    // and still sees the rollout.
    let c = Cluster::with_plan_class().await;
    for r in ["pods", "persistentvolumeclaims"] {
        c.fake.deny("watch", "", r);
    }
    c.fake.deny("watch", "apps", "statefulsets");
    let report = c.install_ok(&[]).await;
    assert_eq!(report["ready"], true);
    assert!(
        c.fake.requests_matching("watch=true") >= 3,
        "the watches were tried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_only_a_role_in_the_namespace_installs() {
    let c = Cluster::with_plan_class().await;
    c.create_namespace(); // an admin made it and bound the Role there
    c.fake.only_namespace(NS);
    let run = c.run(&["install", "--timeout", "30s"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // It may not read the namespace (403), nor list StorageClasses: it says so and goes on.
    assert!(
        run.stderr.contains("not allowed to list StorageClasses"),
        "{}",
        run.stderr
    );
    assert_eq!(
        crate::support::release_inventory(&c.fake),
        expected_inventory()
    );
    // The same user in another namespace: every check fails first, nothing is created.
    let run = c
        .run(&["install", "-n", "elsewhere", "--timeout", "30s"])
        .await;
    run.failed_saying(1, &["in namespace elsewhere", "nothing was changed"]);
    assert!(c.fake.inventory("elsewhere").is_empty());
    // Denied in one namespace only: the review asks about that namespace.
    let c = Cluster::with_plan_class().await;
    c.fake.deny_in("elsewhere", "*", "", "secrets");
    c.install_ok(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_that_may_not_delete_is_refused_before_anything_changes() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let before = c.versions();
    c.fake.deny("delete", "", "services");
    let values = c.dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "metrics:\n  enabled: false\npostgresql:\n  workMem: 8MB\n",
    )
    .unwrap();
    let run = c
        .run(&["install", "--values", values.to_str().unwrap()])
        .await;
    run.failed_saying(
        1,
        &["not allowed to delete services", "nothing was changed"],
    );
    assert_eq!(c.versions(), before, "not even the ConfigMap was applied");
}
