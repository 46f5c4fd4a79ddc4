//! Where pg_dump, pg_restore and psql run: in the database pod (the image's own, version-matched
//! tools, through Kubernetes exec), or on this machine for `--database-url` (connection settings
//! passed as libpq environment variables, never on the command line).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use tokio_postgres::config::Host;

use super::connect::{Db, Route};
use super::process::{Exit, Process, cause, tail};
use crate::error::user_error;
use crate::k8s::{self, Kube};

pub enum Tools {
    Pod {
        kube: Box<Kube>,
        pod: String,
        container: String,
    },
    Local {
        /// `--pg-bin`: the directory of the tools; else they are looked up on PATH.
        bin_dir: Option<PathBuf>,
        env: Vec<(String, String)>,
    },
}

impl Tools {
    /// The tools that reach `db`: the pod's on the pod path, local ones for a URL.
    pub fn for_db(db: &Db, container: &str, bin_dir: Option<&Path>) -> Tools {
        match &db.route {
            Route::Pod { kube, pod, .. } => Tools::Pod {
                kube: Box::new(kube.clone()),
                pod: pod.clone(),
                container: container.to_string(),
            },
            Route::Url(url) => {
                let c = &url.config;
                let mut env = vec![
                    ("PGSSLMODE".to_string(), url.ssl_mode.as_str().to_string()),
                    ("PGAPPNAME".to_string(), "phonebill-db".to_string()),
                    ("PGCONNECT_TIMEOUT".to_string(), "10".to_string()),
                    // The tool's own rule for the server's authentication (libpq 16 and later).
                    ("PGREQUIREAUTH".to_string(), url.require_auth.to_string()),
                ];
                if let Some(Host::Tcp(h)) = c.get_hosts().first() {
                    env.push(("PGHOST".into(), h.clone()));
                }
                if let Some(p) = c.get_ports().first() {
                    env.push(("PGPORT".into(), p.to_string()));
                }
                if let Some(pw) = &db.admin.password {
                    env.push(("PGPASSWORD".into(), pw.clone()));
                }
                if let Some(ca) = url.roots.libpq() {
                    env.push(("PGSSLROOTCERT".into(), ca));
                }
                Tools::Local {
                    bin_dir: bin_dir.map(Path::to_path_buf),
                    env,
                }
            }
        }
    }

    /// "the pod's" / "the local": whose tools these are, for messages.
    pub fn whose(&self) -> &'static str {
        match self {
            Tools::Pod { .. } => "the pod's",
            Tools::Local { .. } => "the local",
        }
    }

    pub async fn spawn(&self, argv: &[String], stdin: bool) -> Result<Process> {
        match self {
            Tools::Pod {
                kube,
                pod,
                container,
            } => k8s::exec::spawn(kube, pod, container, argv, stdin).await,
            Tools::Local { bin_dir, env } => spawn_local(bin_dir.as_deref(), env, argv, stdin),
        }
    }

    /// Run a short command and return its stdout; its stderr's cause when it fails.
    pub async fn output(&self, argv: &[String]) -> Result<String> {
        let p = self.spawn(argv, false).await?;
        let what = p.what.clone();
        let out = tail(p.stdout);
        let err = tail(p.stderr);
        let (out, err) = tokio::join!(out, err);
        match p.exit.await? {
            Exit::Success => Ok(out),
            Exit::Failed { message } => {
                Err(user_error(format!("{what} failed: {}", cause(&err).unwrap_or(message))).into())
            }
        }
    }

    /// The major version of a tool, from `TOOL --version` ("pg_dump (PostgreSQL) 16.4 (Debian…)").
    pub async fn version(&self, tool: &str) -> Result<ToolVersion> {
        let text = self.output(&[tool.to_string(), "--version".into()]).await?;
        ToolVersion::parse(&text).with_context(|| {
            format!(
                "reading the version of {} {tool} (it printed `{}`)",
                self.whose(),
                text.trim()
            )
        })
    }
}

/// A tool's version line and its major number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolVersion {
    pub text: String,
    pub major: u32,
}

impl ToolVersion {
    /// psql's `\restrict` (and pg_dump's use of it): PostgreSQL 17.6, 16.10, 15.14, 14.19, 13.22
    /// and every later release (CVE-2025-8714).
    pub fn has_restrict(&self) -> bool {
        let number = self
            .text
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or_default();
        let mut parts = number.split('.');
        let minor = parts.nth(1).and_then(|m| m.parse::<u32>().ok());
        match (self.major, minor) {
            (18.., _) => true,
            (17, Some(m)) => m >= 6,
            (16, Some(m)) => m >= 10,
            (15, Some(m)) => m >= 14,
            (14, Some(m)) => m >= 19,
            (13, Some(m)) => m >= 22,
            _ => false,
        }
    }

    pub fn parse(text: &str) -> Result<ToolVersion> {
        let line = text.lines().next().unwrap_or_default().trim();
        let number = line
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .context("no version number")?;
        let major = number
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|m| m.parse().ok())
            .context("no major version")?;
        Ok(ToolVersion {
            text: line.to_string(),
            major,
        })
    }
}

fn spawn_local(
    bin_dir: Option<&Path>,
    env: &[(String, String)],
    argv: &[String],
    stdin: bool,
) -> Result<Process> {
    let tool = &argv[0];
    // --pg-bin names where the PostgreSQL tools are: one that is not there is an error, not a
    // quiet fall back to PATH (a shell the restore pipeline runs is PATH's).
    if let Some(dir) = bin_dir
        && ["pg_dump", "pg_restore", "psql"].contains(&tool.as_str())
        && !dir.join(tool).is_file()
    {
        return Err(user_error(format!(
            "--pg-bin {}: there is no {tool} there",
            dir.display()
        ))
        .hint("point --pg-bin (or $PHONEBILL_PG_BIN) at the directory of the PostgreSQL client tools, e.g. /usr/lib/postgresql/16/bin, or leave it out to use PATH")
        .exit(crate::error::ExitCode::Usage)
        .into());
    }
    let program = match bin_dir {
        Some(dir) if !tool.contains('/') && dir.join(tool).exists() => dir.join(tool),
        _ => PathBuf::from(tool),
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = bin_dir {
        // Scripts (the restore pipeline) find the same tools.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(paths)?);
    }
    let mut child = cmd.spawn().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "install the PostgreSQL client tools (Debian: apt-get install postgresql-client), or point --pg-bin at their directory"
        } else {
            "check that the tool can be run by this user"
        };
        anyhow::Error::new(user_error(format!("cannot run {tool}: {e}")).hint(hint))
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let stdin = child.stdin.take();
    let what = format!("local {tool}");
    let exit = Box::pin(async move {
        let status = child.wait().await.context("waiting for a local tool")?;
        Ok(if status.success() {
            Exit::Success
        } else {
            Exit::Failed {
                message: format!("exited with {status}"),
            }
        })
    });
    Ok(Process {
        what,
        stdin: stdin.map(|w| Box::new(w) as _),
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        exit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_tools_get_the_same_authentication_rule() {
        let profile = crate::profile::Profile::load("dev", None).unwrap();
        let env_of = |url: &str| {
            let url = crate::db::tls::parse_url(url, None, None).unwrap();
            let db = Db::for_url(url, &profile, None);
            match Tools::for_db(&db, "postgresql", None) {
                Tools::Local { env, .. } => env
                    .into_iter()
                    .find(|(k, _)| k == "PGREQUIREAUTH")
                    .map(|(_, v)| v),
                Tools::Pod { .. } => None,
            }
        };
        assert_eq!(env_of("postgresql://u@h/db").as_deref(), Some("!password"));
        assert_eq!(
            env_of("postgresql://u@h/db?require_auth=md5,scram-sha-256").as_deref(),
            Some("md5,scram-sha-256")
        );
    }

    #[test]
    fn versions_as_the_tools_print_them() {
        let v =
            ToolVersion::parse("pg_dump (PostgreSQL) 16.4 (Debian 16.4-1.pgdg120+2)\n").unwrap();
        assert_eq!(v.major, 16);
        assert_eq!(
            v.text,
            "pg_dump (PostgreSQL) 16.4 (Debian 16.4-1.pgdg120+2)"
        );
        assert_eq!(
            ToolVersion::parse("pg_restore (PostgreSQL) 15.14")
                .unwrap()
                .major,
            15
        );
        assert_eq!(
            ToolVersion::parse("psql (PostgreSQL) 17beta1")
                .unwrap()
                .major,
            17
        );
        assert!(ToolVersion::parse("bash: pg_dump: not found").is_err());
        for (text, restrict) in [
            ("psql (PostgreSQL) 16.2", false),
            ("psql (PostgreSQL) 16.10", true),
            ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", true),
            ("psql (PostgreSQL) 15.13", false),
            ("psql (PostgreSQL) 17.6", true),
            ("psql (PostgreSQL) 17beta1", false),
            ("psql (PostgreSQL) 18.1", true),
            ("psql (PostgreSQL) 12.22", false),
        ] {
            assert_eq!(
                ToolVersion::parse(text).unwrap().has_restrict(),
                restrict,
                "{text}"
            );
        }
    }
}
