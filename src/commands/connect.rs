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
    pub users: Vec<super::expose::Login>,
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
            super::expose::Login {
                role: "app",
                user: db.app.user.clone(),
                password: password(&db.app.password),
            },
            super::expose::Login {
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
                tokio::spawn(copy(conn, forwarder, stream));
            }
            Err(e) => ui.note(None, format!("warning: connection from {peer}: {e:#}")),
        }
    }
}

/// Copy both ways until either side closes, then let the forwarder finish.
async fn copy(mut conn: TcpStream, forwarder: Portforwarder, mut stream: DuplexStream) {
    let _ = conn.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut stream).await;
    drop(stream);
    let _ = forwarder.join().await;
}

fn text(r: &ConnectReport) -> String {
    format!(
        "forwarding {}:{} to pod {}/{} (Ctrl-C to stop)\n{}",
        r.host,
        r.port,
        r.namespace,
        r.pod,
        super::expose::details(&r.host, r.port, &r.database, &r.users)
    )
}
