//! Property tests of what reads user input (proptest): values files, `--database-url`, backup
//! manifests. Whatever comes in: no panic, and every rejection is a user error (a one-line cause,
//! a hint, an exit code), never a crash or an unexplained failure.

use std::io::Write;

use phonebill_db::db::{backup_file, tls};
use phonebill_db::error::UserError;
use phonebill_db::profile::Profile;
use proptest::prelude::*;
use serde_yaml::Value;

fn is_user_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<UserError>().is_some())
}

/// Keys of the dev profile and a few that are not, at any depth.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "namespace", "release", "database", "adminUser", "appUser", "image", "imagePullPolicy",
            "resources", "requests", "limits", "cpu", "memory", "storage", "className", "size",
            "postgresql", "sharedBuffers", "maxConnections", "timeZone", "workMem", "service",
            "port", "metrics", "enabled", "networkPolicy", "allowFromPodLabels", "tier",
            "extensions", "snapshot", "driver", "expose", "serviceName", "securityContext",
            "runAsUser", "fsGroup", "sampleData", "production", "environment", "managed",
        ]).prop_map(str::to_string),
        1 => "[a-zA-Z_\\n\\t ]{0,8}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|n| Value::Number(n.into())),
        ".{0,24}".prop_map(Value::String),
        "[a-z0-9./:-]{0,20}".prop_map(Value::String),
        Just(Value::Null),
    ]
}

fn yaml() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            prop::collection::vec((key(), inner), 0..6).prop_map(|pairs| {
                Value::Mapping(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (Value::String(k), v))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_values_document_loads_or_is_refused_as_a_usage_error(doc in yaml(), env in prop::sample::select(vec!["dev", "prod"])) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(serde_yaml::to_string(&doc).unwrap().as_bytes()).unwrap();
        match Profile::load(env, Some(f.path())) {
            Ok(p) => {
                // What loads renders: the rules keep every value quotable.
                let tls = phonebill_db::certs::Tls::placeholders();
                phonebill_db::render::render(&p, &phonebill_db::render::Passwords::placeholders(), &tls).unwrap();
            }
            Err(e) => {
                prop_assert!(is_user_error(&e), "not a user error: {e:#}");
                let r = phonebill_db::error::report(&e);
                prop_assert_eq!(r.exit_code, 2, "{}", r.error);
                prop_assert!(r.error.contains(&f.path().display().to_string()), "the file is named: {}", r.error);
                prop_assert!(r.hint.is_some());
                prop_assert!(!r.error.contains('\n'));
            }
        }
    }

    #[test]
    fn any_text_as_a_values_file_is_refused_or_loaded(text in ".{0,200}") {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        if let Err(e) = Profile::load("dev", Some(f.path())) {
            prop_assert!(is_user_error(&e), "not a user error: {e:#}");
            prop_assert_eq!(phonebill_db::error::report(&e).exit_code, 2);
        }
    }

    #[test]
    fn any_database_url_parses_or_is_a_usage_error(
        text in prop_oneof![
            ".{0,80}",
            "postgres(ql)?://[a-z:@%/?=&._-]{0,60}",
            "postgresql://[a-z]{1,5}(:[a-z%0-9]{0,5})?@[a-z0-9.]{1,10}(:[0-9]{1,6})?/[a-z]{0,5}\\?(sslmode|password|sslrootcert|connect_timeout)=[a-z0-9-]{0,12}",
        ]
    ) {
        match tls::parse_url(&text, None, None) {
            Ok(u) => prop_assert!(!u.shown.contains("password="), "{}", u.shown),
            Err(e) => {
                prop_assert!(is_user_error(&e), "not a user error: {e:#}");
                prop_assert_eq!(phonebill_db::error::report(&e).exit_code, 2);
            }
        }
    }

    #[test]
    fn any_backup_and_manifest_is_accepted_or_refused_with_exit_4(
        data in prop::collection::vec(any::<u8>(), 0..300),
        manifest in prop_oneof![
            ".{0,200}",
            Just(r#"{"kind": "phonebill-db-backup", "version": 1}"#.to_string()),
            "\\{\"kind\": \"phonebill-db-backup\", \"version\": [0-9]{1,2}, \"format\": \"(custom|plain|x)\", \"size\": [0-9]{1,4}, \"sha256\": \"[0-9a-f]{0,64}\", \"database\": \"[a-z]{0,8}\"\\}",
        ]
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.dump");
        std::fs::write(&file, &data).unwrap();
        std::fs::write(backup_file::manifest_path(&file), manifest.as_bytes()).unwrap();
        if let Err(e) = backup_file::inspect(&file) {
            prop_assert!(is_user_error(&e), "not a user error: {e:#}");
            prop_assert_eq!(phonebill_db::error::report(&e).exit_code, 4);
        }
    }
}
