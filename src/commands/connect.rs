//! `connect` (runbook 5.2 without a public address): a local port that leads to the release's
//! primary pod through the API server's port-forward, for DBeaver or psql, until Ctrl-C.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use clap::Args;
use kube::api::Portforwarder;
use serde::Serialize;
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};

use crate::context::Ctx;
use crate::db::connect::{Db, Route};
use crate::error::user_error;
use crate::k8s::Kube;
use crate::k8s::forward;
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Local port to listen on (0: any free port)
    #[arg(long, default_value_t = 15432)]
    pub port: u16,
    /// Local address to listen on (other machines can reach it if not a loopback address)
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub address: IpAddr,
    /// Print the passwords too
    #[arg(long)]
    pub show_password: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectReport {
    pub pod: String,
    pub namespace: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub users: Vec<crate::db::details::Login>,
}

pub async fn run(ctx: &Ctx, args: &ConnectArgs) -> Result<Outcome> {
    ctx.profile.cluster("connect")?;
    let db = Db::for_release(ctx.kube().await?, &ctx.profile).await?;
    let Route::Pod { kube, pod, port } = &db.route else {
        unreachable!("Db::for_release always routes through the pod");
    };
    let listener = TcpListener::bind(SocketAddr::new(args.address, args.port))
        .await
        .map_err(|e| {
            anyhow::Error::new(
                user_error(format!(
                    "cannot listen on {}:{}: {e}",
                    args.address, args.port
                ))
                .hint("another program uses the port: choose one with --port (0: any free port)"),
            )
        })?;
    let local = listener.local_addr().context("reading the local address")?;
    let password = |p: &Option<String>| if args.show_password { p.clone() } else { None };
    let report = ConnectReport {
        pod: pod.clone(),
        namespace: kube.namespace.clone(),
        host: local.ip().to_string(),
        port: local.port(),
        database: db.database.clone(),
        users: vec![
            crate::db::details::Login {
                role: "app",
                user: db.app.user.clone(),
                password: password(&db.app.password),
            },
            crate::db::details::Login {
                role: "admin",
                user: db.admin.user.clone(),
                password: password(&db.admin.password),
            },
        ],
    };
    ctx.ui.emit(&report, text)?;
    tokio::select! {
        r = serve(listener, kube, pod, *port, &ctx.ui) => r?,
        _ = tokio::signal::ctrl_c() => ctx.ui.note(None, "closed the local port"),
    }
    Ok(Outcome::ok())
}

/// Accept local connections; each gets its own port-forward to the pod. A failed forward is
/// reported and the next connection tried again (the pod may be restarting).
async fn serve(
    listener: TcpListener,
    kube: &Kube,
    pod: &str,
    port: u16,
    ui: &crate::ui::Ui,
) -> Result<()> {
    loop {
        let (conn, peer) = listener
            .accept()
            .await
            .context("accepting a local connection")?;
        match forward::open(kube, pod, port).await {
            Ok((forwarder, stream)) => {
                ui.detail(format!("connection from {peer} forwarded to pod {pod}"));
                let (ui, pod) = (ui.clone(), pod.to_string());
                tokio::spawn(async move {
                    let end = session(conn, forwarder, stream, port).await;
                    match end {
                        End::Client => ui.detail(format!("connection from {peer} closed")),
                        End::Pod(cause) => ui.warn(format!(
                            "connection from {peer} to pod {pod} dropped: {cause}; a new connection gets a new port-forward"
                        )),
                    }
                });
            }
            Err(e) => ui.warn(format!("connection from {peer}: {e:#}")),
        }
    }
}

/// How a session ended: the local client closed it (the normal end), or the pod's side ended
/// first, and why.
#[derive(Debug, PartialEq)]
enum End {
    Client,
    Pod(String),
}

/// Copy both ways until one side ends; then let the forwarder finish and say why it ended.
async fn session(
    conn: TcpStream,
    mut forwarder: Portforwarder,
    stream: DuplexStream,
    port: u16,
) -> End {
    let _ = conn.set_nodelay(true);
    let said = forwarder.take_error(port);
    let (local_in, local_out) = conn.into_split();
    let (pod_in, pod_out) = tokio::io::split(stream);
    // Each direction owns its halves: dropping it closes them.
    let mut up = Box::pin(pump(local_in, pod_out));
    let mut down = Box::pin(pump(pod_in, local_out));
    // Which side ended it: the client closing (or failing), or the pod's side — its stream
    // ending or failing, seen from either direction.
    let pod_ended = tokio::select! {
        biased;
        ended = &mut up => match ended {
            Pumped::WriteFailed(e) => Some(Some(e)),
            Pumped::End | Pumped::ReadFailed(_) => {
                // The client is done: what the pod still sends reaches it, for a moment.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut down).await;
                None
            }
        },
        ended = &mut down => match ended {
            Pumped::End => Some(None),
            Pumped::ReadFailed(e) => Some(Some(e)),
            Pumped::WriteFailed(_) => None,
        },
    };
    drop((up, down));
    let joined = forwarder.join().await;
    let Some(copy_error) = pod_ended else {
        return End::Client;
    };
    let message = match said {
        Some(said) => said.await,
        None => None,
    };
    // Once the pod's side closed (the API server's Close frame came), kube's port-forward still
    // sends its own close, and fails to ("failed to send a WebSocket message: Sending after
    // closing is not allowed"): that is the pod's end, not a break. Any other failure — to
    // receive, or to send on a connection that ended without a Close (`Trying to work with
    // closed connection`, a reset) — is one, even when the pod's stream just ended.
    let broke = joined.err().filter(|e| {
        copy_error.is_some()
            || !e
                .to_string()
                .contains("Sending after closing is not allowed")
    });
    End::Pod(drop_cause(
        message,
        broke.map(|e| crate::k8s::client::root_cause(&e)),
        copy_error.map(|e| e.to_string()),
    ))
}

/// How one direction of a session ended.
enum Pumped {
    /// Its source ended (and the other side was told).
    End,
    ReadFailed(std::io::Error),
    WriteFailed(std::io::Error),
}

/// Copy `from` into `to` until `from` ends (then shut `to`'s writing down) or either fails.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
) -> Pumped {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return Pumped::End;
            }
            Ok(n) => {
                if let Err(e) = to.write_all(&buf[..n]).await {
                    return Pumped::WriteFailed(e);
                }
            }
            Err(e) => return Pumped::ReadFailed(e),
        }
    }
}

/// Why a session's pod side ended, most telling first: what the API server said on the
/// port-forward's error channel, the port-forward's own failure, the copy's error.
fn drop_cause(said: Option<String>, broke: Option<String>, copy: Option<String>) -> String {
    if let Some(m) = said.filter(|m| !m.is_empty()) {
        return format!("the API server said: {m}");
    }
    if let Some(e) = broke.or(copy) {
        return format!("the port-forward broke: {e}");
    }
    "the database closed it (the server ended the session, or restarted)".into()
}

fn text(r: &ConnectReport) -> String {
    format!(
        "forwarding {}:{} to pod {}/{} (Ctrl-C to stop)\n{}",
        r.host,
        r.port,
        r.namespace,
        r.pod,
        crate::db::details::details(&r.host, r.port, &r.database, &r.users)
    )
}
