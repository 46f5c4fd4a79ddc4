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
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
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
    match runtime.block_on(phonebill_db::run(cli)) {
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
