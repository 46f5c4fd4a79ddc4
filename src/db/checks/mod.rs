//! The database half of `verify` (runbook 4.4.3, 7.3, 12): each check reads the catalog or the data
//! and names exactly what differs from `sql/expected-schema.yaml` and the profile. The checks by
//! concern: the logins (`logins`), the app role's rights (`roles`), the schema and its data
//! (`schema`), the server's version, settings and size (`server`).

mod advice;
mod logins;
mod roles;
mod schema;
mod server;

pub use advice::hint;
pub use logins::{app_url, tls_required, transport};
pub use server::{Usage, parse_size, usage_of};

use logins::{app_connects, metrics_login};
use roles::app_role;
use schema::{extensions, migrations_check, reference_data, schema};
use server::{encoding_and_time_zone, server_version, settings, usage};

use std::collections::BTreeSet;

use anyhow::Result;
use tokio_postgres::Client;

use super::connect::{Db, server_message};
use super::expected;
use super::migrate::{self, Migration};
use crate::check::Check;
use crate::error::report;
use crate::profile::Profile;

/// How a server parameter (time zone, memory settings, connection limit) that differs from the
/// profile is reported: a failure on the release's own pod, whose configuration this tool wrote;
/// a warning on any other server (`--database-url`: a CI service container, a server someone else
/// configured), unless `strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameters {
    pub fail: bool,
}

impl Parameters {
    pub fn for_target(db: &Db, strict: bool) -> Parameters {
        Parameters {
            fail: strict || db.is_pod(),
        }
    }

    pub(super) fn differs(self, name: String, detail: String) -> Check {
        if self.fail {
            Check::fail(name, detail)
        } else {
            Check::warn(
                name,
                format!("{detail} (not a server this tool configured; --strict fails on it)"),
            )
        }
    }
}

/// Every database check, given a working admin session. Query errors become failed checks.
pub async fn run(
    db: &Db,
    admin: &Client,
    profile: &Profile,
    migrations: &[Migration],
    params: Parameters,
) -> Vec<Check> {
    let mut out = Vec::new();
    let expected = match expected::load() {
        Ok(e) => e,
        Err(e) => return vec![Check::fail("schema", report(&e).error)],
    };
    out.push(app_connects(db).await);
    if let Some(metrics) = &db.metrics {
        out.push(metrics_login(db, metrics).await);
    }
    push(
        &mut out,
        "server version",
        server_version(admin, profile, db.is_pod()).await,
    );
    push(&mut out, "role", app_role(admin, profile, &expected).await);
    push(
        &mut out,
        "encoding",
        encoding_and_time_zone(admin, profile, params).await,
    );
    push(&mut out, "extensions", extensions(admin, profile).await);
    push(&mut out, "schema", schema(admin, &expected).await);
    push(
        &mut out,
        "reference data",
        reference_data(admin, &expected, profile).await,
    );
    push(
        &mut out,
        "migrations",
        migrations_check(admin, migrations).await,
    );
    push(&mut out, "settings", settings(admin, profile, params).await);
    push(&mut out, "usage", usage(admin).await);
    out
}

pub(super) fn push(out: &mut Vec<Check>, what: &str, checks: Result<Vec<Check>>) {
    match checks {
        Ok(c) => out.extend(c),
        Err(e) => out.push(Check::fail(what, report(&e).error)),
    }
}

/// The first column of every row, as text.
pub(super) async fn texts(
    admin: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<String>> {
    Ok(admin
        .query(sql, params)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The first two columns of every row, as text pairs.
pub(super) async fn pairs(admin: &Client, sql: &str) -> Result<BTreeSet<(String, String)>> {
    Ok(admin
        .query(sql, &[])
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

pub(super) fn db_err(e: tokio_postgres::Error) -> anyhow::Error {
    anyhow::anyhow!("query failed: {}", server_message(&e))
}

/// verify's database checks of `db` against `profile` (after a restore, an upgrade, a new image).
pub async fn database_checks(
    profile: &crate::profile::Profile,
    db: &crate::db::connect::Db,
) -> Vec<Check> {
    match db.admin().await {
        Ok(admin) => {
            let migrations = migrate::embedded(profile);
            let params = Parameters::for_target(db, false);
            run(db, &admin, profile, &migrations, params).await
        }
        Err(e) => vec![Check::fail("admin connects", report(&e).error)],
    }
}

/// verify's database checks of the release's own pod (a failed connection is the first check).
pub async fn release_checks(
    kube: &crate::k8s::client::Kube,
    profile: &crate::profile::Profile,
) -> Vec<Check> {
    match crate::db::connect::Db::for_release(kube.clone(), profile).await {
        Ok(db) => database_checks(profile, &db).await,
        Err(e) => vec![Check::fail("admin connects", report(&e).error)],
    }
}
