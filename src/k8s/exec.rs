//! Run a command in a pod's container through the API (kube `ws`: WebSocket, channel protocol
//! v5/v4) — what `kubectl exec -i` does, with bounded buffers and the exit status from the
//! error channel.

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess};

use super::client::{Kube, api_error};
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
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
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
    let exit = Box::pin(async move {
        let status = status.await;
        // Keep the connection (and its task) alive until the status has arrived.
        drop(attached);
        Ok(match status {
            Some(s) if s.status.as_deref() == Some("Success") => Exit::Success,
            // The message names the exit code ("command terminated with non-zero exit code …").
            Some(s) => Exit::Failed {
                message: s.message.unwrap_or_else(|| "the command failed".into()),
            },
            None => Exit::Failed {
                message: "the connection to the API server ended before the command did".into(),
            },
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

/// `command` in the container with a terminal, as `kubectl exec -it` runs it: this terminal in
/// raw mode (keys, Ctrl-C included, go to the program; the pod's terminal echoes), the program's
/// screen back, the terminal's size sent at the start and at every resize. Returns how the
/// program ended; the terminal is restored whatever happens.
pub async fn terminal(kube: &Kube, pod: &str, container: &str, command: &[String]) -> Result<Exit> {
    use kube::api::TerminalSize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let params = AttachParams::interactive_tty().container(container);
    let (what, mut attached) = start(kube, pod, command, &params).await?;
    let mut remote_in = attached.stdin().expect("stdin was requested");
    let mut remote_out = attached.stdout().expect("stdout was requested");
    let mut resize = attached.terminal_size().expect("a tty was requested");
    let status = attached
        .take_status()
        .expect("the status is taken once, here");

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
    drop(attached);
    keys.abort();
    resizer.abort();
    drop(raw);
    Ok(match status {
        Some(s) if s.status.as_deref() == Some("Success") => Exit::Success,
        Some(s) => Exit::Failed {
            message: s.message.unwrap_or_else(|| format!("{what} failed")),
        },
        None => Exit::Failed {
            message: "the connection to the API server ended before the command did".into(),
        },
    })
}
