//! Backup and restore speed, the application's unavailability during a restore, and memory,
//! against the plain PostgreSQL tools on the same data in the same run. Not a test: it prints
//! figures. Run it with `bash scripts/bench/backup-restore.sh` (which starts the throwaway
//! PostgreSQL 16 of the tests); results and the command go in docs/benchmarks.md.
//!
//! For each size (BENCH_USERS, comma-separated: 9 rows a user; 300000 ≈ 1 GB): a release on the
//! fake API server with the schema and generated rows; then each case BENCH_RUNS times (2):
//! - the plain tools: `pg_dump -Fc` (gzip, its default level) and at gzip:1, a parallel
//!   `pg_dump -Fd -j2` at gzip:1; `pg_restore --single-transaction`, `-j1` and `-j2`;
//! - the tool on the pod path (exec through the fake API server; the tools run here over plain
//!   TCP): `backup`, `backup --encrypt-to`, `restore` (the shadow restore, its default jobs),
//!   `restore --in-place`, `restore --identity` of the encrypted file;
//! - the tool through `--database-url` (local tools, TLS verify-full): `backup`, `restore`.
//!
//! During every restore a probe logs in as the app and reads a table every 10 ms: the longest
//! gap between two answers is the restore's unavailability for the app. Peak memory is the tool
//! process's maximum RSS (`/usr/bin/time -f %M`).
#![allow(dead_code)]

#[path = "../tests/it/support.rs"]
mod support;

#[path = "../tests/it/pg.rs"]
mod pg;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pg::Release;
use support::{ADMIN_SECRET, APP_SECRET};

struct Timed {
    seconds: f64,
    peak_kib: Option<u64>,
    /// The longest time the app's probe went without an answer (restores only).
    gap: Option<f64>,
}

/// Run a command to success; wall time and, when run under /usr/bin/time, the peak RSS.
fn timed(mut cmd: Command) -> Timed {
    let start = Instant::now();
    let out = cmd.output().expect("run");
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{stderr}");
    let peak_kib = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("PEAK_KIB="))
        .next_back()
        .and_then(|v| v.trim().parse().ok());
    Timed {
        seconds,
        peak_kib,
        gap: None,
    }
}

/// [`timed`], with the app's probe running: a read of a table every 10 ms as the app role, a
/// new session when one ends; the longest gap between two answers.
fn probed(r: &Release, cmd: Command) -> Timed {
    let url = r.app_url();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let probe = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut last = Instant::now();
            let mut gap = Duration::ZERO;
            while !s.load(Ordering::Relaxed) {
                let Ok(Ok((client, conn))) = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio_postgres::connect(&url, tokio_postgres::NoTls),
                )
                .await
                else {
                    gap = gap.max(last.elapsed());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                tokio::spawn(conn);
                while !s.load(Ordering::Relaxed) {
                    let asked = client.query_one("SELECT count(*) FROM auth_services", &[]);
                    match tokio::time::timeout(Duration::from_secs(600), asked).await {
                        Ok(Ok(_)) => {
                            gap = gap.max(last.elapsed());
                            last = Instant::now();
                        }
                        _ => break,
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            gap.max(last.elapsed()).as_secs_f64()
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut t = timed(cmd);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    t.gap = Some(probe.join().expect("the probe"));
    t
}

fn tool(r: &Release, args: &[&str], url: bool) -> Command {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "PEAK_KIB=%M", env!("CARGO_BIN_EXE_phonebill-db")])
        .args(args)
        .args(["--values", &r.values, "--yes"]);
    if url {
        let admin = r.secret(ADMIN_SECRET, "postgres-password");
        cmd.args(["--database-url", &r.admin_url()])
            .arg("--pg-bin")
            .arg(&r.pg.bin)
            .env("PGPASSWORD", admin)
            .env(
                "PHONEBILL_APP_PASSWORD",
                r.secret(APP_SECRET, "auth-user-password"),
            );
    } else {
        cmd.arg("--kubeconfig").arg(&r.cluster.kubeconfig);
    }
    cmd
}

fn plain(r: &Release, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(r.pg.bin.join(program));
    cmd.args(args)
        .env("PGPASSWORD", &r.pg.password)
        .env("PGSSLMODE", "disable");
    cmd
}

/// One row of the tables: a case, its times in each run, and what it is compared with.
struct Row {
    label: String,
    /// Label of the row it is compared with (its ratio's denominator), if any.
    against: Option<&'static str>,
    runs: Vec<Timed>,
}

async fn bench(users: u32, runs: usize) {
    let r = Release::new("bench").await;
    r.install().await;
    let applied = r.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    eprintln!("generating {} rows…", 9 * users);
    r.pg.generate_rows(&r.database, users);
    let size = r.psql("SELECT pg_database_size(current_database())");
    let size_mib = size.parse::<f64>().unwrap_or_default() / 1048576.0;
    // Under target/ (ignored by git, on the work disk, not a small /tmp): gigabytes of dumps.
    std::fs::create_dir_all("target/bench").expect("target/bench");
    let dir = tempfile::tempdir_in("target/bench").expect("temp dir");
    let file = |name: &str| dir.path().join(name).display().to_string();
    let conn = r.pg.url(&r.database);
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let key = file("bench.key");
    std::fs::write(
        &key,
        age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_string() + "\n",
    )
    .expect("write the key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let mut rows: Vec<Row> = Vec::new();
    let mut record = |label: &str, against: Option<&'static str>, t: Timed| match rows
        .iter_mut()
        .find(|r| r.label == label)
    {
        Some(row) => row.runs.push(t),
        None => rows.push(Row {
            label: label.to_string(),
            against,
            runs: vec![t],
        }),
    };
    let mut sizes: Vec<(String, f64)> = Vec::new();
    let mib = |f: &str| {
        let p = std::path::Path::new(f);
        let bytes = if p.is_dir() {
            std::fs::read_dir(p)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0)
        } else {
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        };
        bytes as f64 / 1048576.0
    };
    for run in 1..=runs {
        eprintln!("run {run} of {runs} at {} rows…", 9 * users);
        let rm = |f: &str| {
            let _ = std::fs::remove_file(f);
            let _ = std::fs::remove_file(format!("{f}.meta.json"));
            let _ = std::fs::remove_dir_all(f);
        };
        for f in [
            "plain.dump",
            "plain1.dump",
            "plain-dir",
            "pod.dump",
            "pod.dump.age",
            "url.dump",
        ] {
            rm(&file(f));
        }
        // Backups.
        const DUMP: &str = "pg_dump -Fc (gzip, default level)";
        record(
            DUMP,
            None,
            timed(plain(
                &r,
                "pg_dump",
                &["-Fc", "-f", &file("plain.dump"), &conn],
            )),
        );
        record(
            "pg_dump -Fc --compress=gzip:1",
            Some(DUMP),
            timed(plain(
                &r,
                "pg_dump",
                &[
                    "-Fc",
                    "--compress=gzip:1",
                    "-f",
                    &file("plain1.dump"),
                    &conn,
                ],
            )),
        );
        record(
            "pg_dump -Fd -j2 --compress=gzip:1 (parallel, a directory)",
            Some(DUMP),
            timed(plain(
                &r,
                "pg_dump",
                &[
                    "-Fd",
                    "-j2",
                    "--compress=gzip:1",
                    "-f",
                    &file("plain-dir"),
                    &conn,
                ],
            )),
        );
        record(
            "phonebill-db backup, pod exec",
            Some(DUMP),
            timed(tool(&r, &["backup", "--to", &file("pod.dump")], false)),
        );
        record(
            "phonebill-db backup --encrypt-to (age), pod exec",
            Some(DUMP),
            timed(tool(
                &r,
                &[
                    "backup",
                    "--encrypt-to",
                    &recipient,
                    "--to",
                    &file("pod.dump.age"),
                ],
                false,
            )),
        );
        record(
            "phonebill-db backup, --database-url (TLS)",
            Some(DUMP),
            timed(tool(&r, &["backup", "--to", &file("url.dump")], true)),
        );
        if run == 1 {
            for (label, f) in [
                ("pg_dump -Fc (gzip, default level)", "plain.dump"),
                ("pg_dump -Fc --compress=gzip:1", "plain1.dump"),
                ("pg_dump -Fd -j2 gzip:1", "plain-dir"),
                ("phonebill-db backup", "pod.dump"),
                ("phonebill-db backup --encrypt-to", "pod.dump.age"),
            ] {
                sizes.push((label.to_string(), mib(&file(f))));
            }
        }
        // Restores, each with the app's probe.
        const RESTORE: &str = "pg_restore --single-transaction";
        let archive = file("plain.dump");
        record(
            RESTORE,
            None,
            probed(
                &r,
                plain(
                    &r,
                    "pg_restore",
                    &[
                        "--clean",
                        "--if-exists",
                        "--single-transaction",
                        "--exit-on-error",
                        "-d",
                        &conn,
                        &archive,
                    ],
                ),
            ),
        );
        for jobs in ["1", "2"] {
            record(
                &format!("pg_restore -j{jobs}"),
                Some(RESTORE),
                probed(
                    &r,
                    plain(
                        &r,
                        "pg_restore",
                        &[
                            "--clean",
                            "--if-exists",
                            "--exit-on-error",
                            "-j",
                            jobs,
                            "-d",
                            &conn,
                            &archive,
                        ],
                    ),
                ),
            );
        }
        let shadow = ["restore", "--from", &file("pod.dump"), "--no-safety-backup"];
        record(
            "phonebill-db restore (shadow, default jobs), pod exec",
            Some(RESTORE),
            probed(&r, tool(&r, &shadow, false)),
        );
        record(
            "phonebill-db restore --in-place, pod exec",
            Some(RESTORE),
            probed(
                &r,
                tool(
                    &r,
                    &[
                        "restore",
                        "--from",
                        &file("pod.dump"),
                        "--in-place",
                        "--no-safety-backup",
                    ],
                    false,
                ),
            ),
        );
        record(
            "phonebill-db restore --identity (encrypted, shadow), pod exec",
            Some(RESTORE),
            probed(
                &r,
                tool(
                    &r,
                    &[
                        "restore",
                        "--from",
                        &file("pod.dump.age"),
                        "--identity",
                        &key,
                        "--no-safety-backup",
                    ],
                    false,
                ),
            ),
        );
        record(
            "phonebill-db restore (shadow), --database-url (TLS)",
            Some(RESTORE),
            probed(
                &r,
                tool(
                    &r,
                    &["restore", "--from", &file("url.dump"), "--no-safety-backup"],
                    true,
                ),
            ),
        );
    }
    println!(
        "\n{} rows, database {size_mib:.0} MiB; each case {runs} times in this run; ratio: against the row named",
        9 * users
    );
    println!("| how | seconds | ratio | app's longest gap | peak RSS |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        let base = row.against.and_then(|a| rows.iter().find(|r| r.label == a));
        let each = |f: &dyn Fn(usize, &Timed) -> String| {
            row.runs
                .iter()
                .enumerate()
                .map(|(i, t)| f(i, t))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let seconds = each(&|_, t| format!("{:.2}", t.seconds));
        let ratio = match base {
            Some(b) => each(&|i, t| {
                b.runs
                    .get(i)
                    .map_or("—".into(), |bt| format!("{:.2}", t.seconds / bt.seconds))
            }),
            None => "1.00".into(),
        };
        let gap = if row.runs.iter().any(|t| t.gap.is_some()) {
            each(&|_, t| t.gap.map_or("—".into(), |g| format!("{g:.2} s")))
        } else {
            "—".into()
        };
        let rss = if row.runs.iter().any(|t| t.peak_kib.is_some()) {
            each(&|_, t| {
                t.peak_kib
                    .map_or("—".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
            })
        } else {
            "—".into()
        };
        println!("| {} | {seconds} | {ratio} | {gap} | {rss} |", row.label);
    }
    println!("\n| archive | MiB |\n|---|---|");
    for (label, m) in &sizes {
        println!("| {label} | {m:.1} |");
    }
}

fn main() {
    let sizes: Vec<u32> = std::env::var("BENCH_USERS")
        .unwrap_or_else(|_| "300000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for users in sizes {
        rt.block_on(bench(users, runs));
    }
}
