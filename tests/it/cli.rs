//! Bad input through the real binary: one error line with a hint, the documented exit code.

use crate::support::{Cluster, run_bin};

#[tokio::test]
async fn help_lists_only_the_commands_that_work() {
    let home = tempfile::tempdir().unwrap();
    let run = run_bin(home.path(), &["--help"]).await;
    assert_eq!(run.code, 0);
    let commands: Vec<&str> = run
        .stdout
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "render",
            "values",
            "install",
            "status",
            "uninstall",
            "apply-schema",
            "verify",
            "expose",
            "connect",
            "backup",
            "restore",
            "stop",
            "start",
            "resize",
            "rotate-password",
            "upgrade",
            "logs",
            "psql",
            "report",
            "completion",
            "man",
            "help"
        ]
    );
    assert!(run.stdout.contains(
        "Exit codes: 0 done, 1 failed, 2 usage error, 3 timed out waiting, 4 checks failed"
    ));
}

#[tokio::test]
async fn an_unknown_environment_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let run = run_bin(home.path(), &["render", "--env", "qa"]).await;
    assert_eq!(run.code, 2);
    assert_eq!(run.error_line(), "error: unknown environment `qa`");
    assert_eq!(run.hint_line(), "hint: choose one of: dev, prod");
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn a_values_file_with_an_unknown_key_names_key_and_file() {
    let home = tempfile::tempdir().unwrap();
    let values = home.path().join("values.yaml");
    std::fs::write(&values, "storage:\n  size: 50Gi\n  clas: fast\n").unwrap();
    let run = run_bin(
        home.path(),
        &["render", "--values", values.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.error_line(),
        format!(
            "error: values file {}: unknown key `storage.clas`",
            values.display()
        )
    );
    assert!(run.hint_line().contains("className"), "{}", run.stderr);
}

#[tokio::test]
async fn a_values_file_that_empties_one_of_the_profiles_mappings_names_key_and_file() {
    let home = tempfile::tempdir().unwrap();
    let values = home.path().join("values.yaml");
    std::fs::write(&values, "managed: null\n").unwrap();
    let run = run_bin(
        home.path(),
        &[
            "render",
            "--env",
            "prod",
            "--values",
            values.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.error_line(),
        format!(
            "error: values file {}: key `managed`: expected a mapping of keys, as in the profile, found null",
            values.display()
        )
    );
    assert!(
        run.hint_line()
            .contains("set the keys below `managed` one by one"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "nothing rendered: {}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
}

#[tokio::test]
async fn a_malformed_values_file_is_refused_with_its_position() {
    let home = tempfile::tempdir().unwrap();
    let values = home.path().join("values.yaml");
    std::fs::write(&values, "storage: [unclosed\n").unwrap();
    let run = run_bin(
        home.path(),
        &["render", "--values", values.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 2, "every bad values file is a usage error");
    let line = run.error_line();
    assert!(
        line.starts_with(&format!(
            "error: values file {} is not valid YAML",
            values.display()
        )),
        "{line}"
    );
    assert!(line.contains("line"), "{line}");
}

#[tokio::test]
async fn a_value_of_the_wrong_type_names_its_key() {
    let home = tempfile::tempdir().unwrap();
    let values = home.path().join("values.yaml");
    std::fs::write(&values, "service:\n  port: postgres\n").unwrap();
    let run = run_bin(
        home.path(),
        &["render", "--values", values.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 2, "every bad values file is a usage error");
    assert!(
        run.error_line()
            .contains("key `service.port` is the text \"postgres\", not a whole number"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_missing_values_file_is_named() {
    let home = tempfile::tempdir().unwrap();
    let run = run_bin(
        home.path(),
        &["render", "--values", "/nonexistent/values.yaml"],
    )
    .await;
    assert_eq!(run.code, 2, "every bad values file is a usage error");
    assert!(
        run.error_line()
            .starts_with("error: cannot read values file /nonexistent/values.yaml"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_missing_kubeconfig_says_how_to_get_one() {
    let home = tempfile::tempdir().unwrap();
    let run = run_bin(home.path(), &["status"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.error_line(),
        format!(
            "error: kubeconfig {}/.kube/config does not exist",
            home.path().display()
        )
    );
    assert!(run.hint_line().contains("az aks get-credentials"));
    // Given with --kubeconfig: said so, and the hint does not send the user back to the flag.
    let run = run_bin(home.path(), &["install", "--kubeconfig", "/nonexistent/kc"]).await;
    assert_eq!(
        run.error_line(),
        "error: kubeconfig /nonexistent/kc (--kubeconfig) does not exist"
    );
    assert!(
        run.hint_line()
            .contains("check the path given to --kubeconfig"),
        "{}",
        run.stderr
    );
    assert!(
        !run.hint_line().contains("pass --kubeconfig"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_named() {
    let home = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kc = home.path().join("kc");
    std::fs::write(&kc, format!("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n")).unwrap();
    let run = run_bin(
        home.path(),
        &[
            "install",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 1);
    let line = run.error_line();
    assert!(
        line.contains(&format!(
            "cannot reach the Kubernetes API at http://127.0.0.1:{port}"
        )),
        "{line}"
    );
    assert!(run.hint_line().contains("--context"));
    // JSON mode: CI gets the error as JSON on stdout too.
    let j = run.json();
    assert_eq!(j["exit_code"], 1);
    assert!(j["error"].as_str().unwrap().contains("cannot reach"));
}

#[tokio::test]
async fn an_unknown_context_lists_the_known_ones() {
    let c = Cluster::aks().await;
    let run = c.run(&["status", "--context", "prod-aks"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.error_line(),
        "error: the kubeconfig has no context `prod-aks`"
    );
    assert_eq!(run.hint_line(), "hint: known contexts: fake");
}

#[tokio::test]
async fn refused_credentials_say_how_to_refresh_them() {
    let c = Cluster::aks().await;
    // An expired token instead of the client certificate (the server still trusts its CA).
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let user = text.find("    client-certificate-data").unwrap();
    std::fs::write(
        &c.kubeconfig,
        format!("{}    token: expired\n", &text[..user]),
    )
    .unwrap();
    let run = c.run(&["status"]).await;
    assert_eq!(run.code, 1);
    assert!(run.error_line().contains("401"), "{}", run.stderr);
    assert!(run.hint_line().contains("az aks get-credentials"));
}

#[tokio::test]
async fn a_bad_timeout_or_namespace_is_a_usage_error() {
    let c = Cluster::aks().await;
    let run = c.run(&["install", "--timeout", "soon"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = c.run(&["install", "--namespace", "Bad_NS"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.error_line().contains("--namespace `Bad_NS`"));
    assert!(c.fake.inventory("Bad_NS").is_empty());
}

#[tokio::test]
async fn values_that_would_inject_into_the_configuration_are_refused_naming_file_key_and_rule() {
    let home = tempfile::tempdir().unwrap();
    let values = home.path().join("values.yaml");
    for (text, key, says) in [
        // A line break would end the setting and start another in postgresql.conf.
        (
            "postgresql:\n  timeZone: \"Asia/Seoul'\\nssl = off\\n#\"\n",
            "postgresql.timeZone",
            "control characters",
        ),
        // ...or a new key of the ConfigMap's block.
        (
            "extensions: [\"pgcrypto\\n  evil.sh: |\"]\n",
            "extensions[0]",
            "control characters",
        ),
        (
            "postgresql:\n  sharedBuffers: 256 MB\n",
            "postgresql.sharedBuffers",
            "allowed: a PostgreSQL memory size",
        ),
        (
            "postgresql:\n  timeZone: Seoul\n",
            "postgresql.timeZone",
            "allowed: an IANA time zone name",
        ),
        (
            "image: \"postgres:16 --privileged\"\n",
            "image",
            "allowed: an image reference",
        ),
        (
            "resources:\n  limits:\n    memory: 512Mi\n",
            "resources.limits.memory",
            "at least the request",
        ),
        (
            "service:\n  port: 70000\n",
            "service.port",
            "not a whole number from 0 to 65535",
        ),
        (
            "networkPolicy:\n  allowFromPodLabels:\n    tier: \"app tier\"\n",
            "networkPolicy.allowFromPodLabels.tier",
            "allowed: a label value",
        ),
    ] {
        std::fs::write(&values, text).unwrap();
        let run = run_bin(
            home.path(),
            &["render", "--values", values.to_str().unwrap()],
        )
        .await;
        assert_eq!(run.code, 2, "{text}: {}", run.stderr);
        let line = run.error_line();
        assert!(line.contains(&values.display().to_string()), "{line}");
        assert!(line.contains(&format!("key `{key}`")), "{text}: {line}");
        assert!(run.stderr.contains(says), "{text}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "nothing rendered");
    }
}

/// clap's own refusals go through the one reporter: `error:` and `hint:` lines, exit 2, and with
/// `-o json|yaml` the error document on stdout (there was nothing there).
#[tokio::test]
async fn a_command_line_clap_refuses_is_reported_like_any_error() {
    let home = tempfile::tempdir().unwrap();
    for (args, error, hint) in [
        (
            vec!["install", "--dry-rn", "-o", "json"],
            "unexpected argument '--dry-rn' found",
            "a similar argument exists: '--dry-run'",
        ),
        (
            vec!["backup", "--format", "xyz", "--output=json"],
            "invalid value 'xyz' for '--format <FORMAT>'",
            "possible values: custom, plain",
        ),
    ] {
        let run = crate::support::run_bin(home.path(), &args).await;
        run.refused(2, error, hint);
        let doc = run.json();
        assert_eq!(doc["error"], error, "{doc}");
        assert_eq!(doc["hint"], hint, "{doc}");
        assert_eq!(doc["exit_code"], 2, "{doc}");
    }
    // Without -o: nothing on stdout; help is still help.
    let run = crate::support::run_bin(home.path(), &["verify", "--nope"]).await;
    run.refused(2, "unexpected argument '--nope' found", "--help");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let help = crate::support::run_bin(home.path(), &["install", "--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("--renew-ca"), "{}", help.stdout);
}

/// What the arguments alone refuse is refused before the record or the cluster is read: exit 2
/// at once, with the cause — not "kubeconfig … does not exist" (exit 1) after it. status says a
/// missing kubeconfig once.
#[tokio::test]
async fn usage_errors_do_not_wait_for_the_cluster() {
    let home = tempfile::tempdir().unwrap();
    let kc = ["--kubeconfig", "/nonexistent/kubeconfig"];
    for (args, error) in [
        (vec!["resize", "--storage", "10GB"], "`10GB` is not allowed"),
        (
            vec!["logs", "--follow", "--previous"],
            "--follow and --previous together",
        ),
        (
            vec!["expose", "--env", "prod", "--allow", "203.0.113.0/24"],
            "expose: environment `prod` has no database in the cluster",
        ),
        (
            vec!["install", "--env", "prod", "--storage-class", "x"],
            "install --storage-class: environment `prod` does not use it",
        ),
        (
            vec!["restore", "--from", "/nonexistent/auth.dump"],
            "--from /nonexistent/auth.dump: no such file; nothing was changed",
        ),
        (
            vec!["install", "--env", "prod", "--create-snapshot-class"],
            "install --create-snapshot-class: environment `prod` does not use it",
        ),
        (
            vec!["install", "--env", "prod", "--renew-ca"],
            "install --renew-ca: environment `prod` does not use it",
        ),
        (
            vec![
                "rotate-password",
                "--role",
                "app",
                "--password-from-env",
                "PHONEBILL_TEST_NOPE",
            ],
            "--password-from-env PHONEBILL_TEST_NOPE",
        ),
        (
            vec!["backup", "--env", "prod", "--snapshot"],
            "backup --snapshot: environment `prod` has no database in the cluster",
        ),
        (
            vec!["stop", "--env", "prod", "--yes"],
            "stop: environment `prod` has no database in the cluster",
        ),
        (
            vec!["start", "--env", "prod"],
            "start: environment `prod` has no database in the cluster",
        ),
    ] {
        let mut all = args.clone();
        all.extend(kc);
        let run = run_bin(home.path(), &all).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.error_line().contains(error), "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("kubeconfig"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let mut all = vec!["status"];
    all.extend(kc);
    let run = run_bin(home.path(), &all).await;
    assert_eq!(
        run.stderr.matches("does not exist").count(),
        1,
        "{}",
        run.stderr
    );
}

/// Every command's help reads the same way: one layout (`-h` and `--help` alike), the command's
/// options apart from the global ones, environment variables without a dangling `=`, and the
/// cluster's options only where a cluster is reached.
#[tokio::test]
async fn every_commands_help_has_one_layout() {
    let home = tempfile::tempdir().unwrap();
    let top = run_bin(home.path(), &["--help"]).await;
    let commands: Vec<String> = top
        .stdout
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() > 10, "{commands:?}");
    let globals = [
        "--env",
        "--namespace",
        "--context",
        "--kubeconfig",
        "--values",
        "--yes",
        "--output",
        "--verbose",
    ];
    let offline = ["render", "completion", "man"];
    for command in &commands {
        let long = run_bin(home.path(), &[command, "--help"]).await;
        let short = run_bin(home.path(), &[command, "-h"]).await;
        assert_eq!((long.code, short.code), (0, 0), "{command}");
        assert_eq!(long.stdout, short.stdout, "{command}: -h and --help differ");
        let help = &long.stdout;
        assert!(!help.contains("=]"), "{command}: a dangling `=`:\n{help}");
        // Sections in one order: Usage, [Arguments], Options, [Global options].
        let at = |heading: &str| help.find(&format!("\n{heading}:\n"));
        let usage = help.find("\nUsage: ").expect("Usage");
        let options = at("Options").unwrap_or_else(|| panic!("{command}: no Options:\n{help}"));
        assert!(usage < options, "{command}");
        if let Some(arguments) = at("Arguments") {
            assert!(usage < arguments && arguments < options, "{command}");
        }
        let (own, global) =
            help[options..].split_at(at("Global options").map_or(help.len() - options, |g| {
                assert!(g > options, "{command}");
                g - options
            }));
        for flag in globals {
            let listed = |section: &str| {
                // An option's own line starts with it: `  -y, --yes  …`, `      --env <ENV>  …`.
                section.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with('-')
                        && l.split("  ")
                            .next()
                            .unwrap_or_default()
                            .split([',', ' '])
                            .any(|w| w.trim_end_matches('.') == flag)
                })
            };
            assert!(
                !listed(own),
                "{command}: {flag} among the command's own options"
            );
            let cluster = ["--context", "--kubeconfig", "--yes"].contains(&flag);
            let expected = match command.as_str() {
                "completion" | "man" => false,
                c if offline.contains(&c) => !cluster,
                // They read the release's record, and never ask.
                "values" | "report" => flag != "--yes",
                _ => true,
            };
            assert_eq!(listed(global), expected, "{command}: {flag}:\n{help}");
        }
    }
}

/// A kubeconfig that cannot be read or parsed is named once (however it was found), with the line
/// and column of a parse error, on one line, and a hint that fits how it was given.
#[tokio::test]
async fn a_broken_kubeconfig_is_named_once_with_where() {
    let home = tempfile::tempdir().unwrap();
    let bad = home.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nclusters:\n- cluster:\n    server: https://x\n  name: a\n  bad: [\n",
    )
    .unwrap();
    let path = bad.display().to_string();
    let parse = format!(
        "error: kubeconfig {path} is not a kubeconfig this tool can read: invalid YAML or a wrong type at line 6, column 8"
    );
    let flag = run_bin(home.path(), &["status", "--kubeconfig", &path]).await;
    assert_eq!(flag.code, 1);
    assert_eq!(flag.error_line(), parse);
    let env = crate::support::run_bin_env(home.path(), &["status"], &[("KUBECONFIG", &path)]).await;
    assert_eq!(
        env.error_line(),
        parse,
        "named when found through $KUBECONFIG"
    );
    std::fs::create_dir_all(home.path().join(".kube")).unwrap();
    std::fs::copy(&bad, home.path().join(".kube/config")).unwrap();
    let default = run_bin(home.path(), &["status"]).await;
    assert_eq!(
        default.error_line(),
        format!(
            "error: kubeconfig {}/.kube/config is not a kubeconfig this tool can read: invalid YAML or a wrong type at line 6, column 8",
            home.path().display()
        )
    );
    for run in [&flag, &env, &default] {
        assert!(
            run.hint_line().contains("fix the file at that place"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
    }

    // A directory where the file should be: named once, and the hint fits the flag.
    let dir = home.path().join("kcdir");
    std::fs::create_dir(&dir).unwrap();
    let dir = dir.display().to_string();
    let run = run_bin(home.path(), &["status", "--kubeconfig", &dir]).await;
    let line = run.error_line();
    assert!(
        line.starts_with(&format!("error: cannot read kubeconfig {dir}: ")),
        "{line}"
    );
    assert_eq!(line.matches(&dir).count(), 1, "{line}");
    assert!(
        !run.hint_line().contains("pass --kubeconfig"),
        "{}",
        run.stderr
    );
}

/// A web server where the API server should be (a wrong URL in the kubeconfig, a proxy's page):
/// said so, once, with where to look — never "run install first", install included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_kubernetes_is_said_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for status in ["404 Not Found", "200 OK"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let page = "<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>";
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{page}",
            page.len()
        );
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let home = tempfile::tempdir().unwrap();
        let kc = home.path().join("kc");
        std::fs::write(&kc, format!("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n")).unwrap();
        let kc = kc.to_str().unwrap();
        for command in [
            &["install"][..],
            &["status"],
            &["uninstall", "--yes"],
            &["logs"],
        ] {
            let mut args = command.to_vec();
            args.extend(["--kubeconfig", kc]);
            let run = run_bin(home.path(), &args).await;
            assert_eq!(run.code, 1, "{command:?} ({status}): {}", run.stderr);
            assert!(
                run.error_line().contains(&format!(
                    "http://127.0.0.1:{port} does not answer as a Kubernetes API server"
                )),
                "{command:?} ({status}): {}",
                run.stderr
            );
            assert!(run.hint_line().contains("kubectl config view --minify"));
            assert!(!run.stderr.contains("install` first"), "{}", run.stderr);
            assert!(!run.stderr.contains("<html"), "{}", run.stderr);
            assert!(run.warnings().is_empty(), "said once: {}", run.stderr);
        }
        server.abort();
    }
}

/// `values` prints what commands work with, laid over in order and said where from; what it
/// prints is a values file every command takes; a type error in a values file is said in the
/// file's terms and points at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_prints_the_layers_and_type_errors_point_at_it() {
    let home = tempfile::tempdir().unwrap();
    let mine = home.path().join("mine.yaml");
    std::fs::write(&mine, "snapshots:\n  keep: 3\n").unwrap();
    let mine = mine.to_str().unwrap();
    // No cluster: the profile and the file, and why the record is not among them.
    let run = run_bin(home.path(), &["values", "--values", mine]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with(&format!(
        "# the embedded profile `dev`, then values file {mine}\n# the release's recorded values are not among them: kubeconfig"
    )), "{}", run.stdout);
    let printed: serde_yaml::Value = serde_yaml::from_str(&run.stdout).unwrap();
    assert_eq!(printed["snapshots"]["keep"], 3);
    assert_eq!(printed["storage"]["size"], "20Gi");
    // What it prints is a values file.
    let all = home.path().join("all.yaml");
    std::fs::write(&all, &run.stdout).unwrap();
    let render = run_bin(home.path(), &["render", "--values", all.to_str().unwrap()]).await;
    assert_eq!(render.code, 0, "{}", render.stderr);

    // With a cluster: the record laid between them.
    let c = Cluster::with_plan_class().await;
    let four = c.dir.path().join("four.yaml");
    std::fs::write(&four, "snapshots:\n  keep: 4\n").unwrap();
    c.install_ok(&["--values", four.to_str().unwrap()]).await;
    let doc = c.run(&["values", "-o", "json"]).await.ok_json();
    assert_eq!(doc["values"]["snapshots"]["keep"], 4, "{doc}");
    assert_eq!(
        doc["sources"][1],
        "Secret auth-postgres-dev-values (recorded by install)"
    );
    assert!(doc.get("recordNotRead").is_none());
    let over = c
        .run(&["values", "-o", "json", "--values", mine])
        .await
        .ok_json();
    assert_eq!(over["values"]["snapshots"]["keep"], 3, "--values last");
    let without = c
        .run(&["values", "-o", "json", "--no-record"])
        .await
        .ok_json();
    assert_eq!(without["values"]["snapshots"]["keep"], 7);

    // Type errors in the user's words, the profile's value as the example, and where to look.
    for (text, error, hint) in [
        (
            "snapshots:\n  keep: lots\n",
            "key `snapshots.keep` is the text \"lots\", not a whole number",
            "`snapshots.keep: 7`",
        ),
        (
            "metrics:\n  enabled:\n",
            "key `metrics.enabled` is empty, not true or false",
            "`metrics.enabled: true`",
        ),
        (
            "postgresql:\n  sharedBuffers: 256\n",
            "key `postgresql.sharedBuffers` is the number 256, not text",
            "`postgresql.sharedBuffers: 256MB`",
        ),
    ] {
        let bad = home.path().join("bad.yaml");
        std::fs::write(&bad, text).unwrap();
        let run = run_bin(home.path(), &["render", "--values", bad.to_str().unwrap()]).await;
        run.refused(2, error, hint);
        assert!(
            run.hint_line().contains("`phonebill-db values --env dev`"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("expected u32") && !run.stderr.contains("unit value"));
    }
}
