//! A named check with pass/fail/warn/skip and a reason: what `verify` and `restore` report.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Worth knowing, not a failure: the exit code stays 0.
    Warn,
    Skip,
}

impl Status {
    /// How tables show it: ok, FAIL, warn, skip.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Fail => "FAIL",
            Status::Warn => "warn",
            Status::Skip => "skip",
        }
    }

    /// The label in its colour, when results are shown in colour (see `ui::color`).
    pub fn painted(self) -> String {
        use anstyle::{AnsiColor, Style};
        let style = match self {
            Status::Pass => Style::new().fg_color(Some(AnsiColor::Green.into())),
            Status::Fail => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
            Status::Warn => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
            Status::Skip => Style::new().dimmed(),
        };
        crate::ui::paint(self.label(), style)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
        }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
        }
    }
    pub fn warn(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
        }
    }
    pub fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Skip,
            detail: detail.into(),
        }
    }
    /// Pass with `ok` when `problems` is empty, else fail listing them.
    pub fn from_problems(
        name: impl Into<String>,
        ok: impl Into<String>,
        problems: Vec<String>,
    ) -> Check {
        if problems.is_empty() {
            Check::pass(name, ok)
        } else {
            Check::fail(name, problems.join("; "))
        }
    }
}

/// Checks as the text output shows them.
pub fn table(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| vec![c.status.painted(), c.name.clone(), c.detail.clone()])
        .collect();
    crate::ui::table(&["RESULT", "CHECK", "DETAIL"], &rows)
}

/// Exit 4 naming the failed checks (`{prefix}N of M checks failed: a, b`), or Ok when none failed.
pub fn refuse_failed(prefix: &str, checks: &[Check], hint: &str) -> anyhow::Result<()> {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(crate::error::user_error(format!(
        "{prefix}{} of {} checks failed: {}",
        failed.len(),
        checks.len(),
        failed.join(", ")
    ))
    .hint(hint)
    .exit(crate::error::ExitCode::ChecksFailed)
    .into())
}

/// No check failed.
pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}
