//! The one place that decides how the tool talks to a person: progress, prompts, results.
//!
//! Progress goes to stderr and draws only on a terminal in text mode; results go to stdout as text or
//! JSON. Tests run without a terminal, so nothing here draws in them.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::args::OutputFormat;
use crate::error::{ExitCode, user_error};

#[derive(Debug, Clone)]
pub struct Ui {
    pub output: OutputFormat,
    pub verbose: u8,
    /// Progress may draw (stderr is a terminal and output is text).
    draw: bool,
    /// A person can answer prompts (stdin and stderr are terminals).
    interactive: bool,
    assume_yes: bool,
}

impl Ui {
    pub fn new(output: OutputFormat, verbose: u8, assume_yes: bool) -> Ui {
        let stderr_tty = std::io::stderr().is_terminal();
        crate::k8s::retry::say_retries(verbose > 0 && output == OutputFormat::Text);
        COLOR.store(
            output == OutputFormat::Text && std::io::stdout().is_terminal() && !no_color(),
            Ordering::Relaxed,
        );
        Ui {
            output,
            verbose,
            draw: stderr_tty && output == OutputFormat::Text,
            interactive: stderr_tty && std::io::stdin().is_terminal(),
            assume_yes,
        }
    }

    /// A UI that never draws or prompts (tests, library use).
    pub fn headless(output: OutputFormat, assume_yes: bool) -> Ui {
        Ui {
            output,
            verbose: 0,
            draw: false,
            interactive: false,
            assume_yes,
        }
    }

    /// Output for programs (`-o json` or `-o yaml`): no progress lines, one document on stdout.
    pub fn machine(&self) -> bool {
        self.output != OutputFormat::Text
    }

    /// A spinner for a wait; hidden unless a person is watching.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A byte counter for a stream: a bar when the total is known, else bytes and rate.
    pub fn bytes(&self, total: Option<u64>, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(total, self.target());
        let template = if total.is_some() {
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}"
        } else {
            "{spinner} {msg} {binary_bytes} at {binary_bytes_per_sec} [{elapsed}]"
        };
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.draw {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }

    /// A line of progress for logs: printed to stderr in text mode when no spinner draws, or with -v.
    pub fn note(&self, bar: Option<&ProgressBar>, line: impl AsRef<str>) {
        if self.machine() {
            return;
        }
        match bar {
            Some(b) if self.draw => b.println(line.as_ref()),
            _ => eprintln!("{}", line.as_ref()),
        }
    }

    /// A warning a person must see whatever the output format (stderr is not the document): what
    /// a long-running command meets after its report (a dropped `connect` session).
    pub fn warn(&self, line: impl AsRef<str>) {
        eprintln!("warning: {}", line.as_ref());
    }

    /// A line only `-v` shows (what a spinner shows a person, for logs).
    pub fn detail(&self, line: impl AsRef<str>) {
        if self.verbose > 0 && !self.machine() {
            eprintln!("{}", line.as_ref());
        }
    }

    /// Ask the user to type `expected` to go on. `--yes` answers for them; with no terminal and no
    /// `--yes`, refuse without doing anything.
    pub fn confirm_typed(&self, what: &str, expected: &str) -> Result<()> {
        if self.assume_yes {
            return Ok(());
        }
        self.ask_typed(
            what,
            expected,
            "run it on a terminal, or add --yes if you are sure",
        )
    }

    /// Ask the user to type `expected`, even with `--yes`; with no terminal, refuse with `hint`.
    pub fn ask_typed(&self, what: &str, expected: &str, hint: &str) -> Result<()> {
        if !self.interactive {
            // A usage error: the command line lacks what answers the question (--yes, --confirm).
            return Err(user_error(format!(
                "{what} needs confirmation, and there is no terminal to ask on"
            ))
            .hint(hint)
            .exit(ExitCode::Usage)
            .into());
        }
        let answer: String = dialoguer::Input::new()
            .with_prompt(format!("{what}: type `{expected}` to confirm"))
            .allow_empty(true)
            .interact_text()?;
        if answer.trim() == expected {
            Ok(())
        } else {
            Err(user_error(format!(
                "confirmation did not match `{expected}`; nothing was changed"
            ))
            .hint("type the name exactly, or press Ctrl-C to stop")
            .into())
        }
    }

    /// Ask a yes/no question whose safe answer is no: `None` when nobody can answer (no
    /// terminal, or `--yes`, which answers only the command's own confirmation).
    pub fn ask_yes_no(&self, question: &str) -> Result<Option<bool>> {
        if !self.interactive || self.assume_yes {
            return Ok(None);
        }
        let answer = dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()?;
        Ok(Some(answer))
    }

    /// Ask for a secret without echoing it; `None` when there is no terminal to ask on.
    pub fn ask_secret(&self, prompt: &str) -> Result<Option<String>> {
        if !self.interactive {
            return Ok(None);
        }
        let answer = dialoguer::Password::new().with_prompt(prompt).interact()?;
        Ok(Some(answer))
    }

    /// Print a command's result: JSON on `-o json`, the same document as YAML on `-o yaml`, else
    /// its text form.
    pub fn emit<T: Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) -> Result<()> {
        let mut out = match self.output {
            OutputFormat::Text => text(value),
            format => document(format, value)?,
        };
        if !out.ends_with('\n') {
            out.push('\n');
        }
        print_stdout(&out)
    }
}

/// Run `work` unless Ctrl-C comes first: then it is dropped (partial files removed, local tools
/// killed, the exec stream closed) and the user is told what was left.
pub async fn unless_interrupted<T>(work: impl Future<Output = Result<T>>, left: &str) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(user_error(format!("{INTERRUPTED}{left}"))
            .hint("run the command again when you are ready")
            .into()),
    }
}

/// Ctrl-C, listened to from when it is made: one that comes before the work it guards begins
/// (while what the work will need is being made) still stops the work, instead of killing the
/// process with nothing cleaned up.
pub struct Interrupt(tokio::signal::unix::Signal);

impl Interrupt {
    pub fn listen() -> Result<Interrupt> {
        Ok(Interrupt(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::interrupt(),
        )?))
    }

    /// [`unless_interrupted`], with this listener.
    pub async fn guard<T>(
        &mut self,
        work: impl Future<Output = Result<T>>,
        left: &str,
    ) -> Result<T> {
        tokio::select! {
            r = work => r,
            _ = self.0.recv() => Err(user_error(format!("{INTERRUPTED}{left}"))
                .hint("run the command again when you are ready")
                .into()),
        }
    }
}

/// Is this [`unless_interrupted`]'s own error (Ctrl-C came first)?
pub fn interrupted(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::error::UserError>()
        .is_some_and(|u| u.message.starts_with(INTERRUPTED))
}

const INTERRUPTED: &str = "interrupted; ";

/// `value` as one JSON or YAML document (`-o json|yaml`; the same document either way).
pub fn document<T: Serialize>(format: OutputFormat, value: &T) -> Result<String> {
    Ok(match format {
        OutputFormat::Yaml => serde_yaml::to_string(value)?,
        _ => serde_json::to_string_pretty(value)?,
    })
}

static EMITTED: AtomicBool = AtomicBool::new(false);
static COLOR: AtomicBool = AtomicBool::new(false);

/// `NO_COLOR` set to anything but the empty string (no-color.org).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Results go to a terminal that may show colour (text output, stdout a terminal, no `NO_COLOR`).
pub fn color() -> bool {
    COLOR.load(Ordering::Relaxed)
}

/// `text` in `style` when results are shown in colour, else as it is.
pub fn paint(text: &str, style: anstyle::Style) -> String {
    if color() {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

/// How many columns `s` takes on a terminal: its characters, without colour escapes.
fn visible_width(s: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// Has a result been printed to stdout? (`main` then prints no second JSON document for an error.)
pub fn emitted() -> bool {
    EMITTED.load(Ordering::Relaxed)
}

/// Write to stdout; a reader that went away (`phonebill-db render | head`) is not an error.
pub fn print_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    EMITTED.store(true, Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The result of a command run: what to print and which exit code it ends with.
pub struct Outcome {
    pub exit: ExitCode,
}

impl Outcome {
    pub fn ok() -> Outcome {
        Outcome { exit: ExitCode::Ok }
    }
}

/// A plain text table: columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible_width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - visible_width(c))))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
