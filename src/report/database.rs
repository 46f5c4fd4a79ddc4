//! What the database says about itself for a support report (sql/report/): the settings that
//! differ from the defaults, sessions by state, lock waits, database and table sizes, and, only
//! when asked, the sessions' query texts. Each query's rows as text, column by column.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::Client;

/// One query of the report: the file it goes to and its SQL.
struct Query {
    file: &'static str,
    sql: &'static str,
    /// Takes `$1`: whether query texts may be shown.
    with_queries_param: bool,
    /// Run only with --with-queries.
    only_with_queries: bool,
}

/// Sessions by database, user and state (runbook 8.1), and lock waits with both sessions
/// (`$1`: query texts): what `status --queries` shows too.
pub const CONNECTIONS: &str = include_str!("../../sql/report/connections.sql");
pub const LOCK_WAITS: &str = include_str!("../../sql/report/locks.sql");

const QUERIES: &[Query] = &[
    Query {
        file: "settings",
        sql: include_str!("../../sql/report/settings.sql"),
        with_queries_param: false,
        only_with_queries: false,
    },
    Query {
        file: "connections",
        sql: CONNECTIONS,
        with_queries_param: false,
        only_with_queries: false,
    },
    Query {
        file: "lock-waits",
        sql: LOCK_WAITS,
        with_queries_param: true,
        only_with_queries: false,
    },
    Query {
        file: "databases",
        sql: include_str!("../../sql/report/databases.sql"),
        with_queries_param: false,
        only_with_queries: false,
    },
    Query {
        file: "tables",
        sql: include_str!("../../sql/report/tables.sql"),
        with_queries_param: false,
        only_with_queries: false,
    },
    Query {
        file: "activity",
        sql: include_str!("../../sql/report/activity.sql"),
        with_queries_param: false,
        only_with_queries: true,
    },
];

/// A query's rows: column name → its text (NULL as null).
pub type Rows = Vec<BTreeMap<String, Option<String>>>;

/// Each query's rows by file name (`database/NAME.json`), or why it could not run.
pub async fn gather(admin: &Client, with_queries: bool) -> Vec<(&'static str, Result<Rows>)> {
    let mut out = Vec::new();
    if let Err(e) = bounded(admin).await {
        out.push((
            "session",
            Err(anyhow::Error::new(e).context("setting the report's timeouts")),
        ));
    }
    for q in QUERIES
        .iter()
        .filter(|q| with_queries || !q.only_with_queries)
    {
        out.push((q.file, run(admin, q, with_queries).await));
    }
    out
}

/// A session that reads what the database says about itself while something may hold a lock:
/// a query that waits on one gives up after a few seconds instead of hanging the command
/// (`report`, `status --queries`).
pub async fn bounded(admin: &Client) -> Result<(), tokio_postgres::Error> {
    admin
        .batch_execute("SET lock_timeout = '5s'; SET statement_timeout = '30s'")
        .await
}

async fn run(admin: &Client, q: &Query, with_queries: bool) -> Result<Rows> {
    let rows = if q.with_queries_param {
        admin.query(q.sql, &[&with_queries]).await
    } else {
        admin.query(q.sql, &[]).await
    }
    .with_context(|| format!("asking the database for its {}", q.file))?;
    as_text(&rows, q.file)
}

/// Rows as text, column by column (NULL as null); `what` names the query in errors.
pub fn as_text(rows: &[tokio_postgres::Row], what: &str) -> Result<Rows> {
    rows.iter()
        .map(|r| {
            r.columns()
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let v: Option<String> = r
                        .try_get(i)
                        .with_context(|| format!("reading column {} of {what}", c.name()))?;
                    Ok((c.name().to_string(), v))
                })
                .collect()
        })
        .collect()
}
