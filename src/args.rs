//! The argument groups and value parsers several commands share: the global options, how a
//! database command reaches PostgreSQL, where the local client tools are, durations. Commands
//! take them from here; `cli.rs` only gathers the commands.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Environment profile: dev (the pod on AKS) or prod (Azure's managed server)
    #[arg(long, global = true, default_value = "dev", value_name = "ENV")]
    pub env: String,
    /// Namespace to use instead of the profile's
    #[arg(long, short = 'n', global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Kubeconfig context to use instead of the current one
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// YAML file whose keys override the profile's and those install recorded with the release
    /// (like a Helm values file)
    #[arg(long, global = true, value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// Never prompt; answer yes (required where stdin is not a terminal)
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Output format: text for people; json or yaml (the same document) for scripts and CI
    #[arg(long, short = 'o', global = true, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// More detail (repeat for more)
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Passwords given as flags (set by `main` from where clap found each value): the flag, and
    /// the environment variable to use instead.
    #[arg(skip)]
    pub password_flags: Vec<(&'static str, &'static str)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
}

/// How a database command reaches PostgreSQL: the release's pod (default) or a URL.
#[derive(Debug, Clone, Default, Args)]
pub struct DbArgs {
    /// Reach this database directly instead of the release's pod, e.g.
    /// postgresql://USER@HOST:5432/DB?sslmode=verify-full (password: in the URL or PGPASSWORD)
    #[arg(
        long,
        value_name = "URL",
        env = "PHONEBILL_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// CA certificate (PEM) to verify the server with (sslmode=verify-ca/verify-full), with
    /// --database-url or a managed server (prod); default: the system's trusted roots
    #[arg(
        long,
        value_name = "FILE",
        env = "PHONEBILL_CA_FILE",
        hide_env_values = true
    )]
    pub ca_file: Option<PathBuf>,
    /// The app role's password, with --database-url (on the pod path it comes from its Secret)
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "PHONEBILL_APP_PASSWORD",
        hide_env_values = true
    )]
    pub app_password: Option<String>,
}

/// Where the local PostgreSQL tools are (used with --database-url; the pod path uses the pod's).
#[derive(Debug, Clone, Args)]
pub struct PgBinArgs {
    /// Directory of pg_dump, pg_restore and psql for --database-url or a managed server (prod)
    /// (default: found on PATH)
    #[arg(
        long,
        value_name = "DIR",
        env = "PHONEBILL_PG_BIN",
        hide_env_values = true,
        value_parser = parse_pg_bin
    )]
    pub pg_bin: Option<PathBuf>,
}

/// `--pg-bin DIR`: a directory with the PostgreSQL client tools in it (not a quiet fall back to
/// PATH when it is not).
pub fn parse_pg_bin(s: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(s);
    if !dir.is_dir() {
        return Err(format!(
            "`{s}` is not a directory (the one with pg_dump, pg_restore and psql)"
        ));
    }
    if !["pg_dump", "pg_restore", "psql"]
        .iter()
        .any(|t| dir.join(t).is_file())
    {
        return Err(format!("`{s}` has none of pg_dump, pg_restore and psql"));
    }
    Ok(dir)
}

/// `--timeout 10m`, `--timeout 90s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 10m)"))
}
