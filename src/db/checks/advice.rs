//! What to try for the checks that failed: one piece of advice per kind of failure.

use crate::check::{Check, Status};

/// What to try for the checks that failed, one piece of advice per kind of failure, in the order
/// the checks ran.
pub fn hint(checks: &[Check]) -> String {
    let mut advice: Vec<&str> = Vec::new();
    for c in checks.iter().filter(|c| c.status == Status::Fail) {
        let a = advice_for(&c.name);
        if !advice.contains(&a) {
            advice.push(a);
        }
    }
    advice.join("; ")
}

fn advice_for(check: &str) -> &'static str {
    match check {
        "pod ready" | "data volume bound" | "services have endpoints" => {
            "`phonebill-db status` says why the release is not ready"
        }
        "secrets present" => {
            "`phonebill-db install` re-creates the Secrets (uninstall --delete-data removes them)"
        }
        "admin connects" => {
            "the admin login failed: check the address, the password (PGPASSWORD) and sslmode"
        }
        "server certificate" => {
            "`phonebill-db install` issues a new server certificate (the pod restarts with it)"
        }
        "TLS required off the pod" => {
            "`phonebill-db install` restores the release's pg_hba.conf and postgresql.conf (the pod restarts with them)"
        }
        "app role connects" | "app role" | "app role privileges" | "app URL uses TLS" => {
            "`phonebill-db apply-schema` resets the app role's privileges and password"
        }
        "metrics login" => {
            "`phonebill-db apply-schema` makes the exporter's login with its Secret's password (`install` first, if the Secret has none)"
        }
        "encoding" => {
            "the database was created with another encoding: it must be re-created as UTF8 (backup, drop, restore)"
        }
        "server version" => {
            "the data belongs to another major version than the profile's image: `phonebill-db upgrade --major N` moves it to version N; or set `image` to the server's version"
        }
        "time zone" => {
            "the server's time zone differs from the profile: on the release, `phonebill-db install` rolls the pod with the profile's settings"
        }
        name if name.starts_with("setting ") => {
            "the server's settings differ from the profile: on the release, `phonebill-db install` rolls the pod with them; elsewhere set them on the server, or leave out --strict"
        }
        "extensions" => {
            "`phonebill-db apply-schema` creates the extensions (the server must have them installed)"
        }
        "migrations" => {
            "what is older than a migration (a backup, a snapshot) lacks it: `phonebill-db apply-schema` applies what is pending (`--dry-run` lists it); an edited migration must become a new one"
        }
        "reference data" | "sample accounts" => {
            "`phonebill-db apply-schema` loads reference data only once: restore a backup, or re-insert the rows"
        }
        _ => "`phonebill-db apply-schema` creates what is missing of the schema",
    }
}
