//! A running PostgreSQL tool (pg_dump, pg_restore, psql), wherever it runs: in the database pod
//! through Kubernetes exec, or on this machine. Its streams and how it ended, in one shape.

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// How a process ended: success, or failure with a message naming the exit code (the Status
/// message of the exec API, or the local exit status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failed { message: String },
}

pub struct Process {
    /// What runs where, for messages: "pg_dump in pod phonebill-dev/auth-postgres-dev-postgresql-0".
    pub what: String,
    pub stdin: Option<Writer>,
    pub stdout: Reader,
    pub stderr: Reader,
    pub exit: Pin<Box<dyn Future<Output = Result<Exit>> + Send>>,
}

/// How much of a tool's stderr is kept for the error message (its last lines matter).
const STDERR_TAIL: usize = 16 * 1024;

/// Read a stream to its end, keeping only the last `STDERR_TAIL` bytes: memory stays flat however
/// much a tool prints.
pub async fn tail(mut from: Reader) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    if kept.len() > STDERR_TAIL {
        kept.drain(..kept.len() - STDERR_TAIL);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The line of a tool's stderr that says what went wrong: the last `error:`/`ERROR:`/`FATAL:`
/// line, else the last non-empty line.
pub fn cause(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            lower.contains("error:") || lower.contains("fatal:")
        })
        .or(lines.last())
        .map(|l| l.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_the_last_error_line_not_the_noise_after_it() {
        let stderr = "pg_restore: connecting\npg_restore: error: could not execute query: ERROR:  duplicate key value violates unique constraint \"pk\"\nCommand was: COPY x\n\n";
        assert_eq!(
            cause(stderr).unwrap(),
            "pg_restore: error: could not execute query: ERROR:  duplicate key value violates unique constraint \"pk\""
        );
        assert_eq!(cause("just this\n").unwrap(), "just this");
        assert_eq!(cause("\n \n"), None);
    }

    #[tokio::test]
    async fn tail_keeps_only_the_end_of_a_long_stream() {
        let long: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let kept = tail(Box::new(std::io::Cursor::new(long))).await;
        assert!(kept.len() <= STDERR_TAIL);
        assert!(kept.ends_with("line 199999\n"));
        assert!(!kept.contains("line 1\n"));
    }
}
