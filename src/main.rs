//! The binary: parse arguments, run the library, and be the one place that reports errors.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use phonebill_db::cli::{Cli, OutputFormat};
use phonebill_db::error::report;

fn main() -> ExitCode {
    let cli = Cli::parse(); // clap prints usage errors itself and exits 2
    let json = cli.global.output == OutputFormat::Json;
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
            if json && !phonebill_db::ui::emitted() {
                let _ = writeln!(
                    std::io::stdout(),
                    "{}",
                    serde_json::to_string(&r).unwrap_or_default()
                );
            }
            ExitCode::from(r.exit_code)
        }
    }
}
