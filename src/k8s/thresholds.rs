//! The dev physical architecture's alert thresholds (8.1.1: disk usage 80%, memory 85%, a crash
//! loop of 5 restarts; 11.2.1 names "Disk Full"), as checks that warn — never fail — with what to
//! do: the data volume's usage (`df` in the database container), the container's memory against
//! its limit (the resource metrics API where it exists, else the container's cgroup), and its
//! restarts with how the last one ended.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde::Deserialize;

use super::client::Kube;
use crate::check::Check;
use crate::db::tools::Tools;
use crate::profile::Profile;

pub const DISK_WARN_PERCENT: u64 = 80;
pub const MEMORY_WARN_PERCENT: u64 = 85;
pub const RESTARTS_WARN: i32 = 5;

/// Where the data volume is mounted in the database container (templates/manifests/50-statefulset.yaml).
const DATA_MOUNT: &str = "/var/lib/postgresql/data";
/// How long a look into the container may take.
const WITHIN: Duration = Duration::from_secs(20);

/// The three checks of the release's pod `pod` (in its database container `container`).
pub async fn checks(kube: &Kube, profile: &Profile, pod: &Pod, container: &str) -> Vec<Check> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    vec![
        disk_usage(kube, profile, &name, container).await,
        memory_usage(kube, profile, pod, container).await,
        restarts(pod),
    ]
}

/// A short command's output in the database container (the tools' own `output`), within
/// [`WITHIN`]: why not, as a line.
async fn look(kube: &Kube, pod: &str, container: &str, argv: &[String]) -> Result<String, String> {
    let tools = Tools::Pod {
        kube: Box::new(kube.clone()),
        pod: pod.to_string(),
        container: container.to_string(),
    };
    match tokio::time::timeout(WITHIN, tools.output(argv)).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(crate::error::report(&e).error),
        Err(_) => Err(format!(
            "{} in the container did not finish within {}",
            argv[0],
            humantime::format_duration(WITHIN)
        )),
    }
}

async fn disk_usage(kube: &Kube, profile: &Profile, pod: &str, container: &str) -> Check {
    let argv: Vec<String> = ["df", "-Pk", DATA_MOUNT].map(String::from).to_vec();
    match look(kube, pod, container, &argv).await {
        Ok(out) => match parse_df(&out) {
            Some((used, avail)) => disk(used, avail, profile),
            None => Check::skip("disk usage", "df printed nothing this tool can read"),
        },
        Err(why) => Check::skip("disk usage", format!("cannot look: {why}")),
    }
}

/// POSIX `df -Pk` output: the data line's used and available KiB.
pub fn parse_df(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().nth(1)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    // Filesystem 1024-blocks Used Available Capacity Mounted-on (a name with spaces shifts them:
    // count from the end).
    let n = fields.len();
    if n < 6 {
        return None;
    }
    Some((fields[n - 4].parse().ok()?, fields[n - 3].parse().ok()?))
}

/// The data volume's usage as df reports it (used over used and available, rounded up), judged.
pub fn disk(used_kib: u64, avail_kib: u64, profile: &Profile) -> Check {
    let total = used_kib + avail_kib;
    if total == 0 {
        return Check::skip("disk usage", "the volume reports no size");
    }
    let percent = (used_kib * 100).div_ceil(total);
    let said = format!(
        "{percent}% of the data volume ({} of {})",
        gib(used_kib * 1024),
        gib(total * 1024)
    );
    if percent < DISK_WARN_PERCENT {
        return Check::pass("disk usage", said);
    }
    let grow = profile
        .cluster
        .as_ref()
        .and_then(|c| crate::profile::rules::quantity(&c.storage.size))
        .map_or(30, |bytes| ((bytes * 1.5) / 1024f64.powi(3)).ceil() as u64);
    Check::warn(
        "disk usage",
        format!(
            "{said}, at or over {DISK_WARN_PERCENT}%: grow it with `phonebill-db resize --storage {grow}Gi`, or free space (old rows, VACUUM FULL of bloated tables); a full volume stops the server"
        ),
    )
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / 1024f64.powi(3))
}

/// PodMetrics of the resource metrics API (only what is read of it).
#[derive(Debug, Clone, Deserialize)]
struct PodMetrics {
    containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Clone, Deserialize)]
struct ContainerMetrics {
    name: String,
    usage: std::collections::BTreeMap<String, String>,
}

async fn memory_usage(kube: &Kube, profile: &Profile, pod: &Pod, container: &str) -> Check {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let limit = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory"))
        .and_then(|q| crate::profile::rules::quantity(&q.0))
        .map(|b| b as u64);
    let (usage, from, cgroup_limit) = match metrics(kube, &name, container).await {
        Some(bytes) => (bytes, "the metrics API", None),
        None => match cgroup(kube, &name, container).await {
            Ok((bytes, max)) => (bytes, "the container's cgroup", max),
            Err(why) => {
                return Check::skip(
                    "memory",
                    format!("no metrics API, and the cgroup cannot be read: {why}"),
                );
            }
        },
    };
    let Some(limit) = limit.or(cgroup_limit) else {
        return Check::pass(
            "memory",
            format!("{} in use ({from}); no limit set", gib(usage)),
        );
    };
    memory(usage, limit, from, profile)
}

/// Memory in use against the container's limit, judged.
pub fn memory(usage: u64, limit: u64, from: &str, profile: &Profile) -> Check {
    let percent = (usage * 100).div_ceil(limit.max(1));
    let said = format!(
        "{} of the {} limit ({percent}%, from {from})",
        gib(usage),
        gib(limit)
    );
    if percent < MEMORY_WARN_PERCENT {
        return Check::pass("memory", said);
    }
    let settings = profile.cluster.as_ref().map_or(String::new(), |c| {
        let pg = &c.postgresql;
        format!(
            " (now sharedBuffers {}, workMem {} × maxConnections {}, maintenanceWorkMem {})",
            pg.shared_buffers, pg.work_mem, pg.max_connections, pg.maintenance_work_mem
        )
    });
    Check::warn(
        "memory",
        format!(
            "{said}, at or over {MEMORY_WARN_PERCENT}%: lower postgresql.sharedBuffers, postgresql.workMem or postgresql.maxConnections{settings}, or raise resources.limits.memory, in a values file, then `phonebill-db install`; at the limit the kernel kills the server (OOMKilled)"
        ),
    )
}

/// The container's memory from the resource metrics API (metrics-server: its working set);
/// None when the API is not there or says nothing of it.
async fn metrics(kube: &Kube, pod: &str, container: &str) -> Option<u64> {
    let resource = kube::discovery::ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(kube.client.clone(), &kube.namespace, &resource);
    let obj = api.get(pod).await.ok()?;
    let m: PodMetrics =
        serde_json::from_value(serde_json::Value::Object(obj.data.as_object()?.clone())).ok()?;
    let c = m.containers.iter().find(|c| c.name == container)?;
    crate::profile::rules::quantity(c.usage.get("memory")?).map(|b| b as u64)
}

/// The container's cgroup (v2, else v1): its working set (usage less inactive file pages, as the
/// kubelet counts it) and its limit. `CGROUP_ROOT` moves the root (the tests' stand-in).
const CGROUP: &str = r#"cd "${CGROUP_ROOT:-/sys/fs/cgroup}" || exit 1
if [ -f memory.current ]; then
  echo "usage $(cat memory.current)"; echo "limit $(cat memory.max)"
  grep '^inactive_file ' memory.stat
else
  echo "usage $(cat memory/memory.usage_in_bytes)"; echo "limit $(cat memory/memory.limit_in_bytes)"
  grep '^total_inactive_file ' memory/memory.stat | sed 's/^total_//'
fi"#;

async fn cgroup(kube: &Kube, pod: &str, container: &str) -> Result<(u64, Option<u64>), String> {
    let argv = vec!["sh".to_string(), "-c".into(), CGROUP.into()];
    let out = look(kube, pod, container, &argv).await?;
    parse_cgroup(&out).ok_or_else(|| {
        format!(
            "unexpected output: {}",
            out.lines().next().unwrap_or_default()
        )
    })
}

/// `usage N`, `limit N|max`, `inactive_file N` → the working set and the limit ("max": none).
pub fn parse_cgroup(text: &str) -> Option<(u64, Option<u64>)> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(str::trim)
    };
    let usage: u64 = value("usage")?.parse().ok()?;
    let inactive: u64 = value("inactive_file")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // cgroup v1 says "no limit" with a huge number; v2 with "max".
    let limit = value("limit")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|l| *l < (1 << 60));
    Some((usage.saturating_sub(inactive), limit))
}

/// The database container's restarts, and how its last instance ended.
pub fn restarts(pod: &Pod) -> Check {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let worst = statuses.iter().max_by_key(|c| c.restart_count);
    let Some(c) = worst.filter(|c| c.restart_count > 0) else {
        return Check::pass("restarts", "none");
    };
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            format!(
                "; the last ended {} (exit {}){}",
                t.reason.as_deref().unwrap_or("without a reason"),
                t.exit_code,
                t.finished_at
                    .as_ref()
                    .map(|f| format!(" at {}", f.0))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let said = format!(
        "container {} restarted {} time(s){last}",
        c.name, c.restart_count
    );
    if c.restart_count < RESTARTS_WARN {
        return Check::pass("restarts", said);
    }
    let oom = last.contains("OOMKilled");
    Check::warn(
        "restarts",
        format!(
            "{said}: {RESTARTS_WARN} or more is a crash loop; see why with `phonebill-db logs --previous`{}",
            if oom {
                " (killed at its memory limit: lower the memory settings or raise resources.limits.memory)"
            } else {
                ""
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Profile {
        Profile::load("dev", None).unwrap()
    }

    #[test]
    fn df_output_is_read_from_its_columns() {
        let out = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/sdc          20466256 16777216   3689040      82% /var/lib/postgresql/data\n";
        assert_eq!(parse_df(out), Some((16777216, 3689040)));
        assert_eq!(parse_df("Filesystem\n"), None);
        assert_eq!(parse_df(""), None);
    }

    #[test]
    fn each_threshold_warns_at_the_plans_figure_with_what_to_do() {
        let p = dev();
        let c = disk(79, 21, &p);
        assert_eq!(c.status, crate::check::Status::Pass, "{}", c.detail);
        let c = disk(80, 20, &p);
        assert_eq!(c.status, crate::check::Status::Warn);
        assert!(c.detail.contains("resize --storage 30Gi"), "{}", c.detail);

        let gi = 1024 * 1024 * 1024;
        let c = memory(gi, 2 * gi, "the metrics API", &p);
        assert_eq!(c.status, crate::check::Status::Pass);
        let c = memory(gi * 17 / 10, 2 * gi, "the metrics API", &p);
        assert_eq!(c.status, crate::check::Status::Warn);
        assert!(c.detail.contains("sharedBuffers 256MB"), "{}", c.detail);
        assert!(c.detail.contains("resources.limits.memory"), "{}", c.detail);
    }

    #[test]
    fn the_cgroups_working_set_leaves_out_inactive_file_pages() {
        assert_eq!(
            parse_cgroup("usage 1000\nlimit max\ninactive_file 300\n"),
            Some((700, None))
        );
        assert_eq!(
            parse_cgroup("usage 1000\nlimit 2048\ninactive_file 0\n"),
            Some((1000, Some(2048)))
        );
        assert_eq!(
            parse_cgroup("usage 5\nlimit 9223372036854771712\n"),
            Some((5, None)),
            "v1's no-limit"
        );
        assert_eq!(parse_cgroup("nothing"), None);
    }
}
