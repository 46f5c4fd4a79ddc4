//! `render`: what install would apply, checked against the profile, a snapshot and the schemas.

use std::process::Command;

use phonebill_db::certs::Tls;
use phonebill_db::profile::Profile;
use phonebill_db::render::{self, Object, Passwords};

use crate::support::run_bin;

fn dev() -> (Profile, Vec<Object>) {
    let p = Profile::load("dev", None).unwrap();
    let objects = render::render(&p, &Passwords::placeholders(), &Tls::placeholders()).unwrap();
    (p, objects)
}

#[tokio::test]
async fn render_prints_the_same_bytes_every_time_without_a_cluster() {
    let home = tempfile::tempdir().unwrap();
    let a = run_bin(home.path(), &["render", "--env", "dev"]).await;
    let b = run_bin(home.path(), &["render"]).await;
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(
        a.stdout.matches("\n---\n").count() + 1,
        16,
        "sixteen documents:\n{}",
        a.stdout
    );
    assert!(a.stdout.contains(render::PASSWORD_PLACEHOLDER));
}

#[test]
fn the_dev_render_matches_its_snapshot() {
    let (_, objects) = dev();
    insta::assert_snapshot!("dev_render", render::to_yaml(&objects).unwrap());
}

#[test]
fn names_labels_and_selectors_follow_the_runbook() {
    let (p, objects) = dev();
    let names: Vec<String> = objects
        .iter()
        .map(|o| format!("{}/{}", o.kind(), o.name()))
        .collect();
    assert_eq!(
        names,
        [
            "ServiceAccount/auth-postgres-dev-postgresql",
            "Secret/auth-postgres-dev-postgresql",
            "Secret/auth-db-secret",
            "Secret/auth-postgres-dev-postgresql-ca",
            "Secret/auth-postgres-dev-postgresql-tls",
            "ConfigMap/auth-postgres-dev-postgresql-configuration",
            "Service/auth-postgres-dev-postgresql-hl",
            "Service/auth-postgres-dev-postgresql",
            "Service/auth-postgres-dev-postgresql-metrics",
            "StatefulSet/auth-postgres-dev-postgresql",
            "NetworkPolicy/auth-postgres-dev-postgresql",
            "ServiceAccount/auth-postgres-dev-snapshots",
            "Role/auth-postgres-dev-snapshots",
            "RoleBinding/auth-postgres-dev-snapshots",
            "ConfigMap/auth-postgres-dev-snapshots",
            "CronJob/auth-postgres-dev-snapshots",
        ]
    );
    for o in &objects {
        let j = o.to_json();
        assert_eq!(j["metadata"]["namespace"], "phonebill-dev", "{}", o.name());
        let labels = &j["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "postgresql");
        assert_eq!(labels["app.kubernetes.io/instance"], "auth-postgres-dev");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "phonebill-db");
    }
    let Some(Object::StatefulSet(sts)) = objects.iter().find(|o| o.kind() == "StatefulSet") else {
        panic!("a StatefulSet is rendered")
    };
    let spec = sts.spec.as_ref().unwrap();
    let selector = spec.selector.match_labels.as_ref().unwrap();
    assert_eq!(selector, &p.selector_labels());
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert!(
        selector
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v))
    );
    assert_eq!(
        spec.service_name.as_deref(),
        Some("auth-postgres-dev-postgresql-hl")
    );
    for svc in objects.iter().filter_map(|o| {
        if let Object::Service(s) = o {
            Some(s)
        } else {
            None
        }
    }) {
        // The StatefulSet's labels and its pod's name (set by the StatefulSet controller): an
        // upgrade's second StatefulSet has the same labels and is not served until it switches.
        let mut serving = p.selector_labels();
        serving.insert(
            "statefulset.kubernetes.io/pod-name".into(),
            "auth-postgres-dev-postgresql-0".into(),
        );
        assert_eq!(
            svc.spec.as_ref().unwrap().selector.as_ref().unwrap(),
            &serving,
            "{:?}",
            svc.metadata.name
        );
    }
}

#[test]
fn the_statefulset_carries_the_profile_resources_storage_and_hardening() {
    let (profile, objects) = dev();
    let p = profile.cluster.as_ref().unwrap();
    let Some(Object::StatefulSet(sts)) = objects.iter().find(|o| o.kind() == "StatefulSet") else {
        panic!("a StatefulSet is rendered")
    };
    let spec = sts.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    let pg = &pod.containers[0];
    assert_eq!(pg.image.as_deref(), Some(p.image.as_str()));
    let res = pg.resources.as_ref().unwrap();
    let q = |m: &Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
             k: &str| m.as_ref().unwrap()[k].0.clone();
    assert_eq!(q(&res.requests, "cpu"), p.resources.requests.cpu);
    assert_eq!(q(&res.requests, "memory"), p.resources.requests.memory);
    assert_eq!(q(&res.limits, "cpu"), p.resources.limits.cpu);
    assert_eq!(q(&res.limits, "memory"), p.resources.limits.memory);
    let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
    let cs = claim.spec.as_ref().unwrap();
    assert_eq!(cs.storage_class_name.as_deref(), Some("managed-standard"));
    assert_eq!(
        cs.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "20Gi"
    );
    // Security: non-root with fsGroup, no escalation, all capabilities dropped, RuntimeDefault seccomp, no token.
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.fs_group, Some(p.security_context.fs_group));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    for c in &pod.containers {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..]),
            "{}",
            c.name
        );
    }
    // pg_isready probes with start-up slack of at least five minutes.
    let startup = pg.startup_probe.as_ref().unwrap();
    assert!(
        startup
            .exec
            .as_ref()
            .unwrap()
            .command
            .as_ref()
            .unwrap()
            .join(" ")
            .contains("pg_isready")
    );
    assert!(startup.period_seconds.unwrap() * startup.failure_threshold.unwrap() >= 300);
    assert!(pg.readiness_probe.is_some() && pg.liveness_probe.is_some());
    assert_eq!(pod.containers[1].name, "metrics");
    // No password as an environment variable: the image and the exporter read files.
    for c in &pod.containers {
        for e in c.env.as_deref().unwrap_or_default() {
            assert!(
                e.value_from.is_none(),
                "{}: {} comes from a Secret as a variable",
                c.name,
                e.name
            );
        }
    }
    let env = |c: &k8s_openapi::api::core::v1::Container, name: &str| {
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        env(pg, "POSTGRES_PASSWORD_FILE").as_deref(),
        Some("/etc/postgresql/credentials/postgres-password")
    );
    // The exporter logs in as its own role (pg_monitor), with its own password: not the admin's.
    assert_eq!(
        env(&pod.containers[1], "DATA_SOURCE_PASS_FILE").as_deref(),
        Some("/etc/postgres-exporter/credentials/metrics-password")
    );
    assert_eq!(
        env(&pod.containers[1], "DATA_SOURCE_USER").as_deref(),
        Some("phonebill_metrics")
    );
    let exporter_keys: Vec<String> = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "metrics-credentials")
        .and_then(|v| v.secret.as_ref()?.items.clone())
        .unwrap()
        .iter()
        .map(|i| i.key.clone())
        .collect();
    assert_eq!(
        exporter_keys,
        ["metrics-password"],
        "the admin password is not mounted there"
    );
    // The server's key: 0640, which PostgreSQL accepts from a root-owned file (the kubelet makes
    // secret files root's, group fsGroup).
    let volumes = pod.volumes.as_ref().unwrap();
    let tls = volumes
        .iter()
        .find(|v| v.name == "tls")
        .unwrap()
        .secret
        .as_ref()
        .unwrap();
    assert_eq!(
        tls.secret_name.as_deref(),
        Some("auth-postgres-dev-postgresql-tls")
    );
    assert_eq!(tls.default_mode, Some(0o640));
    let keys: Vec<&str> = tls
        .items
        .as_ref()
        .unwrap()
        .iter()
        .map(|i| i.key.as_str())
        .collect();
    assert_eq!(
        keys,
        ["tls.crt", "tls.key"],
        "the CA's key is mounted nowhere"
    );
}

#[test]
fn postgres_settings_and_init_scripts_come_from_the_profile() {
    let (profile, objects) = dev();
    let p = profile.cluster.as_ref().unwrap();
    let Some(Object::ConfigMap(cm)) = objects.iter().find(|o| o.kind() == "ConfigMap") else {
        panic!("a ConfigMap is rendered")
    };
    let data = cm.data.as_ref().unwrap();
    let conf = &data["postgresql.conf"];
    for line in [
        format!("shared_buffers = '{}'", p.postgresql.shared_buffers),
        format!(
            "effective_cache_size = '{}'",
            p.postgresql.effective_cache_size
        ),
        format!("max_connections = {}", p.postgresql.max_connections),
        format!("work_mem = '{}'", p.postgresql.work_mem),
        format!(
            "maintenance_work_mem = '{}'",
            p.postgresql.maintenance_work_mem
        ),
        format!("timezone = '{}'", p.postgresql.time_zone),
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "missing `{line}` in:\n{conf}"
        );
    }
    // pg_stat_statements preloaded (status --queries), a profile switch.
    assert!(
        conf.lines()
            .any(|l| l == "shared_preload_libraries = 'pg_stat_statements'")
    );
    let mut off = profile.clone();
    off.cluster.as_mut().unwrap().postgresql.stat_statements = false;
    let objects_off =
        render::render(&off, &Passwords::placeholders(), &Tls::placeholders()).unwrap();
    let Some(Object::ConfigMap(cm_off)) = objects_off.iter().find(|o| o.kind() == "ConfigMap")
    else {
        panic!("a ConfigMap is rendered")
    };
    assert!(!cm_off.data.as_ref().unwrap()["postgresql.conf"].contains("shared_preload_libraries"));
    assert!(data["00-extensions.sql"].contains("CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\";"));
    assert!(data["00-extensions.sql"].contains("CREATE EXTENSION IF NOT EXISTS \"pgcrypto\";"));
    assert!(data["01-app-role.sh"].contains("NOSUPERUSER"));
    assert!(
        !data["01-app-role.sh"].contains("APP_PASSWORD\""),
        "no clear-text password"
    );
    // No trust anywhere; TLS for everything but the pod's own loopback.
    let hba = &data["pg_hba.conf"];
    let rules: Vec<Vec<&str>> = hba
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rules.iter().all(|r| !r.contains(&"trust")), "{hba}");
    assert_eq!(rules[0], ["local", "all", "all", "peer", "map=server"]);
    for r in &rules[1..] {
        match r[0] {
            // The loopback with a password; the administrator from anywhere else refused.
            "host" if r[4] == "reject" => {
                assert_eq!(r[2], "\"postgres\"", "{r:?}");
                assert!(["0.0.0.0/0", "::/0"].contains(&r[3]), "{r:?}");
            }
            "host" => assert!(["127.0.0.1/32", "::1/128"].contains(&r[3]), "{r:?}"),
            "hostssl" => assert_eq!(r[4], "scram-sha-256"),
            "hostnossl" => assert_eq!(r[4], "reject"),
            other => panic!("unexpected rule type {other}"),
        }
    }
    assert!(data["pg_ident.conf"].contains(&format!(
        "server     postgres         \"{}\"",
        profile.admin_user
    )));
    for line in [
        "hba_file = '/etc/postgresql/conf/pg_hba.conf'",
        "ssl = on",
        "ssl_key_file = '/etc/postgresql/tls/tls.key'",
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "missing `{line}` in:\n{conf}"
        );
    }
}

#[test]
fn the_app_secret_holds_the_in_cluster_url_and_passwords_are_used_verbatim() {
    let p = Profile::load("dev", None).unwrap();
    let pw = Passwords {
        admin: "admin-pw".into(),
        app: "app pw/1".into(),
        app_scram: "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5".into(),
        ..Passwords::placeholders()
    };
    let objects = render::render(&p, &pw, &Tls::placeholders()).unwrap();
    let Object::Secret(app) = &objects[2] else {
        panic!("the app Secret is third")
    };
    let s = app.string_data.as_ref().unwrap();
    assert_eq!(
        s["database-url"],
        "postgresql://auth_user:app%20pw%2F1@auth-postgres-dev-postgresql:5432/phonebill_auth?sslmode=verify-full"
    );
    assert_eq!(
        s["ca.crt"],
        Tls::placeholders().ca_crt,
        "the CA the URL verifies against"
    );
    let Object::Secret(admin) = &objects[1] else {
        panic!("the admin Secret is second")
    };
    assert_eq!(
        admin.string_data.as_ref().unwrap()["postgres-password"],
        "admin-pw"
    );
    assert_eq!(
        admin.string_data.as_ref().unwrap()["app-password-scram"],
        pw.app_scram
    );
    assert!(
        !render::to_yaml(
            &render::render(&p, &Passwords::placeholders(), &Tls::placeholders()).unwrap()
        )
        .unwrap()
        .contains("admin-pw")
    );
}

#[test]
fn the_network_policy_is_a_profile_switch() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "networkPolicy:\n  enabled: true\nmetrics:\n  enabled: false\n",
    )
    .unwrap();
    let p = Profile::load("dev", Some(&values)).unwrap();
    let objects = render::render(&p, &Passwords::placeholders(), &Tls::placeholders()).unwrap();
    let kinds: Vec<&str> = objects.iter().map(|o| o.kind()).collect();
    assert!(kinds.contains(&"NetworkPolicy"));
    assert!(
        !objects.iter().any(|o| o.name().ends_with("-metrics")),
        "metrics off removes its Service"
    );
    let Some(Object::NetworkPolicy(np)) = objects.iter().find(|o| o.kind() == "NetworkPolicy")
    else {
        unreachable!()
    };
    let from = &np.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0]
        .from
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        from.pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["tier"],
        "application"
    );
    validate_against_schemas(&render::to_yaml(&objects).unwrap());
}

#[test]
fn every_rendered_object_passes_the_kubernetes_1_33_schemas() {
    let (_, objects) = dev();
    validate_against_schemas(&render::to_yaml(&objects).unwrap());
    validate_against_schemas(
        &serde_yaml::to_string(&render::storage_class("managed-standard").unwrap()).unwrap(),
    );
    // expose's LoadBalancer service, with ranges and internal, and open.
    let (profile, _) = dev();
    for (ranges, internal) in [(vec!["203.0.113.0/24".to_string()], true), (vec![], false)] {
        let svc = render::external_service(&profile, &ranges, internal).unwrap();
        validate_against_schemas(&serde_yaml::to_string(&svc).unwrap());
    }
    // ...and its NetworkPolicy, for some ranges and for --allow-any.
    for ranges in [
        vec!["203.0.113.0/24".to_string(), "2001:db8::/32".into()],
        vec!["0.0.0.0/0".into(), "::/0".into()],
    ] {
        let policy = render::external_policy(&profile, &ranges).unwrap();
        validate_against_schemas(&serde_yaml::to_string(&policy).unwrap());
    }
    // install's record of what it applied.
    let record = phonebill_db::k8s::record::Record {
        environment: "dev".into(),
        values: serde_yaml::from_str("storage: {className: managed-csi}").unwrap(),
        tool_version: "0.1.0".into(),
        installed_at: "2026-11-24T00:00:00Z".into(),
        installed_by: "someone@example.com".into(),
        // As upgrade leaves it until --finalize.
        upgrade: Some(phonebill_db::k8s::record::UpgradeState {
            from_values: serde_yaml::from_str("storage: {className: managed-csi}").unwrap(),
            from_major: 16,
            from_stateful_set: "auth-postgres-dev-postgresql".into(),
            from_claim: "data-auth-postgres-dev-postgresql-0".into(),
            to_major: 17,
            backup: "phonebill_auth-dev-before-pg17-20261124T000000Z.dump".into(),
            switched_at: "2026-11-24T00:00:00Z".into(),
        }),
        kept_in: "Secret",
    };
    let record = render::release_record(&profile, &record).unwrap();
    let upgrade = record.string_data.as_ref().unwrap()["upgrade.yaml"].clone();
    assert!(upgrade.contains("toMajor: 17"), "{upgrade}");
    // As JSON, as the tool sends it (a YAML 1.1 reader takes an unquoted time for a timestamp).
    validate_against_schemas(&serde_json::to_string(&record).unwrap());
}

/// Strict OpenAPI validation (unknown fields are errors) with the `kubernetes-validate` schemas.
fn validate_against_schemas(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, yaml).unwrap();
    let tool =
        std::env::var("KUBERNETES_VALIDATE").unwrap_or_else(|_| "kubernetes-validate".into());
    let out = Command::new(&tool)
        .args(["--kubernetes-version", "1.33.0", "--strict", "--quiet"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}); `bash scripts/test.sh` installs it, or set KUBERNETES_VALIDATE"));
    assert!(
        out.status.success(),
        "schema validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prod_renders_only_the_secrets_that_reach_the_managed_server() {
    let p = Profile::load("prod", None).unwrap();
    let objects =
        render::render(&p, &Passwords::placeholders_for(&p), &Tls::placeholders()).unwrap();
    let ids: Vec<String> = objects
        .iter()
        .map(|o| format!("{}/{}", o.kind(), o.name()))
        .collect();
    assert_eq!(
        ids,
        [
            "Secret/auth-postgres-prod-postgresql",
            "Secret/auth-db-secret"
        ],
        "no StatefulSet, PVC, Service or LoadBalancer in prod"
    );
    let Object::Secret(app) = &objects[1] else {
        panic!("the app Secret")
    };
    assert_eq!(
        app.string_data.as_ref().unwrap()["database-url"],
        format!(
            "postgresql://auth_user:{}@phonebill-postgresql.postgres.database.azure.com:5432/phonebill_auth?sslmode=verify-full",
            render::PASSWORD_PLACEHOLDER
        )
    );
    validate_against_schemas(&render::to_yaml(&objects).unwrap());
}

/// checkov (Bridgecrew's policy scanner) on a render: its failed checks as (check id, resource).
fn checkov(yaml: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("render.yaml");
    std::fs::write(&file, yaml).unwrap();
    let tool = std::env::var("CHECKOV").unwrap_or_else(|_| "checkov".into());
    let out = Command::new(&tool)
        .args([
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "--skip-download",
            "-o",
            "json",
            "-f",
        ])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}); `bash scripts/test.sh` installs it, or set CHECKOV")
        });
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        report["summary"]["passed"].as_u64().unwrap() > 50,
        "{}",
        report["summary"]
    );
    report["results"]["failed_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check_id"].as_str().unwrap().to_string(),
                c["resource"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// With the images pinned by digest (as the templates' comments say), the scheduled jobs' CronJobs
/// (snapshots, and the off-hours stop and start, switched on here) fail no check at all: the
/// schedules add nothing to checkov's count beyond the tag they are given; and every object of
/// theirs passes the schemas.
#[test]
fn checkov_finds_nothing_in_the_schedules_once_their_image_is_pinned() {
    let (dev, _) = dev();
    let c = dev.cluster.unwrap();
    let digest = format!("@sha256:{}", "0123456789abcdef".repeat(4));
    let snapshot_image = format!("{}{digest}", c.snapshots.image);
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("pinned.yaml");
    std::fs::write(
        &values,
        format!(
            "image: {}{digest}\nmetrics: {{image: {}{digest}}}\nsnapshots: {{image: {snapshot_image}}}\noffHours: {{enabled: true}}\ndrillSchedule: {{enabled: true}}\n",
            c.image, c.metrics.image
        ),
    )
    .unwrap();
    let p = Profile::load("dev", Some(&values)).unwrap();
    let objects = render::render(&p, &Passwords::placeholders(), &Tls::placeholders()).unwrap();
    let yaml = render::to_yaml(&objects).unwrap();
    assert!(
        yaml.contains(&snapshot_image),
        "the pinned image is rendered"
    );
    for cron_job in [
        "auth-postgres-dev-snapshots",
        "auth-postgres-dev-stop",
        "auth-postgres-dev-start",
        "auth-postgres-dev-drills",
    ] {
        assert!(
            objects
                .iter()
                .any(|o| o.kind() == "CronJob" && o.name() == cron_job),
            "{cron_job} is rendered"
        );
    }
    validate_against_schemas(&yaml);
    let failed = checkov(&yaml);
    assert!(
        failed.iter().all(|(_, r)| !r.starts_with("CronJob.")),
        "checkov: {failed:?}"
    );
    assert_eq!(
        failed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["CKV_K8S_40"],
        "only the UID is left once the images are pinned"
    );

    // A snapshot restore drill's copy (its claim, its pod of the release's template, its
    // NetworkPolicy): schema-valid, and as hardened as the database pod.
    let Some(Object::StatefulSet(sts)) = objects.iter().find(|o| o.kind() == "StatefulSet") else {
        panic!("a StatefulSet is rendered")
    };
    let snap: phonebill_db::k8s::snapshot::VolumeSnapshot =
        serde_json::from_value(serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "snap"}, "spec": {"source": {"persistentVolumeClaimName": "data"}},
        "status": {"readyToUse": true, "restoreSize": "20Gi"}}))
        .unwrap();
    let copy = phonebill_db::k8s::drill_copy::plan(&p, sts, None, "snap", &snap).unwrap();
    let yaml = [
        serde_yaml::to_string(&copy.claim).unwrap(),
        serde_yaml::to_string(&copy.pod).unwrap(),
        serde_yaml::to_string(&copy.policy).unwrap(),
    ]
    .join("---\n");
    validate_against_schemas(&yaml);
    let pod = copy.pod.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1, "the database container alone");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert!(
        copy.pod.metadata.labels.as_ref().unwrap()["app.kubernetes.io/component"]
            == "restore-drill",
        "no Service selects it"
    );
    let failed = checkov(&format!(
        "{yaml}---\n{}",
        render::to_yaml(&objects).unwrap()
    ));
    assert!(
        failed
            .iter()
            .all(|(id, r)| !r.contains("auth-postgres-dev-drill") || id == "CKV_K8S_40"),
        "checkov, on the copy: {failed:?}"
    );
}

#[test]
fn checkov_fails_at_most_three_checks_each_explained_where_it_fails() {
    let (_, objects) = dev();
    let failed = checkov(&render::to_yaml(&objects).unwrap());
    assert!(failed.len() <= 3, "checkov: {failed:?}");
    // Every failure is explained by a comment in the template that renders the field.
    let templates: String = std::fs::read_dir("templates/manifests")
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for (id, resource) in &failed {
        assert!(
            templates.contains(&format!("# checkov {id} ")),
            "{id} fails for {resource} without a comment saying why"
        );
    }
}

/// docs/commands/render.md lists what render emits, for each environment, in order.
#[tokio::test]
async fn the_render_page_lists_every_object_render_emits() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/commands/render.md"
    ))
    .unwrap();
    let blocks: Vec<Vec<String>> = crate::support::fenced_blocks(&page, "text")
        .into_iter()
        .map(|b| {
            b.iter()
                .filter_map(|l| l.split_whitespace().next().map(String::from))
                .collect()
        })
        .collect();
    assert_eq!(blocks.len(), 2, "a block for dev, one for prod");
    let home = tempfile::tempdir().unwrap();
    for (env, listed) in ["dev", "prod"].iter().zip(&blocks) {
        let run =
            crate::support::run_bin(home.path(), &["render", "--env", env, "-o", "json"]).await;
        let emitted: Vec<String> = run.ok_json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            &emitted, listed,
            "{env}: docs/commands/render.md is out of date"
        );
    }
}
