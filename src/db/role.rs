//! The release's logins that are no administrator — the application's and the metrics
//! exporter's: each exists, owns nothing, has exactly its privileges (`sql/login-role.sql`, then
//! `sql/app-role.sql` or `sql/metrics-role.sql`; idempotent, run by every apply-schema), and its
//! password in the database equals its Secret's.

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::Client;

use super::connect::{Login, server_message};
use crate::render::render_sql;

const LOGIN_ROLE_SQL: &str = include_str!("../../sql/login-role.sql");
const APP_ROLE_SQL: &str = include_str!("../../sql/app-role.sql");
const METRICS_ROLE_SQL: &str = include_str!("../../sql/metrics-role.sql");

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleReport {
    pub role: String,
    /// The password was set from the Secret (false: not known here, left as it was).
    pub password_synced: bool,
}

/// `role` as a login of the release's that is no administrator (`sql/login-role.sql`).
fn login_role_sql(role: &str) -> Result<String> {
    render_sql("login-role.sql", LOGIN_ROLE_SQL, &json!({ "role": role }))
}

/// The SQL that creates the app role if missing and gives it exactly its privileges (no password).
pub fn grants_sql(app_user: &str, database: &str) -> Result<String> {
    Ok(login_role_sql(app_user)?
        + &render_sql(
            "app-role.sql",
            APP_ROLE_SQL,
            &json!({ "app_user": app_user, "database": database }),
        )?)
}

/// The app role: created if missing, its attributes and privileges, its password when known.
pub async fn ensure(client: &Client, app: &Login, database: &str) -> Result<RoleReport> {
    let sql = grants_sql(&app.user, database)?;
    ensure_login(client, app, &sql, "granting role {} its privileges").await
}

/// The metrics exporter's login (`sql/metrics-role.sql`: pg_monitor, nothing else) and its
/// password from the release's Secret.
pub async fn ensure_metrics(
    client: &Client,
    metrics: &Login,
    database: &str,
) -> Result<RoleReport> {
    let sql = login_role_sql(&metrics.user)?
        + &render_sql(
            "metrics-role.sql",
            METRICS_ROLE_SQL,
            &json!({ "metrics_user": metrics.user, "database": database }),
        )?;
    ensure_login(client, metrics, &sql, "making the exporter's role {}").await
}

/// Run `sql` for `login`'s role (`doing` names it, `{}` its name), then set its password when known.
async fn ensure_login(
    client: &Client,
    login: &Login,
    sql: &str,
    doing: &str,
) -> Result<RoleReport> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| db_context(e, &doing.replace("{}", &login.user)))?;
    if let Some(password) = &login.password {
        set_password(client, &login.user, password).await?;
    }
    Ok(RoleReport {
        role: login.user.clone(),
        password_synced: login.password.is_some(),
    })
}

/// Set `role`'s password. The server gets a SCRAM-SHA-256 verifier computed here, never the
/// password itself (it would otherwise pass through the statement text: logs,
/// pg_stat_statements). The server quotes both (format %I, %L): nothing is spliced into SQL here.
/// Returns the verifier it set.
pub async fn set_password(
    client: &impl tokio_postgres::GenericClient,
    role: &str,
    password: &str,
) -> Result<String> {
    let verifier = scram_verifier(password);
    let statement: String = client
        .query_one(
            "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
            &[&role, &verifier],
        )
        .await
        .with_context(|| format!("preparing the password change of role {role}"))?
        .get(0);
    client
        .batch_execute(&statement)
        .await
        .map_err(|e| db_context(e, &format!("setting the password of role {role}")))?;
    Ok(verifier)
}

/// `SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`, as PostgreSQL stores it (random salt).
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

pub fn db_context(e: tokio_postgres::Error, doing: &str) -> anyhow::Error {
    anyhow::anyhow!("{}", server_message(&e)).context(doing.to_string())
}
