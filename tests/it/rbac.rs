//! RBAC as the real API server judges it: the rights install asks for, and the rights the
//! release's own Roles grant, which the server lets only a holder grant (escalation prevention;
//! the fake refuses as the server does, see `fake_api`). The installer's Role in docs/rbac.md is
//! what `render --installer-rbac` prints, and exactly that Role installs.

use fake_kube::Fault;
use serde_json::{Value, json};

use crate::support::{Cluster, NS, expected_inventory, run_bin};

/// The installer's Role and ClusterRole, as `render --installer-rbac` prints them.
async fn installer_rbac() -> (String, Value, Value) {
    let home = tempfile::tempdir().unwrap();
    let run = run_bin(home.path(), &["render", "--installer-rbac"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&run.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &Value| !d.is_null())
        .collect();
    assert_eq!(docs.len(), 2, "{}", run.stdout);
    assert_eq!(docs[0]["kind"], "Role");
    assert_eq!(docs[0]["metadata"]["namespace"], NS);
    assert_eq!(docs[1]["kind"], "ClusterRole");
    (
        run.stdout,
        docs[0]["rules"].clone(),
        docs[1]["rules"].clone(),
    )
}

/// Kubernetes' built-in `admin` ClusterRole as a RoleBinding gives it in one namespace (the usual
/// AKS namespace admin), abridged to what matters here: nearly everything in the namespace,
/// Roles and RoleBindings included — and nothing of snapshot.storage.k8s.io, which the
/// external-snapshotter does not aggregate into it.
fn namespace_admin() -> Value {
    let all = json!([
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection"
    ]);
    json!([
        {"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy",
            "configmaps", "endpoints", "persistentvolumeclaims", "replicationcontrollers", "secrets",
            "serviceaccounts", "services", "services/proxy"], "verbs": all},
        {"apiGroups": [""], "resources": ["events", "pods/log", "pods/status", "limitranges", "resourcequotas",
            "namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "replicasets", "statefulsets",
            "statefulsets/scale"], "verbs": all},
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": all},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies", "ingresses"], "verbs": all},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": all},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": all},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]}
    ])
}

#[tokio::test]
async fn the_installer_rbac_in_the_docs_is_what_render_prints() {
    let (printed, _, _) = installer_rbac().await;
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rbac.md"))
        .expect("docs/rbac.md");
    let block = docs
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/rbac.md has a yaml block");
    assert_eq!(
        block, printed,
        "docs/rbac.md is out of date: put the output of `phonebill-db render --installer-rbac` in its yaml block"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_exactly_the_installer_rbac_installs_and_reinstalls() {
    let (_, role, cluster_role) = installer_rbac().await;
    let c = Cluster::with_plan_class().await;
    c.fake.allow_only_with_cluster(NS, role, cluster_role);
    // The namespace is made by install (the ClusterRole may).
    let report = c.install_ok(&[]).await;
    assert_eq!(report["namespaceCreated"], true);
    assert_eq!(
        crate::support::release_inventory(&c.fake),
        expected_inventory()
    );
    // A re-install applies the Role again: the API server judges it again, and it passes.
    c.reinstall_changes_nothing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_admin_without_volumesnapshots_is_refused_before_anything_is_created() {
    let c = Cluster::with_plan_class().await;
    c.create_namespace(); // a cluster admin made it and bound `admin` there
    c.fake.allow_only(NS, namespace_admin());
    let run = c.run(&["install", "--timeout", "30s"]).await;
    run.refused(
        1,
        "Role/auth-postgres-dev-snapshots grants create volumesnapshots.snapshot.storage.k8s.io in namespace phonebill-dev, get volumesnapshots",
        "snapshots: {enabled: false}",
    );
    let line = run.error_line();
    for verb in ["list", "delete"] {
        assert!(
            line.contains(&format!(
                "{verb} volumesnapshots.snapshot.storage.k8s.io in namespace phonebill-dev"
            )),
            "{line}"
        );
    }
    assert!(
        line.contains("RoleBinding/auth-postgres-dev-snapshots grants"),
        "{line}"
    );
    assert!(line.ends_with("nothing was changed"), "{line}");
    assert!(
        run.hint_line().contains("render --installer-rbac"),
        "{}",
        run.stderr
    );
    assert!(
        c.fake.inventory(NS).is_empty(),
        "{:?}",
        c.fake.inventory(NS)
    );
    let writes: Vec<String> = c
        .fake
        .cluster()
        .writes
        .iter()
        .filter(|w| w.contains(" phonebill-dev/"))
        .cloned()
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // The way out the hint names: the schedule left out, the same admin installs.
    let values = c.dir.path().join("no-snapshots.yaml");
    std::fs::write(&values, "snapshots:\n  enabled: false\n").unwrap();
    let report = c
        .install_ok(&["--values", &values.display().to_string()])
        .await;
    assert_eq!(report["complete"], true);
    assert!(
        !c.fake
            .inventory(NS)
            .iter()
            .any(|id| id.starts_with("Role/") || id.starts_with("CronJob/")),
        "{:?}",
        c.fake.inventory(NS)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_that_stops_part_way_lists_what_it_made_and_status_calls_it_incomplete() {
    let c = Cluster::with_plan_class().await;
    // The CronJob's apply fails (an admission webhook refusing it, say), after everything else.
    c.fake.inject(
        "/cronjobs/",
        Some("PATCH"),
        100,
        Fault::Status {
            code: 400,
            retry_after: None,
        },
    );
    let run = c.run(&["install", "-o", "json", "--timeout", "30s"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line = run.error_line();
    assert!(
        line.contains("install of release auth-postgres-dev is incomplete: stopped part way at CronJob/auth-postgres-dev-snapshots"),
        "{line}"
    );
    assert!(
        line.contains("not applied: Secret/auth-postgres-dev-values"),
        "{line}"
    );
    let report = run.json();
    assert_eq!(report["complete"], false);
    let change = |name: &str| {
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .map(|o| o["change"].as_str().unwrap().to_string())
    };
    assert_eq!(
        change("auth-postgres-dev-postgresql").as_deref(),
        Some("created")
    );
    assert_eq!(
        change("auth-postgres-dev-snapshots").as_deref(),
        Some("created")
    );
    assert_eq!(
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["change"] == "failed")
            .count(),
        1
    );
    assert_eq!(
        change("auth-postgres-dev-values").as_deref(),
        Some("not-applied")
    );

    // status: incomplete, and what is missing (the text says it too).
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["state"], "incomplete", "{status}");
    assert_eq!(
        status["missing"],
        json!([
            "CronJob/auth-postgres-dev-snapshots",
            "Secret/auth-postgres-dev-values"
        ])
    );
    let text = c.run(&["status"]).await;
    assert!(
        text.stdout.contains("INCOMPLETE")
            && text.stdout.contains("run `phonebill-db install` again"),
        "{}",
        text.stdout
    );

    // The cause gone, the same install goes on and completes.
    while c.fake.faults_left() > 0 {
        let _ = c.fake.cluster().faults.pop();
    }
    let report = c.install_ok(&[]).await;
    assert_eq!(report["complete"], true);
    let status = c.run(&["status", "-o", "json"]).await.ok_json();
    assert_eq!(status["state"], "ready", "{status}");
    assert!(status.get("missing").is_none(), "{status}");
}
