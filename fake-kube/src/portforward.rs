//! Pod port-forward over WebSocket, as kube-rs speaks it (`v4.channel.k8s.io`), bridged to a real
//! TCP server chosen by the test (`FakeKube::forward_port`), e.g. the throwaway PostgreSQL.
//!
//! The protocol (k8s.io/apiserver wsstream, kubelet portforward/websocket.go): one WebSocket per
//! request; for the i-th requested port, channel 2i carries data and 2i+1 errors. Every frame is
//! binary with the channel number as its first byte. The server opens each channel by sending the
//! port number (2 bytes, little endian) on it. When the pod side closes, the socket is closed.
//!
//! Departures from the real server: the target is a loopback address chosen by the test, not the
//! pod's network namespace; a pod that is not Running is refused with 400 before the upgrade
//! (the real kubelet fails the upgrade with a similar message).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::exec::{Aborting, pump};
use crate::status::ApiError;
use crate::{Shared, error, query_pairs, running_pod};

pub const PROTOCOL: &str = "v4.channel.k8s.io";

pub async fn handle(
    State(cluster): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    uri: Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query = query_pairs(&uri);
    let ports: Result<Vec<u16>, _> = query
        .iter()
        .filter(|(k, _)| k == "ports")
        .flat_map(|(_, v)| v.split(','))
        .map(|p| p.trim().parse::<u16>())
        .collect();
    let ports = match ports {
        Ok(p) if !p.is_empty() => p,
        _ => {
            return error(ApiError::bad_request(
                "query parameter \"ports\" is required and must be port numbers",
            ));
        }
    };
    let targets = {
        let c = cluster.lock().expect("cluster lock");
        if let Err(e) = running_pod(&c, &ns, &name, "pods/portforward") {
            return error(e);
        }
        let forwards = match c.pod_routes.get(&(ns.clone(), name.clone())) {
            Some(route) => &route.forwards,
            None => &c.forwards,
        };
        ports
            .iter()
            .map(|p| forwards.get(p).copied())
            .collect::<Vec<_>>()
    };
    let Ok(ws) = ws else {
        return error(ApiError::bad_request(
            "port-forward needs a WebSocket upgrade",
        ));
    };
    let cut = cluster.lock().expect("cluster lock").cut.clone();
    let shared = cluster.clone();
    ws.protocols([PROTOCOL])
        .on_upgrade(move |socket| bridge(socket, ports, targets, name, shared, cut))
}

/// Pump bytes between the WebSocket channels and one TCP connection per port, until the pod
/// side closes, or the test cuts the streams: then the socket is dropped as it is, no Close frame
/// (the task that writes to it is stopped before anything else goes).
async fn bridge(
    socket: WebSocket,
    ports: Vec<u16>,
    targets: Vec<Option<SocketAddr>>,
    pod: String,
    cluster: Shared,
    cut: std::sync::Arc<tokio::sync::Notify>,
) {
    let cut = cut.notified();
    tokio::pin!(cut);
    cut.as_mut().enable();
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let mut writers = HashMap::new();
    let mut pumps = Vec::new();
    for (i, (port, target)) in ports.iter().zip(targets).enumerate() {
        let data = (2 * i) as u8;
        for ch in [data, data + 1] {
            let mut open = vec![ch];
            open.extend(port.to_le_bytes());
            if sink.send(Message::Binary(open.into())).await.is_err() {
                return;
            }
        }
        let conn = match target {
            Some(addr) => TcpStream::connect(addr)
                .await
                .and_then(|c| c.set_nodelay(true).map(|_| c))
                .map_err(|e| e.to_string()),
            None => Err("connection refused (the test forwards nothing to this port)".into()),
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                let mut msg = vec![data + 1];
                msg.extend(format!("error forwarding port {port} to pod {pod}: failed to connect to localhost:{port}: {e}").into_bytes());
                let _ = sink.send(Message::Binary(msg.into())).await;
                continue;
            }
        };
        let (read, write) = conn.into_split();
        writers.insert(data, write);
        let tx = out_tx.clone();
        pumps.push(Aborting(tokio::spawn(async move {
            pump(read, data, tx.clone()).await;
            // The pod side closed: the real server closes the stream.
            let _ = tx.send(Message::Close(None)).await;
        })));
    }
    drop(out_tx);
    let mut sender = Aborting(tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            let close = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    }));
    loop {
        let msg = tokio::select! {
            next = stream.next() => match next {
                Some(Ok(msg)) => msg,
                _ => break,
            },
            _ = &mut cut => {
                sender.0.abort();
                let _ = (&mut sender.0).await;
                return;
            }
        };
        match msg {
            Message::Binary(bytes) if bytes.len() > 1 => {
                // A cut the test asked for: these bytes go through, their answer never comes.
                let cut = {
                    let mut c = cluster.lock().expect("cluster lock");
                    let hit = c.cut_after.as_ref().is_some_and(|(want, _)| {
                        bytes[1..].windows(want.len()).any(|w| w == want.as_slice())
                    });
                    if hit && let Some((_, refuse)) = c.cut_after.take() {
                        c.faults.push(crate::serve::Injected {
                            path: "/portforward".into(),
                            method: Some("GET".into()),
                            remaining: refuse,
                            fault: crate::serve::Fault::Status {
                                code: 403,
                                retry_after: None,
                            },
                        });
                    }
                    hit
                };
                if cut {
                    // Nothing goes back from before the bytes are sent (so the answer cannot
                    // slip through); the server reads them, then the connection goes.
                    sender.0.abort();
                    drop(pumps);
                    if let Some(w) = writers.get_mut(&bytes[0]) {
                        let _ = w.write_all(&bytes[1..]).await;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    return;
                }
                if let Some(w) = writers.get_mut(&bytes[0])
                    && w.write_all(&bytes[1..]).await.is_err()
                {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    for (_, mut w) in writers {
        let _ = w.shutdown().await;
    }
    let _ = (&mut sender.0).await;
    drop(pumps);
}
