//! Command-line definitions only (clap). Logic lives in `commands/`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `--version`: the crate's version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PHONEBILL_DB_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "phonebill-db",
    version = VERSION,
    about = "Install and operate the phonebill Auth service's PostgreSQL on Kubernetes (AKS)"
)]
#[command(
    after_help = "Exit codes: 0 done, 1 failed, 2 usage error, 3 timed out waiting, 4 checks failed."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Environment profile (templates/profiles/ENV.yaml)
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the manifests install would apply, without a cluster (runbook 4.2.1)
    Render(crate::commands::render::RenderArgs),
    /// Preflight, apply the manifests server-side, wait until ready (runbook 4.1–4.2)
    Install(crate::commands::install::InstallArgs),
    /// Pod, PVC, services, readiness, and the database's size and connections on one screen (runbook 4.2.3, 7.1)
    Status(crate::commands::status::StatusArgs),
    /// Remove what install made; keeps the data volume and Secrets unless --delete-data (runbook 8.2)
    Uninstall(crate::commands::uninstall::UninstallArgs),
    /// Apply the Auth schema's migrations that are not applied yet (runbook 4.4)
    ApplySchema(crate::commands::apply_schema::ApplySchemaArgs),
    /// Run the completion checklist; exit 4 when a check fails (runbook 4.4.3, 7.3, 12)
    Verify(crate::commands::verify::VerifyArgs),
    /// A LoadBalancer service for developers' tools, restricted to given CIDRs; prints the
    /// connection details (runbook 4.3, 5.2)
    Expose(crate::commands::expose::ExposeArgs),
    /// A local port leading to the database pod through a port-forward, until Ctrl-C (no public
    /// address; runbook 5.2)
    Connect(crate::commands::connect::ConnectArgs),
    /// Stream a dump out of the database into a local file with a checksummed manifest, or take a
    /// CSI snapshot of the data volume with --snapshot (runbook 6.1, 6.2, 11.2)
    Backup(crate::commands::backup::BackupArgs),
    /// Check a backup file, confirm, take a safety backup, restore in one transaction, verify (runbook 6.3)
    Restore(crate::commands::restore::RestoreArgs),
    /// Grow the data volume (--storage 30Gi): the claim, the StatefulSet's volume template (its
    /// pod kept running), the resize waited for, the size recorded with the release
    Resize(crate::commands::resize::ResizeArgs),
    /// A new password for the app or admin role: in the database, then its Secrets, checked by
    /// logging in; lists (--restart: restarts) the workloads that read the Secret
    RotatePassword(crate::commands::rotate_password::RotatePasswordArgs),
    /// Move the data to a new PostgreSQL major version (--major 17) side by side: backup, a
    /// second StatefulSet, restore, verify, switch the Services; --finalize or --rollback after
    Upgrade(crate::commands::upgrade::UpgradeArgs),
    /// The database container's log (or the metrics exporter's): --follow, --previous, --since, --tail
    Logs(crate::commands::logs::LogsArgs),
    /// psql in the database pod: interactive on a terminal, else SQL from stdin; as the admin
    /// or --app; psql's own arguments after `--`
    Psql(crate::commands::psql::PsqlArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completion(crate::commands::completion::CompletionArgs),
    /// Print the manual page, or write one per command into a directory (--dir)
    Man(crate::commands::man::ManArgs),
}

/// How a database command reaches PostgreSQL: the release's pod (default) or a URL.
#[derive(Debug, Clone, Args)]
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
    #[arg(long, value_name = "FILE", env = "PHONEBILL_CA_FILE")]
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
    #[arg(long, value_name = "DIR", env = "PHONEBILL_PG_BIN", value_parser = parse_pg_bin)]
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // Catches a conflicts_with/requires naming an argument that does not exist.
        super::Cli::command().debug_assert();
    }
}
