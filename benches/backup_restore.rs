//! Backup and restore speed and memory against the plain PostgreSQL tools, on the same data in
//! the same run. Not a test: it prints figures. Run it with `bash scripts/bench/backup-restore.sh`
//! (which starts the throwaway PostgreSQL); results and the command go in docs/benchmarks.md.
//!
//! For each scale (BENCH_USERS, and a tenth of it, to see whether memory grows with the data):
//! a release on the fake API server with the schema and generated rows; then
//! - the tool through the pod path (exec through the fake API server, the tools run locally, plain
//!   TCP to the server), against `pg_dump -Fc` and `pg_restore --clean --if-exists
//!   --single-transaction` on plain TCP;
//! - the tool through --database-url (local tools, TLS verify-full), against the same plain
//!   tools over TLS verify-full.
//!
//! The tool's restore also drops the tables first and runs the verify checks afterwards; its
//! backup also hashes what it writes. Peak memory is the tool process's maximum RSS
//! (`/usr/bin/time -f %M`), not pg_dump's.
#![allow(dead_code)]

#[path = "../tests/it/support.rs"]
mod support;

#[path = "../tests/it/pg.rs"]
mod pg;

use std::process::Command;
use std::time::Instant;

use pg::Release;
use support::{ADMIN_SECRET, APP_SECRET};

struct Timed {
    seconds: f64,
    peak_kib: Option<u64>,
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
    Timed { seconds, peak_kib }
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

fn plain(r: &Release, program: &str) -> Command {
    let mut cmd = Command::new(r.pg.bin.join(program));
    cmd.env("PGPASSWORD", &r.pg.password)
        .env("PGSSLMODE", "disable");
    cmd
}

async fn bench(users: u32) {
    let r = Release::new("bench").await;
    r.install().await;
    let applied = r.run(&["apply-schema"]).await;
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    eprintln!("generating {} rows…", 9 * users);
    let generated = plain(&r, "psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v"])
        .arg(format!("users={users}"))
        .args(["-f", "scripts/bench/generate-data.sql"])
        .arg(r.pg.url(&r.database))
        .status()
        .expect("psql");
    assert!(generated.success());
    let size = r.psql("SELECT pg_database_size(current_database())");
    let size_mib = size.parse::<f64>().unwrap_or_default() / 1048576.0;
    let dir = tempfile::tempdir_in(".").expect("temp dir");
    let file = |name: &str| dir.path().join(name).display().to_string();

    // Like for like: the pod path's tools reach the server over plain TCP (as over the pod's
    // socket), the URL path over TLS verify-full; each is compared with the plain tools on the
    // same connection.
    let tls_url = format!(
        "postgresql://postgres@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
        r.pg.port,
        r.database,
        r.pg.ca.display()
    );
    // An age key pair for the encrypted rows: the cost of encryption next to the clear backup.
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
    let mut rows = Vec::new();
    for (label, url, conn) in [
        ("phonebill-db, pod exec", false, r.pg.url(&r.database)),
        ("phonebill-db, --database-url (TLS)", true, tls_url),
    ] {
        let plain_file = file(if url { "plain-tls.dump" } else { "plain.dump" });
        let plain_dump = timed({
            let mut c = plain(&r, "pg_dump");
            c.args(["-Fc", "-f", &plain_file, &conn]);
            c
        });
        let plain_restore = timed({
            let mut c = plain(&r, "pg_restore");
            c.args([
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--exit-on-error",
                "-d",
                &conn,
                &plain_file,
            ]);
            c
        });
        let name = if url { "url.dump" } else { "pod.dump" };
        let backup = timed(tool(&r, &["backup", "--to", &file(name)], url));
        let restore = timed(tool(
            &r,
            &["restore", "--from", &file(name), "--no-safety-backup"],
            url,
        ));
        let baseline = if url {
            "pg_dump -Fc / pg_restore (TLS)"
        } else {
            "pg_dump -Fc / pg_restore"
        };
        rows.push((
            baseline.to_string(),
            plain_dump.seconds,
            plain_restore.seconds,
            None,
            None,
            1.0,
            1.0,
        ));
        rows.push((
            label.to_string(),
            backup.seconds,
            restore.seconds,
            backup.peak_kib,
            restore.peak_kib,
            backup.seconds / plain_dump.seconds,
            restore.seconds / plain_restore.seconds,
        ));
        // The same, encrypted to an age recipient and decrypted while it is restored.
        let name = if url { "url.dump.age" } else { "pod.dump.age" };
        let backup = timed(tool(
            &r,
            &["backup", "--encrypt-to", &recipient, "--to", &file(name)],
            url,
        ));
        let restore = timed(tool(
            &r,
            &[
                "restore",
                "--from",
                &file(name),
                "--no-safety-backup",
                "--identity",
                &key,
            ],
            url,
        ));
        rows.push((
            format!("{label}, encrypted (age)"),
            backup.seconds,
            restore.seconds,
            backup.peak_kib,
            restore.peak_kib,
            backup.seconds / plain_dump.seconds,
            restore.seconds / plain_restore.seconds,
        ));

        // Plain SQL: pg_dump's gzip-compressed SQL into psql, against the tool's plain backup
        // and its restore (the SQL read as psql reads it on its way, plain_sql.rs).
        let sql_file = file(if url {
            "plain-tls.sql.gz"
        } else {
            "plain.sql.gz"
        });
        let sql_dump = timed({
            let mut c = plain(&r, "pg_dump");
            c.args([
                "-Fp",
                "--compress=6",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "-f",
                &sql_file,
                &conn,
            ]);
            c
        });
        let sql_restore = timed({
            let mut c = Command::new("sh");
            c.args(["-c", "gzip -dc \"$1\" | \"$2\" -X -q -v ON_ERROR_STOP=1 --single-transaction -o /dev/null -d \"$3\""])
                .args(["sh", &sql_file])
                .arg(r.pg.bin.join("psql"))
                .arg(&conn)
                .env("PGPASSWORD", &r.pg.password)
                .env("PGSSLMODE", "disable");
            c
        });
        let name = if url { "url.sql.gz" } else { "pod.sql.gz" };
        let backup = timed(tool(
            &r,
            &["backup", "--format", "plain", "--to", &file(name)],
            url,
        ));
        let restore = timed(tool(
            &r,
            &["restore", "--from", &file(name), "--no-safety-backup"],
            url,
        ));
        let baseline = if url {
            "pg_dump -Fp gzip / gunzip psql (TLS)"
        } else {
            "pg_dump -Fp gzip / gunzip psql"
        };
        rows.push((
            baseline.to_string(),
            sql_dump.seconds,
            sql_restore.seconds,
            None,
            None,
            1.0,
            1.0,
        ));
        rows.push((
            format!("{label}, plain"),
            backup.seconds,
            restore.seconds,
            backup.peak_kib,
            restore.peak_kib,
            backup.seconds / sql_dump.seconds,
            restore.seconds / sql_restore.seconds,
        ));
    }
    let dump_size = std::fs::metadata(file("plain.dump"))
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or_default();
    println!(
        "\n{} rows, database {size_mib:.0} MiB, custom dump {dump_size:.1} MiB",
        9 * users
    );
    println!("| how | backup s | ratio | restore s | ratio | peak RSS backup | peak RSS restore |");
    println!("|---|---|---|---|---|---|---|");
    for (label, b, rs, pb, pr, rb, rr) in &rows {
        let kib = |v: &Option<u64>| {
            v.map_or("—".to_string(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            })
        };
        println!(
            "| {label} | {b:.2} | {rb:.2} | {rs:.2} | {rr:.2} | {} | {} |",
            kib(pb),
            kib(pr)
        );
    }
}

fn main() {
    let users: u32 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for scale in [users / 10, users] {
        rt.block_on(bench(scale));
    }
}
