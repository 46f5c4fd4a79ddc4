//! The runbook's three performance queries (8.1), right for PostgreSQL 16, as `status --queries`
//! reads them: the slowest statements (pg_stat_statements by `mean_exec_time`), lock waits with
//! the waiting and the blocking session, and sessions by database, user and state. Each is read
//! on its own in a session whose waits are bounded: one that cannot be read says why, the others
//! still come.

use serde::Serialize;
use tokio_postgres::Client;

use crate::report::database::{CONNECTIONS, LOCK_WAITS, Rows, as_text, bounded};

const SLOWEST: &str = include_str!("../../sql/status/slowest-statements.sql");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queries {
    pub slowest_statements: Part,
    pub lock_waits: Part,
    pub connections: Part,
}

/// One query's rows, or why it could not be read and what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Rows>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

pub async fn read(admin: &Client) -> Queries {
    let session = bounded(admin).await.err();
    let part =
        async |what: &str, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]| {
            match admin.query(sql, params).await {
                Ok(rows) => match as_text(&rows, what) {
                    Ok(rows) => Part {
                        rows: Some(rows),
                        error: None,
                        hint: None,
                    },
                    Err(e) => unread(crate::error::report(&e).error, None),
                },
                Err(e) => {
                    let (error, hint) = explain(&e, session.as_ref());
                    unread(error, hint)
                }
            }
        };
    Queries {
        slowest_statements: part("slowest statements", SLOWEST, &[]).await,
        lock_waits: part("lock waits", LOCK_WAITS, &[&true]).await,
        connections: part("connections", CONNECTIONS, &[]).await,
    }
}

fn unread(error: String, hint: Option<String>) -> Part {
    Part {
        rows: None,
        error: Some(error),
        hint,
    }
}

/// What the server said, and what to do about the two causes that are the profile's.
fn explain(
    e: &tokio_postgres::Error,
    session: Option<&tokio_postgres::Error>,
) -> (String, Option<String>) {
    let said = super::connect::server_message(e);
    let hint = match e.as_db_error().map(|d| d.code().code()) {
        // undefined_table: the extension is not in this database.
        Some("42P01") if said.contains("pg_stat_statements") => Some(
            "pg_stat_statements is not created in this database: `phonebill-db apply-schema` creates it (its first migration)".to_string(),
        ),
        // object_not_in_prerequisite_state: created, not preloaded.
        Some("55000") if said.contains("shared_preload_libraries") => Some(
            "set `postgresql: {statStatements: true}` in a values file and run `phonebill-db install` (the server restarts to load it)".to_string(),
        ),
        // lock_not_available, query_canceled: what the bounded session is for.
        Some("55P03") | Some("57014") => Some(
            "something holds a lock for longer than the 5 s this waits: the lock waits part shows who".to_string(),
        ),
        _ => session.map(|s| {
            format!(
                "the session's timeouts could not be set ({})",
                super::connect::server_message(s)
            )
        }),
    };
    (said, hint)
}

/// The three parts as tables, for people.
pub fn text(q: &Queries) -> String {
    let mut out = String::new();
    for (title, part, columns) in [
        (
            "Slowest statements (pg_stat_statements, by mean time)",
            &q.slowest_statements,
            &["mean_ms", "calls", "total_ms", "rows", "user", "query"][..],
        ),
        (
            "Lock waits",
            &q.lock_waits,
            &[
                "waiting_pid",
                "waiting_user",
                "waiting_for",
                "wait_event",
                "blocking_pid",
                "blocking_user",
                "blocking_state",
                "waiting_query",
                "blocking_query",
            ][..],
        ),
        (
            "Connections",
            &q.connections,
            &["database", "user", "state", "sessions", "longest_in_state"][..],
        ),
    ] {
        out.push_str(&format!("\n{title}\n"));
        match (&part.rows, &part.error) {
            (Some(rows), _) if rows.is_empty() => out.push_str("  none\n"),
            (Some(rows), _) => {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        columns
                            .iter()
                            .map(|c| r.get(*c).cloned().flatten().unwrap_or_default())
                            .collect()
                    })
                    .collect();
                let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
                let header: Vec<&str> = header.iter().map(String::as_str).collect();
                out.push_str(&crate::ui::table(&header, &table));
            }
            (None, e) => {
                out.push_str(&format!(
                    "  cannot be read: {}\n",
                    e.as_deref().unwrap_or("unknown")
                ));
                if let Some(h) = &part.hint {
                    out.push_str(&format!("  hint: {h}\n"));
                }
            }
        }
    }
    out
}
