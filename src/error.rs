//! Errors a user can cause or meet, with the exit code and hint they carry.
//!
//! Every failure ends as an `anyhow::Error`; `main` looks for a [`UserError`] in its chain to pick the
//! exit code and the hint, and prints the whole chain on one line (see `report`).

use std::fmt;

/// Exit codes are part of the interface (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitCode {
    /// 0: done.
    Ok,
    /// 1: failed.
    Failed,
    /// 2: usage error (clap's own code).
    Usage,
    /// 3: timed out waiting.
    Timeout,
    /// 4: checks failed.
    ChecksFailed,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Failed => 1,
            ExitCode::Usage => 2,
            ExitCode::Timeout => 3,
            ExitCode::ChecksFailed => 4,
        }
    }
}

/// A failure with a cause the user can act on: what went wrong, what to try, which exit code.
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
    pub exit: ExitCode,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: None,
            exit: ExitCode::Failed,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn exit(mut self, exit: ExitCode) -> Self {
        self.exit = exit;
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Shorthand: `Err(user_error("cause").hint("what to try"))?`.
pub fn user_error(message: impl Into<String>) -> UserError {
    UserError::new(message)
}

/// How much of a rejected value a message quotes.
pub const SHOWN_CHARS: usize = 80;

/// A value the user gave, fit for a one-line message: control and format characters (line
/// breaks, U+2028/U+2029, bidirectional overrides such as U+202E, zero-width ones) written as
/// `\u{…}` escapes, and cut after [`SHOWN_CHARS`] characters with how long it was.
pub fn shown(value: &str) -> String {
    clipped(value, SHOWN_CHARS)
}

/// [`shown`] with room for `max` characters (a parser's message that quotes a value).
pub fn clipped(value: &str, max: usize) -> String {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c as u32,
                0x00AD | 0x061C | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F
                | 0xFEFF | 0xFFF9..=0xFFFB)
    };
    let mut out = String::new();
    for (n, c) in value.chars().enumerate() {
        if n == max {
            out.push_str(&format!("… ({} bytes in all)", value.len()));
            break;
        }
        if invisible(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// How an error is shown: the cause chain on one line, the hint of the innermost [`UserError`].
#[derive(Debug, serde::Serialize)]
pub struct ErrorReport {
    pub error: String,
    pub hint: Option<String>,
    pub exit_code: u8,
}

pub fn report(err: &anyhow::Error) -> ErrorReport {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        // kube and hyper repeat their inner error in the outer message; keep each piece once.
        if text.is_empty() || parts.iter().any(|p| p.contains(text)) {
            continue;
        }
        parts.push(text.replace('\n', " "));
    }
    let user = err.chain().find_map(|e| e.downcast_ref::<UserError>());
    ErrorReport {
        error: parts.join(": "),
        hint: user.and_then(|u| u.hint.clone()),
        exit_code: user.map_or(ExitCode::Failed, |u| u.exit).code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn report_joins_the_chain_and_finds_the_hint_and_code() {
        let err: anyhow::Result<()> = Err(user_error("timed out after 5s")
            .hint("raise --timeout")
            .exit(ExitCode::Timeout)
            .into());
        let err = err.context("waiting for the StatefulSet").unwrap_err();
        let r = report(&err);
        assert_eq!(r.error, "waiting for the StatefulSet: timed out after 5s");
        assert_eq!(r.hint.as_deref(), Some("raise --timeout"));
        assert_eq!(r.exit_code, 3);
    }

    #[test]
    fn plain_errors_exit_1_without_hint() {
        let err = anyhow::anyhow!("boom\nsecond line").context("doing x");
        let r = report(&err);
        assert_eq!(r.error, "doing x: boom second line");
        assert_eq!(r.exit_code, 1);
        assert!(r.hint.is_none());
    }
}
