//! The fake API server's own behaviour, through the real kube client — the conventions the tool's
//! tests rely on. Where the real server could differ, the test says so.

use std::time::Duration;

use fake_kube::PodBehavior;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret, Service,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, NS};

async fn setup() -> (Cluster, kube::Client) {
    let c = Cluster::with_plan_class().await;
    let kube = c.kube().await;
    let ns: Api<Namespace> = Api::all(kube.client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
    )
    .await
    .unwrap();
    (c, kube.client)
}

fn status_of(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API Status, got {other:?}"),
    }
}

fn cm(data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "x"}}, "data": data})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_version_answer() {
    let (_c, client) = setup().await;
    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "apps"));
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(
        core.resources
            .iter()
            .any(|r| r.name == "persistentvolumeclaims" && r.namespaced)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_apply_leaves_the_resource_version_alone() {
    let (_c, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, NS);
    let pp = PatchParams::apply("tool");
    let a = api
        .patch("cfg", &pp, &Patch::Apply(cm(json!({"k": "v"}))))
        .await
        .unwrap();
    let b = api
        .patch("cfg", &pp, &Patch::Apply(cm(json!({"k": "v"}))))
        .await
        .unwrap();
    assert_eq!(a.metadata.resource_version, b.metadata.resource_version);
    let c = api
        .patch("cfg", &pp, &Patch::Apply(cm(json!({"k": "w"}))))
        .await
        .unwrap();
    assert_ne!(b.metadata.resource_version, c.metadata.resource_version);
    let mf = &c.metadata.managed_fields.unwrap()[0];
    assert_eq!(
        (mf.manager.as_deref(), mf.operation.as_deref()),
        (Some("tool"), Some("Apply"))
    );
    assert_eq!(
        mf.fields_v1.as_ref().unwrap().0,
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_managers_get_409_unless_forced() {
    let (_c, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, NS);
    api.patch(
        "cfg",
        &PatchParams::apply("one"),
        &Patch::Apply(cm(json!({"k": "v"}))),
    )
    .await
    .unwrap();
    // The same value from a second manager is shared ownership, not a conflict.
    api.patch(
        "cfg",
        &PatchParams::apply("two"),
        &Patch::Apply(cm(json!({"k": "v"}))),
    )
    .await
    .unwrap();
    let err = status_of(
        api.patch(
            "cfg",
            &PatchParams::apply("three"),
            &Patch::Apply(cm(json!({"k": "x"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("conflict with \"one\": .data.k"),
        "{}",
        err.message
    );
    let forced = api
        .patch(
            "cfg",
            &PatchParams::apply("three").force(),
            &Patch::Apply(cm(json!({"k": "x"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["k"], "x");
    // Forcing takes the conflicting field from the others; the label they all set stays shared.
    let owned: Vec<(String, serde_json::Value)> = forced
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .map(|m| (m.manager.clone().unwrap(), m.fields_v1.clone().unwrap().0))
        .collect();
    let label_only = json!({"f:metadata": {"f:labels": {"f:app": {}}}});
    assert_eq!(
        owned,
        vec![
            ("one".into(), label_only.clone()),
            ("two".into(), label_only),
            (
                "three".into(),
                json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
            )
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_a_manager_stops_applying_are_removed_unless_someone_else_owns_them() {
    let (_c, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, NS);
    api.patch(
        "cfg",
        &PatchParams::apply("one"),
        &Patch::Apply(cm(json!({"a": "1", "b": "2", "c": "3"}))),
    )
    .await
    .unwrap();
    api.patch(
        "cfg",
        &PatchParams::apply("two"),
        &Patch::Apply(cm(json!({"c": "3"}))),
    )
    .await
    .unwrap();
    let after = api
        .patch(
            "cfg",
            &PatchParams::apply("one"),
            &Patch::Apply(cm(json!({"a": "1"}))),
        )
        .await
        .unwrap();
    let keys: Vec<String> = after.data.unwrap().into_keys().collect();
    assert_eq!(keys, vec!["a", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_data_becomes_data_and_cluster_ips_are_assigned() {
    let (_c, client) = setup().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"pw": "hunter2"}}))
            .unwrap();
    let s = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(s.string_data.is_none());
    assert_eq!(s.data.unwrap()["pw"].0, b"hunter2");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let svcs: Api<Service> = Api::namespaced(client, NS);
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}, "spec": {"ports": [{"name": "pg", "port": 5432}]}})).unwrap();
    let a = svcs
        .patch("db", &PatchParams::apply("tool"), &Patch::Apply(&svc))
        .await
        .unwrap();
    let ip = a.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    assert!(ip.starts_with("10."));
    assert_eq!(a.spec.as_ref().unwrap().type_.as_deref(), Some("ClusterIP"));
    // Re-applying without clusterIP keeps the assigned one and changes nothing.
    let b = svcs
        .patch("db", &PatchParams::apply("tool"), &Patch::Apply(&svc))
        .await
        .unwrap();
    assert_eq!(b.spec.unwrap().cluster_ip.unwrap(), ip);
    assert_eq!(a.metadata.resource_version, b.metadata.resource_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_a_subresource() {
    let (c, client) = setup().await;
    c.fake.set_pods(PodBehavior::Manual);
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Running"}})).unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        created.status.unwrap().phase.as_deref(),
        Some("Pending"),
        "create ignores status"
    );
    let s = pods
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(s.status.unwrap().phase.as_deref(), Some("Running"));
    let m = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Failed"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        m.status.unwrap().phase.as_deref(),
        Some("Running"),
        "the main resource does not write status"
    );
    assert_eq!(m.metadata.labels.unwrap()["a"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_selectors_equality_and_set_based() {
    let (_c, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, NS);
    for (name, tier) in [("a", "db"), ("b", "web"), ("c", "cache")] {
        let m: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}}))
                .unwrap();
        api.create(&PostParams::default(), &m).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|m| m.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier=db"))
                .await
                .unwrap()
        ),
        ["a"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier in (db,cache)"))
                .await
                .unwrap()
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier notin (db),tier!=cache"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    let bad = status_of(
        api.list(&ListParams::default().labels("tier in db"))
            .await
            .unwrap_err(),
    );
    assert_eq!(bad.code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_validates_and_stores_nothing() {
    let (c, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, NS);
    let mut pp = PatchParams::apply("tool");
    pp.dry_run = true;
    let r = api
        .patch("cfg", &pp, &Patch::Apply(cm(json!({"k": "v"}))))
        .await
        .unwrap();
    assert_eq!(r.data.unwrap()["k"], "v");
    assert!(api.get_opt("cfg").await.unwrap().is_none());
    assert!(
        c.fake
            .cluster()
            .writes
            .iter()
            .all(|w| !w.contains("configmaps"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_as_status_bodies() {
    let (c, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let e = status_of(api.get("nope").await.unwrap_err());
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (404, "NotFound", "configmaps \"nope\" not found")
    );
    api.create(&PostParams::default(), &cm(json!({})))
        .await
        .unwrap();
    let e = status_of(
        api.create(&PostParams::default(), &cm(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    let bad: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "Bad_Name"}})).unwrap();
    let e = status_of(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.contains("metadata.name"));
    c.fake.deny("list", "", "configmaps");
    let e = status_of(api.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "configmaps is forbidden: User \"fake-user\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"phonebill-dev\""
    );
    let elsewhere: Api<ConfigMap> = Api::namespaced(client, "missing-ns");
    let e = status_of(
        elsewhere
            .create(&PostParams::default(), &cm(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"missing-ns\" not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_spec_outside_the_mutable_fields_is_immutable() {
    let (_c, client) = setup().await;
    let api: Api<StatefulSet> = Api::namespaced(client, NS);
    let sts = |size: &str| -> StatefulSet {
        serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
            "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}]}}))
        .unwrap()
    };
    api.patch("s", &PatchParams::apply("tool"), &Patch::Apply(sts("1Gi")))
        .await
        .unwrap();
    let e = status_of(
        api.patch("s", &PatchParams::apply("tool"), &Patch::Apply(sts("2Gi")))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("updates to statefulset spec for fields other than"),
        "{}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_runs_a_statefulset_and_its_claims_outlive_it() {
    let (c, client) = setup().await;
    let ssar = phonebill_db::k8s::preflight::denied(
        &c.kube().await,
        &[phonebill_db::k8s::preflight::Access::ns(
            "create",
            "apps",
            "statefulsets",
        )],
    )
    .await
    .unwrap();
    assert!(
        ssar.is_empty(),
        "SelfSubjectAccessReview allows what is not denied"
    );
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let sts: StatefulSet = serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
        "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"a": "b"}}, "spec": {"storageClassName": "managed-standard", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}))
    .unwrap();
    api.patch("s", &PatchParams::apply("tool"), &Patch::Apply(&sts))
        .await
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut ready = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = api.get("s").await.unwrap();
        if s.status.and_then(|s| s.ready_replicas) == Some(1) {
            ready = true;
            break;
        }
    }
    assert!(ready, "pods go Pending → Running → Ready");
    let pvc = pvcs.get("data-s-0").await.unwrap();
    assert_eq!(pvc.status.unwrap().phase.as_deref(), Some("Bound"));
    assert_eq!(
        pvc.metadata.labels.unwrap()["a"],
        "b",
        "claim labels come from the template"
    );
    let events = c.fake.list("Event", NS);
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "SuccessfulCreate" && e["involvedObject"]["name"] == "s")
    );
    api.delete("s", &DeleteParams::background()).await.unwrap();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
        {
            break;
        }
    }
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "garbage collection removes the pods"
    );
    assert!(
        pvcs.get_opt("data-s-0").await.unwrap().is_some(),
        "the claim outlives its StatefulSet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_delete_deletes_nothing() {
    let (_c, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, NS);
    api.create(&PostParams::default(), &cm(json!({})))
        .await
        .unwrap();
    let dp = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    api.delete("cfg", &dp).await.unwrap();
    assert!(api.get_opt("cfg").await.unwrap().is_some());
    api.delete("cfg", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("cfg").await.unwrap().is_none());
}

#[tokio::test]
async fn watch_streams_changes_after_the_listed_version_and_expires_old_ones() {
    use futures_util::TryStreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let (c, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cm = |name: &str, v: &str| -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"app": "x"}}, "data": {"v": v}}),
        )
        .unwrap()
    };
    cms.create(&PostParams::default(), &cm("before", "1"))
        .await
        .unwrap();
    let list = cms.list(&ListParams::default()).await.unwrap();
    let version = list.metadata.resource_version.unwrap();
    let stream = cms
        .watch(&WatchParams::default().labels("app=x").timeout(5), &version)
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    // Changes after the list: an add, a change, a delete; one without the label is not seen.
    cms.create(&PostParams::default(), &cm("after", "1"))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "unlabelled"}})).unwrap(),
    )
    .await
    .unwrap();
    cms.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("after", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match event {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => format!(
                "MODIFIED {} {}",
                o.metadata.name.unwrap(),
                o.data.unwrap()["v"]
            ),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["ADDED after", "MODIFIED after 2", "DELETED after"]);
    // A version the server no longer remembers: an ERROR event with 410, as from a real server.
    for i in 0..fake_kube::store::HISTORY + 10 {
        c.fake.cluster().system_write(
            fake_kube::store::info_of("ConfigMap"),
            NS,
            json!({"metadata": {"name": "churn"}, "data": {"i": i.to_string()}}),
        );
    }
    let stale = cms
        .watch(&WatchParams::default().timeout(2), &version)
        .await
        .unwrap();
    futures_util::pin_mut!(stale);
    match stale.try_next().await.unwrap() {
        Some(WatchEvent::Error(s)) => assert_eq!(s.code, 410),
        other => panic!("expected 410 Expired, got {other:?}"),
    }
}

#[tokio::test]
async fn the_server_speaks_tls_and_wants_a_client_certificate_or_a_token() {
    let c = Cluster::aks().await;
    assert!(c.fake.url.starts_with("https://"));
    // A kubeconfig with the cluster's CA but neither certificate nor token: 401.
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let user = text.find("    client-certificate-data").unwrap();
    let anonymous = c.dir.path().join("anonymous");
    std::fs::write(
        &anonymous,
        format!("{}user: {{}}\n", text[..user].trim_end_matches("user:\n")),
    )
    .unwrap();
    let run = crate::support::run_bin(
        c.dir.path(),
        &["status", "--kubeconfig", anonymous.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.error_line().contains("401"), "{}", run.stderr);
    // Plain HTTP to it gets nowhere.
    let plain = c.fake.url.replace("https://", "http://");
    let kc = c.dir.path().join("plain");
    std::fs::write(&kc, text.replace(&c.fake.url, &plain)).unwrap();
    let run = crate::support::run_bin(
        c.dir.path(),
        &["status", "--kubeconfig", kc.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.error_line().contains("cannot reach the Kubernetes API"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn bodies_without_their_kind_are_refused_as_the_real_server_refuses_them() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let (_c, client) = setup().await;
    let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "volumesnapshots");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
    // A custom resource's create without apiVersion/kind (what hand-written structs sent).
    let mut bare = DynamicObject::new("snap", &ar);
    bare.types = None;
    bare.data = json!({"spec": {"source": {"persistentVolumeClaimName": "x"}}});
    let s = status_of(api.create(&PostParams::default(), &bare).await.unwrap_err());
    assert_eq!(s.code, 400);
    assert!(
        s.message.starts_with("the object provided is unrecognized (must be of type VolumeSnapshot): Object 'Kind' is missing in '{"),
        "{}",
        s.message
    );
    // Server-side apply needs them for every kind, built-in ones too.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let s = status_of(
        cms.patch(
            "x",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({"metadata": {"name": "x"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 400, "{}", s.message);
    assert!(
        s.message.contains("Object 'Kind' is missing"),
        "{}",
        s.message
    );
    // And what a body says must match the URL.
    let s = status_of(
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}}),
            )
            .unwrap(),
        )
        .await
        .map(|_| ())
        .and(
            Api::<Secret>::namespaced(client.clone(), NS)
                .patch(
                    "y",
                    &PatchParams::apply("test"),
                    &Patch::Apply(
                        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y"}}),
                    ),
                )
                .await
                .map(|_| ()),
        )
        .unwrap_err(),
    );
    assert!(
        s.message.contains("cannot be handled as a Secret"),
        "{}",
        s.message
    );
}

/// RBAC's escalation prevention, as the API server's Role and RoleBinding storage applies it:
/// a Role may grant only what its creator holds (or `escalate`), a RoleBinding may bind only a
/// role whose rights its creator holds (or `bind`); create, update and apply alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_may_grant_only_what_its_creator_holds() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let (c, client) = setup().await;
    let rbac = |resources: &[&str], verbs: &[&str]| json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": resources, "verbs": verbs});
    c.fake.allow_only(
        NS,
        json!([
            rbac(&["roles", "rolebindings"], &["get", "create", "patch", "update"]),
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
        ]),
    );
    let roles: Api<Role> = Api::namespaced(client.clone(), NS);
    let role = |name: &str, resource: &str, verbs: &[&str]| -> Role {
        serde_json::from_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name}, "rules": [{"apiGroups": [""], "resources": [resource], "verbs": verbs}]}))
        .unwrap()
    };
    roles
        .create(
            &PostParams::default(),
            &role("reader", "configmaps", &["get"]),
        )
        .await
        .expect("what it holds, it may grant");
    let s = status_of(
        roles
            .create(
                &PostParams::default(),
                &role("more", "secrets", &["get", "list"]),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "roles.rbac.authorization.k8s.io \"more\" is forbidden: user \"fake-user\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}"
    );
    // An apply that adds a right not held is refused too, and changes nothing.
    let pp = PatchParams::apply("test");
    let s = status_of(
        roles
            .patch(
                "reader",
                &pp,
                &Patch::Apply(role("reader", "configmaps", &["get", "delete"])),
            )
            .await
            .unwrap_err(),
    );
    assert!(s.message.contains("Verbs:[\"delete\"]"), "{}", s.message);
    assert_eq!(
        roles.get("reader").await.unwrap().rules.unwrap()[0].verbs,
        ["get"]
    );

    // Bindings: to a role whose rights it holds, yes; to one it does not, no; a missing role, 404.
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), NS);
    let binding = |name: &str, role: &str| -> RoleBinding {
        serde_json::from_value(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "job", "namespace": NS}]}),
        )
        .unwrap()
    };
    bindings
        .create(&PostParams::default(), &binding("reader", "reader"))
        .await
        .expect("binding what it holds");
    c.fake.allow_all();
    roles
        .create(
            &PostParams::default(),
            &role("secrets", "secrets", &["get"]),
        )
        .await
        .unwrap();
    c.fake.allow_only(
        NS,
        json!([rbac(
            &["roles", "rolebindings"],
            &["get", "create", "patch", "update"]
        )]),
    );
    let s = status_of(
        bindings
            .create(&PostParams::default(), &binding("secrets", "secrets"))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 403);
    assert!(
        s.message.starts_with(
            "rolebindings.rbac.authorization.k8s.io \"secrets\" is forbidden: user \"fake-user\""
        ),
        "{}",
        s.message
    );
    let s = status_of(
        bindings
            .create(&PostParams::default(), &binding("nothing", "no-such-role"))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 404, "{}", s.message);

    // `bind` on that role, or `escalate` on roles: then it may.
    c.fake.allow_only(
        NS,
        json!([
            rbac(&["roles", "rolebindings"], &["get", "create", "patch", "update"]),
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "resourceNames": ["secrets"], "verbs": ["bind"]},
            rbac(&["roles"], &["escalate"])
        ]),
    );
    bindings
        .create(&PostParams::default(), &binding("secrets", "secrets"))
        .await
        .expect("bind allows it");
    roles
        .create(&PostParams::default(), &role("wide", "pods", &["delete"]))
        .await
        .expect("escalate allows it");
}

/// Claims of a WaitForFirstConsumer class (AKS's and the plan's) stay Pending until a pod that
/// uses them is scheduled; a claim's request changes only once it is Bound, its volumeName once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_binds_on_first_use_and_changes_as_the_api_server_allows() {
    let (c, client) = setup().await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "lonely"},
        "spec": {"storageClassName": "managed-standard", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    pvcs.create(&PostParams::default(), &claim).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending = pvcs.get("lonely").await.unwrap();
    assert_eq!(pending.status.unwrap().phase.as_deref(), Some("Pending"));
    let grow = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}});
    let s = status_of(
        pvcs.patch("lonely", &PatchParams::default(), &Patch::Merge(&grow))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 422, "{}", s.message);
    assert!(
        s.message
            .contains("spec is immutable after creation except resources.requests"),
        "{}",
        s.message
    );
    // A pod that uses it: the claim binds, and may grow.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"},
        "spec": {"containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "lonely"}}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let mut phase = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        phase = pvcs
            .get("lonely")
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase);
        if phase.as_deref() == Some("Bound") {
            break;
        }
    }
    assert_eq!(phase.as_deref(), Some("Bound"));
    pvcs.patch("lonely", &PatchParams::default(), &Patch::Merge(&grow))
        .await
        .expect("a Bound claim may grow");
    let s = status_of(
        pvcs.patch(
            "lonely",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumeName": "another"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422, "volumeName is set once: {}", s.message);
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_subresource_reads_and_writes_only_replicas_with_its_own_rbac_resource() {
    let (c, client) = setup().await;
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let sts: StatefulSet = serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
        "spec": {"serviceName": "s", "selector": {"matchLabels": {"b": "2", "a": "1"}},
            "template": {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
    .unwrap();
    api.patch("s", &PatchParams::apply("tool"), &Patch::Apply(&sts))
        .await
        .unwrap();
    let scale = api.get_scale("s").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("a=1,b=2"),
        "the selector as a string, sorted by key"
    );
    let before = api.get("s").await.unwrap();
    let scaled = api
        .patch_scale(
            "s",
            &PatchParams {
                field_manager: Some("scaler".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(0));
    let after = api.get("s").await.unwrap();
    assert_eq!(after.spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(
        after.metadata.generation.unwrap(),
        before.metadata.generation.unwrap() + 1,
        "a spec change"
    );
    assert_eq!(
        after.spec.as_ref().unwrap().template,
        before.spec.as_ref().unwrap().template,
        "nothing else changes"
    );
    let owners: Vec<String> = after
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(owners.contains(&"scaler".to_string()), "{owners:?}");

    // Negative replicas: the real server's 422 for a Scale.
    let e = status_of(
        api.patch_scale(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "Scale.autoscaling \"s\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    // A stale resourceVersion in a replace: 409.
    let mut stale = api.get_scale("s").await.unwrap();
    stale.metadata.resource_version = Some("1".into());
    let e = status_of(
        api.replace_scale("s", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);

    // RBAC: scaling is `statefulsets/scale`, not a write to `statefulsets`.
    c.fake.allow_only(
        NS,
        json!([{"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "resourceNames": ["s"], "verbs": ["get", "patch"]}]),
    );
    api.patch_scale(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let e = status_of(api.get("s").await.unwrap_err());
    assert_eq!(e.code, 403, "the StatefulSet itself is not readable");
    c.fake.allow_only(
        NS,
        json!([{"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "patch"]}]),
    );
    let e = status_of(api.get_scale("s").await.unwrap_err());
    assert_eq!(e.code, 403, "nor is the scale without its own rule");
    assert!(e.message.contains("statefulsets/scale"), "{}", e.message);
}
