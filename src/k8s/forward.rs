//! A port-forward to one port of a pod (kube `ws`), as a byte stream: what `Db::connect` speaks
//! PostgreSQL over and what `connect` copies a local connection into.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Portforwarder};
use tokio::io::DuplexStream;

use super::client::{Kube, api_error};

/// Open a port-forward to `port` of `pod`; keep the forwarder alive as long as the stream is used.
pub async fn open(kube: &Kube, pod: &str, port: u16) -> Result<(Portforwarder, DuplexStream)> {
    // The streams' client: a session may be quiet for as long as its user is.
    let api: Api<Pod> = Api::namespaced(kube.streams.clone(), &kube.namespace);
    let mut forwarder = api.portforward(pod, &[port]).await.map_err(|e| {
        api_error(
            e,
            &format!("opening a port-forward to pod {pod}"),
            &kube.server,
        )
    })?;
    let stream = forwarder
        .take_stream(port)
        .context("the port-forward has no stream for the port (a bug)")?;
    Ok((forwarder, stream))
}
