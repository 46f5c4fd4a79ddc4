//! The logins verify tries: the app role (with the password its Secret holds, over TLS), the
//! metrics exporter's, an app URL as the application uses it, and how a session is carried.

use tokio_postgres::Client;

use super::db_err;
use crate::check::Check;
use crate::db::connect::{Db, Login, Route, server_message};
use crate::error::report;

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

/// A managed server: the URL the app mounts (`database-url` of its Secret) verifies the server's
/// certificate and logs in, exactly as the app will.
pub async fn app_url(url: &str, ca_file: Option<&std::path::Path>, want: &str) -> Check {
    let name = "app URL uses TLS";
    // A managed server: the system's roots unless a CA is given (as install connected).
    let ca = ca_file.unwrap_or(std::path::Path::new(crate::db::tls::SYSTEM_ROOTS));
    let parsed = match crate::db::tls::parse_url(url, None, Some(ca)) {
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

pub(super) async fn app_connects(db: &Db) -> Check {
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
pub(super) async fn metrics_login(db: &Db, metrics: &Login) -> Check {
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
