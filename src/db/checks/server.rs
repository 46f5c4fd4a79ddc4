//! The server: its version, encoding and time zone, the settings the profile sets, its size and
//! connections.

use anyhow::Result;
use tokio_postgres::Client;

use super::{Parameters, db_err};
use crate::check::Check;
use crate::profile::Profile;

pub(super) async fn encoding_and_time_zone(
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

/// The profile's PostgreSQL settings (runbook 7.3) against the server's, compared in bytes.
/// The server's major version against the profile's image: the data directory belongs to one
/// major version, and a pod on another image would not start on it (upgrade moves the data).
/// On the release's pod a mismatch fails; on any other server (`--database-url`, even with
/// --strict) it is a warning: the image is the release's, not that server's.
pub(super) async fn server_version(
    admin: &Client,
    profile: &Profile,
    on_pod: bool,
) -> Result<Vec<Check>> {
    // A managed server's version is Azure's to choose.
    let Some(cluster) = &profile.cluster else {
        return Ok(vec![]);
    };
    let server = crate::db::dump::server(admin).await?;
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

pub(super) async fn settings(
    admin: &Client,
    profile: &Profile,
    params: Parameters,
) -> Result<Vec<Check>> {
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

pub(super) async fn usage(admin: &Client) -> Result<Vec<Check>> {
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
}
