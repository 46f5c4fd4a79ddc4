//! The schema and its data: extensions, tables, columns, keys and indexes as `sql/expected-schema.yaml`
//! says, the reference rows, the migrations applied.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use tokio_postgres::Client;

use super::{db_err, pairs, texts};
use crate::check::Check;
use crate::db::expected::{Expected, split_not_null};
use crate::db::migrate::{self, Migration};
use crate::profile::Profile;

pub(super) async fn extensions(admin: &Client, profile: &Profile) -> Result<Vec<Check>> {
    let have: BTreeSet<String> = admin
        .query("SELECT extname::text FROM pg_extension", &[])
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut want: Vec<String> = profile.extensions.clone();
    want.push("pg_stat_statements".into());
    let missing: Vec<String> = want
        .iter()
        .filter(|e| !have.contains(*e))
        .map(|e| format!("extension {e} missing"))
        .collect();
    Ok(vec![Check::from_problems(
        "extensions",
        want.join(", "),
        missing,
    )])
}

pub(super) async fn schema(admin: &Client, expected: &Expected) -> Result<Vec<Check>> {
    // Columns of the public tables.
    let mut columns: BTreeMap<String, BTreeMap<String, (String, bool)>> = BTreeMap::new();
    for r in admin
        .query(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
            &[],
        )
        .await
        .map_err(db_err)?
    {
        columns.entry(r.get(0)).or_default().insert(r.get(1), (r.get(2), r.get(3)));
    }
    // Constraints: (table, kind, columns, definition, referenced table, on-delete action).
    let constraints = admin
        .query(
            "SELECT c.conrelid::regclass::text, c.contype::text,
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
                    pg_get_constraintdef(c.oid),
                    COALESCE(c.confrelid::regclass::text, ''),
                    ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
                    c.confdeltype::text
             FROM pg_constraint c WHERE c.connamespace = 'public'::regnamespace AND c.conrelid <> 0",
            &[],
        )
        .await
        .map_err(db_err)?;
    // Indexes: (table, "a, b" or "a where").
    let indexes: BTreeSet<(String, String)> = pairs(
            admin,
            "SELECT t.relname::text,
                    array_to_string(ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), ', ')
                    || CASE WHEN i.indpred IS NULL THEN '' ELSE ' where' END
             FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
             WHERE t.relnamespace = 'public'::regnamespace",
        )
        .await?;
    // Row-level BEFORE UPDATE triggers: (table, function).
    let triggers: BTreeSet<(String, String)> = pairs(
            admin,
            "SELECT t.tgrelid::regclass::text, p.proname::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND (t.tgtype & 1) = 1 AND (t.tgtype & 2) = 2 AND (t.tgtype & 16) = 16",
        )
        .await?;

    let (
        mut missing_tables,
        mut col_problems,
        mut con_problems,
        mut idx_problems,
        mut trg_problems,
    ) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (table, want) in &expected.tables {
        let Some(have) = columns.get(table) else {
            missing_tables.push(format!("table {table} missing"));
            continue;
        };
        for (col, spec) in &want.columns {
            let (ty, not_null) = split_not_null(spec);
            match have.get(col) {
                None => col_problems.push(format!("column {table}.{col} missing")),
                Some((have_ty, _)) if have_ty != ty => {
                    col_problems.push(format!("column {table}.{col} is {have_ty}, expected {ty}"))
                }
                Some((_, have_nn)) if *have_nn != not_null => col_problems.push(format!(
                    "column {table}.{col} is {}, expected {}",
                    if *have_nn { "NOT NULL" } else { "nullable" },
                    if not_null { "NOT NULL" } else { "nullable" }
                )),
                _ => {}
            }
        }
        let of = |kind: &'static str| {
            constraints
                .iter()
                .filter(move |r| r.get::<_, String>(0) == *table && r.get::<_, String>(1) == kind)
        };
        if !of("p").any(|r| r.get::<_, Vec<String>>(2) == want.primary_key) {
            con_problems.push(format!(
                "primary key {table}({}) missing",
                want.primary_key.join(", ")
            ));
        }
        for u in &want.unique {
            if !of("u").any(|r| &r.get::<_, Vec<String>>(2) == u) {
                con_problems.push(format!("unique {table}({}) missing", u.join(", ")));
            }
        }
        for fk in &want.foreign_keys {
            let found = of("f").any(|r| {
                let action = match r.get::<_, String>(6).as_str() {
                    "c" => "cascade",
                    "n" => "set null",
                    "r" => "restrict",
                    "d" => "set default",
                    _ => "no action",
                };
                let text = format!(
                    "{} -> {}({}) on delete {action}",
                    r.get::<_, Vec<String>>(2).join(", "),
                    r.get::<_, String>(4),
                    r.get::<_, Vec<String>>(5).join(", ")
                );
                &text == fk
            });
            if !found {
                con_problems.push(format!("foreign key {table}.{fk} missing"));
            }
        }
        for (col, values) in &want.checks {
            let found = of("c").any(|r| {
                let def: String = r.get(3);
                r.get::<_, Vec<String>>(2) == [col.clone()]
                    && values.iter().all(|v| def.contains(&format!("'{v}'")))
            });
            if !found {
                con_problems.push(format!(
                    "check {table}.{col} in ({}) missing",
                    values.join(", ")
                ));
            }
        }
        for idx in &want.indexes {
            if !indexes.contains(&(table.clone(), idx.clone())) {
                idx_problems.push(format!("index {table}({idx}) missing"));
            }
        }
        if want.updated_at_trigger
            && !triggers.contains(&(table.clone(), expected.updated_at_function.clone()))
        {
            trg_problems.push(format!(
                "trigger on {table} (before update, {}) missing",
                expected.updated_at_function
            ));
        }
    }
    let n = expected.tables.len();
    Ok(vec![
        Check::from_problems("tables", format!("{n} tables"), missing_tables),
        Check::from_problems(
            "columns",
            "names, types and NOT NULL as designed",
            col_problems,
        ),
        Check::from_problems(
            "constraints",
            "primary, unique, foreign keys and checks",
            con_problems,
        ),
        Check::from_problems(
            "indexes",
            format!(
                "{} indexes",
                expected
                    .tables
                    .values()
                    .map(|t| t.indexes.len())
                    .sum::<usize>()
            ),
            idx_problems,
        ),
        Check::from_problems(
            "updated_at trigger",
            format!(
                "on {} tables",
                expected
                    .tables
                    .values()
                    .filter(|t| t.updated_at_trigger)
                    .count()
            ),
            trg_problems,
        ),
    ])
}

pub(super) async fn reference_data(
    admin: &Client,
    expected: &Expected,
    profile: &Profile,
) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    let has = |t: &str| format!("SELECT to_regclass('public.{t}') IS NOT NULL");
    let tables_there: bool = admin
        .query_one(
            &format!(
                "SELECT ({}) AND ({})",
                has("auth_services"),
                has("auth_permissions")
            ),
            &[],
        )
        .await
        .map_err(db_err)?
        .get(0);
    if !tables_there {
        out.push(Check::skip(
            "reference data",
            "the tables are missing (see tables)",
        ));
    } else {
        let have: BTreeSet<(String, String)> = pairs(
                admin,
                "SELECT s.service_code::text, COALESCE(p.permission_code::text, '') FROM auth_services s
                 LEFT JOIN auth_permissions p ON p.service_code = s.service_code",
            )
            .await?;
        let mut problems = Vec::new();
        for (service, perms) in &expected.reference_data {
            if !have.iter().any(|(s, _)| s == service) {
                problems.push(format!("service {service} missing"));
                continue;
            }
            for p in perms {
                if !have.contains(&(service.clone(), p.clone())) {
                    problems.push(format!("permission {service}/{p} missing"));
                }
            }
        }
        out.push(Check::from_problems(
            "reference data",
            format!(
                "{} services and their permissions",
                expected.reference_data.len()
            ),
            problems,
        ));
    }
    let name = "sample accounts";
    if !profile.sample_data {
        out.push(Check::skip(
            name,
            format!("not part of the {} profile", profile.environment),
        ));
    } else if !tables_there
        || !admin
            .query_one(&has("auth_users"), &[])
            .await
            .map_err(db_err)?
            .get::<_, bool>(0)
    {
        out.push(Check::skip(name, "the tables are missing (see tables)"));
    } else {
        let have: BTreeSet<String> = texts(
            admin,
            "SELECT user_id::text FROM auth_users WHERE user_id = ANY($1)",
            &[&expected.sample_accounts],
        )
        .await?
        .into_iter()
        .collect();
        let missing: Vec<String> = expected
            .sample_accounts
            .iter()
            .filter(|u| !have.contains(*u))
            .map(|u| format!("account {u} missing"))
            .collect();
        out.push(Check::from_problems(
            name,
            expected.sample_accounts.join(", "),
            missing,
        ));
    }
    Ok(out)
}

pub(super) async fn migrations_check(
    admin: &Client,
    migrations: &[Migration],
) -> Result<Vec<Check>> {
    let plan = migrate::plan(admin, migrations).await?;
    let mut problems: Vec<String> = plan
        .pending
        .iter()
        .map(|id| format!("{id} not applied"))
        .collect();
    problems.extend(
        plan.changed
            .iter()
            .map(|c| format!("{c} changed after it was applied")),
    );
    problems.extend(
        plan.unknown
            .iter()
            .map(|u| format!("{u} unknown to this tool")),
    );
    Ok(vec![Check::from_problems(
        "migrations",
        format!("{} applied, unchanged", plan.applied.len()),
        problems,
    )])
}

#[cfg(test)]
mod tests {
    use crate::db::expected;

    #[test]
    fn the_expected_schema_covers_the_seven_tables() {
        let e = expected::load().unwrap();
        assert_eq!(e.tables.len(), 7);
        assert!(
            e.tables
                .values()
                .all(|t| !t.primary_key.is_empty() && !t.columns.is_empty())
        );
    }
}
