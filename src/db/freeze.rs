//! The app role frozen while an upgrade moves the data (sql/upgrade/): it may not log in, its
//! sessions end, the freeze is checked to hold; thawed, it logs in again with its exact grants.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::error::{ExitCode, user_error};
use crate::profile::Profile;
use crate::render::render_sql;

const FREEZE_SQL: &str = include_str!("../../sql/upgrade/freeze.sql");
const END_SESSIONS_SQL: &str = include_str!("../../sql/upgrade/end-sessions.sql");
const FROZEN_SQL: &str = include_str!("../../sql/upgrade/frozen.sql");
const APP_SESSIONS_SQL: &str = include_str!("../../sql/upgrade/app-sessions.sql");
const THAW_SQL: &str = include_str!("../../sql/upgrade/thaw.sql");

/// How long the app role's ended sessions may take to go.
const SESSIONS_GONE: Duration = Duration::from_secs(30);

/// End the app role's sessions (it may no longer log in) and wait until none is left, then check
/// that the freeze holds: a transaction of the app's that is still open could commit after the
/// backup's snapshot.
pub async fn end_sessions(admin: &Client, profile: &Profile) -> Result<()> {
    run_sql(admin, "end-sessions.sql", END_SESSIONS_SQL, profile)
        .await
        .context("ending the app role's sessions on the old server")?;
    let count = upgrade_sql("app-sessions.sql", APP_SESSIONS_SQL, profile)?;
    let deadline = std::time::Instant::now() + SESSIONS_GONE;
    loop {
        let left: i64 = admin
            .query_one(count.as_str(), &[])
            .await
            .map_err(|e| crate::db::role::db_context(e, "counting the app role's sessions"))?
            .get(0);
        if left == 0 {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(user_error(format!(
                "{left} session(s) of the app role {} were still open {}s after they were ended",
                profile.app_user,
                SESSIONS_GONE.as_secs()
            ))
            .hint("a backend stuck in I/O can take this long; `SELECT * FROM pg_stat_activity` on the old server shows it; run the upgrade again")
            .exit(ExitCode::Timeout)
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::ensure!(
        is_frozen(admin, profile).await?,
        "the app role {} may log in to the old server again (someone changed it meanwhile)",
        profile.app_user
    );
    Ok(())
}

/// The app role logs in again with its exact privileges (sql/upgrade/thaw.sql,
/// sql/app-role.sql): it writes on this server again.
pub async fn thaw(admin: &Client, profile: &Profile) -> Result<()> {
    let mut sql = upgrade_sql("thaw.sql", THAW_SQL, profile)?;
    sql.push_str(&crate::db::role::grants_sql(
        &profile.app_user,
        &profile.database,
    )?);
    admin
        .batch_execute(&sql)
        .await
        .map_err(|e| crate::db::role::db_context(e, "letting the app role log in and write again"))
}

/// Whether `upgrade` froze this server for the app role (sql/upgrade/frozen.sql).
pub async fn is_frozen(admin: &Client, profile: &Profile) -> Result<bool> {
    let sql = upgrade_sql("frozen.sql", FROZEN_SQL, profile)?;
    let row = admin
        .query_one(sql.as_str(), &[])
        .await
        .map_err(|e| crate::db::role::db_context(e, "reading the app role's privileges"))?;
    Ok(row.get(0))
}

/// One of `sql/upgrade/`, for the profile's app role and database.
fn upgrade_sql(name: &str, source: &str, profile: &Profile) -> Result<String> {
    render_sql(
        name,
        source,
        &serde_json::json!({ "app_user": profile.app_user, "database": profile.database }),
    )
}

async fn run_sql(admin: &Client, name: &str, source: &str, profile: &Profile) -> Result<()> {
    let sql = upgrade_sql(name, source, profile)?;
    admin
        .batch_execute(&sql)
        .await
        .map_err(|e| crate::db::role::db_context(e, &format!("running {name}")))
}

/// The app role may not log in (sql/upgrade/freeze.sql).
pub async fn freeze(admin: &Client, profile: &Profile) -> Result<()> {
    run_sql(admin, "freeze.sql", FREEZE_SQL, profile).await
}
