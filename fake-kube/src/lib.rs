//! A fake Kubernetes API server on loopback, for phonebill-db's tests (not shipped).
//!
//! The tool reaches it through an ordinary kubeconfig (`FakeKube::write_kubeconfig`: HTTPS, the
//! cluster's CA, a client certificate), so the real kube client, config loading, TLS and request
//! shapes are exercised. It follows the API conventions for what the tool uses (see `store`,
//! `fields`, `select`, `validate`, `watch`, `kubelet`, `serve`); where it departs from the real
//! server, the module that departs says so. Known departures:
//! - list merge keys are taken to be `name` for every list of named items (`fields`);
//! - no watch bookmarks; no admission webhooks; field selectors accept any path.

pub mod exec;
pub mod fields;
pub mod jobs;
pub mod kubelet;
pub mod logs;
pub mod metrics;
pub mod portforward;
pub mod resources;
pub mod scale;
pub mod select;
pub mod serve;
pub mod status;
pub mod store;
pub mod validate;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use kubelet::{
    ExpansionBehavior, LoadBalancerBehavior, PodBehavior, PullFailure, SnapshotBehavior,
    VolumeBehavior, VolumeEvent,
};
use resources::{RESOURCES, ResourceInfo};
use select::{FieldSelector, LabelSelector};
pub use serve::Fault;
use status::ApiError;
use store::{Cluster, PodRoute, WriteOpts, info_of};

pub const TOKEN: &str = "fake-token";
/// The one user of the fake: its client certificate's CN, and whom the token stands for too.
pub const USER: &str = "fake-user";

pub(crate) type Shared = Arc<Mutex<Cluster>>;

/// A running fake API server. Dropping it stops the server and the kubelet.
pub struct FakeKube {
    pub url: String,
    credentials: serve::Credentials,
    cluster: Shared,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeKube {
    /// An AKS-like cluster: namespaces `default` and `kube-system`, AKS's built-in StorageClasses
    /// (not `managed-standard`), the kubelet making pods Ready after 300 ms.
    pub async fn start() -> FakeKube {
        let cluster: Shared = Arc::new(Mutex::new(Cluster::default()));
        {
            let mut c = cluster.lock().expect("fresh lock");
            let opts = WriteOpts {
                manager: "kube-apiserver",
                dry_run: false,
            };
            for ns in ["default", "kube-system"] {
                c.create(
                    info_of("Namespace"),
                    "",
                    json!({"metadata": {"name": ns}}),
                    &opts,
                )
                .expect("seed namespace");
            }
            for sc in [
                "default",
                "managed-csi",
                "managed-csi-premium",
                "azurefile-csi",
            ] {
                c.create(info_of("StorageClass"), "", storage_class(sc), &opts)
                    .expect("seed storage class");
            }
            kubelet::tick(&mut c); // the node and the controllers' first look, part of the seed
            c.writes.clear(); // tests count writes of the tool, not the seed
        }
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind loopback");
        let url = format!("https://{}", listener.local_addr().expect("local addr"));
        let (tls, credentials) = serve::certificates();
        let app = Router::new()
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}/portforward",
                axum::routing::get(portforward::handle),
            )
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}/log",
                axum::routing::get(logs::handle),
            )
            .route(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}",
                axum::routing::get(metrics::handle),
            )
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}/exec",
                axum::routing::get(exec::handle).post(exec::handle),
            )
            .fallback(handle)
            .layer(axum::middleware::from_fn_with_state(
                cluster.clone(),
                serve::faults,
            ))
            .layer(axum::middleware::from_fn(serve::authenticate))
            .with_state(cluster.clone());
        let server = tokio::spawn(serve::run(listener, tls, app));
        let kc = cluster.clone();
        let kubelet = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                kubelet::tick(&mut kc.lock().expect("cluster lock"));
            }
        });
        FakeKube {
            url,
            credentials,
            cluster,
            tasks: vec![server, kubelet],
        }
    }

    /// A kubeconfig whose current context (`fake`) points at this server: its CA, and the test
    /// user's client certificate (as `az aks get-credentials --admin` writes one).
    pub fn write_kubeconfig(&self, path: &Path) {
        use base64::Engine;
        let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
        let c = &self.credentials;
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake-user\nusers:\n- name: fake-user\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            self.url,
            b64(&c.ca),
            b64(&c.client_cert),
            b64(&c.client_key)
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    /// The cluster's CA (PEM), e.g. for a kubeconfig a test writes itself.
    pub fn ca_pem(&self) -> String {
        self.credentials.ca.clone()
    }

    /// The next `times` requests whose path contains `path` (and whose method is `method`, if
    /// given) get `fault` instead of their answer.
    pub fn inject(&self, path: &str, method: Option<&str>, times: usize, fault: Fault) {
        self.cluster().faults.push(serve::Injected {
            path: path.into(),
            method: method.map(str::to_string),
            remaining: times,
            fault,
        });
    }

    /// How many requests ("METHOD /path?query") contained `text` so far.
    /// The requests ("METHOD /path?query") that contain `text`.
    pub fn requests_with(&self, text: &str) -> Vec<String> {
        self.cluster()
            .requests
            .iter()
            .filter(|r| r.contains(text))
            .cloned()
            .collect()
    }

    pub fn requests_matching(&self, text: &str) -> usize {
        self.cluster()
            .requests
            .iter()
            .filter(|r| r.contains(text))
            .count()
    }

    /// Injected faults not yet used up.
    pub fn faults_left(&self) -> usize {
        self.cluster().faults.iter().map(|f| f.remaining).sum()
    }

    /// Direct access to the cluster state, for arranging and asserting.
    pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().expect("cluster lock")
    }

    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.cluster().get(info_of(kind), ns, name).ok()
    }

    pub fn list(&self, kind: &str, ns: &str) -> Vec<Value> {
        let list = self.cluster().list(
            info_of(kind),
            Some(ns),
            &LabelSelector::default(),
            &FieldSelector::default(),
        );
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// "Kind/name" of every object in a namespace, sorted (events and endpoint slices left out).
    pub fn inventory(&self, ns: &str) -> Vec<String> {
        let c = self.cluster();
        let mut out: Vec<String> = c
            .objects
            .iter()
            .filter(|((plural, n, _), _)| {
                n == ns && *plural != "events" && *plural != "endpointslices"
            })
            .map(|(_, e)| {
                format!(
                    "{}/{}",
                    e.obj["kind"].as_str().unwrap_or_default(),
                    e.obj["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Make `verb` on `resource` (in API `group`) forbidden for the test user, everywhere.
    /// Every denial lifted: the test user may do anything again.
    pub fn allow_all(&self) {
        let mut c = self.cluster();
        c.denied.clear();
        c.only_namespace = None;
        c.allowed_only = None;
        c.allowed_cluster.clear();
    }

    pub fn deny(&self, verb: &str, group: &str, resource: &str) {
        self.cluster()
            .denied
            .push((verb.into(), group.into(), resource.into(), None));
    }

    /// Make `verb` on `resource` forbidden in namespace `ns` only ("" for the cluster scope).
    pub fn deny_in(&self, ns: &str, verb: &str, group: &str, resource: &str) {
        self.cluster()
            .denied
            .push((verb.into(), group.into(), resource.into(), Some(ns.into())));
    }

    /// The test user's rights are a Role in `ns` only (`kubectl create rolebinding … -n ns`):
    /// anything outside it and every cluster-scoped resource is forbidden.
    pub fn only_namespace(&self, ns: &str) {
        self.cluster().only_namespace = Some(ns.into());
    }

    /// Port-forwards to `port` of any running pod reach `target` (e.g. the throwaway PostgreSQL).
    pub fn forward_port(&self, port: u16, target: SocketAddr) {
        self.cluster().forwards.insert(port, target);
    }

    /// Environment of commands run by pod exec (they run on this machine), e.g. the throwaway
    /// PostgreSQL's PGHOST/PGPORT/PGPASSWORD and a PATH that finds its tools.
    pub fn exec_env(&self, env: &[(&str, &str)]) {
        self.cluster().exec_env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// A line a pod's container prints (now).
    pub fn log(&self, ns: &str, pod: &str, container: &str, line: &str) {
        self.cluster()
            .logs
            .entry((ns.into(), pod.into(), container.into()))
            .or_default()
            .current
            .push((jiff::Timestamp::now(), line.into()));
    }

    /// A line printed `ago` (for `--since`).
    pub fn log_at(&self, ns: &str, pod: &str, container: &str, ago: Duration, line: &str) {
        let at =
            jiff::Timestamp::now() - jiff::SignedDuration::try_from(ago).expect("a short time");
        let mut c = self.cluster();
        let log = c
            .logs
            .entry((ns.into(), pod.into(), container.into()))
            .or_default();
        log.current.push((at, line.into()));
        log.current.sort_by_key(|(t, _)| *t);
    }

    /// What a container uses now, as the metrics API reports it (default 64Mi).
    pub fn set_pod_memory(&self, ns: &str, pod: &str, container: &str, bytes: u64) {
        self.cluster()
            .kubelet
            .memory
            .insert((ns.into(), pod.into(), container.into()), bytes);
    }

    /// The resource metrics API is there (metrics-server, as on AKS) or not (404).
    pub fn set_metrics_api(&self, on: bool) {
        self.cluster().kubelet.metrics_api = on;
    }

    /// The container ended `times` times (`reason`, `exit_code`) and the kubelet restarted it:
    /// its restartCount grows and lastState says how the last one ended; what it printed is the
    /// previous instance's log.
    pub fn crash_container(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        reason: &str,
        exit_code: i32,
        times: i64,
    ) {
        self.restart_container(ns, pod, container);
        let mut c = self.cluster();
        let mut p = c.get(info_of("Pod"), ns, pod).expect("the pod exists");
        let statuses = p
            .pointer_mut("/status/containerStatuses")
            .and_then(Value::as_array_mut)
            .expect("a started pod");
        let st = statuses
            .iter_mut()
            .find(|s| s["name"] == container)
            .expect("the container");
        let count = st["restartCount"].as_i64().unwrap_or(0) + times;
        st["restartCount"] = json!(count);
        st["lastState"] = json!({"terminated": {"exitCode": exit_code, "reason": reason,
            "startedAt": store::now(), "finishedAt": store::now()}});
        c.system_write(info_of("Pod"), ns, p);
    }

    /// The container restarted: what it printed is now the previous instance's log.
    pub fn restart_container(&self, ns: &str, pod: &str, container: &str) {
        let mut c = self.cluster();
        let log = c
            .logs
            .entry((ns.into(), pod.into(), container.into()))
            .or_default();
        log.previous = Some(std::mem::take(&mut log.current));
    }

    /// Every exec, port-forward and followed log open now is cut off, as a connection that dies
    /// does: the socket closed without a closing handshake or a Status, a log's body broken off.
    pub fn cut_streams(&self) {
        let mut c = self.cluster();
        c.cuts += 1;
        c.cut.notify_waiters();
    }

    /// The next port-forward whose client sends `bytes` (e.g. a `COMMIT`) delivers them to the pod,
    /// then is cut off before any answer: the statement runs, its outcome unknown to the client.
    /// The `refuse` port-forwards after the cut are refused (403), as if the first looks at what
    /// happened failed too.
    pub fn cut_forward_after(&self, bytes: &str, refuse: usize) {
        self.cluster().cut_after = Some((bytes.as_bytes().to_vec(), refuse));
    }

    /// The terminal sizes TTY exec sessions were given, oldest first.
    pub fn exec_resizes(&self) -> Vec<(u16, u16)> {
        self.cluster().exec_resizes.clone()
    }

    /// What the CSI resizer does with claims that grow (default: online).
    pub fn set_expansion(&self, behavior: ExpansionBehavior) {
        self.cluster().kubelet.expansion = behavior;
    }

    pub fn set_pods(&self, behavior: PodBehavior) {
        self.cluster().kubelet.pods = behavior;
    }

    /// How long a deleted pod takes to terminate (default 200 ms).
    pub fn set_termination(&self, grace: Duration) {
        self.cluster().kubelet.termination = grace;
    }

    /// The node's kubelet answers (true) or is lost (false: NotReady, deleted pods stay terminating).
    pub fn set_node_ready(&self, ready: bool) {
        self.cluster().kubelet.node_ready = ready;
    }

    /// The test user's only rights are `rules` (a Role's, as JSON) in namespace `ns`: what a
    /// workload bound to that Role may do.
    pub fn allow_only(&self, ns: &str, rules: Value) {
        self.allow_only_with_cluster(ns, rules, Value::Null);
    }

    /// [`FakeKube::allow_only`], and `cluster_rules` (a ClusterRole's) everywhere, as a
    /// ClusterRoleBinding grants them.
    pub fn allow_only_with_cluster(&self, ns: &str, rules: Value, cluster_rules: Value) {
        let mut c = self.cluster();
        c.allowed_only = Some((ns.into(), rules.as_array().cloned().unwrap_or_default()));
        c.allowed_cluster = cluster_rules.as_array().cloned().unwrap_or_default();
    }

    /// What the CronJob controller does when `cronjob` fires: a Job owned by it, run to success or
    /// failure at once, and the CronJob's status (lastScheduleTime, lastSuccessfulTime).
    pub fn cronjob_ran(&self, ns: &str, cronjob: &str, succeeded: bool) -> String {
        let mut c = self.cluster();
        let cj = c
            .get(info_of("CronJob"), ns, cronjob)
            .expect("the CronJob exists");
        let n = c
            .objects
            .keys()
            .filter(|(p, n, _)| *p == "jobs" && n == ns)
            .count()
            + 1;
        let name = format!("{cronjob}-{:08}", 29_000_000 + n);
        let t = store::now();
        let condition = if succeeded { "Complete" } else { "Failed" };
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": cj.pointer("/spec/jobTemplate/metadata/labels").cloned().unwrap_or_default(),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob,
                    "uid": cj["metadata"]["uid"], "controller": true}]},
            "spec": cj.pointer("/spec/jobTemplate/spec").cloned().unwrap_or_default(),
            "status": {"startTime": t, "completionTime": t,
                "succeeded": if succeeded { 1 } else { 0 }, "failed": if succeeded { 0 } else { 1 },
                "conditions": [{"type": condition, "status": "True", "lastTransitionTime": t}]}});
        c.system_write(info_of("Job"), ns, job);
        let mut cj = cj;
        cj["status"]["lastScheduleTime"] = json!(t);
        if succeeded {
            cj["status"]["lastSuccessfulTime"] = json!(t);
        }
        c.system_write(info_of("CronJob"), ns, cj);
        name
    }

    /// Data events (snapshots cut, claims made from snapshots) from now on: the test makes its
    /// stand-in data follow each, then acknowledges it with the returned [`VolumeAck`]; until then
    /// the snapshot is not ready and the claim not bound.
    pub fn volume_events(&self) -> (std::sync::mpsc::Receiver<VolumeEvent>, VolumeAck) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.cluster().kubelet.volume_hook = Some(tx);
        (rx, VolumeAck(self.cluster.clone()))
    }

    /// Job pods whose container is `image` do not pull it, for this reason.
    pub fn fail_job_pulls(&self, image: &str, failure: PullFailure) {
        self.cluster()
            .kubelet
            .jobs
            .pull_failures
            .insert(image.into(), failure);
    }

    /// What Job pods' containers do from now on: `runner` gets the pod and gives its exit code
    /// and output (the container's log); it runs in a thread of its own.
    pub fn run_jobs_with(&self, runner: jobs::JobRunner) {
        self.cluster().kubelet.jobs.runner = Some(runner);
    }

    /// Provisioning a claim from `snapshot` fails from now on (None: it works again).
    pub fn fail_restore_from(&self, snapshot: Option<&str>) {
        self.cluster().kubelet.fail_restore_from = snapshot.map(str::to_string);
    }

    /// The pod `ns/pod` stands for a server of its own (e.g. the second StatefulSet of an
    /// upgrade): its port-forwards to `port` reach `target`, its exec commands run with `env`.
    pub fn route_pod(
        &self,
        ns: &str,
        pod: &str,
        port: u16,
        target: SocketAddr,
        env: &[(&str, &str)],
    ) {
        let route = PodRoute {
            forwards: [(port, target)].into_iter().collect(),
            exec_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.cluster()
            .pod_routes
            .insert((ns.into(), pod.into()), route);
    }

    /// The kubelet does not start the pod `ns/pod` (its containers stay waiting in
    /// ContainerCreating) until [`FakeKube::release_pod`]: a test prepares what stands for it.
    pub fn hold_pod(&self, ns: &str, pod: &str) {
        self.cluster().kubelet.held.insert(format!("{ns}/{pod}"));
    }

    pub fn release_pod(&self, ns: &str, pod: &str) {
        self.cluster().kubelet.held.remove(&format!("{ns}/{pod}"));
    }

    /// The address pods get from now on (`status.podIP`).
    pub fn set_pod_ip(&self, ip: &str) {
        self.cluster().kubelet.pod_ip = ip.into();
    }

    pub fn set_load_balancers(&self, behavior: LoadBalancerBehavior) {
        self.cluster().kubelet.load_balancers = behavior;
    }

    pub fn set_snapshots(&self, behavior: SnapshotBehavior) {
        self.cluster().kubelet.snapshots = behavior;
    }

    pub fn set_volumes(&self, behavior: VolumeBehavior) {
        self.cluster().kubelet.volumes = behavior;
    }

    pub fn add_storage_class(&self, name: &str) {
        let opts = WriteOpts {
            manager: "test",
            dry_run: false,
        };
        self.cluster()
            .create(info_of("StorageClass"), "", storage_class(name), &opts)
            .expect("add storage class");
    }

    /// A VolumeSnapshotClass for the Azure disk CSI driver, as a cluster admin applies it.
    pub fn add_snapshot_class(&self, name: &str) {
        let class = json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": name}, "driver": "disk.csi.azure.com", "deletionPolicy": "Delete",
            "parameters": {"incremental": "true"}});
        self.create("", class).expect("add snapshot class");
    }

    /// Delete an object as a test would with kubectl (finalizers and grace as the store does).
    pub fn delete(&self, kind: &str, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.cluster().delete(info_of(kind), ns, name, false)
    }

    /// A JSON merge patch as a test would send it with `kubectl patch --type merge`.
    pub fn merge_patch(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        self.cluster().merge_patch(
            info_of(kind),
            ns,
            name,
            &patch,
            false,
            &WriteOpts {
                manager: "kubectl",
                dry_run: false,
            },
        )
    }

    /// Create an object as a test would with kubectl (field manager `kubectl`).
    pub fn create(&self, ns: &str, obj: Value) -> Result<Value, ApiError> {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        self.cluster().create(
            info_of(&kind),
            ns,
            obj,
            &WriteOpts {
                manager: "kubectl",
                dry_run: false,
            },
        )
    }
}

/// Acknowledges volume events: the data followed (`FakeKube::volume_events`).
#[derive(Clone)]
pub struct VolumeAck(Shared);

impl VolumeAck {
    pub fn done(&self, event: &VolumeEvent) {
        let id = match event {
            VolumeEvent::Snapshot { id, .. } | VolumeEvent::Restore { id, .. } => id.clone(),
        };
        let mut c = self.0.lock().expect("cluster lock");
        c.kubelet.volume_pending.remove(&id);
        c.kubelet.volume_done.insert(id);
    }
}

fn storage_class(name: &str) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
        "provisioner": "disk.csi.azure.com", "parameters": {"skuName": "StandardSSD_LRS"},
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true})
}

fn reply(code: StatusCode, body: Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn error(e: ApiError) -> Response {
    reply(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.body(),
    )
}

/// The query string's key/value pairs (kube sends `?&ports=…`: empty pairs are skipped).
pub(crate) fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default()
}

/// The first value of `key` in a query's pairs.
pub(crate) fn query_value(query: &[(String, String)], key: &str) -> Option<String> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The pod a streaming subresource (`pods/exec`, `pods/portforward`) connects to: the 403 the
/// real server gives a user denied `create` on it, 404 for a missing pod, and 400 (as the kubelet
/// fails the upgrade) for a pod that is not running.
pub(crate) fn running_pod(
    c: &Cluster,
    ns: &str,
    pod: &str,
    resource: &str,
) -> Result<Value, ApiError> {
    if c.is_denied_named("create", "", resource, ns, pod) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "pods \"{pod}\" is forbidden: User \"fake-user\" cannot create resource \"{resource}\" in API group \"\" in the namespace \"{ns}\""
            ),
        ));
    }
    let found = c.get(info_of("Pod"), ns, pod)?;
    let phase = found
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    if phase != "Running" || found.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: pod {pod} is not running (phase {phase})"
        )));
    }
    Ok(found)
}

/// A parsed request path.
struct Target {
    info: &'static ResourceInfo,
    namespace: String,
    name: Option<String>,
    status: bool,
    /// The `scale` subresource (an autoscaling/v1 Scale in, a Scale out).
    scale: bool,
}

async fn handle(
    State(cluster): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query_pairs(&uri);
    let q = |k: &str| query_value(&query, k);
    let path = uri.path().trim_end_matches('/');
    if method == Method::GET
        && let Some(doc) = discovery(path)
    {
        return reply(StatusCode::OK, doc);
    }
    let target = match parse_path(path) {
        Ok(t) => t,
        Err(e) => return error(e),
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let raw_body = body.clone();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body).or_else(|_| serde_yaml::from_slice(&body)) {
            Ok(v) => v,
            Err(e) => {
                return error(ApiError::bad_request(format!(
                    "the body is neither JSON nor YAML: {e}"
                )));
            }
        }
    };
    // dryRun comes as a query parameter, or for DELETE inside the DeleteOptions body (as kube sends it).
    let dry_run = q("dryRun").as_deref() == Some("All")
        || (method == Method::DELETE
            && body
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All")));
    let manager = q("fieldManager").unwrap_or_else(|| "unknown".into());
    let opts = WriteOpts {
        manager: &manager,
        dry_run,
    };
    let info = target.info;
    let ns = target.namespace.as_str();
    if method == Method::GET
        && target.name.is_none()
        && q("watch").is_some_and(|w| w == "true" || w == "1")
    {
        if let Err(e) = cluster
            .lock()
            .expect("cluster lock")
            .check_denied("watch", info, ns, "")
        {
            return error(e);
        }
        let (labels, fields) = match selectors(&q) {
            Ok(s) => s,
            Err(e) => return error(e),
        };
        let resource_version = match q("resourceVersion").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match v.parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    return error(ApiError::bad_request(format!(
                        "resourceVersion: Invalid value: \"{v}\""
                    )));
                }
            },
        };
        let timeout = q("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map_or(Duration::from_secs(1800), Duration::from_secs);
        return watch::respond(
            cluster.clone(),
            watch::Request {
                info,
                namespace: if info.namespaced {
                    ns.to_string()
                } else {
                    String::new()
                },
                resource_version,
                labels,
                fields,
                timeout,
            },
        );
    }
    let mut c = cluster.lock().expect("cluster lock");

    let verb = match (&method, &target.name) {
        (&Method::GET, None) if q("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, None) => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => {
            return error(ApiError::new(
                405,
                "MethodNotAllowed",
                format!(
                    "the server does not allow this method on the requested resource ({method} {path})"
                ),
            ));
        }
    };
    if info.kind == "SelfSubjectReview" {
        if verb != "create" {
            return error(ApiError::new(
                405,
                "MethodNotAllowed",
                "selfsubjectreviews only support create",
            ));
        }
        if let Err(e) = typed_body(info, &body, &raw_body, false) {
            return error(e);
        }
        // Who is asking, as the authenticator saw them (one user here, by certificate or token).
        let mut answer = body.clone();
        answer["apiVersion"] = json!("authentication.k8s.io/v1");
        answer["kind"] = json!("SelfSubjectReview");
        answer["status"] =
            json!({"userInfo": {"username": USER, "groups": ["system:authenticated"]}});
        return reply(StatusCode::CREATED, answer);
    }
    if info.kind == "SelfSubjectAccessReview" {
        if verb != "create" {
            return error(ApiError::new(
                405,
                "MethodNotAllowed",
                "selfsubjectaccessreviews only support create",
            ));
        }
        if let Err(e) = typed_body(info, &body, &raw_body, false) {
            return error(e);
        }
        let attrs = body
            .pointer("/spec/resourceAttributes")
            .cloned()
            .unwrap_or_default();
        let field = |k: &str| {
            attrs
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let resource = match field("subresource").as_str() {
            "" => field("resource"),
            sub => format!("{}/{sub}", field("resource")),
        };
        // As the real authorizer: the review's own namespace ("" asks about the cluster scope).
        let allowed = !c.is_denied_named(
            &field("verb"),
            &field("group"),
            &resource,
            &field("namespace"),
            &field("name"),
        );
        let mut answer = body.clone();
        answer["apiVersion"] = json!("authorization.k8s.io/v1");
        answer["kind"] = json!("SelfSubjectAccessReview");
        answer["status"] = if allowed {
            json!({"allowed": true, "reason": "fake: allowed"})
        } else {
            json!({"allowed": false, "denied": true, "reason": "fake: denied by the test"})
        };
        return reply(StatusCode::CREATED, answer);
    }
    if target.scale {
        let name = target.name.as_deref().unwrap_or_default();
        return match scale::handle(&mut c, verb, info, ns, name, &body, &content_type, &opts) {
            Ok(scale) => reply(StatusCode::OK, scale),
            Err(e) => error(e),
        };
    }
    if let Err(e) = c.check_denied(verb, info, ns, target.name.as_deref().unwrap_or_default()) {
        return error(e);
    }
    let apply = content_type.starts_with("application/apply-patch");
    if (matches!(verb, "create" | "update") || (verb == "patch" && apply && !target.status))
        && let Err(e) = typed_body(info, &body, &raw_body, verb == "patch")
    {
        return error(e);
    }
    // RBAC's escalation prevention judges the object as it would be stored.
    if matches!(info.kind, "Role" | "RoleBinding") && matches!(verb, "create" | "update" | "patch")
    {
        let name = target.name.clone().unwrap_or_default();
        let probe = WriteOpts {
            manager: &manager,
            dry_run: true,
        };
        let would = match verb {
            "patch" if apply => c.apply(info, ns, &name, body.clone(), true, &probe),
            "patch" => c.merge_patch(info, ns, &name, &body, false, &probe),
            _ => Ok(body.clone()),
        };
        if let Err(e) = would.and_then(|obj| c.confirm_no_escalation(info, ns, &obj)) {
            return error(e);
        }
    }
    let result = match verb {
        "watch" => unreachable!("answered above"),
        "list" => {
            let (labels, fields) = match selectors(&q) {
                Ok(s) => s,
                Err(e) => return error(e),
            };
            Ok((
                StatusCode::OK,
                c.list(
                    info,
                    info.namespaced.then_some(ns).filter(|n| !n.is_empty()),
                    &labels,
                    &fields,
                ),
            ))
        }
        "get" => c
            .get(info, ns, target.name.as_deref().unwrap_or_default())
            .map(|o| (StatusCode::OK, o)),
        "create" => c
            .create(info, ns, body, &opts)
            .map(|o| (StatusCode::CREATED, o)),
        "update" => c
            .replace(
                info,
                ns,
                target.name.as_deref().unwrap_or_default(),
                body,
                target.status,
                &opts,
            )
            .map(|o| (StatusCode::OK, o)),
        "patch" => {
            let name = target.name.clone().unwrap_or_default();
            let existed = c.get(info, ns, &name).is_ok();
            let r = if apply {
                if target.status {
                    Err(ApiError::bad_request(
                        "apply to the status subresource is not implemented by this fake",
                    ))
                } else if q("fieldManager").is_none() {
                    Err(ApiError::bad_request(
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    ))
                } else {
                    c.apply(
                        info,
                        ns,
                        &name,
                        body,
                        q("force").as_deref() == Some("true"),
                        &opts,
                    )
                }
            } else if content_type.starts_with("application/merge-patch+json")
                || content_type.starts_with("application/strategic-merge-patch+json")
            {
                // Strategic merge is treated as a JSON merge patch (the tool sends none).
                c.merge_patch(info, ns, &name, &body, target.status, &opts)
            } else {
                Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
                    ),
                ))
            };
            r.map(|o| {
                (
                    if existed || dry_run {
                        StatusCode::OK
                    } else {
                        StatusCode::CREATED
                    },
                    o,
                )
            })
        }
        "delete" => {
            let name = target.name.as_deref().unwrap_or_default();
            // propagationPolicy Orphan: the dependents stay, without their owner reference (the
            // real garbage collector does this behind an `orphan` finalizer; here at once).
            let orphan = q("propagationPolicy").as_deref() == Some("Orphan")
                || body.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan");
            if orphan && !dry_run {
                c.orphan_dependents(info, ns, name);
            }
            c.delete(info, ns, name, dry_run)
                .map(|o| (StatusCode::OK, o))
        }
        "deletecollection" => {
            let labels = match LabelSelector::parse(&q("labelSelector").unwrap_or_default()) {
                Ok(s) => s,
                Err(e) => return error(e),
            };
            let list = c.list(info, Some(ns), &labels, &FieldSelector::default());
            for item in list["items"].as_array().into_iter().flatten() {
                let _ = c.delete(
                    info,
                    ns,
                    item["metadata"]["name"].as_str().unwrap_or_default(),
                    dry_run,
                );
            }
            Ok((StatusCode::OK, list))
        }
        _ => unreachable!("verbs are matched above"),
    };
    match result {
        Ok((code, body)) => reply(code, body),
        Err(e) => error(e),
    }
}

/// A body's apiVersion and kind against the URL's resource, as the API server decodes it: a
/// server-side apply must carry both; a create or update of a custom resource (no built-in type to
/// default them from) too; and what a body says must match the URL. The messages are the real
/// server's (`transformDecodeError` in the apiserver's handlers).
fn typed_body(info: &ResourceInfo, body: &Value, raw: &[u8], apply: bool) -> Result<(), ApiError> {
    let summary = {
        let text = String::from_utf8_lossy(raw);
        if text.len() > 30 {
            format!(
                "{} ...",
                &text[..text.char_indices().nth(30).map_or(text.len(), |(i, _)| i)]
            )
        } else {
            text.into_owned()
        }
    };
    // The custom resources (CRDs) this fake serves: nothing to default a missing kind from.
    let custom = info.group == "snapshot.storage.k8s.io";
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    let version = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind.is_empty() && (apply || custom) {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): Object 'Kind' is missing in '{summary}' ({summary})",
            info.kind
        )));
    }
    if version.is_empty() && (apply || custom) {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): Object 'apiVersion' is missing in '{summary}' ({summary})",
            info.kind
        )));
    }
    if (!kind.is_empty() && kind != info.kind)
        || (!version.is_empty() && version != info.api_version())
    {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {}: the body's kind and apiVersion must be {} {}",
            info.kind,
            info.api_version(),
            info.kind
        )));
    }
    Ok(())
}

/// The request's label and field selectors (empty when not given).
fn selectors(
    q: &impl Fn(&str) -> Option<String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    Ok((
        LabelSelector::parse(&q("labelSelector").unwrap_or_default())?,
        FieldSelector::parse(&q("fieldSelector").unwrap_or_default())?,
    ))
}

/// `/api/v1/...` or `/apis/GROUP/VERSION/...` → the resource, namespace, name and subresource.
fn parse_path(path: &str) -> Result<Target, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let find = |plural: &str| resources::find(group, version, plural).ok_or_else(not_found);
    let (info, namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if find(plural).is_ok_and(|i| i.namespaced) => {
            (find(plural)?, ns.to_string(), more)
        }
        [plural, more @ ..] => (find(plural)?, String::new(), more),
        [] => return Err(not_found()),
    };
    let (name, status, scale) = match rest {
        [] => (None, false, false),
        [name] => (Some(name.to_string()), false, false),
        [name, "status"] => (Some(name.to_string()), true, false),
        [name, "scale"] if scale::SCALABLE.contains(&info.kind) => {
            (Some(name.to_string()), false, true)
        }
        _ => return Err(not_found()),
    };
    Ok(Target {
        info,
        namespace,
        name,
        status,
        scale,
    })
}

fn discovery(path: &str) -> Option<Value> {
    match path {
        "/version" => Some(
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.2-fake", "gitCommit": "fake", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        "/api" => Some(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        "/apis" => {
            let mut groups: Vec<&str> = RESOURCES
                .iter()
                .map(|r| r.group)
                .filter(|g| !g.is_empty())
                .collect();
            groups.dedup();
            let groups: Vec<Value> = groups
                .iter()
                .map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        _ => {
            let gv = path
                .strip_prefix("/api/")
                .or_else(|| path.strip_prefix("/apis/"))?;
            let list: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.api_version() == gv)
                .map(|r| {
                    let verbs = if r.kind == "SelfSubjectAccessReview" { json!(["create"]) } else { json!(["create", "delete", "deletecollection", "get", "list", "patch", "update"]) };
                    json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs})
                })
                .collect();
            if list.is_empty() {
                return None;
            }
            Some(
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
            )
        }
    }
}
