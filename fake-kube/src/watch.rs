//! Watch, as the API server does it: `GET …?watch=true&resourceVersion=RV` streams one JSON event
//! per line — `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": …}` — for every change after RV that
//! matches the label and field selectors, until `timeoutSeconds` or the client goes. Without a
//! resourceVersion (or "0") it first sends the current objects as ADDED. A resourceVersion older
//! than the remembered history gets an ERROR event with the 410 Expired Status, as from a server
//! whose watch cache has moved on (the client lists again).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Shared;
use crate::resources::ResourceInfo;
use crate::select::{FieldSelector, LabelSelector};
use crate::status::ApiError;

pub struct Request {
    pub info: &'static ResourceInfo,
    /// Empty: every namespace.
    pub namespace: String,
    pub resource_version: Option<u64>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub timeout: Duration,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

impl Request {
    fn wants(&self, plural: &str, namespace: &str, object: &Value) -> bool {
        plural == self.info.plural
            && (self.namespace.is_empty() || self.namespace == namespace)
            && self.labels.matches(object.pointer("/metadata/labels"))
            && self.fields.matches(object)
    }
}

pub fn respond(cluster: Shared, req: Request) -> Response {
    let (first, last) = {
        let c = cluster.lock().expect("cluster lock");
        match req.resource_version {
            None | Some(0) => {
                let items = c.list(
                    req.info,
                    (!req.namespace.is_empty()).then_some(req.namespace.as_str()),
                    &req.labels,
                    &req.fields,
                );
                let lines: Vec<Bytes> = items["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| line("ADDED", o))
                    .collect();
                (lines, c.resource_version())
            }
            Some(rv) => {
                let oldest = c.history.front().map_or(c.resource_version(), |e| e.rv - 1);
                if rv < oldest {
                    let status = ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {rv} ({oldest})"),
                    )
                    .body();
                    return (
                        StatusCode::OK,
                        [("content-type", "application/json")],
                        line("ERROR", &status),
                    )
                        .into_response();
                }
                (vec![], rv)
            }
        }
    };
    let deadline = tokio::time::Instant::now() + req.timeout;
    let stream = futures_util::stream::unfold(
        (first, last, cluster, req),
        move |(mut pending, mut last, cluster, req)| async move {
            loop {
                if !pending.is_empty() {
                    let next = pending.remove(0);
                    return Some((
                        Ok::<_, std::convert::Infallible>(next),
                        (pending, last, cluster, req),
                    ));
                }
                let notify = cluster.lock().expect("cluster lock").changed.clone();
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let c = cluster.lock().expect("cluster lock");
                    for e in c.history.iter().filter(|e| e.rv > last) {
                        if req.wants(e.plural, &e.namespace, &e.object) {
                            pending.push(line(e.kind, &e.object));
                        }
                    }
                    last = c.resource_version();
                }
                if !pending.is_empty() {
                    continue;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return None; // timeoutSeconds: the server ends the watch
                }
            }
        },
    );
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
