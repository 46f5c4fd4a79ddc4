//! The app role's rights: what it may do and own, no more and no less than the expected schema
//! grants.

use std::collections::BTreeSet;

use anyhow::Result;
use tokio_postgres::Client;

use super::{db_err, texts};
use crate::check::Check;
use crate::db::expected::Expected;
use crate::profile::Profile;

/// Not a superuser, owns nothing, exactly the privileges of docs/schema.md.
pub(super) async fn app_role(
    admin: &Client,
    profile: &Profile,
    expected: &Expected,
) -> Result<Vec<Check>> {
    let role = &profile.app_user;
    let row = admin
        .query_opt(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[role],
        )
        .await
        .map_err(db_err)?;
    let Some(row) = row else {
        return Ok(vec![Check::fail(
            "app role",
            format!("role {role} does not exist"),
        )]);
    };
    let mut attrs = Vec::new();
    for (i, what) in [
        "superuser",
        "may create databases",
        "may create roles",
        "bypasses row security",
    ]
    .iter()
    .enumerate()
    {
        if row.get::<_, bool>(i) {
            attrs.push(format!("{role} {what}"));
        }
    }
    if !row.get::<_, bool>(4) {
        attrs.push(format!("{role} may not log in"));
    }
    let owned: Vec<String> = texts(
        admin,
        "SELECT c.relname::text FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
             WHERE r.rolname = $1 AND c.relnamespace = 'public'::regnamespace ORDER BY 1",
        &[role],
    )
    .await?
    .into_iter()
    .collect();
    if !owned.is_empty() {
        attrs.push(format!("{role} owns {}", owned.join(", ")));
    }
    let mut checks = vec![Check::from_problems(
        "app role",
        format!("{role}: may log in, no superuser, owns nothing"),
        attrs,
    )];

    let mut problems = Vec::new();
    let db_ok: bool = admin
        .query_one(
            "SELECT has_database_privilege($1, current_database(), 'CONNECT')",
            &[role],
        )
        .await
        .map_err(db_err)?
        .get(0);
    if !db_ok {
        problems.push("no CONNECT on the database".to_string());
    }
    let (usage, create): (bool, bool) = {
        let r = admin
            .query_one(
                "SELECT has_schema_privilege($1, 'public', 'USAGE'), has_schema_privilege($1, 'public', 'CREATE')",
                &[role],
            )
            .await
            .map_err(db_err)?;
        (r.get(0), r.get(1))
    };
    if !usage {
        problems.push("no USAGE on schema public".into());
    }
    if create {
        problems.push("CREATE on schema public (schema changes are the admin's)".into());
    }
    const WANTED: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];
    const UNWANTED: [&str; 3] = ["TRUNCATE", "REFERENCES", "TRIGGER"];
    for table in expected.tables.keys() {
        let exists: bool = admin
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("public.{table}")],
            )
            .await
            .map_err(db_err)?
            .get(0);
        if !exists {
            continue; // reported by the schema check
        }
        let mut missing = Vec::new();
        let mut extra = Vec::new();
        for p in WANTED.iter().chain(UNWANTED.iter()) {
            let has: bool = admin
                .query_one(
                    "SELECT has_table_privilege($1, $2, $3)",
                    &[role, &format!("public.{table}"), p],
                )
                .await
                .map_err(db_err)?
                .get(0);
            match (WANTED.contains(p), has) {
                (true, false) => missing.push(*p),
                (false, true) => extra.push(*p),
                _ => {}
            }
        }
        if !missing.is_empty() {
            problems.push(format!("no {} on {table}", missing.join(", ")));
        }
        if !extra.is_empty() {
            problems.push(format!("{} on {table} (not needed)", extra.join(", ")));
        }
    }
    // An extension's relations (pg_stat_statements' views): none of the app's own privileges.
    for r in admin
        .query(
            "SELECT c.relname::text, array_to_string(array_agg(DISTINCT a.privilege_type ORDER BY a.privilege_type), ', ')
             FROM pg_class c
             JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
             CROSS JOIN LATERAL aclexplode(c.relacl) a
             JOIN pg_roles g ON g.oid = a.grantee
             WHERE c.relnamespace = 'public'::regnamespace AND g.rolname = $1
             GROUP BY 1 ORDER BY 1",
            &[role],
        )
        .await
        .map_err(db_err)?
    {
        problems.push(format!(
            "{} on {} (an extension's, not the app's)",
            r.get::<_, String>(1),
            r.get::<_, String>(0)
        ));
    }
    for r in admin
        .query(
            "SELECT c.relname::text, has_sequence_privilege($1, c.oid, 'USAGE'), has_sequence_privilege($1, c.oid, 'SELECT')
             FROM pg_class c WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace ORDER BY 1",
            &[role],
        )
        .await
        .map_err(db_err)?
    {
        if !(r.get::<_, bool>(1) && r.get::<_, bool>(2)) {
            problems.push(format!("no USAGE, SELECT on sequence {}", r.get::<_, String>(0)));
        }
    }
    let defaults: BTreeSet<String> = texts(
        admin,
        "SELECT d.defaclobjtype::text || ':' || a.privilege_type
             FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) a
             JOIN pg_roles g ON g.oid = a.grantee
             WHERE g.rolname = $1 AND d.defaclnamespace = 'public'::regnamespace",
        &[role],
    )
    .await?
    .into_iter()
    .collect();
    for want in [
        "r:SELECT", "r:INSERT", "r:UPDATE", "r:DELETE", "S:USAGE", "S:SELECT",
    ] {
        if !defaults.contains(want) {
            let (kind, p) = want.split_once(':').unwrap_or_default();
            let kind = if kind == "r" { "tables" } else { "sequences" };
            problems.push(format!("no default privilege {p} on new {kind}"));
        }
    }
    checks.push(Check::from_problems(
        "app role privileges",
        "CONNECT; USAGE on public; SELECT, INSERT, UPDATE, DELETE on the tables; USAGE, SELECT on the sequences; the same by default",
        problems,
    ));
    Ok(checks)
}
