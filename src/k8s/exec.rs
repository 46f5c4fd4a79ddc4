//! Run a command in a pod's container through the API (kube `ws`: WebSocket, channel protocol
//! v5/v4) — what `kubectl exec -i` does, with bounded buffers and the exit status from the
//! error channel.

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess};

use super::client::{Kube, api_error};
use super::severed::Break;
use crate::db::process::{Exit, Process};

/// Bytes in flight per stream between the WebSocket task and the reader/writer.
const BUFFER: usize = 1024 * 1024;

/// `command` started in `pod` with `params`, and how errors name it ("psql in pod NS/POD").
async fn start(
    kube: &Kube,
    pod: &str,
    command: &[String],
    params: &AttachParams,
) -> Result<(String, AttachedProcess)> {
    // The streams' client: a session may be quiet for as long as its command is.
    let api: Api<Pod> = Api::namespaced(kube.streams.clone(), &kube.namespace);
    let tool = command.first().map(String::as_str).unwrap_or_default();
    let what = format!("{tool} in pod {}/{pod}", kube.namespace);
    let attached = api
        .exec(pod, command.iter().map(String::as_str), params)
        .await
        .map_err(|e| api_error(e, &format!("starting {what}"), &kube.server))?;
    Ok((what, attached))
}

pub async fn spawn(
    kube: &Kube,
    pod: &str,
    container: &str,
    command: &[String],
    stdin: bool,
) -> Result<Process> {
    let mut params = AttachParams::default()
        .container(container)
        .stdin(stdin)
        .stdout(true)
        .stderr(true);
    params.max_stdin_buf_size = Some(BUFFER);
    params.max_stdout_buf_size = Some(BUFFER);
    params.max_stderr_buf_size = Some(64 * 1024);
    let (what, mut attached) = start(kube, pod, command, &params).await?;
    let stdout = attached
        .stdout()
        .expect("stdout was requested, so the attached process has it");
    let stderr = attached
        .stderr()
        .expect("stderr was requested, so the attached process has it");
    let stdin = if stdin { attached.stdin() } else { None };
    let status = attached
        .take_status()
        .expect("the status is taken once, here");
    let session = Session::watch(attached);
    let broke = session.broke.clone();
    let exit = Box::pin(async move {
        let status = status.await;
        Ok(session.ended(status, "the command failed").await)
    });
    Ok(Process {
        what,
        stdin: stdin.map(|w| Box::new(broke.guard(w)) as _),
        stdout: Box::new(broke.guard(stdout)),
        stderr: Box::new(broke.guard(stderr)),
        exit,
    })
}

/// A running exec session's connection: its task watched, so that a failure breaks the
/// session's streams (see `severed`) and names its cause. Dropped, it ends the session.
struct Session {
    broke: Break,
    task: tokio::task::JoinHandle<Option<String>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort(); // drops the AttachedProcess, which stops its connection
    }
}

impl Session {
    fn watch(attached: AttachedProcess) -> Session {
        let broke = Break::default();
        let b = broke.clone();
        let task = tokio::spawn(async move {
            match attached.join().await {
                Ok(()) => None,
                Err(e) => {
                    let cause = super::client::root_cause(&e);
                    b.set(cause.clone());
                    Some(cause)
                }
            }
        });
        Session { broke, task }
    }

    /// How the command ended: its status, else why the connection ended without one.
    async fn ended(mut self, status: Option<Status>, failed: &str) -> Exit {
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Exit::Success,
            // The message names the exit code ("command terminated with non-zero exit code …").
            Some(s) => Exit::Failed {
                message: s.message.unwrap_or_else(|| failed.to_string()),
            },
            None => {
                let cause = (&mut self.task).await.ok().flatten();
                Exit::Failed {
                    message: match cause.or_else(|| self.broke.cause()) {
                        Some(c) => format!(
                            "the connection to the API server broke before the command ended: {c}"
                        ),
                        None => {
                            "the connection to the API server ended before the command did".into()
                        }
                    },
                }
            }
        }
    }
}

/// `command` in the container with a terminal, as `kubectl exec -it` runs it: this terminal in
/// raw mode (keys, Ctrl-C included, go to the program; the pod's terminal echoes), the program's
/// screen back, the terminal's size sent at the start and at every resize. Returns how the
/// program ended; the terminal is restored whatever happens.
pub async fn terminal(kube: &Kube, pod: &str, container: &str, command: &[String]) -> Result<Exit> {
    use kube::api::TerminalSize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let params = AttachParams::interactive_tty().container(container);
    let (what, mut attached) = start(kube, pod, command, &params).await?;
    let remote_in = attached.stdin().expect("stdin was requested");
    let remote_out = attached.stdout().expect("stdout was requested");
    let mut resize = attached.terminal_size().expect("a tty was requested");
    let status = attached
        .take_status()
        .expect("the status is taken once, here");
    let session = Session::watch(attached);
    let mut remote_in = session.broke.guard(remote_in);
    let mut remote_out = session.broke.guard(remote_out);

    let raw = crate::terminal::Raw::enter()?;
    if let Some((width, height)) = crate::terminal::size() {
        let _ = resize.try_send(TerminalSize { width, height });
    }
    let resizer = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut changes) = signal(SignalKind::window_change()) else {
            return;
        };
        while changes.recv().await.is_some() {
            if let Some((width, height)) = crate::terminal::size()
                && let Err(e) = resize.try_send(TerminalSize { width, height })
                && e.is_disconnected()
            {
                break;
            }
        }
    });
    let keys = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 || remote_in.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = remote_in.shutdown().await;
    });
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = remote_out.read(&mut buf).await {
        if n == 0 {
            break;
        }
        stdout.write_all(&buf[..n]).await?;
        stdout.flush().await?;
    }
    let status = status.await;
    keys.abort();
    resizer.abort();
    drop(raw);
    Ok(session.ended(status, &format!("{what} failed")).await)
}
