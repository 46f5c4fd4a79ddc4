//! Scratch databases beside the live one on its own server: a restore drill's copy (restored into,
//! checked, dropped whatever happened) and a restore's shadow (loaded, checked, then swapped in).
//! Each is made like the live database, marked as what it is, and held by an advisory lock of
//! its kind (one drill, one restore at a time per server); what an earlier run of the same kind
//! left behind (its process killed) is dropped by the next one.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::connect::server_message;

const COPY_STATEMENT: &str = include_str!("../../sql/drill/copy-statement.sql");
const COPY_ACCESS: &str = include_str!("../../sql/drill/copy-access.sql");
const LEFTOVERS: &str = include_str!("../../sql/drill/leftovers.sql");
const TABLES: &str = include_str!("../../sql/drill/tables.sql");

/// What a scratch database is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A restore drill's copy (`verify --restore-drill`).
    Drill,
    /// A restore's shadow, swapped in when it passed (`restore`).
    Shadow,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Drill => "drill",
            Kind::Shadow => "restore",
        }
    }

    /// The advisory lock's first key: with the live database's name hashed as the second, it keeps
    /// two runs of this kind on one database apart.
    fn lock_key(self) -> i32 {
        match self {
            Kind::Drill => 0x7064_726c,  // "pdrl"
            Kind::Shadow => 0x7073_6864, // "pshd"
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Drill => "restore drill",
            Kind::Shadow => "restore",
        }
    }
}

/// The time in a scratch database's (and a previous database's) name, to the millisecond: two
/// restores in one second keep two previous databases.
pub fn stamp() -> String {
    let now = jiff::Timestamp::now();
    format!(
        "{}{:03}",
        now.strftime("%Y%m%dt%H%M%S"),
        now.subsec_millisecond()
    )
}

/// The name of a scratch database of `database`: `<database>_<drill|restore>_<time>`, the
/// database's part cut so that the whole fits PostgreSQL's 63 bytes.
pub fn copy_name(database: &str, kind: Kind, stamp: &str) -> String {
    named(database, &format!("_{}_{stamp}", kind.word()))
}

/// `database` with `suffix`, the database's part cut so that the whole fits 63 bytes.
pub fn named(database: &str, suffix: &str) -> String {
    let keep = 63usize.saturating_sub(suffix.len()).min(database.len());
    let mut cut = keep;
    while !database.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &database[..cut])
}

/// The comment that marks a scratch database of `database`.
pub fn mark(database: &str, kind: Kind) -> String {
    match kind {
        Kind::Drill => format!("phonebill-db restore drill copy of {database}"),
        Kind::Shadow => format!("phonebill-db restore shadow of {database}"),
    }
}

/// A scratch database, made: the session that made it (holding its kind's lock) and its name.
pub struct Copy<'a> {
    admin: &'a Client,
    kind: Kind,
    live: String,
    pub name: String,
}

/// Take `kind`'s lock on `admin`'s session (the live database's administrator, connected to any
/// database but the copy), drop what earlier runs of that kind left, and make `name` like the live
/// database `live` (marked as `kind`'s). The names of the leftovers dropped come back too.
pub async fn create<'a>(
    admin: &'a Client,
    live: &str,
    name: &str,
    kind: Kind,
) -> Result<(Copy<'a>, Vec<String>)> {
    let locked: bool = admin
        .query_one(
            "SELECT pg_try_advisory_lock($1::int, hashtext($2::text))",
            &[&kind.lock_key(), &live],
        )
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
        .with_context(|| format!("taking the {}'s lock", kind.what()))?
        .get(0);
    if !locked {
        return Err(crate::error::user_error(format!(
            "another {} of {live} runs (it holds the {}'s lock); nothing was changed by this one",
            kind.what(),
            kind.what()
        ))
        .hint("wait for it to end, then run this again")
        .exit(crate::error::ExitCode::Usage)
        .into());
    }
    let unlock = async || {
        let _ = admin
            .query_one(
                "SELECT pg_advisory_unlock($1::int, hashtext($2::text))",
                &[&kind.lock_key(), &live],
            )
            .await;
    };
    let dropped = match drop_marked(admin, &mark(live, kind)).await {
        Ok(d) => d,
        Err(e) => {
            unlock().await;
            return Err(e);
        }
    };
    let made = async {
        let statement: String = admin
            .query_one(COPY_STATEMENT, &[&name, &live])
            .await
            .map_err(|e| anyhow::anyhow!(server_message(&e)))
            .context("reading how the live database is made")?
            .get(0);
        execute(admin, &statement)
            .await
            .with_context(|| format!("creating {name} for the {}", kind.what()))
    };
    if let Err(e) = made.await {
        unlock().await;
        return Err(e);
    }
    let copy = Copy {
        admin,
        kind,
        live: live.to_string(),
        name: name.to_string(),
    };
    if let Err(e) = comment(admin, name, &mark(live, kind)).await {
        let _ = copy.remove().await;
        return Err(e.context(format!("marking {name}")));
    }
    // Who may connect, and the database's settings, as the live one has them.
    let access = async {
        for row in admin
            .query(COPY_ACCESS, &[&name, &live])
            .await
            .map_err(|e| anyhow::anyhow!(server_message(&e)))?
        {
            let statement: String = row.get(0);
            execute(admin, &statement).await?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = access.await {
        let _ = copy.remove().await;
        return Err(e.context(format!(
            "giving {name} the live database's access and settings"
        )));
    }
    Ok((copy, dropped))
}

/// Set database `name`'s comment.
pub async fn comment(admin: &Client, name: &str, text: &str) -> Result<()> {
    let statement = quoted(
        admin,
        "SELECT format('COMMENT ON DATABASE %I IS %L', $1::text, $2::text)",
        &[name, text],
    )
    .await?;
    execute(admin, &statement).await
}

/// A statement about databases, its names and texts quoted by the server: `template` is a
/// `SELECT format(…)` over `$1`… (`%I` for names, `%L` for texts), `args` their values.
pub async fn quoted(admin: &Client, template: &str, args: &[&str]) -> Result<String> {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
        .iter()
        .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    Ok(admin
        .query_one(template, &params)
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))?
        .get(0))
}

/// Run statements (as [`quoted`] makes them), the server's words as the error.
pub async fn execute(admin: &Client, statements: &str) -> Result<()> {
    admin
        .batch_execute(statements)
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
}

/// The databases marked with `mark` (their comment), with their sizes.
pub async fn marked(admin: &Client, mark: &str) -> Result<Vec<(String, i64)>> {
    Ok(admin
        .query(LEFTOVERS, &[&mark])
        .await
        .map_err(|e| anyhow::anyhow!(server_message(&e)))
        .context("looking for the databases this tool marked")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Drop every database marked `mark`; their names.
pub async fn drop_marked(admin: &Client, mark: &str) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    for (name, _) in marked(admin, mark).await? {
        drop_database(admin, &name).await?;
        dropped.push(name);
    }
    Ok(dropped)
}

impl Copy<'_> {
    /// Drop the copy (its sessions ended) and let go of its kind's lock.
    pub async fn remove(&self) -> Result<()> {
        let dropped = drop_database(self.admin, &self.name).await;
        self.unlock().await;
        dropped
    }

    /// Keep the copy (it was swapped in), and let go of the lock.
    pub async fn keep(self) {
        self.unlock().await;
    }

    async fn unlock(&self) {
        let _ = self
            .admin
            .query_one(
                "SELECT pg_advisory_unlock($1::int, hashtext($2::text))",
                &[&self.kind.lock_key(), &self.live],
            )
            .await;
    }
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)`: its sessions ended.
pub async fn drop_database(admin: &Client, name: &str) -> Result<()> {
    let statement = quoted(
        admin,
        "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', $1::text)",
        &[name],
    )
    .await?;
    execute(admin, &statement)
        .await
        .with_context(|| format!("dropping database {name}"))
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
            copy_name("phonebill_auth", Kind::Drill, "20261206t121500"),
            "phonebill_auth_drill_20261206t121500"
        );
        assert_eq!(
            copy_name("phonebill_auth", Kind::Shadow, "20261206t121500"),
            "phonebill_auth_restore_20261206t121500"
        );
        let long = "a".repeat(63);
        let name = copy_name(&long, Kind::Drill, "20261206t121500");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_drill_20261206t121500"));
    }
}
