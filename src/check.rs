//! A named check with pass/fail/skip and a reason: what `verify` reports (and restore, later).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    /// How tables show it: ok, FAIL, skip.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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
