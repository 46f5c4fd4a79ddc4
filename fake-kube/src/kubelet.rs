//! The fake's controllers and kubelet, driven by tests: the StatefulSet controller creates pods and
//! claims, the volume binder binds claims (or fails to), the kubelet moves pods Pending → Running →
//! Ready or fails them with a reason, garbage collection removes pods whose StatefulSet is gone,
//! and graceful deletion and the pvc-protection finalizer take a moment, as on a real cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::store::{Cluster, info_of, now};

/// What the kubelet does with the pods it gets.
#[derive(Debug, Clone, PartialEq)]
pub enum PodBehavior {
    /// Scheduled and running at once, Ready after `after` (PostgreSQL starting up).
    Ready { after: Duration },
    /// The image cannot be pulled: ErrImagePull, then ImagePullBackOff, for this reason.
    ImagePullError(PullFailure),
    /// The container exits with `exit_code` again and again: CrashLoopBackOff.
    CrashLoop { exit_code: i32, message: String },
    /// Running, but the readiness probe keeps failing.
    ProbeFailing,
    /// No node fits the pod's requests.
    Unschedulable,
    /// Nothing happens: the test sets pod status itself.
    Manual,
}

/// Why an image does not pull, as containerd tells the kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// No such image or tag in the registry.
    NotFound,
    /// The registry refuses the node's credentials (AKS: the ACR is not attached).
    Unauthorized,
    /// The registry's name does not resolve.
    NoSuchHost,
}

impl PullFailure {
    /// containerd's error for `image`, as the kubelet passes it on.
    pub fn message(self, image: &str) -> String {
        let registry = image.split('/').next().unwrap_or("docker.io");
        let (repo, tag) = image
            .split_once('/')
            .map_or((image, "latest"), |(_, rest)| {
                rest.rsplit_once(':').unwrap_or((rest, "latest"))
            });
        let resolve = format!(
            "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\""
        );
        match self {
            PullFailure::NotFound => {
                format!("rpc error: code = NotFound desc = {resolve}: {image}: not found")
            }
            PullFailure::Unauthorized => format!(
                "rpc error: code = Unknown desc = {resolve}: failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://{registry}/oauth2/token?scope=repository%3A{repo}%3Apull&service={registry}: 401 Unauthorized"
            ),
            PullFailure::NoSuchHost => format!(
                "rpc error: code = Unknown desc = {resolve}: failed to do request: Head \"https://{registry}/v2/{repo}/manifests/{tag}\": dial tcp: lookup {registry} on 168.63.129.16:53: no such host"
            ),
        }
    }
}

/// What the cloud's load-balancer controller does with Services of type LoadBalancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBalancerBehavior {
    #[default]
    Assign,
    /// Never gives an address (quota, subnet full).
    Never,
}

/// What the CSI snapshot controller does with a VolumeSnapshot of a Bound claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotBehavior {
    #[default]
    Ready,
    /// Never becomes ready (a slow or stuck driver).
    Never,
    /// Reports an error for the first `ticks` looks (50 ms each), then succeeds and clears it: a
    /// controller retrying after a throttled cloud call.
    TransientError { ticks: u32 },
    /// Reports this error for good (the controller keeps retrying and keeps failing).
    Failing(&'static str),
}

/// What happens to data as volumes are snapshotted and made from snapshots: the test hears of it
/// and does to its stand-in data (a database) what the disk would undergo, then acknowledges
/// (`VolumeAck`); only then is the snapshot ready, or the claim bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeEvent {
    /// A snapshot of `claim` is being cut: copy what the claim holds now.
    Snapshot {
        id: String,
        namespace: String,
        snapshot: String,
        claim: String,
    },
    /// A new `claim` is being made from `snapshot`: it holds what the snapshot held.
    Restore {
        id: String,
        namespace: String,
        claim: String,
        snapshot: String,
    },
}

/// Ask the test (if it listens) to make data follow a volume event; true once it has.
fn data_followed(c: &mut Cluster, event: VolumeEvent) -> bool {
    let id = match &event {
        VolumeEvent::Snapshot { id, .. } | VolumeEvent::Restore { id, .. } => id.clone(),
    };
    let Some(hook) = c.kubelet.volume_hook.clone() else {
        return true;
    };
    if c.kubelet.volume_done.contains(&id) {
        return true;
    }
    if c.kubelet.volume_pending.insert(id) {
        let _ = hook.send(event);
    }
    false
}

/// What the volume provisioner does with claims whose StorageClass exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeBehavior {
    Bind,
    /// The provisioner fails (e.g. a disk quota): claims stay Pending with ProvisioningFailed events.
    Fail,
}

/// What the CSI resizer does with a claim whose request grew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpansionBehavior {
    /// The disk and its file system grow while the pod runs.
    #[default]
    Online,
    /// The disk grows; the file system only when a pod starts on it again
    /// (`FileSystemResizePending` until then).
    Offline,
    /// The resizer keeps failing (VolumeResizeFailed events); the claim keeps its size.
    Fail,
}

#[derive(Debug)]
pub struct Kubelet {
    pub pods: PodBehavior,
    pub volumes: VolumeBehavior,
    pub snapshots: SnapshotBehavior,
    pub load_balancers: LoadBalancerBehavior,
    /// How long a deleted pod takes to terminate.
    pub termination: Duration,
    /// Provisioning a claim from this snapshot fails (the disk cannot be made from it).
    pub fail_restore_from: Option<String>,
    pub expansion: ExpansionBehavior,
    /// Claims whose file system waits for a new pod: (namespace/claim) → the pod's uid then.
    resize_pending: BTreeMap<String, String>,
    /// Where data events go (`FakeKube::volume_events`): a test makes the data follow the volumes.
    pub volume_hook: Option<std::sync::mpsc::Sender<VolumeEvent>>,
    /// Data events sent and not yet acknowledged, and acknowledged ones (by id).
    pub volume_pending: BTreeSet<String>,
    pub volume_done: BTreeSet<String>,
    /// How often the snapshot controller looked at each snapshot (by uid).
    snapshot_looks: BTreeMap<String, u32>,
    /// The address pods get (`status.podIP`). A test whose pod exec must reach a server "on the
    /// pod's network address" sets a second loopback address (127.0.0.2) the server listens on.
    pub pod_ip: String,
    /// The node's kubelet answers: with `false` the Node is NotReady and pods deleted on it stay
    /// terminating (nobody confirms they stopped), as when a node is lost.
    pub node_ready: bool,
    /// Pods ("namespace/name") the kubelet does not start yet (`FakeKube::hold_pod`).
    pub held: BTreeSet<String>,
    scheduled: BTreeMap<String, Instant>,
    deleting: BTreeMap<String, Instant>,
    events: BTreeSet<(String, String, String)>,
    event_seq: u64,
    /// Jobs' pods: images that do not pull, what their container does.
    pub jobs: crate::jobs::JobPods,
    /// Each LoadBalancer Service ("namespace/name"): the kind its address was given for
    /// (internal or not) and since when; and how many addresses were given.
    lb_internal: BTreeMap<String, (bool, Instant)>,
    lb_seq: u64,
    /// The resource metrics API answers (metrics-server); each container's memory when set.
    pub metrics_api: bool,
    pub memory: BTreeMap<(String, String, String), u64>,
}

impl Default for Kubelet {
    fn default() -> Kubelet {
        Kubelet {
            pods: PodBehavior::Ready {
                after: Duration::from_millis(300),
            },
            volumes: VolumeBehavior::Bind,
            snapshots: SnapshotBehavior::Ready,
            load_balancers: LoadBalancerBehavior::Assign,
            termination: Duration::from_millis(200),
            pod_ip: "10.244.0.15".into(),
            snapshot_looks: BTreeMap::new(),
            fail_restore_from: None,
            expansion: ExpansionBehavior::Online,
            resize_pending: BTreeMap::new(),
            volume_hook: None,
            volume_pending: BTreeSet::new(),
            volume_done: BTreeSet::new(),
            node_ready: true,
            held: BTreeSet::new(),
            scheduled: BTreeMap::new(),
            deleting: BTreeMap::new(),
            events: BTreeSet::new(),
            event_seq: 0,
            jobs: Default::default(),
            lb_internal: BTreeMap::new(),
            lb_seq: 0,
            metrics_api: true,
            memory: BTreeMap::new(),
        }
    }
}

pub const NODE: &str = "aks-nodepool1-12345678-vmss000000";

/// One round of every controller.
pub fn tick(c: &mut Cluster) {
    node(c);
    statefulset_controller(c);
    crate::jobs::controller(c);
    garbage_collect(c);
    bind_volumes(c);
    expand_volumes(c);
    run_pods(c);
    crate::jobs::run_pods(c);
    finish_deletions(c);
    statefulset_status(c);
    deployment_status(c);
    endpoint_slices(c);
    snapshots(c);
    load_balancers(c);
}

/// The one node pods run on, Ready while its kubelet answers (`node_ready`).
fn node(c: &mut Cluster) {
    let status = if c.kubelet.node_ready {
        "True"
    } else {
        "Unknown"
    };
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
        "status": {"conditions": [{"type": "Ready", "status": status,
            "reason": if c.kubelet.node_ready { "KubeletReady" } else { "NodeStatusUnknown" }}]}});
    c.system_write(info_of("Node"), "", node);
}

/// The cloud's load-balancer controller: a Service of type LoadBalancer gets an address in
/// `status.loadBalancer.ingress` (a VNet address with the Azure internal annotation, a public one
/// otherwise), unless the test said `LoadBalancerBehavior::Never`.
fn load_balancers(c: &mut Cluster) {
    if c.kubelet.load_balancers == LoadBalancerBehavior::Never {
        return;
    }
    for mut svc in objects(c, "services") {
        if s(&svc, "/spec/type") != "LoadBalancer" {
            continue;
        }
        let internal = svc
            .pointer(
                "/metadata/annotations/service.beta.kubernetes.io~1azure-load-balancer-internal",
            )
            .and_then(Value::as_str)
            == Some("true");
        let key = format!(
            "{}/{}",
            s(&svc, "/metadata/namespace"),
            s(&svc, "/metadata/name")
        );
        // An address stays while the Service is the kind it was given for; switched between
        // internal and public, the cloud moves it to another frontend: the old address is shown
        // for a while (the controller reconciling), then a new one of the other kind.
        if svc.pointer("/status/loadBalancer/ingress/0").is_some() {
            match c.kubelet.lb_internal.get(&key) {
                Some((was, _)) if *was == internal => continue,
                Some((_, since)) if since.elapsed() < Duration::from_millis(500) => continue,
                Some(_) => {}
                None => {
                    c.kubelet
                        .lb_internal
                        .insert(key, (internal, Instant::now()));
                    continue;
                }
            }
        }
        c.kubelet.lb_seq += 1;
        let n = c.kubelet.lb_seq % 250 + 1;
        let ip = if internal {
            format!("10.240.0.{n}")
        } else {
            format!("20.41.0.{n}")
        };
        c.kubelet
            .lb_internal
            .insert(key, (internal, Instant::now()));
        svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}});
        let ns = s(&svc, "/metadata/namespace");
        c.system_write(info_of("Service"), &ns, svc);
    }
}

/// The CSI snapshot controller: a VolumeSnapshot of a Bound claim with an existing class becomes
/// ready to use (unless the test said `SnapshotBehavior::Never`); a missing class or claim is an
/// error in its status, as the real controller reports it.
fn snapshots(c: &mut Cluster) {
    let classes: BTreeSet<String> = objects(c, "volumesnapshotclasses")
        .iter()
        .map(|o| s(o, "/metadata/name"))
        .collect();
    for mut snap in objects(c, "volumesnapshots") {
        if snap.pointer("/status/readyToUse") == Some(&json!(true)) {
            continue;
        }
        let ns = s(&snap, "/metadata/namespace");
        let class = s(&snap, "/spec/volumeSnapshotClassName");
        let claim = s(&snap, "/spec/source/persistentVolumeClaimName");
        let pvc = c
            .get(info_of("PersistentVolumeClaim"), &ns, &claim)
            .ok()
            .filter(|p| s(p, "/status/phase") == "Bound");
        let uid = s(&snap, "/metadata/uid");
        let looks = {
            let n = c.kubelet.snapshot_looks.entry(uid).or_insert(0);
            *n += 1;
            *n
        };
        let behavior = c.kubelet.snapshots;
        let status = if !classes.contains(&class) {
            json!({"readyToUse": false, "error": {"time": now(),
                "message": format!("Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io \"{class}\" not found")}})
        } else if let Some(pvc) = pvc {
            if behavior == SnapshotBehavior::Never {
                json!({"readyToUse": false})
            } else if let SnapshotBehavior::Failing(message) = behavior {
                json!({"readyToUse": false, "error": {"time": now(), "message": message}})
            } else if matches!(behavior, SnapshotBehavior::TransientError { ticks } if looks <= ticks)
            {
                json!({"readyToUse": false, "error": {"time": now(),
                    "message": "Failed to create snapshot: failed to take snapshot of the volume: the cloud's request was throttled (429); retrying"}})
            } else if !data_followed(
                c,
                VolumeEvent::Snapshot {
                    id: format!("snapshot:{ns}/{}", s(&snap, "/metadata/uid")),
                    namespace: ns.clone(),
                    snapshot: s(&snap, "/metadata/name"),
                    claim: claim.clone(),
                },
            ) {
                json!({"readyToUse": false})
            } else {
                json!({"readyToUse": true, "creationTime": now(),
                    "boundVolumeSnapshotContentName": format!("snapcontent-{}", s(&snap, "/metadata/uid")),
                    "restoreSize": pvc.pointer("/status/capacity/storage").cloned().unwrap_or(json!("1Gi"))})
            }
        } else {
            json!({"readyToUse": false, "error": {"time": now(),
                "message": format!("failed to get input parameters to create snapshot: the PVC {claim} is not yet bound to a PV or does not exist")}})
        };
        // Write only a change of state, as the controller does (not every tick's new time).
        let same = snap.get("status").is_some_and(|old| {
            old["readyToUse"] == status["readyToUse"]
                && old.get("error").is_some() == status.get("error").is_some()
        });
        if !same {
            snap["status"] = status;
            c.system_write(info_of("VolumeSnapshot"), &ns, snap);
        }
    }
}

/// The EndpointSlice controller: one slice per Service with a selector (named `<service>-fake`,
/// labelled `kubernetes.io/service-name`), listing the matching non-terminating pods with their
/// readiness; removed with its Service.
fn endpoint_slices(c: &mut Cluster) {
    let services = objects(c, "services");
    let pods = objects(c, "pods");
    let wanted: BTreeSet<(String, String)> = services
        .iter()
        .map(|svc| {
            (
                s(svc, "/metadata/namespace"),
                format!("{}-fake", s(svc, "/metadata/name")),
            )
        })
        .collect();
    for slice in objects(c, "endpointslices") {
        let key = (
            s(&slice, "/metadata/namespace"),
            s(&slice, "/metadata/name"),
        );
        if !wanted.contains(&key) {
            c.purge(info_of("EndpointSlice"), &key.0, &key.1);
        }
    }
    for svc in services {
        let Some(selector) = svc.pointer("/spec/selector").and_then(Value::as_object) else {
            continue;
        };
        let ns = s(&svc, "/metadata/namespace");
        let name = s(&svc, "/metadata/name");
        let endpoints: Vec<Value> = pods
            .iter()
            .filter(|p| s(p, "/metadata/namespace") == ns && !selector.is_empty())
            .filter(|p| {
                selector
                    .iter()
                    .all(|(k, v)| p.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
            })
            .filter(|p| !s(p, "/status/podIP").is_empty())
            .map(|p| {
                let ready = pod_ready(p);
                let terminating = p.pointer("/metadata/deletionTimestamp").is_some();
                json!({
                    "addresses": [s(p, "/status/podIP")],
                    "conditions": {"ready": ready && !terminating, "serving": ready, "terminating": terminating},
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": s(p, "/metadata/name")},
                })
            })
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-fake"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": svc.pointer("/spec/ports").cloned().unwrap_or(json!([])),
        });
        c.system_write(info_of("EndpointSlice"), &ns, slice);
    }
}

pub(crate) fn objects(c: &Cluster, plural: &str) -> Vec<Value> {
    c.objects
        .iter()
        .filter(|((p, _, _), _)| *p == plural)
        .map(|(_, e)| e.obj.clone())
        .collect()
}

pub(crate) fn s(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The pod's Ready condition is True.
fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn template_hash(template: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{:x}", h.finish() & 0xffff_ffff)
}

fn statefulset_controller(c: &mut Cluster) {
    for sts in objects(c, "statefulsets") {
        if sts.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = s(&sts, "/metadata/namespace");
        let name = s(&sts, "/metadata/name");
        let replicas = sts
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let template = sts.pointer("/spec/template").cloned().unwrap_or_default();
        let revision = format!("{name}-{}", template_hash(&template));
        for i in 0..replicas {
            let pod_name = format!("{name}-{i}");
            let mut claims = Vec::new();
            for t in sts
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let tname = s(t, "/metadata/name");
                let claim = format!("{tname}-{name}-{i}");
                claims.push(json!({"name": tname, "persistentVolumeClaim": {"claimName": claim}}));
                if c.get(info_of("PersistentVolumeClaim"), &ns, &claim)
                    .is_err()
                {
                    let labels = t.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
                    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim, "namespace": ns, "labels": labels},
                        "spec": t.get("spec").cloned().unwrap_or_default()});
                    c.system_write(info_of("PersistentVolumeClaim"), &ns, pvc);
                    event(
                        c,
                        &ns,
                        "StatefulSet",
                        &name,
                        "Normal",
                        "SuccessfulCreate",
                        &format!(
                            "create Claim {claim} Pod {pod_name} in StatefulSet {name} success"
                        ),
                    );
                }
            }
            match c.get(info_of("Pod"), &ns, &pod_name) {
                Ok(mut pod) => {
                    // An orphan of this name (its StatefulSet was deleted with orphan propagation
                    // and made again): adopted, as the controller does with pods its selector matches.
                    if pod.pointer("/metadata/ownerReferences").is_none()
                        && pod.pointer("/metadata/deletionTimestamp").is_none()
                    {
                        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                            "uid": sts["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]);
                        c.system_write(info_of("Pod"), &ns, pod.clone());
                    }
                    // A changed template rolls the pod (RollingUpdate): delete it, it comes back new.
                    if s(&pod, "/metadata/labels/controller-revision-hash") != revision
                        && pod.pointer("/metadata/deletionTimestamp").is_none()
                    {
                        let _ = c.delete(info_of("Pod"), &ns, &pod_name, false);
                    }
                }
                Err(_) => {
                    let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
                    let volumes = spec
                        .get("volumes")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    spec["volumes"] = json!([volumes, claims].concat());
                    spec["hostname"] = json!(pod_name);
                    spec["subdomain"] = sts
                        .pointer("/spec/serviceName")
                        .cloned()
                        .unwrap_or(Value::Null);
                    let mut labels = template
                        .pointer("/metadata/labels")
                        .cloned()
                        .unwrap_or(json!({}));
                    labels["controller-revision-hash"] = json!(revision);
                    labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
                    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                            "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                                "uid": sts["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
                        "spec": spec});
                    c.system_write(info_of("Pod"), &ns, pod);
                    event(
                        c,
                        &ns,
                        "StatefulSet",
                        &name,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("create Pod {pod_name} in StatefulSet {name} successful"),
                    );
                }
            }
        }
        // Scaled down: the pods beyond the replica count go (the highest ordinal first).
        for pod in objects(c, "pods") {
            let pname = s(&pod, "/metadata/name");
            let ordinal = pname
                .strip_prefix(&format!("{name}-"))
                .and_then(|o| o.parse::<i64>().ok());
            if s(&pod, "/metadata/namespace") == ns
                && ordinal.is_some_and(|o| o >= replicas)
                && pod.pointer("/metadata/deletionTimestamp").is_none()
            {
                let _ = c.delete(info_of("Pod"), &ns, &pname, false);
            }
        }
    }
}

fn garbage_collect(c: &mut Cluster) {
    let uids: BTreeSet<String> = c
        .objects
        .values()
        .map(|e| s(&e.obj, "/metadata/uid"))
        .collect();
    // Pods whose StatefulSet or Job is gone, Jobs whose CronJob is gone (background propagation).
    for (plural, kind) in [("jobs", "Job"), ("pods", "Pod")] {
        for obj in objects(c, plural) {
            let orphaned = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| !uids.contains(r["uid"].as_str().unwrap_or_default()))
                });
            if orphaned && obj.pointer("/metadata/deletionTimestamp").is_none() {
                let _ = c.delete(
                    info_of(kind),
                    &s(&obj, "/metadata/namespace"),
                    &s(&obj, "/metadata/name"),
                    false,
                );
            }
        }
    }
}

fn bind_volumes(c: &mut Cluster) {
    let classes: BTreeSet<String> = objects(c, "storageclasses")
        .iter()
        .map(|o| s(o, "/metadata/name"))
        .collect();
    for mut pvc in objects(c, "persistentvolumeclaims") {
        if s(&pvc, "/status/phase") != "Pending"
            || pvc.pointer("/metadata/deletionTimestamp").is_some()
        {
            continue;
        }
        let ns = s(&pvc, "/metadata/namespace");
        let name = s(&pvc, "/metadata/name");
        let class = s(&pvc, "/spec/storageClassName");
        let failed = |c: &mut Cluster, why: &str| {
            event(
                c,
                &ns,
                "PersistentVolumeClaim",
                &name,
                "Warning",
                "ProvisioningFailed",
                why,
            )
        };
        if !classes.contains(&class) {
            failed(
                c,
                &format!("storageclass.storage.k8s.io \"{class}\" not found"),
            );
        } else if c.kubelet.volumes == VolumeBehavior::Fail {
            failed(
                c,
                &format!(
                    "failed to provision volume with StorageClass \"{class}\": rpc error: code = Internal desc = disk quota exceeded"
                ),
            );
        } else {
            let sc = c
                .get(info_of("StorageClass"), "", &class)
                .unwrap_or_default();
            // WaitForFirstConsumer (AKS's classes, the plan's): provisioned once a pod that uses
            // the claim is scheduled, on that pod's node.
            if sc.get("volumeBindingMode").and_then(Value::as_str) == Some("WaitForFirstConsumer")
                && !consumer_scheduled(c, &ns, &name)
            {
                event(
                    c,
                    &ns,
                    "PersistentVolumeClaim",
                    &name,
                    "Normal",
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                );
                continue;
            }
            if let Some(why) = from_snapshot(c, &pvc) {
                if !why.is_empty() {
                    failed(c, &why);
                }
                continue;
            }
            let volume = format!("pvc-{}", s(&pvc, "/metadata/uid"));
            let size = pvc
                .pointer("/spec/resources/requests/storage")
                .cloned()
                .unwrap_or(json!("1Gi"));
            let policy = sc.get("reclaimPolicy").cloned().unwrap_or(json!("Delete"));
            let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {"capacity": {"storage": size}, "accessModes": pvc["spec"]["accessModes"],
                    "persistentVolumeReclaimPolicy": policy, "storageClassName": class,
                    "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "uid": pvc["metadata"]["uid"]},
                    "csi": {"driver": sc.get("provisioner").cloned().unwrap_or(json!("disk.csi.azure.com")),
                        "volumeHandle": format!("/subscriptions/fake/resourceGroups/mc_rg/providers/Microsoft.Compute/disks/{volume}")}},
                "status": {"phase": "Bound"}});
            c.system_write(info_of("PersistentVolume"), "", pv);
            pvc["spec"]["volumeName"] = json!(volume);
            pvc["status"] = json!({"phase": "Bound", "accessModes": pvc["spec"]["accessModes"],
                "capacity": {"storage": size}});
            c.system_write(info_of("PersistentVolumeClaim"), &ns, pvc);
        }
    }
}

/// Is a pod that uses claim `ns/name` there and schedulable (the scheduler would pick it a node)?
fn consumer_scheduled(c: &Cluster, ns: &str, name: &str) -> bool {
    c.kubelet.pods != PodBehavior::Unschedulable
        && c.kubelet.node_ready
        && objects(c, "pods").iter().any(|p| {
            s(p, "/metadata/namespace") == ns
                && p.pointer("/metadata/deletionTimestamp").is_none()
                && p.pointer("/spec/volumes")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter()
                            .any(|v| s(v, "/persistentVolumeClaim/claimName") == name)
                    })
        })
}

/// The CSI resizer and the kubelet's file-system resize: a bound claim whose request is above its
/// capacity grows (its PersistentVolume too), at once (`Resizing` for a tick) or, offline, once a
/// new pod uses it (`FileSystemResizePending` until then).
fn expand_volumes(c: &mut Cluster) {
    for mut pvc in objects(c, "persistentvolumeclaims") {
        if s(&pvc, "/status/phase") != "Bound" {
            continue;
        }
        let want = s(&pvc, "/spec/resources/requests/storage");
        let has = s(&pvc, "/status/capacity/storage");
        if bytes(&want) <= bytes(&has) {
            continue;
        }
        let ns = s(&pvc, "/metadata/namespace");
        let name = s(&pvc, "/metadata/name");
        let key = format!("{ns}/{name}");
        let condition = |kind: &str, message: &str| json!([{"type": kind, "status": "True", "lastTransitionTime": crate::store::now(), "message": message}]);
        // The pod that uses the claim now, if any.
        let user = objects(c, "pods").into_iter().find(|p| {
            s(p, "/metadata/namespace") == ns
                && p.pointer("/spec/volumes")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter()
                            .any(|v| s(v, "/persistentVolumeClaim/claimName") == name)
                    })
        });
        let user_uid = user
            .as_ref()
            .map(|p| s(p, "/metadata/uid"))
            .unwrap_or_default();
        let grown = match c.kubelet.expansion {
            ExpansionBehavior::Fail => {
                event(
                    c,
                    &ns,
                    "PersistentVolumeClaim",
                    &name,
                    "Warning",
                    "VolumeResizeFailed",
                    &format!(
                        "resize volume \"pvc-{}\" by resizer \"disk.csi.azure.com\" failed: rpc error: code = Internal desc = the disk cannot grow: quota exceeded",
                        s(&pvc, "/metadata/uid")
                    ),
                );
                false
            }
            ExpansionBehavior::Online => {
                if pvc
                    .pointer("/status/conditions/0/type")
                    .and_then(Value::as_str)
                    == Some("Resizing")
                {
                    true
                } else {
                    pvc["status"]["conditions"] = condition("Resizing", "");
                    pvc["status"]["allocatedResources"] = json!({"storage": want});
                    c.system_write(info_of("PersistentVolumeClaim"), &ns, pvc.clone());
                    false
                }
            }
            ExpansionBehavior::Offline => match c.kubelet.resize_pending.get(&key).cloned() {
                // A new pod (or none at all, then a next one) mounts it: the file system grows.
                Some(then) => !user_uid.is_empty() && user_uid != then,
                None => {
                    c.kubelet
                        .resize_pending
                        .insert(key.clone(), user_uid.clone());
                    pvc["status"]["conditions"] = condition(
                        "FileSystemResizePending",
                        "Waiting for user to (re-)start a pod to finish file system resize of volume on node.",
                    );
                    pvc["status"]["allocatedResources"] = json!({"storage": want});
                    c.system_write(info_of("PersistentVolumeClaim"), &ns, pvc.clone());
                    false
                }
            },
        };
        if !grown {
            continue;
        }
        c.kubelet.resize_pending.remove(&key);
        pvc["status"]["capacity"] = json!({"storage": want});
        if let Some(status) = pvc["status"].as_object_mut() {
            status.remove("conditions");
            status.remove("allocatedResources");
        }
        let volume = s(&pvc, "/spec/volumeName");
        c.system_write(info_of("PersistentVolumeClaim"), &ns, pvc);
        if let Ok(mut pv) = c.get(info_of("PersistentVolume"), "", &volume) {
            pv["spec"]["capacity"] = json!({"storage": want});
            c.system_write(info_of("PersistentVolume"), "", pv);
        }
        event(
            c,
            &ns,
            "PersistentVolumeClaim",
            &name,
            "Normal",
            "FileSystemResizeSuccessful",
            &format!("MountVolume.NodeExpandVolume succeeded for volume \"{volume}\""),
        );
    }
}

/// A claim made from a VolumeSnapshot: `None` when it may be provisioned (not from a snapshot, or
/// the snapshot is ready, big enough and its data followed), else why not yet ("" to say nothing).
fn from_snapshot(c: &mut Cluster, pvc: &Value) -> Option<String> {
    let ds = pvc
        .pointer("/spec/dataSource")
        .filter(|d| d["kind"] == "VolumeSnapshot")?;
    let ns = s(pvc, "/metadata/namespace");
    let snapshot = ds["name"].as_str().unwrap_or_default().to_string();
    let Ok(snap) = c.get(info_of("VolumeSnapshot"), &ns, &snapshot) else {
        return Some(format!(
            "failed to provision volume: volumesnapshot.snapshot.storage.k8s.io \"{snapshot}\" not found"
        ));
    };
    if snap.pointer("/status/readyToUse") != Some(&json!(true)) {
        return Some(format!(
            "failed to provision volume: snapshot {snapshot} is not Ready"
        ));
    }
    if c.kubelet.fail_restore_from.as_deref() == Some(snapshot.as_str()) {
        return Some(format!(
            "failed to provision volume with StorageClass: rpc error: code = Internal desc = failed to create disk from snapshot {snapshot}: disk quota exceeded"
        ));
    }
    let want = bytes(&s(pvc, "/spec/resources/requests/storage"));
    let has = bytes(&s(&snap, "/status/restoreSize"));
    if want < has {
        return Some(format!(
            "failed to provision volume: requested size {} is smaller than the snapshot's restore size {}",
            s(pvc, "/spec/resources/requests/storage"),
            s(&snap, "/status/restoreSize")
        ));
    }
    let event = VolumeEvent::Restore {
        id: format!("restore:{ns}/{}", s(pvc, "/metadata/uid")),
        namespace: ns,
        claim: s(pvc, "/metadata/name"),
        snapshot,
    };
    if data_followed(c, event) {
        None
    } else {
        Some(String::new())
    }
}

/// A size quantity in bytes (binary and decimal suffixes), for comparing sizes.
pub(crate) fn bytes(q: &str) -> u64 {
    let digits: String = q.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    let unit: u64 = match &q[digits.len()..] {
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => 1,
    };
    n * unit
}

fn run_pods(c: &mut Cluster) {
    let behavior = c.kubelet.pods.clone();
    if behavior == PodBehavior::Manual {
        return;
    }
    for mut pod in objects(c, "pods") {
        if pod.pointer("/metadata/deletionTimestamp").is_some() || crate::jobs::is_job_pod(&pod) {
            continue;
        }
        let ns = s(&pod, "/metadata/namespace");
        let name = s(&pod, "/metadata/name");
        let uid = s(&pod, "/metadata/uid");
        let claims: Vec<String> = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| {
                v.pointer("/persistentVolumeClaim/claimName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        let unbound = claims.iter().any(|cl| {
            c.get(info_of("PersistentVolumeClaim"), &ns, cl)
                .map(|p| s(&p, "/status/phase") != "Bound")
                .unwrap_or(true)
        });
        // A claim of a WaitForFirstConsumer class that is still being provisioned for this pod:
        // the pod waits for it, not reported unschedulable (unless it is, for another reason).
        let provisioning = unbound
            && behavior != PodBehavior::Unschedulable
            && claims.iter().all(|cl| {
                c.get(info_of("PersistentVolumeClaim"), &ns, cl)
                    .ok()
                    .filter(|p| s(p, "/status/phase") != "Bound")
                    .is_none_or(|p| {
                        c.get(
                            info_of("StorageClass"),
                            "",
                            &s(&p, "/spec/storageClassName"),
                        )
                        .is_ok_and(|sc| s(&sc, "/volumeBindingMode") == "WaitForFirstConsumer")
                    })
            });
        if provisioning {
            if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Pending")
                || pod.pointer("/status/conditions").is_some()
            {
                pod["status"] = json!({"phase": "Pending"});
                c.system_write(info_of("Pod"), &ns, pod);
            }
            continue;
        }
        let ts = now();
        if unbound || behavior == PodBehavior::Unschedulable {
            // No room on any node, whatever its claims; else an Immediate claim not bound.
            let message = if behavior == PodBehavior::Unschedulable {
                "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
            } else {
                "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
            };
            pod["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message, "lastTransitionTime": ts}]});
            c.system_write(info_of("Pod"), &ns, pod);
            event(c, &ns, "Pod", &name, "Warning", "FailedScheduling", message);
            continue;
        }
        if c.kubelet.held.contains(&format!("{ns}/{name}")) {
            // Scheduled, its containers not started yet (the image is being pulled).
            let waiting: Vec<Value> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|ct| json!({"name": s(ct, "/name"), "image": s(ct, "/image"), "ready": false, "started": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}}}))
                .collect();
            pod["spec"]["nodeName"] = json!(NODE);
            pod["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts}], "containerStatuses": waiting});
            c.system_write(info_of("Pod"), &ns, pod);
            continue;
        }
        let started = *c.kubelet.scheduled.entry(uid).or_insert_with(Instant::now);
        if pod.pointer("/spec/nodeName").is_none() {
            pod["spec"]["nodeName"] = json!(NODE);
            event(
                c,
                &ns,
                "Pod",
                &name,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {NODE}"),
            );
        }
        let containers: Vec<(String, String)> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|ct| (s(ct, "/name"), s(ct, "/image")))
            .collect();
        let old_status = pod.get("status").cloned().unwrap_or_default();
        let restarts = |i: usize| {
            old_status
                .pointer(&format!("/containerStatuses/{i}/restartCount"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let (phase, ready, statuses): (&str, bool, Vec<Value>) = match &behavior {
            PodBehavior::Ready { after } => {
                let ready = started.elapsed() >= *after;
                // A container restarted (`FakeKube::crash_container`) keeps its count and how
                // its last instance ended.
                let st = containers
                    .iter()
                    .enumerate()
                    .map(|(i, (n, img))| {
                        let mut s = json!({"name": n, "image": img, "ready": ready, "started": true, "restartCount": restarts(i),
                            "state": {"running": {"startedAt": ts}}});
                        if let Some(last) = old_status.pointer(&format!("/containerStatuses/{i}/lastState")) {
                            s["lastState"] = last.clone();
                        }
                        s
                    })
                    .collect();
                ("Running", ready, st)
            }
            PodBehavior::ImagePullError(failure) => {
                // As the kubelet says it: the cause once (Failed: "Failed to pull image …: rpc
                // error …"), then the newest events only name the state ("Error: ErrImagePull",
                // "Error: ImagePullBackOff"); the container status keeps the cause.
                let (n, img) = &containers[0];
                let cause = failure.message(img);
                let event = |c: &mut Cluster, type_: &str, reason: &str, message: String| {
                    event(c, &ns, "Pod", &name, type_, reason, &message)
                };
                event(c, "Normal", "Pulling", format!("Pulling image \"{img}\""));
                event(
                    c,
                    "Warning",
                    "Failed",
                    format!("Failed to pull image \"{img}\": {cause}"),
                );
                event(c, "Warning", "Failed", "Error: ErrImagePull".into());
                let backing_off = started.elapsed() >= Duration::from_millis(200);
                let (reason, message) = if backing_off {
                    event(
                        c,
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image \"{img}\""),
                    );
                    event(c, "Warning", "Failed", "Error: ImagePullBackOff".into());
                    (
                        "ImagePullBackOff",
                        format!("Back-off pulling image \"{img}\": ErrImagePull: {cause}"),
                    )
                } else {
                    ("ErrImagePull", cause)
                };
                let st = vec![
                    json!({"name": n, "image": img, "ready": false, "started": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}}}),
                ];
                ("Pending", false, st)
            }
            PodBehavior::CrashLoop { exit_code, message } => {
                let (n, img) = &containers[0];
                event(
                    c,
                    &ns,
                    "Pod",
                    &name,
                    "Warning",
                    "BackOff",
                    &format!("Back-off restarting failed container {n} in pod {name}"),
                );
                let st = vec![
                    json!({"name": n, "image": img, "ready": false, "started": false, "restartCount": restarts(0).max(3),
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 40s restarting failed container={n} pod={name}")}},
                    "lastState": {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message}}}),
                ];
                ("Running", false, st)
            }
            PodBehavior::ProbeFailing => {
                if started.elapsed() >= Duration::from_millis(100) {
                    event(
                        c,
                        &ns,
                        "Pod",
                        &name,
                        "Warning",
                        "Unhealthy",
                        "Readiness probe failed: 127.0.0.1:5432 - no response",
                    );
                }
                let st = containers.iter().map(|(n, img)| json!({"name": n, "image": img, "ready": false, "started": true, "restartCount": 0,
                    "state": {"running": {"startedAt": ts}}})).collect();
                ("Running", false, st)
            }
            PodBehavior::Unschedulable | PodBehavior::Manual => unreachable!("handled above"),
        };
        let prev_ready = old_status
            .pointer("/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"] == "True");
        if prev_ready == Some(ready)
            && old_status.get("phase").and_then(Value::as_str) == Some(phase)
            && old_status.get("containerStatuses").map(strip_times)
                == Some(strip_times(&json!(statuses)))
        {
            continue; // nothing changed; keep resourceVersion still
        }
        let flag = if ready { "True" } else { "False" };
        pod["status"] = json!({"phase": phase, "hostIP": "10.224.0.4", "podIP": c.kubelet.pod_ip, "startTime": ts,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts},
                {"type": "Initialized", "status": "True", "lastTransitionTime": ts},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": ts},
                {"type": "Ready", "status": flag, "lastTransitionTime": ts}],
            "containerStatuses": statuses});
        c.system_write(info_of("Pod"), &ns, pod);
    }
}

fn strip_times(v: &Value) -> Value {
    let mut v = v.clone();
    for st in v.as_array_mut().into_iter().flatten() {
        if let Some(r) = st.pointer_mut("/state/running") {
            r.as_object_mut().map(|m| m.remove("startedAt"));
        }
    }
    v
}

fn finish_deletions(c: &mut Cluster) {
    let termination = c.kubelet.termination;
    for pod in objects(c, "pods") {
        if pod.pointer("/metadata/deletionTimestamp").is_none() || !c.kubelet.node_ready {
            continue;
        }
        let uid = s(&pod, "/metadata/uid");
        let since = *c
            .kubelet
            .deleting
            .entry(uid.clone())
            .or_insert_with(Instant::now);
        if since.elapsed() >= termination {
            c.purge(
                info_of("Pod"),
                &s(&pod, "/metadata/namespace"),
                &s(&pod, "/metadata/name"),
            );
            c.kubelet.scheduled.remove(&uid);
        }
    }
    let used: BTreeSet<(String, String)> = objects(c, "pods")
        .iter()
        .flat_map(|p| {
            let ns = s(p, "/metadata/namespace");
            p.pointer("/spec/volumes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |v| {
                    v.pointer("/persistentVolumeClaim/claimName")
                        .and_then(Value::as_str)
                        .map(|n| (ns.clone(), n.to_string()))
                })
        })
        .collect();
    for pvc in objects(c, "persistentvolumeclaims") {
        let key = (s(&pvc, "/metadata/namespace"), s(&pvc, "/metadata/name"));
        if pvc.pointer("/metadata/deletionTimestamp").is_some() && !used.contains(&key) {
            // kubernetes.io/pvc-protection is released once no pod uses the claim; the claim goes
            // when no other finalizer holds it.
            let others: Vec<Value> = pvc
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|f| *f != "kubernetes.io/pvc-protection")
                .cloned()
                .collect();
            if others.is_empty() {
                c.purge(info_of("PersistentVolumeClaim"), &key.0, &key.1);
                release_volume(c, &s(&pvc, "/spec/volumeName"));
            } else if pvc
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(Vec::len)
                != Some(others.len())
            {
                let mut released = pvc.clone();
                released["metadata"]["finalizers"] = json!(others);
                c.system_write(info_of("PersistentVolumeClaim"), &key.0, released);
            }
        }
    }
}

/// The claim of `volume` is gone: with reclaimPolicy Retain the volume (and its disk) stays,
/// Released; with Delete it goes.
fn release_volume(c: &mut Cluster, volume: &str) {
    let Ok(mut pv) = c.get(info_of("PersistentVolume"), "", volume) else {
        return;
    };
    if pv.pointer("/spec/persistentVolumeReclaimPolicy") == Some(&json!("Retain")) {
        pv["status"] = json!({"phase": "Released"});
        c.system_write(info_of("PersistentVolume"), "", pv);
    } else {
        c.purge(info_of("PersistentVolume"), "", volume);
    }
}

/// The Deployment controller, without pods (the app tier is not run here): once it has seen a
/// Deployment's latest spec, every replica counts as updated and available.
fn deployment_status(c: &mut Cluster) {
    for mut d in objects(c, "deployments") {
        let generation = d["metadata"]["generation"].clone();
        if d.pointer("/status/observedGeneration") == Some(&generation) {
            continue;
        }
        let replicas = d
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        d["status"] = json!({"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]});
        c.system_write(info_of("Deployment"), &s(&d, "/metadata/namespace"), d);
    }
}

fn statefulset_status(c: &mut Cluster) {
    let pods = objects(c, "pods");
    for mut sts in objects(c, "statefulsets") {
        let ns = s(&sts, "/metadata/namespace");
        let uid = s(&sts, "/metadata/uid");
        let mine: Vec<&Value> = pods
            .iter()
            .filter(|p| {
                p.pointer("/metadata/ownerReferences/0/uid")
                    .and_then(Value::as_str)
                    == Some(uid.as_str())
                    && p.pointer("/metadata/deletionTimestamp").is_none()
            })
            .collect();
        let ready = mine.iter().filter(|p| pod_ready(p)).count();
        let revision = format!(
            "{}-{}",
            s(&sts, "/metadata/name"),
            template_hash(sts.pointer("/spec/template").unwrap_or(&Value::Null))
        );
        let updated = mine
            .iter()
            .filter(|p| s(p, "/metadata/labels/controller-revision-hash") == revision)
            .count();
        // currentRevision moves to the update revision once every replica runs it (RollingUpdate).
        let current = match sts
            .pointer("/status/currentRevision")
            .and_then(Value::as_str)
        {
            Some(c) if updated < mine.len() || (mine.len() as i64) < replicas_of(&sts) => {
                c.to_string()
            }
            _ => revision.clone(),
        };
        let on_current = mine
            .iter()
            .filter(|p| s(p, "/metadata/labels/controller-revision-hash") == current)
            .count();
        let mut status = json!({"observedGeneration": sts["metadata"]["generation"], "replicas": mine.len(),
            "currentRevision": current, "updateRevision": revision, "collisionCount": 0});
        // The real API server leaves zero counts out (omitempty); so does this fake.
        for (k, v) in [
            ("readyReplicas", ready),
            ("availableReplicas", ready),
            ("currentReplicas", on_current),
            ("updatedReplicas", updated),
        ] {
            if v > 0 {
                status[k] = json!(v);
            }
        }
        if sts.get("status") != Some(&status) {
            sts["status"] = status;
            c.system_write(info_of("StatefulSet"), &ns, sts);
        }
    }
}

fn replicas_of(sts: &Value) -> i64 {
    sts.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// Record an event once per (object, reason, message), as `kubectl get events` shows them.
pub fn event(
    c: &mut Cluster,
    ns: &str,
    kind: &str,
    name: &str,
    type_: &str,
    reason: &str,
    message: &str,
) {
    if !c
        .kubelet
        .events
        .insert((name.to_string(), reason.to_string(), message.to_string()))
    {
        return;
    }
    c.kubelet.event_seq += 1;
    let ts = now();
    let uid = c
        .get(info_of(kind), ns, name)
        .map(|o| s(&o, "/metadata/uid"))
        .unwrap_or_default();
    let ev = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{:016x}", c.kubelet.event_seq), "namespace": ns},
        "involvedObject": {"kind": kind, "name": name, "namespace": ns, "uid": uid},
        "type": type_, "reason": reason, "message": message, "count": 1,
        "firstTimestamp": ts, "lastTimestamp": ts,
        "source": {"component": if kind == "Pod" { "kubelet" } else { "statefulset-controller" }}});
    c.system_write(info_of("Event"), ns, ev);
}
