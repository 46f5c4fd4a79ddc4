//! Property tests of what reads user input (proptest): values files, `--database-url`, backup
//! manifests, the plain-dump filter, and the server's side of authentication. Whatever comes in:
//! no panic, every rejection is a user error (a one-line cause, a hint, an exit code), never a
//! crash or an unexplained failure, and each input is judged within [`EACH`].

use std::io::Write;

use phonebill_db::db::{backup_file, tls};
use phonebill_db::error::UserError;
use phonebill_db::profile::Profile;
use proptest::prelude::*;
use serde_yaml::Value;

/// The most one input may take (a debug build on a busy machine; the inputs are small, so a
/// quadratic reader would still show: 200 KB of nesting took minutes).
const EACH: std::time::Duration = std::time::Duration::from_secs(5);

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
        let started = std::time::Instant::now();
        let loaded = Profile::load(env, Some(f.path()));
        prop_assert!(started.elapsed() < EACH, "{:?}", started.elapsed());
        match loaded {
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
    fn any_text_as_a_values_file_is_refused_or_loaded(
        text in prop_oneof![
            ".{0,200}",
            // YAML's own punctuation, nested and unbalanced, at length.
            "[\\[\\]{}:, \n\"'&*!|>#-]{0,400}",
            (1usize..40_000, prop::sample::select(vec!["[", "{a: ", "- ", "  a:\n"]))
                .prop_map(|(n, open)| format!("storage: {}", open.repeat(n))),
        ]
    ) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let started = std::time::Instant::now();
        let loaded = Profile::load("dev", Some(f.path()));
        prop_assert!(started.elapsed() < EACH, "{} bytes: {:?}", text.len(), started.elapsed());
        if let Err(e) = loaded {
            prop_assert!(is_user_error(&e), "not a user error: {e:#}");
            prop_assert_eq!(phonebill_db::error::report(&e).exit_code, 2);
        }
    }

    #[test]
    fn any_database_url_parses_or_is_a_usage_error(
        text in prop_oneof![
            ".{0,80}",
            "postgres(ql)?://[a-z:@%/?=&._-]{0,60}",
            "postgresql://[a-z]{1,5}(:[a-z%0-9]{0,5})?@[a-z0-9.]{1,10}(:[0-9]{1,6})?/[a-z]{0,5}\\?(sslmode|password|sslrootcert|connect_timeout|require_auth)=[a-z0-9!,-]{0,12}",
        ]
    ) {
        let started = std::time::Instant::now();
        let parsed = tls::parse_url(&text, None, None);
        prop_assert!(started.elapsed() < EACH);
        match parsed {
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
        let started = std::time::Instant::now();
        let inspected = backup_file::inspect(&file, None);
        prop_assert!(started.elapsed() < EACH);
        if let Err(e) = inspected {
            prop_assert!(is_user_error(&e), "not a user error: {e:#}");
            prop_assert_eq!(phonebill_db::error::report(&e).exit_code, 4);
        }
    }

    /// The plain-dump filter, fed SQL-like text in chunks of any size (and gzip-compressed): it
    /// takes or refuses, with a line within the input, and never panics; chunking changes nothing.
    #[test]
    fn any_plain_sql_is_taken_or_refused_with_its_line(
        parts in prop::collection::vec(prop_oneof![
            Just("SELECT 1;\n".to_string()),
            Just("COPY public.t (a) FROM stdin;\n".to_string()),
            Just("1\tx\n".to_string()),
            Just("\\.\n".to_string()),
            Just("\\! id\n".to_string()),
            Just("\\restrict abc\n".to_string()),
            Just("$$".to_string()),
            Just("$f$".to_string()),
            Just("E'\\''".to_string()),
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("/*".to_string()),
            Just("*/".to_string()),
            Just("-- c\n".to_string()),
            Just("BEGIN ATOMIC ".to_string()),
            Just("END;".to_string()),
            Just(":var".to_string()),
            "[ -~\n\t]{0,30}",
        ], 0..40),
        step in 1usize..64,
    ) {
        use phonebill_db::db::plain_sql::{GzGuard, Guard};
        let sql: String = parts.concat();
        let lines = sql.lines().count() as u64 + 1;
        let started = std::time::Instant::now();
        let whole = {
            let mut g = Guard::new();
            g.feed(sql.as_bytes(), None).and_then(|_| g.finish())
        };
        let chunked = {
            let mut g = Guard::new();
            sql.as_bytes()
                .chunks(step)
                .try_for_each(|c| g.feed(c, None))
                .and_then(|_| g.finish())
        };
        prop_assert_eq!(format!("{whole:?}"), format!("{chunked:?}"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(sql.as_bytes()).unwrap();
        let packed = gz.finish().unwrap();
        let unpacked = {
            let mut g = GzGuard::new();
            packed.chunks(step).try_for_each(|c| g.push(c, None)).and_then(|_| g.finish(None))
        };
        prop_assert_eq!(format!("{whole:?}"), format!("{unpacked:?}"));
        prop_assert!(started.elapsed() < EACH);
        if let Err(r) = whole {
            prop_assert!(r.line <= lines, "line {} of {lines}", r.line);
            prop_assert!(!r.why.is_empty() && !r.why.contains('\n'));
        }
    }

    /// The server's side of authentication, any bytes after any client start: the guard takes,
    /// or refuses with a method, and never panics.
    #[test]
    fn any_server_answer_is_judged_without_panic(
        ssl in any::<bool>(),
        server in prop::collection::vec(any::<u8>(), 0..200),
        rule in prop::sample::select(vec!["!password", "scram-sha-256", "md5,none", "!md5,!none"]),
    ) {
        use phonebill_db::db::require_auth::{Guarded, RequireAuth};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, mut far) = tokio::io::duplex(4096);
            let mut g = Guarded::new(client, RequireAuth::parse(rule).unwrap());
            let start: Vec<u8> = if ssl {
                vec![0, 0, 0, 8, 4, 210, 22, 47]
            } else {
                vec![0, 0, 0, 9, 0, 3, 0, 0, 0]
            };
            g.write_all(&start).await.unwrap();
            far.write_all(&server).await.unwrap();
            drop(far);
            let mut got = Vec::new();
            match g.read_to_end(&mut got).await {
                Ok(_) => assert!(got.len() <= server.len()),
                Err(e) => assert!(e.to_string().contains("require_auth="), "{e}"),
            }
        });
    }
}
