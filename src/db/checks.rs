//! The database half of `verify` (runbook 4.4.3, 7.3, 12): each check reads the catalog or the data
//! and names exactly what differs from `sql/expected-schema.yaml` and the profile.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use tokio_postgres::Client;

use super::connect::{Db, Login, Route, server_message};
use super::expected::{self, Expected, split_not_null};
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

    fn differs(self, name: String, detail: String) -> Check {
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

/// How this session reached the server: "over TLSv1.3" or "without TLS", as the server sees it.
pub async fn transport(client: &Client) -> String {
    match client
        .query_opt(
            "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
            &[],
        )
        .await
    {
        Ok(Some(row)) => format!("over {}", row.get::<_, String>(0)),
        Ok(None) => "without TLS".into(),
        Err(e) => format!("TLS unknown ({})", server_message(&e)),
    }
}

/// From inside the pod, to its own network address (where every client but the pod's loopback
/// arrives) without TLS: the server must refuse before asking for a password. The pod's psql,
/// through exec.
pub async fn tls_required(
    tools: &crate::db::tools::Tools,
    pod_ip: &str,
    database: &str,
    admin: &str,
) -> Check {
    let name = "TLS required off the pod";
    let conninfo =
        format!("host={pod_ip} dbname={database} user={admin} sslmode=disable connect_timeout=5");
    let argv: Vec<String> = ["psql", "-X", "-w", "-tA", "-c", "SELECT 1", &conninfo]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match tools.output(&argv).await {
        Ok(_) => Check::fail(
            name,
            format!(
                "a connection to {pod_ip} without TLS was accepted: the release's pg_hba.conf is not in use"
            ),
        ),
        Err(e) => {
            let text = report(&e).error;
            if text.contains("no encryption") {
                Check::pass(
                    name,
                    format!("{pod_ip} without TLS: refused before authentication"),
                )
            } else {
                Check::fail(
                    name,
                    format!("expected a refusal for want of TLS, got: {text}"),
                )
            }
        }
    }
}

fn push(out: &mut Vec<Check>, what: &str, checks: Result<Vec<Check>>) {
    match checks {
        Ok(c) => out.extend(c),
        Err(e) => out.push(Check::fail(what, report(&e).error)),
    }
}

/// The first column of every row, as text.
async fn texts(
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
async fn pairs(admin: &Client, sql: &str) -> Result<BTreeSet<(String, String)>> {
    Ok(admin
        .query(sql, &[])
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

fn db_err(e: tokio_postgres::Error) -> anyhow::Error {
    anyhow::anyhow!("query failed: {}", server_message(&e))
}

/// A managed server: the URL the app mounts (`database-url` of its Secret) verifies the server's
/// certificate and logs in, exactly as the app will.
pub async fn app_url(url: &str, ca_file: Option<&std::path::Path>, want: &str) -> Check {
    let name = "app URL uses TLS";
    // A managed server: the system's roots unless a CA is given (as install connected).
    let ca = ca_file.unwrap_or(std::path::Path::new(super::tls::SYSTEM_ROOTS));
    let parsed = match super::tls::parse_url(url, None, Some(ca)) {
        Ok(u) => u,
        Err(e) => {
            return Check::fail(
                name,
                report(&e).error.replace("--database-url", "database-url"),
            );
        }
    };
    let mode = parsed.ssl_mode.as_str();
    if mode != want {
        return Check::fail(
            name,
            format!("{}: sslmode={mode}, the profile says {want}", parsed.shown),
        );
    }
    let db = Db {
        database: parsed.config.get_dbname().unwrap_or_default().to_string(),
        admin: Login {
            user: parsed.config.get_user().unwrap_or_default().to_string(),
            password: parsed
                .config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        },
        app: Login {
            user: String::new(),
            password: None,
        },
        metrics: None,
        route: Route::Url(parsed),
    };
    match db.admin().await {
        Ok(c) => match c.query_one("SELECT current_user::text", &[]).await {
            Ok(row) => Check::pass(
                name,
                format!("sslmode={mode}, logs in as {}", row.get::<_, String>(0)),
            ),
            Err(e) => Check::fail(name, db_err(e).to_string()),
        },
        Err(e) => Check::fail(name, report(&e).error),
    }
}

async fn app_connects(db: &Db) -> Check {
    let name = "app role connects";
    if db.app.password.is_none() {
        return Check::skip(
            name,
            format!(
                "the password of {} is not known here (set PHONEBILL_APP_PASSWORD)",
                db.app.user
            ),
        );
    }
    match db.connect(&db.app).await {
        Ok(c) => match c.query_one("SELECT current_user::text", &[]).await {
            Ok(row) => Check::pass(name, format!("as {}", row.get::<_, String>(0))),
            Err(e) => Check::fail(name, db_err(e).to_string()),
        },
        Err(e) => Check::fail(name, report(&e).error),
    }
}

/// The metrics exporter's own login works with its Secret's password, and is a member of
/// pg_monitor and no superuser: what the exporter needs, and no more.
async fn metrics_login(db: &Db, metrics: &Login) -> Check {
    let name = "metrics login";
    if metrics.password.is_none() {
        return Check::fail(
            name,
            format!(
                "the release's Secret has no password for the exporter's login {}",
                metrics.user
            ),
        );
    }
    let client = match db.connect(metrics).await {
        Ok(c) => c,
        Err(e) => return Check::fail(name, format!("{}: {}", metrics.user, report(&e).error)),
    };
    let row = client
        .query_one(
            "SELECT pg_has_role(current_user, 'pg_monitor', 'MEMBER'), rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await;
    match row {
        Ok(r) if r.get::<_, bool>(0) && !r.get::<_, bool>(1) => Check::pass(
            name,
            format!("{}: a member of pg_monitor, no superuser", metrics.user),
        ),
        Ok(_) => Check::fail(
            name,
            format!(
                "{} is not just a member of pg_monitor (or is a superuser)",
                metrics.user
            ),
        ),
        Err(e) => Check::fail(name, db_err(e).to_string()),
    }
}

/// Not a superuser, owns nothing, exactly the privileges of auth-schema.md.
async fn app_role(admin: &Client, profile: &Profile, expected: &Expected) -> Result<Vec<Check>> {
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

async fn encoding_and_time_zone(
    admin: &Client,
    profile: &Profile,
    params: Parameters,
) -> Result<Vec<Check>> {
    let r = admin
        .query_one(
            "SELECT pg_encoding_to_char(encoding)::text, current_setting('TimeZone') FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(db_err)?;
    let (enc, tz): (String, String) = (r.get(0), r.get(1));
    let mut out = vec![if enc == "UTF8" {
        Check::pass("encoding", "UTF8")
    } else {
        Check::fail("encoding", format!("{enc}, expected UTF8"))
    }];
    // A managed server's time zone is its operator's setting, not the profile's.
    if let Some(c) = &profile.cluster {
        let want_tz = &c.postgresql.time_zone;
        out.push(if &tz == want_tz {
            Check::pass("time zone", tz)
        } else {
            params.differs("time zone".into(), format!("{tz}, expected {want_tz}"))
        });
    }
    Ok(out)
}

async fn extensions(admin: &Client, profile: &Profile) -> Result<Vec<Check>> {
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

async fn schema(admin: &Client, expected: &Expected) -> Result<Vec<Check>> {
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

async fn reference_data(
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

async fn migrations_check(admin: &Client, migrations: &[Migration]) -> Result<Vec<Check>> {
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

/// The profile's PostgreSQL settings (runbook 7.3) against the server's, compared in bytes.
/// The server's major version against the profile's image: the data directory belongs to one
/// major version, and a pod on another image would not start on it (upgrade moves the data).
/// On the release's pod a mismatch fails; on any other server (`--database-url`, even with
/// --strict) it is a warning: the image is the release's, not that server's.
async fn server_version(admin: &Client, profile: &Profile, on_pod: bool) -> Result<Vec<Check>> {
    // A managed server's version is Azure's to choose.
    let Some(cluster) = &profile.cluster else {
        return Ok(vec![]);
    };
    let server = super::dump::server(admin).await?;
    let name = "server version";
    let check = match cluster.image_major() {
        None => Check::warn(
            name,
            format!(
                "PostgreSQL {}; the image {} names no major version to compare with",
                server.version, cluster.image
            ),
        ),
        Some(major) if major == server.major => Check::pass(
            name,
            format!(
                "PostgreSQL {}, as the image {}",
                server.version, cluster.image
            ),
        ),
        Some(major) => {
            let detail = format!(
                "PostgreSQL {} (major {}), but the profile's image {} is major {major}",
                server.version, server.major, cluster.image
            );
            if on_pod {
                Check::fail(name, detail)
            } else {
                Check::warn(name, format!("{detail} (not the release's server)"))
            }
        }
    };
    Ok(vec![check])
}

async fn settings(admin: &Client, profile: &Profile, params: Parameters) -> Result<Vec<Check>> {
    // A managed server's parameters are set where the server is (Azure), not by this tool.
    let Some(cluster) = &profile.cluster else {
        return Ok(vec![]);
    };
    let p = &cluster.postgresql;
    let wanted: [(&str, String); 5] = [
        ("shared_buffers", p.shared_buffers.clone()),
        ("effective_cache_size", p.effective_cache_size.clone()),
        ("max_connections", p.max_connections.to_string()),
        ("work_mem", p.work_mem.clone()),
        ("maintenance_work_mem", p.maintenance_work_mem.clone()),
    ];
    let mut out = Vec::new();
    for (name, want) in wanted {
        let r = admin
            .query_one(
                "SELECT current_setting($1), setting, COALESCE(unit, '') FROM pg_settings WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(db_err)?;
        let (shown, setting, unit): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let have = setting
            .parse::<u64>()
            .ok()
            .zip(parse_size(&unit))
            .map(|(n, u)| n * u);
        let check = format!("setting {name}");
        let want_value = parse_size(&want);
        out.push(match (have, want_value) {
            (Some(h), Some(w)) if h == w => Check::pass(check, shown),
            _ => params.differs(check, format!("{shown}, the profile says {want}")),
        });
    }
    Ok(out)
}

/// "256MB", "1GB", "8kB", "64" → bytes (PostgreSQL's units: 1kB = 1024 B). Also the size of one
/// pg_settings unit: "8kB", "MB", and "" (a plain number) → 1.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = if digits.is_empty() {
        1
    } else {
        digits.parse().ok()?
    };
    let unit = text[digits.len()..].trim();
    let mult = match unit {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    Some(n * mult)
}

/// What the database is doing and how big it is (verify reports it; status shows it).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// "PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2)"
    pub server: String,
    /// Sessions connected to this database (this one included).
    pub connections: i64,
    pub size_bytes: i64,
    /// pg_size_pretty of the size: "8447 kB".
    pub size: String,
}

pub async fn usage_of(admin: &Client) -> Result<Usage> {
    let r = admin
        .query_one(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),
                    pg_database_size(current_database()),
                    pg_size_pretty(pg_database_size(current_database())), version()",
            &[],
        )
        .await
        .map_err(db_err)?;
    let version: String = r.get(3);
    Ok(Usage {
        server: version.split(" on ").next().unwrap_or_default().to_string(),
        connections: r.get(0),
        size_bytes: r.get(1),
        size: r.get(2),
    })
}

async fn usage(admin: &Client) -> Result<Vec<Check>> {
    let u = usage_of(admin).await?;
    Ok(vec![
        Check::pass("server", u.server),
        Check::pass("connections", format!("{} active", u.connections)),
        Check::pass("database size", u.size),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_postgresql_units() {
        assert_eq!(parse_size("256MB"), Some(256 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("8kB"), Some(8192));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("4 MB"), Some(4 << 20));
        assert_eq!(parse_size("4mb"), None);
        assert_eq!(parse_size(""), Some(1), "a unit-less setting counts as is");
        // pg_settings: shared_buffers is 32768 units of 8kB.
        assert_eq!(
            32768 * parse_size("8kB").unwrap(),
            parse_size("256MB").unwrap()
        );
    }

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
