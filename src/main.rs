//! The binary: parse arguments, run the library, and be the one place that reports errors.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use phonebill_db::cli::{Cli, OutputFormat};
use phonebill_db::error::report;

/// The command line. Run by kubectl as a plugin (through a link named `kubectl-phonebill_db` on
/// PATH), usage and help say `kubectl phonebill-db`, as the user typed it.
fn parse() -> Cli {
    let mut command = Cli::command();
    let invoked_as = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if invoked_as.starts_with("kubectl-") {
        command = command.bin_name("kubectl phonebill-db");
    }
    let matches = command.get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.global.password_flags = password_flags(&matches);
    cli
}

/// Passwords typed on the command line (other users of the machine can read a process's
/// arguments): which flag, and the environment variable to use instead.
fn password_flags(matches: &clap::ArgMatches) -> Vec<(&'static str, &'static str)> {
    let Some((_, sub)) = matches.subcommand() else {
        return vec![];
    };
    let typed = |id: &str| {
        sub.try_get_raw(id).is_ok_and(|v| v.is_some())
            && sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    };
    let mut out = Vec::new();
    if typed("database_url")
        && sub
            .get_one::<String>("database_url")
            .is_some_and(|u| phonebill_db::db::tls::carries_password(u))
    {
        out.push((
            "--database-url with a password",
            "PHONEBILL_DATABASE_URL (or PGPASSWORD)",
        ));
    }
    if typed("app_password") {
        out.push(("--app-password", "PHONEBILL_APP_PASSWORD"));
    }
    out
}

fn main() -> ExitCode {
    let cli = parse(); // clap prints usage errors itself and exits 2
    let output = cli.global.output;
    let verbose = cli.global.verbose;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(phonebill_db::run(cli));
    // A read of stdin (psql's keys and scripts) blocks a thread that cannot be cancelled: do not
    // wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => ExitCode::from(code.code()),
        Err(err) => {
            let r = report(&err);
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {}", r.error);
            if let Some(hint) = &r.hint {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            if verbose > 0 {
                // -v: every cause in the chain, with its debug form (for bug reports).
                for (i, cause) in err.chain().enumerate() {
                    let _ = writeln!(stderr, "cause {i}: {cause:?}");
                }
            }
            if output != OutputFormat::Text && !phonebill_db::ui::emitted() {
                let doc = phonebill_db::ui::document(output, &r).unwrap_or_default();
                let _ = write!(std::io::stdout(), "{}", doc.trim_end_matches('\n'));
                let _ = writeln!(std::io::stdout());
            }
            ExitCode::from(r.exit_code)
        }
    }
}
