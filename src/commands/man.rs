//! `man`: manual pages generated from the command-line definition (clap_mangen), so they never
//! disagree with `--help`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::error::user_error;
use crate::ui::Outcome;

#[derive(Debug, Args)]
#[command(
    after_help = "Read it with `phonebill-db man | man -l -`; install them with
`phonebill-db man --dir ~/.local/share/man/man1`."
)]
pub struct ManArgs {
    /// Write phonebill-db.1 and one page per command (phonebill-db-install.1, …) into DIR
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Every page of the command line `top`: (file name, roff text). The first is the top-level page.
pub fn pages(top: clap::Command) -> Result<Vec<(String, Vec<u8>)>> {
    let version = top.get_version().unwrap_or_default().to_string();
    let mut out = vec![("phonebill-db.1".to_string(), render(top.clone())?)];
    for sub in top.get_subcommands() {
        let name = format!("phonebill-db-{}", sub.get_name());
        // The page's own name, so its NAME and SYNOPSIS read `phonebill-db-install`.
        let sub = sub.clone().name(name.clone()).version(version.clone());
        out.push((format!("{name}.1"), render(sub)?));
    }
    Ok(out)
}

fn render(command: clap::Command) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut buf)
        .context("rendering a manual page")?;
    Ok(buf)
}

pub fn run(args: &ManArgs, top: clap::Command) -> Result<Outcome> {
    let pages = pages(top)?;
    match &args.dir {
        None => crate::ui::print_stdout(&String::from_utf8_lossy(&pages[0].1))?,
        Some(dir) => {
            write_all(dir, &pages)?;
            crate::ui::print_stdout(&format!(
                "wrote {} manual pages into {}\n",
                pages.len(),
                dir.display()
            ))?;
        }
    }
    Ok(Outcome::ok())
}

fn write_all(dir: &Path, pages: &[(String, Vec<u8>)]) -> Result<()> {
    if !dir.is_dir() {
        return Err(
            user_error(format!("--dir {} is not a directory", dir.display()))
                .hint("create it first (mkdir -p), or name an existing one")
                .exit(crate::error::ExitCode::Usage)
                .into(),
        );
    }
    for (name, text) in pages {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| user_error(format!("cannot write {}: {e}", path.display())))
            .context("writing the manual pages")?;
    }
    Ok(())
}
