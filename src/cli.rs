//! Command-line definitions only (clap). Logic lives in `commands/`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "phonebill-db",
    version,
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
    #[arg(long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Kubeconfig context to use instead of the current one
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// YAML file whose keys override the profile's (like a Helm values file)
    #[arg(long, global = true, value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// Never prompt; answer yes (required where stdin is not a terminal)
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Output format
    #[arg(long, short = 'o', global = true, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// More detail (repeat for more)
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the manifests install would apply, without a cluster (runbook 4.2.1)
    Render(crate::commands::render::RenderArgs),
    /// Preflight, apply the manifests server-side, wait until ready (runbook 4.1–4.2)
    Install(crate::commands::install::InstallArgs),
    /// Pod, PVC, services and readiness on one screen (runbook 4.2.3, 7.1)
    Status(crate::commands::status::StatusArgs),
    /// Remove what install made; keeps the data volume and Secrets unless --delete-data (runbook 8.2)
    Uninstall(crate::commands::uninstall::UninstallArgs),
}

/// `--timeout 10m`, `--timeout 90s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 10m)"))
}
