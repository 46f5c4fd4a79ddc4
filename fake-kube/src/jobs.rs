//! The Job controller and what the kubelet does with a Job's pods: a pod per attempt (labelled
//! with the Job's name as the controller labels it), retried up to `backoffLimit`, the Job
//! Complete or Failed from its pods; a pod whose image does not pull waits in
//! ErrImagePull/ImagePullBackOff as long as it is not deleted; else its container runs the test's
//! [`JobRunner`] (the real program, in a thread) or, without one, exits 0 at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::kubelet::{NODE, PullFailure, event, objects, s};
use crate::store::{Cluster, info_of, now};

/// What a Job pod's container does: given the pod (its ConfigMap volumes mounted), its exit code
/// and what it printed.
pub type JobRunner = Arc<dyn Fn(&JobPod) -> (i32, String) + Send + Sync>;

/// A Job pod as its container sees it.
#[derive(Debug, Clone)]
pub struct JobPod {
    pub pod: Value,
    /// The first container's arguments.
    pub args: Vec<String>,
    /// The files its ConfigMap volumes put in the container: path → content.
    pub files: BTreeMap<String, String>,
}

/// The files the first container's ConfigMap volumes mount (the kubelet's part).
fn mounted(c: &Cluster, ns: &str, pod: &Value) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mounts = pod
        .pointer("/spec/containers/0/volumeMounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for m in &mounts {
        let Some(v) = volumes.iter().find(|v| v["name"] == m["name"]) else {
            continue;
        };
        let Some(cm) = v.pointer("/configMap/name").and_then(Value::as_str) else {
            continue;
        };
        let Ok(cm) = c.get(info_of("ConfigMap"), ns, cm) else {
            continue;
        };
        for (key, value) in cm["data"].as_object().into_iter().flatten() {
            files.insert(
                format!("{}/{key}", s(m, "/mountPath")),
                value.as_str().unwrap_or_default().to_string(),
            );
        }
    }
    files
}

/// Each pod whose container was started (by uid): None while it runs, then its exit and output.
type Runs = Arc<Mutex<BTreeMap<String, Option<(i32, String)>>>>;

/// The kubelet's part for Job pods.
#[derive(Default)]
pub struct JobPods {
    /// Images that do not pull, and why.
    pub pull_failures: BTreeMap<String, PullFailure>,
    pub runner: Option<JobRunner>,
    runs: Runs,
    created: u64,
}

impl std::fmt::Debug for JobPods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobPods")
            .field("pull_failures", &self.pull_failures)
            .field("runner", &self.runner.is_some())
            .finish()
    }
}

fn owned_by(obj: &Value, kind: &str, uid: Option<&str>) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["kind"] == kind && uid.is_none_or(|u| r["uid"] == u))
        })
}

/// A pod of a Job (the kubelet leaves it to [`run_pods`]).
pub fn is_job_pod(pod: &Value) -> bool {
    owned_by(pod, "Job", None)
}

fn terminal(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        })
}

/// One round of the Job controller.
pub fn controller(c: &mut Cluster) {
    for mut job in objects(c, "jobs") {
        if job.pointer("/metadata/deletionTimestamp").is_some() || terminal(&job) {
            continue;
        }
        let ns = s(&job, "/metadata/namespace");
        let name = s(&job, "/metadata/name");
        let uid = s(&job, "/metadata/uid");
        let pods: Vec<Value> = objects(c, "pods")
            .into_iter()
            .filter(|p| s(p, "/metadata/namespace") == ns && owned_by(p, "Job", Some(&uid)))
            .collect();
        let phase = |p: &Value| s(p, "/status/phase");
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count();
        let active = pods.len() - succeeded - failed;
        let limit = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_u64)
            .unwrap_or(6) as usize;
        let ts = now();
        let start = job
            .pointer("/status/startTime")
            .cloned()
            .unwrap_or(json!(ts));
        let condition = |type_: &str, reason: &str, message: &str| {
            json!({"type": type_, "status": "True", "reason": reason, "message": message,
                "lastProbeTime": ts, "lastTransitionTime": ts})
        };
        let mut status = json!({"startTime": start, "active": active, "succeeded": succeeded,
            "failed": failed, "ready": 0, "terminating": 0});
        if succeeded > 0 {
            status["active"] = json!(0);
            status["completionTime"] = json!(ts);
            status["conditions"] = json!([
                condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods"
                ),
                condition(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods"
                ),
            ]);
        } else if failed > limit {
            let message = "Job has reached the specified backoff limit";
            status["conditions"] = json!([
                condition("FailureTarget", "BackoffLimitExceeded", message),
                condition("Failed", "BackoffLimitExceeded", message),
            ]);
            event(
                c,
                &ns,
                "Job",
                &name,
                "Warning",
                "BackoffLimitExceeded",
                message,
            );
        } else if active == 0 {
            c.kubelet.jobs.created += 1;
            let pod_name = format!("{name}-{:05x}", c.kubelet.jobs.created);
            let template = job.pointer("/spec/template").cloned().unwrap_or_default();
            let mut labels = template
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            for key in ["batch.kubernetes.io/job-name", "job-name"] {
                labels[key] = json!(name);
            }
            for key in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
                labels[key] = json!(uid);
            }
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                        "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                "spec": template.get("spec").cloned().unwrap_or_default()});
            c.system_write(info_of("Pod"), &ns, pod);
            event(
                c,
                &ns,
                "Job",
                &name,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {pod_name}"),
            );
            status["active"] = json!(1);
        }
        if job.get("status") != Some(&status) {
            job["status"] = status;
            c.system_write(info_of("Job"), &ns, job);
        }
    }
}

/// The kubelet's round for Job pods.
pub fn run_pods(c: &mut Cluster) {
    for mut pod in objects(c, "pods") {
        if !is_job_pod(&pod)
            || pod.pointer("/metadata/deletionTimestamp").is_some()
            || matches!(s(&pod, "/status/phase").as_str(), "Succeeded" | "Failed")
        {
            continue;
        }
        let ns = s(&pod, "/metadata/namespace");
        let name = s(&pod, "/metadata/name");
        let uid = s(&pod, "/metadata/uid");
        let container = s(&pod, "/spec/containers/0/name");
        let image = s(&pod, "/spec/containers/0/image");
        let ts = now();
        pod["spec"]["nodeName"] = json!(NODE);
        let scheduled = json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": ts});
        let state = |state: Value| {
            json!([{"name": container, "image": image, "ready": false, "started": state.get("running").is_some(),
                "restartCount": 0, "state": state}])
        };
        if let Some(failure) = c.kubelet.jobs.pull_failures.get(&image).copied() {
            let cause = failure.message(&image);
            let backing_off = pod.pointer("/status/containerStatuses").is_some();
            let (reason, message) = if backing_off {
                (
                    "ImagePullBackOff",
                    format!("Back-off pulling image \"{image}\": ErrImagePull: {cause}"),
                )
            } else {
                event(
                    c,
                    &ns,
                    "Pod",
                    &name,
                    "Warning",
                    "Failed",
                    &format!("Failed to pull image \"{image}\": {cause}"),
                );
                ("ErrImagePull", cause)
            };
            let waiting = json!({"waiting": {"reason": reason, "message": message}});
            if pod.pointer("/status/containerStatuses/0/state") != Some(&waiting) {
                pod["status"] = json!({"phase": "Pending", "conditions": [scheduled],
                    "containerStatuses": state(waiting)});
                c.system_write(info_of("Pod"), &ns, pod);
            }
            continue;
        }
        let done = match c.kubelet.jobs.runner.clone() {
            None => Some((0, String::new())),
            Some(runner) => {
                let runs = c.kubelet.jobs.runs.clone();
                let mut started = runs.lock().expect("job runs");
                match started.get(&uid) {
                    Some(result) => result.clone(),
                    None => {
                        started.insert(uid.clone(), None);
                        let job_pod = JobPod {
                            args: pod
                                .pointer("/spec/containers/0/args")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(|a| a.as_str().map(str::to_string))
                                .collect(),
                            files: mounted(c, &ns, &pod),
                            pod: pod.clone(),
                        };
                        let (runs, uid) = (runs.clone(), uid.clone());
                        std::thread::spawn(move || {
                            let result = runner(&job_pod);
                            runs.lock().expect("job runs").insert(uid, Some(result));
                        });
                        None
                    }
                }
            }
        };
        let Some((code, output)) = done else {
            let running = json!({"running": {"startedAt": ts}});
            if s(&pod, "/status/phase") != "Running" {
                pod["status"] = json!({"phase": "Running", "startTime": ts, "conditions": [scheduled],
                    "containerStatuses": state(running)});
                c.system_write(info_of("Pod"), &ns, pod);
            }
            continue;
        };
        let log = c
            .logs
            .entry((ns.clone(), name.clone(), container.clone()))
            .or_default();
        for line in output.lines() {
            log.current.push((jiff::Timestamp::now(), line.to_string()));
        }
        let (phase, reason) = if code == 0 {
            ("Succeeded", "Completed")
        } else {
            ("Failed", "Error")
        };
        let terminated = json!({"terminated": {"exitCode": code, "reason": reason,
            "startedAt": ts, "finishedAt": ts}});
        pod["status"] = json!({"phase": phase, "startTime": ts, "conditions": [scheduled],
            "containerStatuses": state(terminated)});
        c.system_write(info_of("Pod"), &ns, pod);
    }
}
