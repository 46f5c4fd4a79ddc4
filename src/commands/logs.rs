//! `logs`: the database container's log (or the metrics exporter's), as `kubectl logs` shows it:
//! `--follow`, `--previous` (the instance before a restart or crash), `--since`, `--tail`.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use futures_util::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde::Serialize;

use crate::args::{OutputFormat, parse_duration};
use crate::context::Ctx;
use crate::error::{ExitCode, user_error};
use crate::k8s::client::api_error;
use crate::ui::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Container {
    // PostgreSQL
    Postgresql,
    // The Prometheus exporter beside it (metrics.enabled)
    Metrics,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new lines until Ctrl-C (or until the pod goes)
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// The log of the container's previous instance (before its last restart or crash)
    #[arg(long, short = 'p')]
    pub previous: bool,
    /// Only lines newer than this, e.g. 10m, 1h
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub since: Option<Duration>,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// Each line with the time the container printed it
    #[arg(long)]
    pub timestamps: bool,
    /// Whose log: postgresql, or metrics (the Prometheus exporter beside it, metrics.enabled)
    #[arg(long, value_enum, default_value = "postgresql")]
    pub container: Container,
}

/// `-o json` without `--follow`: the lines, in order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsReport {
    pub pod: String,
    pub container: String,
    pub previous: bool,
    pub lines: Vec<String>,
}

/// `-o json --follow`: one document per line, as it comes (JSON lines; YAML documents).
#[derive(Debug, Serialize)]
pub struct LogLine<'a> {
    pub pod: &'a str,
    pub container: &'a str,
    pub line: &'a str,
}

/// What the arguments alone refuse, before the cluster is asked (exit 2).
pub fn precheck(args: &LogsArgs) -> Result<()> {
    if args.follow && args.previous {
        return Err(user_error(
            "--follow and --previous together: a previous instance prints no more",
        )
        .hint("drop one of them")
        .exit(ExitCode::Usage)
        .into());
    }
    Ok(())
}

/// The log request the arguments make (`run` refused --follow with --previous).
fn params(args: &LogsArgs, container: &str) -> LogParams {
    LogParams {
        container: Some(container.to_string()),
        follow: args.follow,
        previous: args.previous,
        since_seconds: args.since.map(|d| d.as_secs().max(1) as i64),
        tail_lines: args.tail.map(i64::from),
        timestamps: args.timestamps,
        ..Default::default()
    }
}

pub async fn run(ctx: &Ctx, args: &LogsArgs) -> Result<Outcome> {
    let cluster = ctx.profile.cluster("logs")?;
    let names = ctx.profile.names();
    let container = match args.container {
        Container::Postgresql => names.container.clone(),
        Container::Metrics if cluster.metrics.enabled => "metrics".to_string(),
        Container::Metrics => {
            return Err(user_error(format!(
                "release {} has no metrics exporter (metrics.enabled is false)",
                ctx.profile.release
            ))
            .hint("`--container postgresql` for the database's log")
            .exit(ExitCode::Usage)
            .into());
        }
    };
    precheck(args)?;
    let kube = ctx.kube().await?;
    crate::k8s::power::refuse_stopped(&kube, &ctx.profile, "logs").await?;
    // A pod on no node yet has no log, and the API server answers that with an empty one: say why.
    let pods_api: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    if let Ok(Some(p)) = pods_api.get_opt(&names.pod).await
        && p.spec.as_ref().is_none_or(|s| s.node_name.is_none())
    {
        return Err(user_error(format!(
            "pod {}/{} is not scheduled on a node yet, so it has no log",
            kube.namespace, names.pod
        ))
        .hint("`phonebill-db status` says why it waits (no room on a node, its volume)")
        .into());
    }
    // A followed log may be quiet for hours: the streams' client has no read deadline.
    let client = if args.follow {
        kube.streams.clone()
    } else {
        kube.client.clone()
    };
    let pods: Api<Pod> = Api::namespaced(client, &kube.namespace);
    let pod = names.pod.clone();
    let doing = format!(
        "reading the log of container {container} in pod {}/{pod}",
        kube.namespace
    );
    let stream = pods
        .log_stream(&pod, &params(args, &container))
        .await
        .map_err(|e| logs_error(e, &doing, &kube.server))?;
    let mut lines = stream.lines();
    let machine = ctx.ui.machine();
    if machine && !args.follow {
        let mut all = Vec::new();
        while let Some(line) = lines.try_next().await.map_err(|e| io_error(e, &doing))? {
            all.push(line);
        }
        let report = LogsReport {
            pod,
            container,
            previous: args.previous,
            lines: all,
        };
        ctx.ui.emit(&report, |_| String::new())?;
        return Ok(Outcome::ok());
    }
    let output = ctx.global.output;
    let mut out = std::io::stdout();
    let follow = async {
        while let Some(line) = lines.try_next().await.map_err(|e| io_error(e, &doing))? {
            let entry = LogLine {
                pod: &pod,
                container: &container,
                line: &line,
            };
            let text = match output {
                OutputFormat::Text => format!("{line}\n"),
                OutputFormat::Json => format!("{}\n", serde_json::to_string(&entry)?),
                OutputFormat::Yaml => format!("---\n{}", serde_yaml::to_string(&entry)?),
            };
            use std::io::Write;
            if out
                .write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .is_err()
            {
                break; // the reader went away (`| head`)
            }
        }
        anyhow::Ok(())
    };
    tokio::select! {
        done = follow => done?,
        // Ctrl-C ends a follow: what was asked for.
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Outcome::ok())
}

/// The API's refusals of a log request name their cause (not started yet, no previous instance).
fn logs_error(e: kube::Error, doing: &str, server: &str) -> anyhow::Error {
    match &e {
        kube::Error::Api(s) if s.code == 400 && s.message.contains("waiting to start") => {
            user_error(format!("{doing}: {}", s.message))
                .hint("`phonebill-db status` shows why the pod has not started")
                .into()
        }
        kube::Error::Api(s)
            if s.code == 400 && s.message.contains("previous terminated container") =>
        {
            user_error(format!(
                "{doing}: the container has not restarted, so there is no previous log"
            ))
            .hint("drop --previous for the current log")
            .exit(ExitCode::Usage)
            .into()
        }
        kube::Error::Api(s) if s.code == 404 => {
            user_error(format!("{doing}: the pod does not exist"))
                .hint("`phonebill-db status` shows the release; `phonebill-db install` makes it")
                .into()
        }
        _ => api_error(e, doing, server),
    }
}

fn io_error(e: std::io::Error, doing: &str) -> anyhow::Error {
    user_error(format!("{doing}: the log stream broke: {e}"))
        .hint("run it again; with --follow, add --since to skip what was shown")
        .into()
}
