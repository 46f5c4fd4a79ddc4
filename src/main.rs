//! The binary: parse arguments, run the library, and be the one place that reports errors.

use std::io::Write;
use std::process::ExitCode;

use clap::FromArgMatches;
use phonebill_db::args::OutputFormat;
use phonebill_db::cli::Cli;
use phonebill_db::error::report;

/// The command line. Run by kubectl as a plugin (through a link named `kubectl-phonebill_db` on
/// PATH), usage and help say `kubectl phonebill-db`, as the user typed it.
fn parse() -> Cli {
    let mut command = phonebill_db::cli::command();
    let invoked_as = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if invoked_as.starts_with("kubectl-") {
        command = command.bin_name("kubectl phonebill-db");
    }
    let matches = command.try_get_matches().unwrap_or_else(|e| usage_error(e));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_error(e));
    cli.global.password_flags = password_flags(&matches);
    cli
}

/// clap's refusal of the command line, reported as every other error is: `error:` and `hint:`
/// on stderr (the hint clap's own tip, else where the help is), the error document on stdout
/// with `-o json|yaml`, exit 2. Help and version are printed as clap prints them.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).peekable();
    let mut error = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    // "the following required arguments were not provided:" and the list under it, on one line.
    if error.ends_with(':') {
        let mut items = Vec::new();
        while let Some(l) = lines.next_if(|l| !l.is_empty()) {
            items.push(l);
        }
        error = format!("{} {}", error, items.join(", "));
    }
    let rest: Vec<&str> = lines.collect();
    // clap's tips, and the values an argument takes ("[possible values: a, b]").
    let tips: Vec<&str> = rest
        .iter()
        .filter_map(|l| {
            l.strip_prefix("tip: ").or_else(|| {
                l.strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .filter(|v| v.starts_with("possible values"))
            })
        })
        .collect();
    let hint = if tips.is_empty() {
        rest.iter()
            .find(|l| l.starts_with("For more information, try"))
            .map(|l| {
                l.trim_start_matches("For more information, ")
                    .trim_end_matches('.')
                    .to_string()
            })
            .unwrap_or_else(|| "try '--help'".into())
    } else {
        tips.join("; ")
    };
    let usage = rest.iter().find(|l| l.starts_with("Usage: "));
    let r = phonebill_db::error::ErrorReport {
        error,
        hint: Some(hint),
        exit_code: phonebill_db::error::ExitCode::Usage.code(),
    };
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", r.error);
    if let Some(hint) = &r.hint {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    if let Some(usage) = usage {
        let _ = writeln!(stderr, "{usage}");
    }
    if let Some(format) = output_asked().filter(|f| *f != OutputFormat::Text) {
        let doc = phonebill_db::ui::document(format, &r).unwrap_or_default();
        let _ = writeln!(std::io::stdout(), "{}", doc.trim_end_matches('\n'));
    }
    std::process::exit(r.exit_code.into());
}

/// `-o FORMAT` as typed, read from the raw arguments (for a command line clap refused).
fn output_asked() -> Option<OutputFormat> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = args.iter().enumerate().find_map(|(i, a)| {
        if a == "-o" || a == "--output" {
            args.get(i + 1).cloned()
        } else if let Some(v) = a.strip_prefix("--output=") {
            Some(v.to_string())
        } else {
            a.strip_prefix("-o")
                .filter(|v| !v.is_empty())
                .map(|v| v.trim_start_matches('=').to_string())
        }
    })?;
    match value.as_str() {
        "json" => Some(OutputFormat::Json),
        "yaml" => Some(OutputFormat::Yaml),
        _ => None,
    }
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
    let cli = parse(); // a usage error is reported and exits 2 here
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
