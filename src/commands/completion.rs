//! `completion SHELL`: a completion script generated from the command-line definition.

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

use crate::ui::Outcome;

#[derive(Debug, Args)]
#[command(after_help = "Load it in the running shell, or install it once:
  bash:       source <(phonebill-db completion bash)
              phonebill-db completion bash > ~/.local/share/bash-completion/completions/phonebill-db
  zsh:        phonebill-db completion zsh > \"${fpath[1]}/_phonebill-db\"
  fish:       phonebill-db completion fish > ~/.config/fish/completions/phonebill-db.fish
  powershell: phonebill-db completion powershell | Out-String | Invoke-Expression")]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The script for `shell` completing the command line `command`, as text.
pub fn script(shell: Shell, mut command: clap::Command) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "phonebill-db", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

pub fn run(args: &CompletionArgs, command: clap::Command) -> Result<Outcome> {
    crate::ui::print_stdout(&script(args.shell, command))?;
    Ok(Outcome::ok())
}
