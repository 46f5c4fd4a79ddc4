//! `psql`: the pod's own psql, through exec — interactive with a terminal (`kubectl exec -it`),
//! else reading SQL from stdin as a script (stopping at the first error). As the admin over the
//! pod's local socket, or `--app`: logged in as the app role itself over the pod's loopback
//! (`templates/exec/psql-app.sh`), its password passed through a file in the pod's /tmp that the
//! script removes before psql starts — never in a command line, which the API server logs.

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::context::Ctx;
use crate::db::connect::ready_primary;
use crate::db::process::{Exit, cause, tail};
use crate::error::user_error;
use crate::k8s::exec;
use crate::profile::Profile;
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct PsqlArgs {
    /// Act as the app role (what the application may see and do) instead of the admin
    #[arg(long)]
    pub app: bool,
    /// Arguments for psql after `--`, e.g. `-- -c 'SELECT count(*) FROM auth_users'`
    #[arg(last = true, value_name = "PSQL ARGS")]
    pub args: Vec<String>,
}

/// `-o json`: what psql printed and how it ended.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PsqlReport {
    pub pod: String,
    pub database: String,
    pub role: String,
    pub succeeded: bool,
    /// psql's standard output (at most `OUTPUT_LIMIT` bytes; `truncated` says when it was more).
    pub output: String,
    pub truncated: bool,
    /// The end of psql's standard error.
    pub errors: String,
}

/// How much of psql's output a JSON report holds.
const OUTPUT_LIMIT: usize = 8 * 1024 * 1024;

const APP_SCRIPT: &str = include_str!("../../templates/exec/psql-app.sh");

/// psql's command line in the pod: the release's database as the admin (local socket, peer
/// authentication), or with `app_password_file` as the app role (loopback, its password read
/// from that file by `psql-app.sh`); a script stops at its first error.
pub fn command(
    profile: &Profile,
    app_password_file: Option<&str>,
    interactive: bool,
    extra: &[String],
) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    // A session's history is kept while it lasts; saved, it would go to the home directory, on the
    // pod's read-only root file system ("could not save history to file").
    if interactive {
        env.push("PSQL_HISTORY=/dev/null".into());
    }
    let mut argv: Vec<String> = Vec::new();
    if !env.is_empty() {
        argv.push("env".into());
        argv.extend(env);
    }
    match app_password_file {
        None => argv.extend(["psql".into(), format!("--username={}", profile.admin_user)]),
        Some(file) => argv.extend([
            "sh".into(),
            "-c".into(),
            APP_SCRIPT.into(),
            "psql-app".into(),
            file.into(),
            "--host=127.0.0.1".into(),
            format!("--username={}", profile.app_user),
        ]),
    }
    argv.push(format!("--dbname={}", profile.database));
    if !interactive {
        argv.extend(["--set=ON_ERROR_STOP=1".into()]);
    }
    argv.extend(extra.iter().cloned());
    argv
}

pub async fn run(ctx: &Ctx, args: &PsqlArgs) -> Result<Outcome> {
    let profile = &ctx.profile;
    // A managed server (prod) has no pod: psql from inside its network, with the Secret's URL.
    profile.cluster("psql")?;
    let names = profile.names();
    let kube = ctx.kube().await?;
    let pod = ready_primary(&kube, profile).await?;
    let role = if args.app {
        profile.app_user.clone()
    } else {
        profile.admin_user.clone()
    };
    // A person at a terminal gets psql's own prompt; anything else is a script.
    let interactive = !ctx.ui.machine() && crate::terminal::interactive();
    let file = match args.app {
        true => Some(app_password_file(&kube, &pod, profile).await?),
        false => None,
    };
    let argv = command(profile, file.as_deref(), interactive, &args.args);
    if interactive {
        let exit = exec::terminal(&kube, &pod, &names.container, &argv).await?;
        return finish(exit, &format!("psql in pod {}/{pod}", kube.namespace));
    }

    let mut process = crate::k8s::exec::spawn(&kube, &pod, &names.container, &argv, true).await?;
    let what = format!("psql in pod {}/{pod}", kube.namespace);
    let mut remote_in = process.stdin.take().expect("stdin was requested");
    // The script: this process's stdin, to its end.
    let feed = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 || remote_in.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = remote_in.shutdown().await;
    });
    if ctx.ui.machine() {
        let (output, errors) =
            tokio::join!(capture(process.stdout, OUTPUT_LIMIT), tail(process.stderr));
        let exit = process.exit.await?;
        feed.abort();
        let (output, truncated) = output;
        let report = PsqlReport {
            pod,
            database: profile.database.clone(),
            role,
            succeeded: exit == Exit::Success,
            output,
            truncated,
            errors: errors.clone(),
        };
        ctx.ui.emit(&report, |_| String::new())?;
        return match exit {
            Exit::Success => Ok(Outcome::ok()),
            Exit::Failed { message } => Err(failed(&what, &message, cause(&errors))),
        };
    }
    // Text: psql's streams as they come (its own messages are the report).
    let copy_out = async {
        let mut out = tokio::io::stdout();
        let _ = tokio::io::copy(&mut process.stdout, &mut out).await;
        let _ = out.flush().await;
    };
    let copy_err = async {
        let mut err = tokio::io::stderr();
        let _ = tokio::io::copy(&mut process.stderr, &mut err).await;
    };
    tokio::join!(copy_out, copy_err);
    let exit = process.exit.await?;
    feed.abort();
    finish(exit, &what)
}

fn finish(exit: Exit, what: &str) -> Result<Outcome> {
    match exit {
        Exit::Success => Ok(Outcome::ok()),
        Exit::Failed { message } => Err(failed(what, &message, None)),
    }
}

/// psql's exit code (from the exec API's message), said in words; its own last error if known.
fn failed(what: &str, message: &str, cause: Option<String>) -> anyhow::Error {
    let code = message
        .rsplit_once("exit code ")
        .and_then(|(_, n)| n.trim().parse::<i32>().ok());
    let meaning = match code {
        Some(1) => "exit code 1: psql could not go on".to_string(),
        Some(2) => "exit code 2: the connection to the server went bad".to_string(),
        Some(3) => "exit code 3: an error in the script stopped it".to_string(),
        Some(n) => format!("exit code {n}"),
        None => message.to_string(),
    };
    let said = cause.map(|c| format!(": {c}")).unwrap_or_default();
    let hint = if code.is_none() && message.contains("connection to the API server") {
        "the session through the API server ended before psql did: run it again (what the script committed before stays committed)"
    } else {
        "psql's own message above says what went wrong; a script stops at its first error"
    };
    user_error(format!("{what} stopped ({meaning}){said}"))
        .hint(hint)
        .into()
}

/// A stream to its end, keeping at most `limit` bytes (and whether there was more).
async fn capture(mut from: crate::db::process::Reader, limit: usize) -> (String, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
    (String::from_utf8_lossy(&kept).into_owned(), truncated)
}

/// Write the app role's password (from its Secret) to a new file in the pod's /tmp, mode 0600,
/// through exec's stdin; returns the file's name for `psql-app.sh`, which removes it.
async fn app_password_file(
    kube: &crate::k8s::Kube,
    pod: &str,
    profile: &Profile,
) -> Result<String> {
    let names = profile.names();
    let secrets: ::kube::Api<k8s_openapi::api::core::v1::Secret> =
        ::kube::Api::namespaced(kube.client.clone(), &kube.namespace);
    let password =
        crate::db::connect::secret_key(kube, &secrets, &names.app_secret, "auth-user-password")
            .await?;
    let file = format!("/tmp/phonebill-db-{}", crate::passwords::generate()?);
    let argv: Vec<String> = ["sh", "-c", "umask 077 && cat > \"$0\"", file.as_str()]
        .map(String::from)
        .into();
    let mut process = exec::spawn(kube, pod, &names.container, &argv, true).await?;
    let mut stdin = process.stdin.take().expect("stdin was requested");
    stdin
        .write_all(password.as_bytes())
        .await
        .context("passing the app role's password to the pod")?;
    stdin.shutdown().await.ok();
    drop(stdin);
    let errors = tail(process.stderr).await;
    match process.exit.await? {
        Exit::Success => Ok(file),
        Exit::Failed { message } => Err(user_error(format!(
            "passing the app role's password to pod {}/{pod} failed: {}",
            kube.namespace,
            cause(&errors).unwrap_or(message)
        ))
        .hint("check that the pod's /tmp is writable (an emptyDir in the release's StatefulSet), or run `phonebill-db connect` and a local psql as the app")
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_logs_in_as_itself_and_scripts_stop_at_the_first_error() {
        let p = Profile::load("dev", None).unwrap();
        assert_eq!(
            command(&p, None, true, &[]),
            [
                "env",
                "PSQL_HISTORY=/dev/null",
                "psql",
                "--username=postgres",
                "--dbname=phonebill_auth"
            ]
        );
        assert_eq!(
            command(&p, None, false, &[]),
            [
                "psql",
                "--username=postgres",
                "--dbname=phonebill_auth",
                "--set=ON_ERROR_STOP=1"
            ]
        );
        assert_eq!(
            command(&p, Some("/tmp/f"), false, &["-c".into(), "SELECT 1".into()]),
            [
                "sh",
                "-c",
                APP_SCRIPT,
                "psql-app",
                "/tmp/f",
                "--host=127.0.0.1",
                "--username=auth_user",
                "--dbname=phonebill_auth",
                "--set=ON_ERROR_STOP=1",
                "-c",
                "SELECT 1"
            ]
        );
    }
}
