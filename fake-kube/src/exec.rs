//! Pod exec over WebSocket, as the API server proxies it from the kubelet (`v5.channel.k8s.io`,
//! falling back to `v4.channel.k8s.io`), running the command on this machine.
//!
//! The protocol (k8s.io/apimachinery wsstream, kubelet remotecommand): every frame is binary with
//! the channel as its first byte: 0 stdin (client → server), 1 stdout, 2 stderr, 3 the error
//! channel, which carries one `Status` object when the command ends (`Success`, or `Failure` with
//! reason `NonZeroExitCode` and the exit code as a cause). With v5 the client ends stdin with the
//! frame `[255, 0]`; with v4 only by closing the socket.
//!
//! With `tty=true` (no `stderr`: a terminal has one output stream) the client may send its
//! terminal's size on channel 4 (`{"Width":…,"Height":…}`); the fake records the sizes.
//!
//! Departures from the real server: the command runs here, not in the pod's container, with the
//! environment the test set (`FakeKube::exec_env`, e.g. PGHOST/PGPORT/PGPASSWORD of the throwaway
//! PostgreSQL and a PATH with its tools); the container must exist in the pod's spec; with a TTY
//! the command gets pipes, not a pseudo-terminal (its stderr joins stdout, as on a terminal).

use std::process::Stdio;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::status::ApiError;
use crate::{Shared, error, query_pairs, query_value, running_pod};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

pub async fn handle(
    State(cluster): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    uri: Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query = query_pairs(&uri);
    let flag = |k: &str| query.iter().any(|(q, v)| q == k && v == "true");
    let command: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return error(ApiError::bad_request("you must specify at least 1 command"));
    }
    let container = query_value(&query, "container");
    let env = {
        let c = cluster.lock().expect("cluster lock");
        let pod = match running_pod(&c, &ns, &name, "pods/exec") {
            Ok(p) => p,
            Err(e) => return error(e),
        };
        let containers: Vec<&str> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(want) = &container
            && !containers.contains(&want.as_str())
        {
            return error(ApiError::bad_request(format!(
                "container {want} is not valid for pod {name}"
            )));
        }
        match c.pod_routes.get(&(ns.clone(), name.clone())) {
            Some(route) => route.exec_env.clone(),
            None => c.exec_env.clone(),
        }
    };
    let Ok(ws) = ws else {
        return error(ApiError::bad_request("exec needs a WebSocket upgrade"));
    };
    let (stdin, stdout, stderr, tty) = (flag("stdin"), flag("stdout"), flag("stderr"), flag("tty"));
    // A terminal has one output stream.
    if tty && stderr {
        return error(ApiError::bad_request(
            "tty and stderr cannot both be true: a terminal has one output stream",
        ));
    }
    let session = Session {
        command,
        env,
        io: [stdin, stdout, stderr],
        tty,
        cluster,
    };
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| run(socket, session))
}

struct Session {
    command: Vec<String>,
    env: Vec<(String, String)>,
    /// stdin, stdout, stderr asked for.
    io: [bool; 3],
    /// A terminal: the command's stderr goes to stdout (here without a pseudo-terminal: the
    /// command sees pipes), and the client may send its size on the resize channel.
    tty: bool,
    cluster: Shared,
}

/// The session, until it ends or the test cuts the streams (`FakeKube::cut_streams`): then the
/// socket is dropped as it is, without a Status or a close frame, and the command killed.
async fn run(socket: WebSocket, session: Session) {
    let cut = session.cluster.lock().expect("cluster lock").cut.clone();
    tokio::select! {
        _ = serve(socket, session) => {}
        _ = cut.notified() => {}
    }
}

/// Run the command and pump its streams through the socket; end with the Status on channel 3.
async fn serve(socket: WebSocket, session: Session) {
    let Session {
        command,
        env,
        io,
        tty,
        cluster,
    } = session;
    let (mut sink, mut stream) = socket.split();
    let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let child = Command::new(&command[0])
        .args(&command[1..])
        .envs(env)
        .stdin(pipe(io[0]))
        .stdout(pipe(io[1]))
        .stderr(pipe(io[2] || (tty && io[1])))
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let status = failure(
                format!("failed to exec in container: exec: \"{}\": {e}", command[0]),
                "InternalError",
                None,
            );
            let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
            let _ = sink.close().await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Message>(8);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(Aborting(tokio::spawn(pump(out, STDOUT, tx.clone()))));
    }
    if let Some(err) = child.stderr.take() {
        let channel = if tty { STDOUT } else { STDERR };
        pumps.push(Aborting(tokio::spawn(pump(err, channel, tx.clone()))));
    }
    drop(tx);
    let mut stdin = child.stdin.take();
    // The client's frames: stdin data, and (v5) the close of stdin.
    let reader = Aborting(tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if b.first() == Some(&STDIN) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&b[1..]).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Message::Binary(b) if b.as_ref() == [CLOSE, STDIN] => stdin = None,
                Message::Binary(b) if tty && b.first() == Some(&RESIZE) => {
                    let size: Value = serde_json::from_slice(&b[1..]).unwrap_or_default();
                    let dim = |k: &str| size.get(k).and_then(Value::as_u64).unwrap_or(0) as u16;
                    cluster
                        .lock()
                        .expect("cluster lock")
                        .exec_resizes
                        .push((dim("Width"), dim("Height")));
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    }));
    while let Some(msg) = rx.recv().await {
        if sink.send(msg).await.is_err() {
            // The client went away: the real kubelet ends the session.
            let _ = child.kill().await;
            break;
        }
    }
    for mut p in pumps {
        let _ = (&mut p.0).await;
    }
    let status = match child.wait().await {
        Ok(s) if s.success() => json!({"metadata": {}, "status": "Success"}),
        Ok(s) => {
            let code = s.code().unwrap_or(137);
            failure(
                format!(
                    "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
                ),
                "NonZeroExitCode",
                Some(code),
            )
        }
        Err(e) => failure(e.to_string(), "InternalError", None),
    };
    let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
    let _ = sink.close().await;
    drop(reader);
}

/// A task of a session, stopped when the session is dropped (ended, or cut off by the test):
/// a stream's halves must not outlive it, or a cut socket would stay open.
pub(crate) struct Aborting(pub tokio::task::JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn failure(message: String, reason: &str, code: Option<i32>) -> Value {
    let mut status = json!({
        "metadata": {}, "status": "Failure", "message": message, "reason": reason,
    });
    if let Some(code) = code {
        status["details"] =
            json!({"causes": [{"reason": "ExitCode", "message": code.to_string()}]});
    }
    status
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// Copy a stream into binary frames of one channel (exec's stdout/stderr, a forwarded port).
pub(crate) async fn pump(mut from: impl AsyncRead + Unpin, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf[1..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf[0] = channel;
                if tx
                    .send(Message::Binary(buf[..=n].to_vec().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}
