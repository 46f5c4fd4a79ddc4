//! What a person needs to connect (DBeaver, psql): the address, the database, the logins.

use serde::Serialize;

/// One login to show: which role, its user, its password when asked to show it.
#[derive(Debug, Serialize)]
pub struct Login {
    pub role: &'static str,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// What DBeaver or psql need, as text (`expose`, `connect`).
pub fn details(host: &str, port: u16, database: &str, users: &[Login]) -> String {
    let mut out = format!(
        "connect (DBeaver, psql):\n  host      {host}\n  port      {port}\n  database  {database}\n"
    );
    for u in users {
        let pw = u
            .password
            .clone()
            .unwrap_or_else(|| "(add --show-password to see it)".into());
        out.push_str(&format!(
            "  user      {} ({} role), password {pw}\n",
            u.user, u.role
        ));
    }
    out
}
