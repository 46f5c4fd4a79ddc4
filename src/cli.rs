//! The command line: the commands gathered under one name (clap). Each command's arguments live
//! in its file under `commands/`, the groups several share in `args.rs`.

use clap::{CommandFactory, Parser, Subcommand};

use crate::args::GlobalArgs;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the manifests install would apply, without a cluster (runbook 4.2.1)
    Render(crate::commands::render::RenderArgs),
    /// Print the values commands work with: the profile, the release's recorded values and
    /// --values laid over each other (-o yaml|json)
    Values(crate::commands::values::ValuesArgs),
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
    /// Stop the database outside working hours: CHECKPOINT, the StatefulSet scaled to 0, the pod
    /// waited for; the data volume, Secrets and Services stay (runbook 10.1)
    Stop(crate::commands::stop::StopArgs),
    /// Start a stopped database: the StatefulSet scaled to 1, waited for as install waits, then
    /// verify's database checks
    Start(crate::commands::start::StartArgs),
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
    /// One archive to attach to an escalation: status, verify, objects, events, logs, the
    /// database's settings, sessions, locks and sizes; no secret in it (--to FILE)
    Report(crate::commands::report::ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completion(crate::commands::completion::CompletionArgs),
    /// Print the manual page, or write one per command into a directory (--dir)
    Man(crate::commands::man::ManArgs),
}

/// The global options a command never uses, hidden from its help (still accepted, so a line
/// that sets them for every command keeps working).
const UNUSED_GLOBALS: &[(&str, &[&str])] = &[
    ("render", &["context", "kubeconfig", "yes"]),
    ("values", &["yes"]),
    ("report", &["yes"]),
    ("completion", EVERY_GLOBAL),
    ("man", EVERY_GLOBAL),
];

/// The global options' ids (`GlobalArgs`).
const EVERY_GLOBAL: &[&str] = &[
    "env",
    "namespace",
    "context",
    "kubeconfig",
    "values",
    "yes",
    "output",
    "verbose",
];

/// The command line as parsed, completed and documented: the definition, with each command's
/// help listing only the global options it uses.
pub fn command() -> clap::Command {
    let top = Cli::command();
    let hidden = |id: &str| {
        top.get_arguments()
            .find(|a| a.get_id() == id)
            .map(|a| a.clone().hide(true))
    };
    let mut command = top.clone();
    for (name, unused) in UNUSED_GLOBALS {
        // A command's own copy of a global option is kept when clap hands the global ones down.
        let copies: Vec<clap::Arg> = unused.iter().filter_map(|id| hidden(id)).collect();
        command = command.mut_subcommands(|sub| {
            if sub.get_name() == *name {
                sub.args(copies.clone())
            } else {
                sub
            }
        });
    }
    command
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // Catches a conflicts_with/requires naming an argument that does not exist, in the
        // definition and in the command line as parsed (with the hidden copies of globals).
        super::Cli::command().debug_assert();
        super::command().debug_assert();
    }
}
