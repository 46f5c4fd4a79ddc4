//! Pod logs (`GET …/pods/{name}/log`), as the API server relays them from the kubelet: the
//! container's lines (the test writes them, `FakeKube::log`), or its previous instance's after a
//! restart (`FakeKube::restart_container`); `tailLines`, `sinceSeconds`, `timestamps`, and
//! `follow`, which keeps the response open and sends new lines until the pod goes.
//!
//! The real server's refusals: no such pod (404); a pod of several containers without
//! `container` (400, naming them); a container the pod does not have (400); a container that has
//! not started (400, its waiting reason); `previous` without a previous instance (400). A pod on
//! no node yet (not scheduled) is no refusal: 200 with an empty body.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;

use crate::status::ApiError;
use crate::store::{Cluster, info_of};
use crate::{Shared, error, query_pairs, query_value};

/// One container's log: its lines (time, text), and those of the instance before its last restart.
#[derive(Debug, Default, Clone)]
pub struct ContainerLog {
    pub current: Vec<(jiff::Timestamp, String)>,
    pub previous: Option<Vec<(jiff::Timestamp, String)>>,
}

/// (namespace, pod, container).
pub type LogKey = (String, String, String);

#[derive(Debug, Clone)]
struct Options {
    container: String,
    previous: bool,
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
    since: Option<jiff::Timestamp>,
}

pub async fn handle(
    State(cluster): State<Shared>,
    Path((ns, pod)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let query = query_pairs(&uri);
    let q = |k: &str| query_value(&query, k);
    let flag = |k: &str| q(k).is_some_and(|v| v == "true");
    let number = |k: &str| -> Result<Option<i64>, ApiError> {
        match q(k) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("{k}: Invalid value: \"{v}\": must be an integer"))
            }),
        }
    };
    let (tail, since) = match (number("tailLines"), number("sinceSeconds")) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => return error(e),
    };
    if let Some(s) = since
        && s < 1
    {
        return error(ApiError::new(
            422,
            "Invalid",
            "PodLogOptions \"\" is invalid: sinceSeconds: Invalid value: must be greater than 0",
        ));
    }
    let options = {
        let c = cluster.lock().expect("cluster lock");
        match container_of(&c, &ns, &pod, q("container")) {
            Ok(container) => Options {
                container,
                previous: flag("previous"),
                follow: flag("follow"),
                timestamps: flag("timestamps"),
                tail: tail.map(|t| t.max(0) as usize),
                since: since.map(|s| jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s)),
            },
            Err(e) => return error(e),
        }
    };
    // A pod on no node yet has no kubelet to ask: the real server answers 200 with nothing.
    let unscheduled = cluster
        .lock()
        .expect("cluster lock")
        .get(info_of("Pod"), &ns, &pod)
        .is_ok_and(|p| p.pointer("/spec/nodeName").is_none());
    if unscheduled {
        return text(StatusCode::OK, Body::empty());
    }
    let key = (ns.clone(), pod.clone(), options.container.clone());
    let first = {
        let c = cluster.lock().expect("cluster lock");
        let log = c.logs.get(&key).cloned().unwrap_or_default();
        if options.previous && log.previous.is_none() {
            return error(ApiError::bad_request(format!(
                "previous terminated container \"{}\" in pod \"{pod}\" not found",
                options.container
            )));
        }
        let lines = if options.previous {
            log.previous.unwrap_or_default()
        } else {
            log.current
        };
        select(&lines, &options)
    };
    let start = first.len();
    if !options.follow || options.previous {
        return text(StatusCode::OK, Body::from(render(&first, &options)));
    }
    let cuts = cluster.lock().expect("cluster lock").cuts;
    // Follow: what there is, then each new line until the pod goes (or the client does); a cut
    // (`FakeKube::cut_streams`) breaks the body off.
    let body = futures_util::stream::unfold(
        (cluster, key, options, Some(first), start),
        move |(cluster, key, options, first, mut sent)| async move {
            if let Some(first) = first {
                let chunk = render(&first, &options);
                return Some((
                    Ok::<_, std::io::Error>(chunk),
                    (cluster, key, options, None, sent),
                ));
            }
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let c = cluster.lock().expect("cluster lock");
                if c.cuts != cuts {
                    drop(c);
                    let broken = std::io::Error::other("the test cut the stream");
                    return Some((Err(broken), (cluster, key, options, None, sent)));
                }
                let gone = c.get(info_of("Pod"), &key.0, &key.1).is_err();
                let lines = c
                    .logs
                    .get(&key)
                    .map(|l| l.current.clone())
                    .unwrap_or_default();
                drop(c);
                // A restart begins a new log: the follower of the old instance ends.
                if lines.len() < sent || gone {
                    return None;
                }
                if lines.len() > sent {
                    let new = lines[sent..].to_vec();
                    sent = lines.len();
                    let chunk = render(&new, &options);
                    return Some((Ok(chunk), (cluster, key, options, None, sent)));
                }
            }
        },
    );
    text(StatusCode::OK, Body::from_stream(body))
}

/// The container a log request is about, as the real server picks and refuses it.
fn container_of(
    c: &Cluster,
    ns: &str,
    pod: &str,
    asked: Option<String>,
) -> Result<String, ApiError> {
    if c.is_denied_named("get", "", "pods/log", ns, pod) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "pods \"{pod}\" is forbidden: User \"{}\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"{ns}\"",
                crate::USER
            ),
        ));
    }
    let found = c.get(info_of("Pod"), ns, pod)?;
    let names: Vec<String> = found
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match asked {
        Some(name) if names.contains(&name) => name,
        Some(name) => {
            return Err(ApiError::bad_request(format!(
                "container {name} is not valid for pod {pod}"
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let phase = found
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    if phase == "Pending" && found.pointer("/spec/nodeName").is_some() {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
        )));
    }
    Ok(container)
}

fn select(lines: &[(jiff::Timestamp, String)], o: &Options) -> Vec<(jiff::Timestamp, String)> {
    let recent: Vec<_> = lines
        .iter()
        .filter(|(t, _)| o.since.is_none_or(|s| *t >= s))
        .cloned()
        .collect();
    match o.tail {
        Some(n) if n < recent.len() => recent[recent.len() - n..].to_vec(),
        _ => recent,
    }
}

fn render(lines: &[(jiff::Timestamp, String)], o: &Options) -> String {
    lines
        .iter()
        .map(|(t, line)| {
            if o.timestamps {
                format!("{} {line}\n", t.strftime("%Y-%m-%dT%H:%M:%S%.9fZ"))
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

fn text(status: StatusCode, body: Body) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body)
        .expect("a valid response")
}
