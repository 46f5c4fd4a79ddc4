//! The habits of kubectl users and CI, through the real binary: `-n`, `-o yaml`, completions, man
//! pages, `--version`, KUBECONFIG lists, colour, the kubectl plugin link, verify against a plain
//! server, and the CI example of docs/ci.md run as written.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::pg::{Pg, run_url, unique};
use crate::support::{Cluster, NS, expected_inventory, run_bin, run_bin_env};

fn yaml_to_json(text: &str) -> Value {
    let v: serde_yaml::Value =
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"));
    serde_json::to_value(v).expect("YAML maps to JSON")
}

#[tokio::test]
async fn dash_n_is_the_namespace() {
    let home = tempfile::tempdir().unwrap();
    let run = run_bin(home.path(), &["render", "-n", "team-a", "-o", "json"]).await;
    let list = run.ok_json();
    let items = list["items"].as_array().unwrap();
    assert!(items.len() >= 8);
    for item in items {
        assert_eq!(item["metadata"]["namespace"], "team-a", "{item}");
    }
    // The same validation as --namespace.
    let run = run_bin(home.path(), &["render", "-n", "Team_A"]).await;
    run.refused(
        2,
        "--namespace `Team_A` is not a valid namespace name",
        "lower-case",
    );
}

#[tokio::test]
async fn yaml_output_is_the_json_document() {
    let home = tempfile::tempdir().unwrap();
    let json = run_bin(home.path(), &["render", "-o", "json"])
        .await
        .ok_json();
    let yaml = run_bin(home.path(), &["render", "-o", "yaml"]).await;
    assert_eq!(yaml.code, 0, "{}", yaml.stderr);
    assert_eq!(yaml_to_json(&yaml.stdout), json);

    // A report from a cluster, and an error report, the same way.
    let c = Cluster::with_plan_class().await;
    let json = c.run(&["status", "-o", "json"]).await.json();
    let yaml = c.run(&["status", "-o", "yaml"]).await;
    assert_eq!(yaml_to_json(&yaml.stdout), json);
    assert_eq!(json["state"], "not-installed");

    let json = run_bin(home.path(), &["render", "--env", "qa", "-o", "json"]).await;
    let yaml = run_bin(home.path(), &["render", "--env", "qa", "-o", "yaml"]).await;
    assert_eq!(yaml.code, 2);
    assert_eq!(yaml_to_json(&yaml.stdout), json.json());
    assert_eq!(json.json()["error"], "unknown environment `qa`");
}

#[tokio::test]
async fn completion_scripts_are_valid() {
    let home = tempfile::tempdir().unwrap();
    let bash = run_bin(home.path(), &["completion", "bash"]).await;
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    let file = home.path().join("phonebill-db.bash");
    std::fs::write(&file, &bash.stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // It completes the subcommands and their flags.
    for word in [
        "apply-schema",
        "--storage-class",
        "--database-url",
        "--namespace",
    ] {
        assert!(bash.stdout.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish", "powershell"] {
        let run = run_bin(home.path(), &["completion", shell]).await;
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(
            run.stdout.contains("apply-schema"),
            "{shell} completion lacks the commands"
        );
    }
    let run = run_bin(home.path(), &["completion", "tcsh"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("possible values"), "{}", run.stderr);
}

#[tokio::test]
async fn man_pages_are_generated_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let top = run_bin(home.path(), &["man"]).await;
    assert_eq!(top.code, 0, "{}", top.stderr);
    assert!(top.stdout.contains(".TH phonebill-db 1"), "{}", top.stdout);
    assert!(
        top.stdout.contains("apply\\-schema"),
        "the top page lists the commands"
    );

    let dir = home.path().join("man1");
    std::fs::create_dir(&dir).unwrap();
    let run = run_bin(home.path(), &["man", "--dir", dir.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let install = std::fs::read_to_string(dir.join("phonebill-db-install.1")).unwrap();
    assert!(install.contains(".TH phonebill-db-install 1"));
    assert!(install.contains("\\-\\-storage\\-class"), "{install}");
    for sub in ["render", "verify", "backup", "restore", "completion"] {
        assert!(dir.join(format!("phonebill-db-{sub}.1")).exists(), "{sub}");
    }
    let run = run_bin(home.path(), &["man", "--dir", "no/such/dir"]).await;
    run.refused(2, "--dir no/such/dir is not a directory", "mkdir");
}

#[tokio::test]
async fn version_names_the_commit() {
    let home = tempfile::tempdir().unwrap();
    let run = run_bin(home.path(), &["--version"]).await;
    assert_eq!(run.code, 0);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let want = match head {
        Some(commit) => format!(
            "phonebill-db {} (commit {commit})",
            env!("CARGO_PKG_VERSION")
        ),
        None => format!(
            "phonebill-db {} (commit unknown)",
            env!("CARGO_PKG_VERSION")
        ),
    };
    assert_eq!(run.stdout.trim(), want);
}

#[tokio::test]
async fn kubeconfig_lists_are_merged_and_missing_files_skipped() {
    let c = Cluster::with_plan_class().await;
    let dir = c.dir.path();
    // The first existing file sets the current context; the second defines it (kubectl's rule:
    // the first file to set a value wins).
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let (head, rest) = text.split_once("clusters:").unwrap();
    std::fs::write(
        dir.join("context.yaml"),
        format!("{head}clusters: []\ncontexts: []\nusers: []\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("clusters.yaml"),
        format!("apiVersion: v1\nkind: Config\nclusters:{rest}")
            .replace("current-context: fake\n", ""),
    )
    .unwrap();
    let list = format!(
        "{}:{}:{}",
        dir.join("missing.yaml").display(),
        dir.join("context.yaml").display(),
        dir.join("clusters.yaml").display()
    );
    let run = run_bin_env(dir, &["status", "-o", "json"], &[("KUBECONFIG", &list)]).await;
    let report = run.ok_json();
    assert_eq!(report["namespace"], NS);

    let none = format!(
        "{}:{}",
        dir.join("a.yaml").display(),
        dir.join("b.yaml").display()
    );
    let run = run_bin_env(dir, &["status"], &[("KUBECONFIG", &none)]).await;
    run.refused(
        1,
        "none of the files in $KUBECONFIG exist",
        "az aks get-credentials",
    );
    assert!(run.error_line().contains("a.yaml") && run.error_line().contains("b.yaml"));
}

/// Run `command` under a pseudo-terminal (util-linux `script`), so stdout is a terminal.
fn on_a_terminal(home: &Path, command: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .current_dir(home)
        .output()
        .expect("run script(1)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn results_are_coloured_only_on_a_terminal_without_no_color() {
    let pg = Pg::get();
    let db = pg.create_database("colour");
    let home = tempfile::tempdir().unwrap();
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/{db}?sslmode=disable",
        pg.port
    );
    let command = format!(
        "{} verify --database-url '{url}'",
        env!("CARGO_BIN_EXE_phonebill-db")
    );
    let password = [("PGPASSWORD", pg.password.as_str())];
    // An empty database: verify fails (red FAIL) and passes some checks (green ok).
    let coloured = on_a_terminal(home.path(), &command, &password);
    assert!(coloured.contains("FAIL"), "{coloured}");
    assert!(coloured.contains("\x1b[31mFAIL"), "{coloured:?}");
    assert!(coloured.contains("\x1b[32mok"), "{coloured:?}");
    // (The spinner on stderr still moves the cursor on a terminal: that is not colour.)
    let plain = on_a_terminal(home.path(), &command, &[password[0], ("NO_COLOR", "1")]);
    assert!(plain.contains("FAIL") && !has_colour(&plain), "{plain:?}");
    // Off a terminal: none.
    let piped = run_url(&["verify", "--database-url", &url], &password).await;
    assert_eq!(piped.code, 4);
    assert!(piped.stdout.contains("FAIL") && !piped.stdout.contains('\x1b'));
    assert!(!has_colour(&piped.stderr));
    // Columns line up whatever the colour: the CHECK column starts at the same place.
    let column = |text: &str, check: &str| {
        let line = text
            .lines()
            .find(|l| l.contains(check))
            .unwrap()
            .to_string();
        let stripped: String = strip_ansi(&line);
        stripped.find(check).unwrap()
    };
    assert_eq!(column(&coloured, "encoding"), column(&plain, "encoding"));
    assert_eq!(column(&coloured, "tables"), column(&plain, "tables"));
}

/// An SGR sequence that sets a colour, bold or dim (ESC [ 3x m, ESC [ 1 m, ESC [ 2 m).
fn has_colour(s: &str) -> bool {
    s.contains("\x1b[3") || s.contains("\x1b[1m") || s.contains("\x1b[2m")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn kubectl_runs_it_as_a_plugin() {
    let c = Cluster::with_plan_class().await;
    let bin_dir = c.dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_phonebill-db"),
        bin_dir.join("kubectl-phonebill_db"),
    )
    .unwrap();
    let kubectl = which("kubectl").expect("kubectl on PATH (scripts/test.sh installs it)");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // tokio's process: a blocking wait here would stall the fake API server on this runtime.
    let kubectl_run = async |args: &[&str]| {
        tokio::process::Command::new(&kubectl)
            .args(args)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", c.dir.path())
            .current_dir(c.dir.path())
            .output()
            .await
            .expect("run kubectl")
    };
    let listed = kubectl_run(&["plugin", "list"]).await;
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("kubectl-phonebill_db"),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // kubectl's flags mean the same after the plugin's name: -n, --kubeconfig, -o.
    let kc = c.kubeconfig.display().to_string();
    let out = kubectl_run(&[
        "phonebill-db",
        "-n",
        "team-b",
        "--kubeconfig",
        &kc,
        "status",
        "-o",
        "json",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["namespace"], "team-b");
    let help = kubectl_run(&["phonebill-db", "--help"]).await;
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: kubectl phonebill-db"));
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[tokio::test]
async fn install_lists_each_object_once() {
    let c = Cluster::with_plan_class().await;
    let run = c.run(&["install", "--timeout", "30s"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    for id in expected_inventory() {
        let (kind, name) = id.split_once('/').unwrap();
        if kind == "Pod" || kind == "PersistentVolumeClaim" {
            continue; // made by the StatefulSet, not applied
        }
        let lines = all
            .lines()
            .filter(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let lower = format!("{}/{name}", kind.to_lowercase());
                (words.contains(&kind) && words.contains(&name)) || words.contains(&lower.as_str())
            })
            .count();
        assert_eq!(lines, 1, "{kind} {name} is listed {lines} times:\n{all}");
    }
}

/// A database on the server with initdb's defaults (like a CI job's plain `postgres` container).
fn plain_database(tag: &str) -> (Pg, u16, String) {
    let port: u16 = std::env::var("PHONEBILL_TEST_PLAIN_PG_PORT")
        .expect("PHONEBILL_TEST_PLAIN_PG_PORT: run the tests with `bash scripts/test.sh`")
        .parse()
        .unwrap();
    database_on(Pg::get(), port, tag)
}

/// A new database on the server at `port` (initdb's defaults, the shared password).
pub fn database_on(pg: Pg, port: u16, tag: &str) -> (Pg, u16, String) {
    let db = unique(tag);
    let out = Command::new(pg.bin.join("psql"))
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-c", &format!("CREATE DATABASE {db}")])
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (pg, port, db)
}

#[tokio::test]
async fn verify_warns_about_a_plain_servers_settings_unless_strict() {
    let (pg, port, db) = plain_database("plain");
    let url = format!("postgresql://postgres@127.0.0.1:{port}/{db}?sslmode=disable");
    // Its own app role: roles are the server's, and the CI example's test sets the default
    // role's password to another one at the same time.
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, format!("appUser: {db}_app\n")).unwrap();
    let values = values.to_str().unwrap();
    let env = [
        ("PGPASSWORD", pg.password.as_str()),
        ("PHONEBILL_APP_PASSWORD", "app-pw-1"),
    ];
    let applied = run_url(
        &[
            "apply-schema",
            "--database-url",
            &url,
            "--values",
            values,
            "-o",
            "json",
        ],
        &env,
    )
    .await;
    applied.ok_json();

    let run = run_url(
        &[
            "verify",
            "--database-url",
            &url,
            "--values",
            values,
            "-o",
            "json",
        ],
        &env,
    )
    .await;
    let report = run.ok_json();
    assert_eq!(report["passed"], true);
    let checks = report["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {report}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // initdb's defaults: shared_buffers 128MB and effective_cache_size 4GB differ from the
    // profile's 256MB and 1GB; max_connections 100 does not.
    assert_eq!(status("setting shared_buffers"), "warn");
    assert_eq!(status("setting effective_cache_size"), "warn");
    assert_eq!(status("setting max_connections"), "pass");
    assert_eq!(status("tables"), "pass");
    assert_eq!(status("app role connects"), "pass");
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{report}");

    let run = run_url(
        &[
            "verify",
            "--database-url",
            &url,
            "--values",
            values,
            "--strict",
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.error_line().contains("setting shared_buffers"),
        "{}",
        run.stderr
    );
    assert!(!run.error_line().contains("tables"), "{}", run.stderr);
    // The hint speaks of the settings, not of migrations.
    let hint = run.hint_line();
    assert!(hint.contains("settings differ"), "{hint}");
    assert!(!hint.contains("apply-schema"), "{hint}");

    // A real failure still fails without --strict, with the hint for it.
    pg_plain(&pg, port, &db, "DROP TABLE auth_permissions CASCADE");
    let run = run_url(
        &["verify", "--database-url", &url, "--values", values],
        &env,
    )
    .await;
    assert_eq!(run.code, 4, "{}", run.stdout);
    assert!(run.error_line().contains("tables"), "{}", run.stderr);
    assert!(!run.error_line().contains("setting"), "{}", run.stderr);
    assert!(
        run.hint_line().contains("creates what is missing"),
        "{}",
        run.stderr
    );
}

pub fn pg_plain(pg: &Pg, port: u16, db: &str, sql: &str) {
    let out = Command::new(pg.bin.join("psql"))
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The workflow in docs/ci.md, its `phonebill-db` steps run as written (with the job's
/// environment) against the plain server instead of the service container.
#[tokio::test]
async fn the_ci_example_in_the_docs_passes() {
    let doc = std::fs::read_to_string("docs/ci.md").unwrap();
    let block = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("docs/ci.md has a yaml block");
    let workflow: serde_yaml::Value = serde_yaml::from_str(block).unwrap();
    let job = &workflow["jobs"]["schema"];
    let service = &job["services"]["postgres"];
    assert_eq!(service["image"], "postgres:16");
    let (pg, port, db) = plain_database("ci");
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in job["env"].as_mapping().unwrap() {
        let value = v.as_str().unwrap().replace(
            "localhost:5432/phonebill_auth",
            &format!("127.0.0.1:{port}/{db}"),
        );
        env.push((k.as_str().unwrap().to_string(), value));
    }
    // The service's admin password is the throwaway server's here.
    let admin_pw = service["env"]["POSTGRES_PASSWORD"].as_str().unwrap();
    for (k, v) in env.iter_mut() {
        if v == admin_pw {
            *v = pg.password.clone();
        }
        assert!(
            !v.contains("localhost"),
            "{k} still points at the service: {v}"
        );
    }
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_phonebill-db"), bin.join("phonebill-db"))
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = Vec::new();
    for step in job["steps"].as_sequence().unwrap() {
        let Some(run) = step["run"].as_str() else {
            continue;
        };
        if !run.starts_with("phonebill-db ") {
            continue; // the install step: here the binary under test is on PATH instead
        }
        let out = Command::new("bash")
            .args(["-eo", "pipefail", "-c", run]) // GitHub's default shell for run steps
            .env_clear()
            .env("PATH", &path)
            .env("HOME", home.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(home.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "step `{run}` failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran.push(run.to_string());
    }
    assert_eq!(ran.len(), 2, "apply-schema and verify: {ran:?}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(home.path().join("verify.json")).unwrap())
            .unwrap();
    assert_eq!(report["passed"], true);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "warn")
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "app role connects" && c["status"] == "pass")
    );
}

/// The repository stands alone: nothing in it points outside it — docs, code, tests, scripts.
#[test]
fn docs_and_code_cite_nothing_outside_the_repo() {
    // Spelled in pieces, so that this line is not a hit itself.
    let pattern = [
        ("shared", "/"),
        ("seed", " 0"),
        ("Seed", " 0"),
        ("seeds", "/"),
    ]
    .map(|(a, b)| format!("{a}{b}"));
    let mut found = Vec::new();
    for root in [
        "README.md",
        "docs",
        "src",
        "templates",
        "sql",
        "tests",
        "scripts",
        "benches",
        "fake-kube/src",
        ".ci",
        "Dockerfile",
        "Cargo.toml",
        "build.rs",
    ] {
        visit(Path::new(root), &mut |path, text| {
            for (i, line) in text.lines().enumerate() {
                if pattern.iter().any(|p| line.contains(p.as_str())) {
                    found.push(format!("{}:{}: {line}", path.display(), i + 1));
                }
            }
        });
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

fn visit(path: &Path, f: &mut dyn FnMut(&Path, &str)) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            visit(&entry.unwrap().path(), f);
        }
    } else if let Ok(text) = std::fs::read_to_string(path) {
        f(path, &text);
    }
}

/// A `--database-url` server older than the tools (Debian's 15, the tools 16): backup and restore
/// work through its URL, and the manifest names both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_older_than_the_tools_backs_up_and_restores_through_its_url() {
    let old = Pg::old();
    let port = old.port;
    let (old, port, db) = database_on(old, port, "older");
    assert_eq!(old.major(), 15);
    let tools = Pg::get().bin.display().to_string();
    let url = format!("postgresql://postgres@127.0.0.1:{port}/{db}?sslmode=disable");
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, format!("appUser: {db}_app\n")).unwrap();
    let values = values.to_str().unwrap();
    let env = [
        ("PGPASSWORD", old.password.as_str()),
        ("PHONEBILL_APP_PASSWORD", "app-pw-older"),
    ];
    let applied = run_url(
        &["apply-schema", "--database-url", &url, "--values", values],
        &env,
    )
    .await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let dump = dir.path().join("older.dump").display().to_string();
    let backup = run_url(
        &[
            "backup",
            "--database-url",
            &url,
            "--values",
            values,
            "--pg-bin",
            &tools,
            "--to",
            &dump,
            "-o",
            "json",
        ],
        &env,
    )
    .await
    .ok_json();
    assert_eq!(backup["format"], "custom", "{backup}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dump}.meta.json")).unwrap())
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
            .contains("PostgreSQL) 16."),
        "{manifest}"
    );
    pg_plain(
        &old,
        port,
        &db,
        "UPDATE auth_services SET service_name = 'changed'",
    );
    let restored = run_url(
        &[
            "restore",
            "--database-url",
            &url,
            "--values",
            values,
            "--pg-bin",
            &tools,
            "--from",
            &dump,
            "--yes",
            "--no-safety-backup",
            "-o",
            "json",
        ],
        &env,
    )
    .await
    .ok_json();
    assert_eq!(restored["passed"], true, "{restored}");
    assert_eq!(
        old.psql(
            &db,
            "SELECT count(*) FROM auth_services WHERE service_name = 'changed'"
        ),
        "0",
        "the backup's rows are back"
    );
}
