//! `resize --storage`: the volume grows with its pod running (or restarted for an offline file
//! system resize), the StatefulSet follows, the size is recorded, and what cannot be is refused.

use fake_kube::ExpansionBehavior;
use serde_json::{Value, json};

use crate::support::{Cluster, NS, PVC, STS};

const POD: &str = "auth-postgres-dev-postgresql-0";

fn uid(c: &Cluster, kind: &str, name: &str) -> Value {
    c.fake.get(kind, NS, name).unwrap()["metadata"]["uid"].clone()
}

fn template_size(c: &Cluster) -> Value {
    c.fake.get("StatefulSet", NS, STS).unwrap()["spec"]["volumeClaimTemplates"][0]["spec"]
        ["resources"]["requests"]["storage"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_volume_grows_with_its_pod_running_and_the_next_install_agrees() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let pod = uid(&c, "Pod", POD);
    let sts = uid(&c, "StatefulSet", STS);

    let report = c
        .run(&["resize", "--storage", "30Gi", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(report["from"], "20Gi");
    assert_eq!(report["to"], "30Gi");
    assert_eq!(report["capacity"], "30Gi");
    assert_eq!(report["class"], "managed-standard");
    assert_eq!(report["statefulSetRecreated"], true);
    assert_eq!(report["podRestarted"], Value::Null);
    // The pod is the same pod; the StatefulSet a new one with the new template.
    assert_eq!(uid(&c, "Pod", POD), pod, "the pod kept running");
    assert_ne!(uid(&c, "StatefulSet", STS), sts);
    assert_eq!(template_size(&c), "30Gi");
    let claim = c.fake.get("PersistentVolumeClaim", NS, PVC).unwrap();
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "30Gi");
    assert_eq!(claim["status"]["capacity"]["storage"], "30Gi");
    let volume = claim["spec"]["volumeName"].as_str().unwrap();
    assert_eq!(
        c.fake.get("PersistentVolume", "", volume).unwrap()["spec"]["capacity"]["storage"],
        "30Gi"
    );
    // The pod belongs to the new StatefulSet.
    assert_eq!(
        c.fake.get("Pod", NS, POD).unwrap()["metadata"]["ownerReferences"][0]["uid"],
        uid(&c, "StatefulSet", STS)
    );
    // Recorded: a plain install renders the new size and changes nothing.
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(
        status["installed"]["values"],
        json!({"storage": {"size": "30Gi"}})
    );
    c.reinstall_changes_nothing().await;
    // Again: nothing to do.
    let again = c
        .run(&["resize", "--storage", "30Gi", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(again["unchanged"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_resize_restarts_the_pod_and_says_so() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake.set_expansion(ExpansionBehavior::Offline);
    let pod = uid(&c, "Pod", POD);
    let run = c.run(&["resize", "--storage", "25Gi", "--yes"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("offline expansion: pod {POD} was restarted")),
        "{}",
        run.stdout
    );
    assert_ne!(uid(&c, "Pod", POD), pod, "a new pod mounted the volume");
    assert_eq!(
        c.fake.get("PersistentVolumeClaim", NS, PVC).unwrap()["status"]["capacity"]["storage"],
        "25Gi"
    );
    let json = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(json["state"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_grow_is_refused_and_nothing_changes() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    let before = c.versions();
    c.run(&["resize", "--storage", "10Gi", "--yes"])
        .await
        .refused(2, "a volume cannot shrink", "at least 20Gi");
    c.run(&["resize", "--storage", "30GB", "--yes"])
        .await
        .refused(2, "--storage: key `storage.size`", "allowed:");
    let values = c.dir.path().join("values.yaml");
    std::fs::write(&values, "postgresql:\n  workMem: 8MB\n").unwrap();
    c.run(&[
        "resize",
        "--storage",
        "30Gi",
        "--yes",
        "--values",
        values.to_str().unwrap(),
    ])
    .await
    .refused(2, "only the data volume's size", "install --values");
    c.run(&["resize", "--storage", "30Gi"])
        .await
        .refused(2, "", "--yes");
    c.run(&["resize", "--storage", "30Gi", "--env", "prod", "--yes"])
        .await
        .refused(2, "no database in the cluster", "");
    assert_eq!(c.versions(), before);

    // install may not change the volume behind the StatefulSet's back.
    std::fs::write(&values, "storage:\n  size: 40Gi\n").unwrap();
    c.run(&["install", "--values", values.to_str().unwrap()])
        .await
        .refused(
            2,
            "storage.size is 40Gi but the release's volume was made with 20Gi",
            "resize --storage 40Gi",
        );
    c.run(&["install", "--storage-class", "managed-csi"])
        .await
        .refused(
            2,
            "the release's volume is on managed-standard",
            "another class means a new volume",
        );
    assert_eq!(c.versions(), before);

    // A class that cannot expand.
    let other = Cluster::aks().await;
    other
        .fake
        .create("", json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "fixed"}, "provisioner": "disk.csi.azure.com", "allowVolumeExpansion": false}))
        .unwrap();
    other
        .install_ok(&["--storage-class", "fixed", "--create-snapshot-class"])
        .await;
    let before = other.versions();
    other
        .run(&["resize", "--storage", "30Gi", "--yes"])
        .await
        .refused(
            2,
            "StorageClass fixed of claim",
            "allowVolumeExpansion: true",
        );
    assert_eq!(other.versions(), before);

    // Not installed here.
    let none = Cluster::with_plan_class().await;
    none.create_namespace();
    none.run(&["resize", "--storage", "30Gi", "--yes"])
        .await
        .refused(1, "has no data volume", "phonebill-db install");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resizer_that_fails_is_named_at_the_timeout_and_an_interrupted_resize_finishes() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.fake.set_expansion(ExpansionBehavior::Fail);
    let run = c
        .run(&["resize", "--storage", "30Gi", "--yes", "--timeout", "2s"])
        .await;
    run.failed_saying(
        3,
        &["waiting for claim", "failed: rpc error", "quota exceeded"],
    );
    assert!(
        run.hint_line().contains("`phonebill-db resize` again"),
        "{}",
        run.stderr
    );
    // The request stays, and is recorded: the next install agrees with the StatefulSet.
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["installed"]["values"]["storage"]["size"], "30Gi");
    assert_eq!(template_size(&c), "30Gi");
    c.fake.set_expansion(ExpansionBehavior::Online);
    // The resizer works again and may grow the claim before the second resize looks: either the
    // resize waits for it (and says so) or finds it done. Both are right; the claim is 30Gi.
    let report = c
        .run(&["resize", "--storage", "30Gi", "--yes", "-o", "json"])
        .await
        .ok_json();
    if report["unchanged"] == true {
        assert!(report.get("capacity").is_none(), "{report}");
    } else {
        assert_eq!(report["capacity"], "30Gi", "{report}");
    }
    let claim = c.fake.get("PersistentVolumeClaim", NS, PVC).unwrap();
    assert_eq!(claim["status"]["capacity"]["storage"], "30Gi", "{claim}");

    // Interrupted after the StatefulSet was deleted (its pod orphaned): made again from the profile.
    let pod = uid(&c, "Pod", POD);
    {
        let mut cl = c.fake.cluster();
        let info = fake_kube::store::info_of("StatefulSet");
        cl.orphan_dependents(info, NS, STS);
        cl.delete(info, NS, STS, false).unwrap();
    }
    c.fake
        .merge_patch(
            "PersistentVolumeClaim",
            NS,
            PVC,
            json!({"spec": {"resources": {"requests": {"storage": "35Gi"}}}}),
        )
        .unwrap();
    let report = c
        .run(&["resize", "--storage", "35Gi", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(report["statefulSetRecreated"], true);
    assert_eq!(report["capacity"], "35Gi");
    assert_eq!(template_size(&c), "35Gi");
    assert_eq!(uid(&c, "Pod", POD), pod, "adopted, not restarted");
}

/// A claim of a class that binds on first use (WaitForFirstConsumer) stays Pending while its pod
/// cannot be scheduled; the API server lets its request change only once it is Bound (422
/// otherwise): resize says so, before any change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_not_bound_yet_is_refused_before_any_change() {
    let c = Cluster::with_plan_class().await;
    c.fake.set_pods(fake_kube::PodBehavior::Unschedulable);
    let run = c.run(&["install", "--timeout", "2s"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let claim = c.fake.get("PersistentVolumeClaim", NS, PVC).unwrap();
    assert_eq!(claim["status"]["phase"], "Pending", "{claim}");
    // What the tool could change (the kubelet keeps rewriting the waiting pod's status).
    let versions = |c: &Cluster| -> Vec<(String, String)> {
        c.versions()
            .into_iter()
            .filter(|(id, _)| !id.starts_with("Pod/"))
            .collect()
    };
    let before = versions(&c);
    c.run(&["resize", "--storage", "30Gi", "--yes"])
        .await
        .refused(
            1,
            "is Pending, not bound to a volume yet",
            "phonebill-db status",
        );
    assert_eq!(versions(&c), before);
    // The API server's own rule, which the tool no longer meets: a Pending claim's request is
    // immutable.
    let refused = c
        .fake
        .merge_patch(
            "PersistentVolumeClaim",
            NS,
            PVC,
            json!({"spec": {"resources": {"requests": {"storage": "30Gi"}}}}),
        )
        .unwrap_err();
    assert_eq!(refused.code, 422);
}

/// The size resize grew the volume to outlives uninstall (the record goes with the release, the
/// claim stays): the next install renders it from the claim, records it, and agrees with resize.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grown_size_outlives_uninstall() {
    let c = Cluster::with_plan_class().await;
    c.install_ok(&[]).await;
    c.run(&["resize", "--storage", "30Gi", "--yes", "-o", "json"])
        .await
        .ok_json();
    let run = c.run(&["uninstall"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The record stays with the data and says 30Gi; without it (an older version's uninstall
    // deleted it), the claim says it.
    c.fake.cluster().purge(
        fake_kube::store::info_of("Secret"),
        NS,
        "auth-postgres-dev-values",
    );
    let run = c.run(&["install", "--timeout", "30s"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("kept from before has 30Gi"),
        "{}",
        run.stderr
    );
    assert_eq!(template_size(&c), "30Gi");
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["installed"]["values"]["storage"]["size"], "30Gi");
    c.reinstall_changes_nothing().await;
    let values = c.dir.path().join("size.yaml");
    std::fs::write(&values, "storage:\n  size: 30Gi\n").unwrap();
    c.install_ok(&["--values", &values.display().to_string()])
        .await;
    let same = c
        .run(&["resize", "--storage", "30Gi", "--yes", "-o", "json"])
        .await
        .ok_json();
    assert_eq!(same["unchanged"], true, "{same}");
    // Another class than the kept volume's: refused, nothing changed.
    c.run(&["uninstall"]).await;
    c.run(&["install", "--storage-class", "managed-csi"])
        .await
        .refused(
            2,
            "kept from before is on managed-standard",
            "leave out --storage-class",
        );
}
