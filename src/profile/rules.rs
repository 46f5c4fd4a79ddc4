//! What every profile key may hold: a type (serde) and a range or pattern (here). A value that
//! breaks a rule is refused with the file, the key's path and what is allowed (exit 2), before
//! anything renders it into a manifest, postgresql.conf or SQL.

use std::sync::LazyLock;

use regex::Regex;

use super::{Cluster, Managed, Profile, is_dns_label, is_host_name};

/// A value that breaks its key's rule: the key's path and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub key: String,
    pub value: String,
    pub allowed: String,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

/// PostgreSQL's memory units (postgresql.conf): a number and kB, MB, GB or TB.
static PG_MEMORY: LazyLock<Regex> = LazyLock::new(|| re(r"^[1-9][0-9]{0,8}(kB|MB|GB|TB)$"));
/// An IANA time zone name (Asia/Seoul, UTC, America/Argentina/Buenos_Aires, Etc/GMT+9).
static TIME_ZONE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(UTC|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2}|Etc/GMT[+-][0-9]{1,2})$"));
/// `dataSet`: `pg` and a major version.
static DATA_SET: LazyLock<Regex> = LazyLock::new(|| re(r"^pg[1-9][0-9]{0,2}$"));
/// A container image reference: [registry[:port]/]path[:tag][@sha256:digest].
static IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^([a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$",
    )
});
/// A Kubernetes quantity as resources take it (500m, 1, 2Gi, 512Mi, 1.5).
static QUANTITY: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"));
/// Extensions that reach the server's file system (besides the untrusted languages, pl…u).
const UNTRUSTED_EXTENSIONS: &[&str] = &["adminpack", "file_fdw"];

/// An extension's name as CREATE EXTENSION takes it.
static EXTENSION: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z][a-z0-9_-]{0,62}$"));
/// A label key's name part, and a label value (Kubernetes' syntax).
static LABEL_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"));
static LABEL_VALUE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$"));

/// The value of a quantity in its base unit (cores, bytes), for comparing requests with limits.
pub fn quantity(text: &str) -> Option<f64> {
    let caps = QUANTITY.captures(text)?;
    let number: f64 = caps.get(1)?.as_str().parse().ok()?;
    let factor = match caps.get(3).map(|m| m.as_str()) {
        None => 1.0,
        Some("m") => 1e-3,
        Some("k") => 1e3,
        Some("M") => 1e6,
        Some("G") => 1e9,
        Some("T") => 1e12,
        Some("Ki") => 1024.0,
        Some("Mi") => 1024f64.powi(2),
        Some("Gi") => 1024f64.powi(3),
        Some("Ti") => 1024f64.powi(4),
        Some(_) => return None,
    };
    Some(number * factor)
}

#[derive(Default)]
struct Rules {
    broken: Vec<Broken>,
}

impl Rules {
    fn check(&mut self, key: &str, value: &str, ok: bool, allowed: &str) {
        if !ok {
            self.broken.push(Broken {
                key: key.into(),
                value: value.into(),
                allowed: allowed.into(),
            });
        }
    }
    fn pattern(&mut self, key: &str, value: &str, re: &Regex, allowed: &str) {
        self.check(key, value, re.is_match(value), allowed);
    }
    fn range<T: PartialOrd + std::fmt::Display + Copy>(&mut self, key: &str, v: T, lo: T, hi: T) {
        self.check(
            key,
            &v.to_string(),
            v >= lo && v <= hi,
            &format!("{lo} to {hi}"),
        );
    }
    fn dns(&mut self, key: &str, value: &str, max: usize) {
        self.check(
            key,
            value,
            is_dns_label(value) && value.len() <= max,
            &format!("a Kubernetes name: lower-case letters, digits and '-', at most {max} characters, starting and ending with a letter or digit"),
        );
    }
    fn identifier(&mut self, key: &str, value: &str) {
        let ok = !value.is_empty()
            && value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !value.starts_with(|c: char| c.is_ascii_digit());
        self.check(
            key,
            value,
            ok,
            "a plain PostgreSQL identifier: lower-case letters, digits and '_', starting with a letter, at most 63",
        );
    }
}

/// Every rule of every key; the first broken one, if any.
pub fn check(p: &Profile, env: &str) -> Option<Broken> {
    let mut r = Rules::default();
    r.check(
        "environment",
        &p.environment,
        p.environment == env,
        &format!("`{env}` (the profile's own name)"),
    );
    r.dns("namespace", &p.namespace, 63);
    // Derived names must fit too: data-RELEASE-postgresql-0 and the StatefulSet's revision label.
    r.dns("release", &p.release, 40);
    r.identifier("database", &p.database);
    r.identifier("adminUser", &p.admin_user);
    r.identifier("appUser", &p.app_user);
    r.check(
        "appUser",
        &p.app_user,
        p.app_user != p.admin_user,
        "a role other than adminUser",
    );
    for (i, e) in p.extensions.iter().enumerate() {
        r.pattern(
            &format!("extensions[{i}]"),
            e,
            &EXTENSION,
            "an extension name: lower-case letters, digits, '_' and '-'",
        );
        // What runs code as the server's OS user, or reads and writes its files, is no extension
        // a profile turns on: untrusted languages (pl…u) and file access.
        r.check(
            &format!("extensions[{i}]"),
            e,
            !(UNTRUSTED_EXTENSIONS.contains(&e.as_str())
                || (e.starts_with("pl") && e.ends_with('u'))),
            "a trusted extension: not an untrusted language (plpython3u, plperlu, pltclu) nor one that reaches the server's files (adminpack, file_fdw)",
        );
    }
    for (key, value) in [
        ("restoreDrill.rtoTarget", &p.restore_drill.rto_target),
        ("restoreDrill.every", &p.restore_drill.every),
    ] {
        r.check(
            key,
            value,
            humantime::parse_duration(value).is_ok_and(|d| d.as_secs() >= 60),
            "a duration of a minute or more: 30m, 2h, 7d",
        );
    }
    for (i, key) in p.backups.encrypt_to.iter().enumerate() {
        r.check(
            &format!("backups.encryptTo[{i}]"),
            key,
            <age::x25519::Recipient as std::str::FromStr>::from_str(key).is_ok(),
            "an age X25519 recipient, as `age-keygen -y KEYFILE` prints it (age1…)",
        );
    }
    if let Some(c) = &p.cluster {
        cluster(&mut r, c, &[&p.admin_user, &p.app_user]);
        if let Some(set) = &c.data_set {
            // The StatefulSet's revision label (`<name>-<hash>`) must fit in 63 characters.
            r.check(
                "dataSet",
                set,
                DATA_SET.is_match(set) && p.release.len() + set.len() < 41,
                &format!(
                    "pg followed by the major version (written by `upgrade`), with the release's name at most {} characters",
                    40usize.saturating_sub(set.len() + 1)
                ),
            );
        }
    }
    if let Some(m) = &p.managed {
        managed(&mut r, m);
    }
    // prod's safety switches are not values to change, whatever the layer (a values file, a
    // record someone planted): the test accounts' password is known, and a prod restore wants
    // the environment's name typed.
    if env == "prod" || p.managed.is_some() {
        r.check(
            "sampleData",
            &p.sample_data.to_string(),
            !p.sample_data,
            "false in prod: the sample accounts have a known password",
        );
        r.check(
            "production",
            &p.production.to_string(),
            p.production,
            "true in prod: a restore there wants `prod/DATABASE` typed or --confirm",
        );
    }
    r.broken.into_iter().next()
}

/// The in-cluster release's values; `users` are the profile's other roles (adminUser, appUser).
fn cluster(r: &mut Rules, c: &Cluster, users: &[&str]) {
    let image = "an image reference: [registry/]path[:tag][@sha256:digest], e.g. docker.io/library/postgres:16";
    r.pattern("image", &c.image, &IMAGE, image);
    r.check(
        "imagePullPolicy",
        &c.image_pull_policy,
        ["Always", "IfNotPresent", "Never"].contains(&c.image_pull_policy.as_str()),
        "Always, IfNotPresent or Never",
    );
    let cpu = "a CPU quantity: 500m, 1, 2";
    let memory = "a memory quantity: 512Mi, 1Gi, 2G";
    for (part, q) in [
        ("requests", &c.resources.requests),
        ("limits", &c.resources.limits),
    ] {
        r.check(
            &format!("resources.{part}.cpu"),
            &q.cpu,
            quantity(&q.cpu).is_some_and(|v| v > 0.0),
            cpu,
        );
        r.check(
            &format!("resources.{part}.memory"),
            &q.memory,
            quantity(&q.memory).is_some_and(|v| v >= 64.0 * 1024.0 * 1024.0),
            &format!("{memory}, at least 64Mi"),
        );
    }
    for (what, req, lim) in [
        ("cpu", &c.resources.requests.cpu, &c.resources.limits.cpu),
        (
            "memory",
            &c.resources.requests.memory,
            &c.resources.limits.memory,
        ),
    ] {
        if let (Some(a), Some(b)) = (quantity(req), quantity(lim)) {
            r.check(
                &format!("resources.limits.{what}"),
                lim,
                b >= a,
                &format!("at least the request ({req})"),
            );
        }
    }
    r.dns("storage.className", &c.storage.class_name, 63);
    r.check(
        "storage.size",
        &c.storage.size,
        c.storage.size.ends_with('i')
            && quantity(&c.storage.size)
                .is_some_and(|v| v >= 1024f64.powi(3) && v <= 64.0 * 1024f64.powi(4)),
        "a size in binary units, from 1Gi to 64Ti (the largest Azure disk): 20Gi, 1Ti",
    );
    let pg = &c.postgresql;
    let units = "a PostgreSQL memory size: a number and kB, MB, GB or TB (e.g. 256MB)";
    for (key, v) in [
        ("postgresql.sharedBuffers", &pg.shared_buffers),
        ("postgresql.effectiveCacheSize", &pg.effective_cache_size),
        ("postgresql.workMem", &pg.work_mem),
        ("postgresql.maintenanceWorkMem", &pg.maintenance_work_mem),
    ] {
        r.pattern(key, v, &PG_MEMORY, units);
    }
    r.range("postgresql.maxConnections", pg.max_connections, 1, 10_000);
    let zone = "an IANA time zone name: UTC, Asia/Seoul, Europe/Berlin";
    r.check(
        "postgresql.timeZone",
        &pg.time_zone,
        TIME_ZONE.is_match(&pg.time_zone) && crate::cron::zone(&pg.time_zone).is_some(),
        zone,
    );
    r.range("service.port", c.service.port, 1024, 65535);
    r.range(
        "securityContext.runAsUser",
        c.security_context.run_as_user,
        1,
        2_147_483_647,
    );
    r.range(
        "securityContext.fsGroup",
        c.security_context.fs_group,
        1,
        2_147_483_647,
    );
    r.pattern("metrics.image", &c.metrics.image, &IMAGE, image);
    r.identifier("metrics.user", &c.metrics.user);
    for (i, ns) in c.metrics.scraper_namespaces.iter().enumerate() {
        r.dns(&format!("metrics.scraperNamespaces[{i}]"), ns, 63);
    }
    r.check(
        "metrics.user",
        &c.metrics.user,
        !users.contains(&c.metrics.user.as_str()),
        "a role other than adminUser and appUser",
    );
    r.range("metrics.port", c.metrics.port, 1024, 65535);
    r.check(
        "metrics.port",
        &c.metrics.port.to_string(),
        c.metrics.port != c.service.port,
        "a port other than service.port",
    );
    for (k, v) in &c.network_policy.allow_from_pod_labels {
        let key = format!("networkPolicy.allowFromPodLabels.{k}");
        let name = k.rsplit('/').next().unwrap_or(k);
        let prefix_ok =
            k.matches('/').count() <= 1 && k.split_once('/').is_none_or(|(p, _)| is_host_name(p));
        r.check(
            &key,
            k,
            LABEL_NAME.is_match(name) && prefix_ok,
            "a label key: [prefix/]name, the name of letters, digits, '-', '_' and '.'",
        );
        r.pattern(
            &key,
            v,
            &LABEL_VALUE,
            "a label value: letters, digits, '-', '_' and '.', at most 63",
        );
    }
    r.dns("snapshot.className", &c.snapshot.class_name, 63);
    r.check(
        "snapshot.driver",
        &c.snapshot.driver,
        is_host_name(&c.snapshot.driver) && c.snapshot.driver.len() <= 63,
        "a CSI driver name, e.g. disk.csi.azure.com",
    );
    r.dns("expose.serviceName", &c.expose.service_name, 63);
    let sched = &c.snapshots;
    if let Err(e) = crate::cron::Schedule::parse(&sched.schedule) {
        r.check(
            "snapshots.schedule",
            &sched.schedule,
            false,
            &format!("a five-field cron schedule, e.g. \"0 3 * * *\" ({e})"),
        );
    }
    r.check(
        "snapshots.timeZone",
        &sched.time_zone,
        TIME_ZONE.is_match(&sched.time_zone) && crate::cron::zone(&sched.time_zone).is_some(),
        zone,
    );
    r.range("snapshots.keep", sched.keep, 1, 100);
    r.pattern("snapshots.image", &sched.image, &IMAGE, image);
    let drills = &c.drill_schedule;
    if let Err(e) = crate::cron::Schedule::parse(&drills.schedule) {
        r.check(
            "drillSchedule.schedule",
            &drills.schedule,
            false,
            &format!("a five-field cron schedule, e.g. \"0 4 * * 0\" ({e})"),
        );
    }
    r.check(
        "drillSchedule.timeZone",
        &drills.time_zone,
        TIME_ZONE.is_match(&drills.time_zone) && crate::cron::zone(&drills.time_zone).is_some(),
        zone,
    );
    let off = &c.off_hours;
    for (key, at) in [
        ("offHours.stopAt", &off.stop_at),
        ("offHours.startAt", &off.start_at),
    ] {
        r.check(
            key,
            at,
            super::time_of_day(at).is_some(),
            "a time of day as HH:MM, 00:00 to 23:59 (e.g. \"20:00\")",
        );
    }
    r.check(
        "offHours.startAt",
        &off.start_at,
        off.start_at != off.stop_at,
        "a time other than offHours.stopAt",
    );
    r.check(
        "offHours.timeZone",
        &off.time_zone,
        TIME_ZONE.is_match(&off.time_zone) && crate::cron::zone(&off.time_zone).is_some(),
        zone,
    );
    let days = "mon, tue, wed, thu, fri, sat or sun, each once";
    r.check(
        "offHours.weekdays",
        &off.weekdays.join(","),
        !off.weekdays.is_empty(),
        &format!("at least one day: {days}"),
    );
    for (i, d) in off.weekdays.iter().enumerate() {
        r.check(
            &format!("offHours.weekdays[{i}]"),
            d,
            super::WEEKDAYS.contains(&d.as_str()) && !off.weekdays[..i].contains(d),
            days,
        );
    }
}

fn managed(r: &mut Rules, m: &Managed) {
    r.check(
        "managed.host",
        &m.host,
        is_host_name(&m.host),
        "the server's host name, e.g. phonebill-postgresql.postgres.database.azure.com",
    );
    r.range("managed.port", m.port, 1, 65535);
    r.check(
        "managed.sslMode",
        &m.ssl_mode,
        matches!(m.ssl_mode.as_str(), "verify-full" | "verify-ca"),
        "verify-full (or verify-ca): a managed server is reached over the network",
    );
    r.check(
        "managed.domain",
        &m.domain,
        is_host_name(&m.domain),
        "a DNS domain, e.g. postgres.database.azure.com",
    );
}

/// The first string in a values document with a control character (a newline included): the
/// key's path. Nothing this tool renders may carry one.
pub fn control_character(value: &serde_yaml::Value, path: &str) -> Option<String> {
    use serde_yaml::Value;
    match value {
        Value::String(s) if s.chars().any(char::is_control) => Some(path.to_string()),
        Value::Mapping(m) => m.iter().find_map(|(k, v)| {
            let name = k
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{k:?}"));
            let here = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if name.chars().any(char::is_control) {
                return Some(here);
            }
            control_character(v, &here)
        }),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| control_character(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Profile {
        Profile::load("dev", None).unwrap()
    }

    #[test]
    fn the_embedded_profiles_keep_every_rule() {
        assert_eq!(check(&dev(), "dev"), None);
        assert_eq!(check(&Profile::load("prod", None).unwrap(), "prod"), None);
    }

    #[test]
    fn each_rule_refuses_what_it_should() {
        type Breaks = fn(&mut Profile);
        let cases: Vec<(Breaks, &str)> = vec![
            (
                |p| p.cluster.as_mut().unwrap().postgresql.shared_buffers = "256 MB".into(),
                "postgresql.sharedBuffers",
            ),
            (
                |p| p.cluster.as_mut().unwrap().postgresql.work_mem = "4mb".into(),
                "postgresql.workMem",
            ),
            (
                |p| p.cluster.as_mut().unwrap().postgresql.time_zone = "Seoul".into(),
                "postgresql.timeZone",
            ),
            (
                |p| p.cluster.as_mut().unwrap().postgresql.max_connections = 0,
                "postgresql.maxConnections",
            ),
            (
                |p| p.cluster.as_mut().unwrap().image = "postgres:16 --privileged".into(),
                "image",
            ),
            (
                |p| p.cluster.as_mut().unwrap().image_pull_policy = "Sometimes".into(),
                "imagePullPolicy",
            ),
            (
                |p| p.cluster.as_mut().unwrap().resources.limits.memory = "512Mi".into(),
                "resources.limits.memory",
            ),
            (
                |p| p.cluster.as_mut().unwrap().resources.requests.cpu = "lots".into(),
                "resources.requests.cpu",
            ),
            (
                |p| p.cluster.as_mut().unwrap().storage.size = "20GB".into(),
                "storage.size",
            ),
            (
                |p| p.cluster.as_mut().unwrap().service.port = 80,
                "service.port",
            ),
            (
                |p| p.cluster.as_mut().unwrap().metrics.port = 5432,
                "metrics.port",
            ),
            (
                |p| p.cluster.as_mut().unwrap().security_context.run_as_user = 0,
                "securityContext.runAsUser",
            ),
            (
                |p| {
                    p.cluster
                        .as_mut()
                        .unwrap()
                        .network_policy
                        .allow_from_pod_labels
                        .insert("tier".into(), "app tier".into());
                },
                "networkPolicy.allowFromPodLabels.tier",
            ),
            (
                |p| p.release = "a-release-name-that-is-far-too-long-for-its-pvc".into(),
                "release",
            ),
            (|p| p.app_user = "postgres".into(), "appUser"),
            (|p| p.extensions.push("uuid ossp".into()), "extensions[2]"),
            (|p| p.environment = "prod".into(), "environment"),
            (
                |p| p.backups.encrypt_to.push("age1notakey".into()),
                "backups.encryptTo[0]",
            ),
            (
                |p| p.restore_drill.rto_target = "soon".into(),
                "restoreDrill.rtoTarget",
            ),
            (
                |p| p.restore_drill.every = "10s".into(),
                "restoreDrill.every",
            ),
            (
                |p| p.cluster.as_mut().unwrap().drill_schedule.schedule = "weekly".into(),
                "drillSchedule.schedule",
            ),
            (
                |p| p.cluster.as_mut().unwrap().snapshots.schedule = "0 25 * * *".into(),
                "snapshots.schedule",
            ),
            (
                |p| p.cluster.as_mut().unwrap().snapshots.time_zone = "Asia/Atlantis".into(),
                "snapshots.timeZone",
            ),
            (
                |p| p.cluster.as_mut().unwrap().snapshots.keep = 0,
                "snapshots.keep",
            ),
            (
                |p| p.cluster.as_mut().unwrap().off_hours.stop_at = "8pm".into(),
                "offHours.stopAt",
            ),
            (
                |p| p.cluster.as_mut().unwrap().off_hours.start_at = "24:00".into(),
                "offHours.startAt",
            ),
            (
                |p| {
                    let off = &mut p.cluster.as_mut().unwrap().off_hours;
                    off.start_at = off.stop_at.clone();
                },
                "offHours.startAt",
            ),
            (
                |p| p.cluster.as_mut().unwrap().off_hours.time_zone = "Mars/Olympus".into(),
                "offHours.timeZone",
            ),
            (
                |p| p.cluster.as_mut().unwrap().off_hours.weekdays.clear(),
                "offHours.weekdays",
            ),
            (
                |p| {
                    p.cluster.as_mut().unwrap().off_hours.weekdays =
                        vec!["mon".into(), "mon".into()]
                },
                "offHours.weekdays[1]",
            ),
            (
                |p| p.cluster.as_mut().unwrap().off_hours.weekdays = vec!["monday".into()],
                "offHours.weekdays[0]",
            ),
            (
                |p| p.cluster.as_mut().unwrap().postgresql.time_zone = "Europe/Nowhere".into(),
                "postgresql.timeZone",
            ),
        ];
        for (break_it, key) in cases {
            let mut p = dev();
            break_it(&mut p);
            let broken = check(&p, "dev").unwrap_or_else(|| panic!("{key} accepted"));
            assert_eq!(broken.key, key);
            assert!(!broken.allowed.is_empty());
        }
    }

    #[test]
    fn the_schedules_image_is_this_version() {
        let image = &dev().cluster.unwrap().snapshots.image;
        assert_eq!(
            image.rsplit_once(':').unwrap().1,
            env!("CARGO_PKG_VERSION"),
            "bump the profile's snapshots.image with the crate's version"
        );
    }

    #[test]
    fn quantities_and_images() {
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2Gi"), Some(2.0 * 1024f64.powi(3)));
        assert_eq!(quantity("1.5"), Some(1.5));
        assert_eq!(quantity("1e3"), None);
        for ok in [
            "docker.io/library/postgres:16",
            "postgres:16.4-bookworm",
            "phonebilldev.azurecr.io/phonebill-db:0.1.0",
            "localhost:5000/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(IMAGE.is_match(ok), "{ok}");
        }
        for bad in ["Postgres:16", "postgres:16\nx", "postgres: 16", ""] {
            assert!(!IMAGE.is_match(bad), "{bad}");
        }
    }
}
