//! Versioned migrations (`sql/migrations/`, and `sql/dev/` when the profile has `sampleData`),
//! embedded in the binary, recorded in a ledger table, each applied in its own transaction under an
//! advisory lock, refused when an applied one has changed.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::connect::server_message;
use crate::error::user_error;
use crate::profile::Profile;

/// Base migrations, in order: every environment.
const BASE: &[(&str, &str)] = &[
    (
        "0001_extensions",
        include_str!("../../sql/migrations/0001_extensions.sql"),
    ),
    (
        "0002_auth_tables",
        include_str!("../../sql/migrations/0002_auth_tables.sql"),
    ),
    (
        "0003_reference_data",
        include_str!("../../sql/migrations/0003_reference_data.sql"),
    ),
];

/// Sample data: only where the profile asks for it (dev), never in prod.
const SAMPLE: &[(&str, &str)] = &[(
    "0100_dev_sample_accounts",
    include_str!("../../sql/dev/0100_dev_sample_accounts.sql"),
)];

/// The ledger lives in its own schema, out of the application's way.
pub const LEDGER: &str = "phonebill_db.schema_migrations";

/// Key of the advisory lock that serialises concurrent runs (any constant unique to this tool).
const LOCK_KEY: i64 = 0x7068_6f6e_6462; // "phondb"

#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    pub id: String,
    pub sql: String,
    /// SHA-256 of the SQL text, hex.
    pub checksum: String,
}

impl Migration {
    pub fn new(id: impl Into<String>, sql: impl Into<String>) -> Migration {
        let sql = sql.into();
        Migration {
            id: id.into(),
            checksum: hex::encode(Sha256::digest(sql.as_bytes())),
            sql,
        }
    }
}

/// The migrations this tool carries for the profile, in order.
pub fn embedded(profile: &Profile) -> Vec<Migration> {
    let sample = if profile.sample_data { SAMPLE } else { &[] };
    BASE.iter()
        .chain(sample)
        .map(|(id, sql)| Migration::new(*id, *sql))
        .collect()
}

/// One row of the ledger.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub id: String,
    pub checksum: String,
    pub applied_at: String,
    pub tool_version: String,
}

/// What the ledger says against what the tool carries.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Plan {
    pub applied: Vec<Applied>,
    pub pending: Vec<String>,
    /// Applied migrations whose text differs from the tool's: "id (database …, tool …)".
    pub changed: Vec<String>,
    /// Applied migrations this tool does not know (a newer tool applied them).
    pub unknown: Vec<String>,
}

impl Plan {
    /// An error when the database and the tool disagree about what was applied.
    pub fn refuse_if_inconsistent(&self) -> Result<()> {
        if !self.changed.is_empty() {
            return Err(user_error(format!(
                "applied migration changed since it was applied: {}; nothing was applied",
                self.changed.join(", ")
            ))
            .hint("never edit an applied migration: restore its text and add a new migration for the change")
            .into());
        }
        if !self.unknown.is_empty() {
            return Err(user_error(format!(
                "the database has migrations this tool does not know: {}; nothing was applied",
                self.unknown.join(", ")
            ))
            .hint("a newer phonebill-db migrated this database; use that version")
            .into());
        }
        Ok(())
    }
}

/// Read the ledger (empty when it does not exist yet) and compare it with `migrations`.
pub async fn plan(client: &Client, migrations: &[Migration]) -> Result<Plan> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&LEDGER])
        .await
        .context("reading the migration ledger")?
        .get(0);
    let mut applied = Vec::new();
    if exists {
        let rows = client
            .query(
                &format!(
                    "SELECT id, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), tool_version FROM {LEDGER} ORDER BY applied_at, id"
                ),
                &[],
            )
            .await
            .context("reading the migration ledger")?;
        applied = rows
            .iter()
            .map(|r| Applied {
                id: r.get(0),
                checksum: r.get(1),
                applied_at: r.get(2),
                tool_version: r.get(3),
            })
            .collect();
    }
    let mut plan = Plan::default();
    for a in &applied {
        match migrations.iter().find(|m| m.id == a.id) {
            Some(m) if m.checksum != a.checksum => plan.changed.push(format!(
                "{} (database {}, tool {})",
                a.id,
                &a.checksum[..a.checksum.len().min(12)],
                &m.checksum[..12]
            )),
            Some(_) => {}
            None => plan.unknown.push(a.id.clone()),
        }
    }
    plan.pending = migrations
        .iter()
        .filter(|m| !applied.iter().any(|a| a.id == m.id))
        .map(|m| m.id.clone())
        .collect();
    plan.applied = applied;
    Ok(plan)
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedNow {
    pub id: String,
    pub millis: u64,
}

/// Run `f` holding the advisory lock that serialises apply-schema runs: a second run waits here,
/// then finds nothing left to do.
pub async fn locked<T>(
    client: &mut Client,
    f: impl AsyncFnOnce(&mut Client) -> Result<T>,
) -> Result<T> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    let result = f(client).await;
    // The lock also ends with the session; unlocking here keeps a reused session clean.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    result
}

/// Apply what is pending, each migration in its own transaction (call it under [`locked`]).
/// A failing migration is rolled back whole and stops the run. `progress` is called before each.
pub async fn apply(
    client: &mut Client,
    migrations: &[Migration],
    mut progress: impl FnMut(&str),
) -> Result<Vec<AppliedNow>> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS phonebill_db;
             CREATE TABLE IF NOT EXISTS {LEDGER} (
                 id           text PRIMARY KEY,
                 checksum     text NOT NULL,
                 applied_at   timestamptz NOT NULL DEFAULT now(),
                 tool_version text NOT NULL,
                 millis       bigint NOT NULL
             );"
        ))
        .await
        .context("creating the migration ledger")?;
    let plan = plan(client, migrations).await?;
    plan.refuse_if_inconsistent()?;
    let mut done = Vec::new();
    for m in migrations.iter().filter(|m| plan.pending.contains(&m.id)) {
        progress(&m.id);
        let started = Instant::now();
        let tx = client
            .transaction()
            .await
            .with_context(|| format!("starting migration {}", m.id))?;
        if let Err(e) = tx.batch_execute(&m.sql).await {
            let cause = server_message(&e);
            drop(tx); // rolls back
            return Err(user_error(format!(
                "migration {} failed and was rolled back: {cause}; {} applied before it stay applied",
                m.id,
                done.len()
            ))
            .hint("fix the cause in the database (or the migration, if it was never applied anywhere) and run apply-schema again")
            .into());
        }
        let millis = started.elapsed().as_millis() as i64;
        tx.execute(
            &format!(
                "INSERT INTO {LEDGER} (id, checksum, tool_version, millis) VALUES ($1, $2, $3, $4)"
            ),
            &[&m.id, &m.checksum, &env!("CARGO_PKG_VERSION"), &millis],
        )
        .await
        .with_context(|| format!("recording migration {}", m.id))?;
        tx.commit()
            .await
            .with_context(|| format!("committing migration {}", m.id))?;
        done.push(AppliedNow {
            id: m.id.clone(),
            millis: millis as u64,
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_follow_the_text_and_sample_data_follows_the_profile() {
        let a = Migration::new("x", "SELECT 1;");
        assert_eq!(a.checksum, Migration::new("y", "SELECT 1;").checksum);
        assert_ne!(a.checksum, Migration::new("x", "SELECT 2;").checksum);
        let mut p = Profile::load("dev", None).unwrap();
        assert!(embedded(&p).iter().any(|m| m.id.contains("sample")));
        p.sample_data = false;
        let ids: Vec<String> = embedded(&p).into_iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            ["0001_extensions", "0002_auth_tables", "0003_reference_data"]
        );
    }
}
