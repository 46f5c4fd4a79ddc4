//! A restore drill's copy of the database on its own server: a scratch database made like the live
//! one, marked as the drill's, restored into and checked, then dropped — whatever happened. The
//! live database is never written to. One drill at a time per server (an advisory lock held by
//! the drill's session); a copy an earlier drill left behind (its process killed) is dropped by
//! the next one.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::connect::server_message;

const COPY_STATEMENT: &str = include_str!("../../sql/drill/copy-statement.sql");
const LEFTOVERS: &str = include_str!("../../sql/drill/leftovers.sql");
const TABLES: &str = include_str!("../../sql/drill/tables.sql");

/// The advisory lock (one 64-bit key) that keeps two drills of one server apart.
const LOCK_KEY: i64 = 0x7062_646b_6472_6c6c; // "pbdkdrll"

/// The name of a drill's copy of `database`: `<database>_drill_<time>`, the database's part cut
/// so that the whole fits PostgreSQL's 63 bytes.
pub fn copy_name(database: &str, stamp: &str) -> String {
    let suffix = format!("_drill_{stamp}");
    let keep = 63usize.saturating_sub(suffix.len()).min(database.len());
    let mut cut = keep;
    while !database.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &database[..cut])
}

/// The comment that marks a drill's copy of `database`.
pub fn mark(database: &str) -> String {
    format!("phonebill-db restore drill copy of {database}")
}

/// A drill's copy, made: the session that made it (holding the drill's lock) and its name.
pub struct Copy<'a> {
    admin: &'a Client,
    pub name: String,
}

/// Take the drill lock on the live database's admin session, drop what earlier drills left, and
/// make the copy `name` like the live database (marked as the drill's). The names of the
/// leftovers dropped come back too.
pub async fn create<'a>(
    admin: &'a Client,
    live: &str,
    name: &str,
) -> Result<(Copy<'a>, Vec<String>)> {
    let locked: bool = admin
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
        .context("taking the restore drill's lock")?
        .get(0);
    if !locked {
        return Err(crate::error::user_error(
            "another restore drill runs on this server (it holds the drill's lock); nothing was made for this one",
        )
        .hint("wait for it to end, then run the drill again")
        .exit(crate::error::ExitCode::Usage)
        .into());
    }
    let mut dropped = Vec::new();
    for row in admin
        .query(LEFTOVERS, &[&mark(live)])
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
        .context("looking for copies earlier drills left")?
    {
        let left: String = row.get(0);
        drop_database(admin, &left).await?;
        dropped.push(left);
    }
    let statement: String = admin
        .query_one(COPY_STATEMENT, &[&name])
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
        .context("reading how the live database is made")?
        .get(0);
    admin
        .batch_execute(&statement)
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
        .with_context(|| format!("creating the drill's copy {name}"))?;
    let copy = Copy {
        admin,
        name: name.to_string(),
    };
    let comment: String = admin
        .query_one(
            "SELECT format('COMMENT ON DATABASE %I IS %L', $1::text, $2::text)",
            &[&name, &mark(live)],
        )
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))?
        .get(0);
    if let Err(e) = admin.batch_execute(&comment).await {
        let _ = copy.remove().await;
        return Err(anyhow::anyhow!(server_message(&e)).context("marking the drill's copy"));
    }
    Ok((copy, dropped))
}

impl Copy<'_> {
    /// Drop the copy (its sessions ended) and let go of the drill's lock.
    pub async fn remove(&self) -> Result<()> {
        let dropped = drop_database(self.admin, &self.name).await;
        let _ = self
            .admin
            .query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await;
        dropped
    }
}

async fn drop_database(admin: &Client, name: &str) -> Result<()> {
    let statement: String = admin
        .query_one(
            "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', $1::text)",
            &[&name],
        )
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))?
        .get(0);
    admin
        .batch_execute(&statement)
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
        .with_context(|| format!("dropping the drill's copy {name}"))
}

/// Each table's rows in the database `admin` is connected to (`schema.table` → count).
pub async fn row_counts(admin: &Client) -> Result<BTreeMap<String, i64>> {
    let tables = admin
        .query(TABLES, &[])
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
        .context("listing the copy's tables")?;
    let mut out = BTreeMap::new();
    for t in tables {
        let table: String = t.get(0);
        // The name is the server's own quoting (format %I.%I).
        let n: i64 = admin
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(|e| anyhow::anyhow!(server_message(&e)))
            .with_context(|| format!("counting the rows of {table}"))?
            .get(0);
        out.insert(table, n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copys_name_fits_postgresqls_63_bytes() {
        assert_eq!(
            copy_name("phonebill_auth", "20261206t121500"),
            "phonebill_auth_drill_20261206t121500"
        );
        let long = "a".repeat(63);
        let name = copy_name(&long, "20261206t121500");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_drill_20261206t121500"));
    }
}
