//! The snapshot schedule's first run, at install: a Job made from the CronJob (as `kubectl create
//! job --from=cronjob/…` makes it), waited for, so an image that does not pull, rights the job
//! lacks or a missing snapshot class show now with their cause, not at the first 03:00. Its
//! result is kept on the CronJob (an annotation `status` shows).

use std::time::Duration;

use anyhow::Result;
use indicatif::ProgressBar;
use k8s_openapi::api::batch::v1::{CronJob, Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use super::client::{Kube, api_error};
use super::wait::poll;
use super::watches::Wake;
use crate::profile::Profile;
use crate::ui::Ui;

/// The CronJob's annotation that keeps the first run's result.
pub const ANNOTATION: &str = "phonebill-db/first-run";

/// How the first run went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstRun {
    pub job: String,
    pub at: String,
    /// succeeded, failed, or running (still going when install stopped waiting).
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The Job's condition of type `type_` when it is True (Complete, Failed).
pub fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

impl FirstRun {
    pub fn failed(&self) -> bool {
        self.result == "failed"
    }
}

/// Whether install should run the schedule once: it is new or changed (`changed`), or its last
/// run at install did not succeed (there was none, it failed, or it was still going and then
/// failed or went).
pub async fn wanted(kube: &Kube, profile: &Profile, changed: bool) -> Result<bool> {
    if changed {
        return Ok(true);
    }
    let name = profile.names().snapshot_schedule;
    let cron_jobs: Api<CronJob> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let cj = cron_jobs
        .get_opt(&name)
        .await
        .map_err(|e| api_error(e, &format!("reading CronJob {name}"), &kube.server))?;
    let Some(last) = cj.as_ref().and_then(recorded) else {
        return Ok(true);
    };
    match last.result.as_str() {
        "succeeded" => Ok(false),
        // Still going when install stopped waiting: again if it then failed or went.
        "running" if !last.job.is_empty() => {
            let jobs: Api<Job> = Api::namespaced(kube.client.clone(), &kube.namespace);
            let job = jobs
                .get_opt(&last.job)
                .await
                .map_err(|e| api_error(e, &format!("reading Job {}", last.job), &kube.server))?;
            Ok(job
                .as_ref()
                .is_none_or(|j| condition(j, "Failed").is_some()))
        }
        _ => Ok(true),
    }
}

/// The first run's result as the CronJob keeps it, if any.
pub fn recorded(cron_job: &CronJob) -> Option<FirstRun> {
    serde_json::from_str(cron_job.annotations().get(ANNOTATION)?).ok()
}

/// What one look at the Job and its pods shows.
#[derive(Debug, Clone)]
enum Seen {
    Waiting(String),
    Succeeded,
    /// The cause and what to try.
    Failed(String, String),
}

/// A container waiting for a reason it does not get over by itself: at once.
const STUCK: &[&str] = &["ImagePullBackOff", "InvalidImageName"];
/// A reason it may get over (a registry's throttling, a Secret arriving): stuck once it has
/// lasted [`STUCK_AFTER`].
const MAYBE_STUCK: &[&str] = &[
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
];
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// Run the schedule's job once and wait up to `timeout` for it; a failure deletes the Job (its
/// pods would retry for nothing) and is said with its cause. Whatever goes wrong on the way (the
/// API failing meanwhile) is the run's failure, kept on the CronJob where it can be: the database
/// is installed either way, and install reports it.
pub async fn run(
    kube: &Kube,
    profile: &Profile,
    timeout: Duration,
    ui: &Ui,
    bar: &ProgressBar,
) -> FirstRun {
    let at = jiff::Timestamp::now();
    let run = match attempt(kube, profile, timeout, ui, bar, at).await {
        Ok(run) => run,
        Err(e) => {
            let r = crate::error::report(&e);
            FirstRun {
                job: String::new(),
                at: at.to_string(),
                result: "failed".into(),
                cause: Some(r.error),
                hint: r.hint,
            }
        }
    };
    if let Err(e) = keep(kube, profile, &run).await {
        ui.note(
            None,
            format!(
                "warning: the first run's result is not kept on the CronJob ({}); status will not show it",
                crate::error::report(&e).error
            ),
        );
    }
    run
}

/// The result, as an annotation of the CronJob (a merge patch: install's apply leaves it).
async fn keep(kube: &Kube, profile: &Profile, run: &FirstRun) -> Result<()> {
    let name = profile.names().snapshot_schedule;
    let cron_jobs: Api<CronJob> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {
        ANNOTATION: serde_json::to_string(run)?,
    }}});
    cron_jobs
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!("keeping the first run's result on CronJob {name}"),
                &kube.server,
            )
        })?;
    Ok(())
}

async fn attempt(
    kube: &Kube,
    profile: &Profile,
    timeout: Duration,
    ui: &Ui,
    bar: &ProgressBar,
    now: jiff::Timestamp,
) -> Result<FirstRun> {
    let names = profile.names();
    let cron_jobs: Api<CronJob> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let cj = cron_jobs.get(&names.snapshot_schedule).await.map_err(|e| {
        api_error(
            e,
            &format!("reading CronJob {}", names.snapshot_schedule),
            &kube.server,
        )
    })?;
    let job = from_cron_job(&cj, now.as_millisecond())?;
    let name = job.name_any();
    bar.set_message(format!("running the snapshot schedule once (Job {name})"));
    let jobs: Api<Job> = Api::namespaced(kube.client.clone(), &kube.namespace);
    // A name of its own (the time in milliseconds), so a create retried after its answer was
    // lost finds its Job instead of making a second one.
    crate::k8s::client::create_once(
        kube,
        &jobs,
        &job,
        &format!("creating Job {name}"),
        |there| there.labels() == job.labels(),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let selector = format!("batch.kubernetes.io/job-name={name}");
    let mut wake = Wake::polling().named::<Job>(kube, &name).watch(
        Api::<Pod>::namespaced(kube.streams.clone(), &kube.namespace),
        Some(&selector),
        None,
    );
    let image = cj
        .spec
        .as_ref()
        .and_then(|s| s.job_template.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    // Since when each pod has waited for each reason (the looks share it).
    let waiting_since = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let outcome = poll(
        timeout,
        ui,
        bar,
        &mut wake,
        || look(kube, &jobs, &pods, &name, &selector, &image, &waiting_since),
        |s| !matches!(s, Seen::Waiting(_)),
        |s| match s {
            Seen::Waiting(what) => {
                format!("the snapshot schedule's first run (Job {name}): {what}")
            }
            _ => format!("the snapshot schedule's first run (Job {name}) ended"),
        },
    )
    .await?;
    let mut run = FirstRun {
        job: name.clone(),
        at: now.to_string(),
        result: "running".into(),
        cause: None,
        hint: None,
    };
    match outcome.unwrap_or_else(|t| t.last) {
        Seen::Succeeded => run.result = "succeeded".into(),
        Seen::Failed(cause, hint) => {
            run.result = "failed".into();
            run.cause = Some(cause);
            run.hint = Some(hint);
            let dp = DeleteParams::background();
            let doing = format!("deleting Job {name}");
            if let Err(e) = super::client::delete_if_there(kube, &jobs, &name, &dp, &doing).await {
                ui.note(
                    None,
                    format!(
                        "warning: the failed Job {name} stays ({}); `kubectl -n {} delete job {name}` removes it",
                        crate::error::report(&e).error,
                        kube.namespace
                    ),
                );
            }
        }
        Seen::Waiting(what) => run.cause = Some(what),
    }
    Ok(run)
}

/// The Job `kubectl create job --from=cronjob/NAME` makes: the CronJob's job template, owned by
/// it (so its history limits and deletion apply), marked as started by hand.
pub fn from_cron_job(cj: &CronJob, unix_millis: i64) -> Result<Job> {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert("phonebill-db/run".into(), "install".into());
    let owner = OwnerReference {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        name: cj.name_any(),
        uid: cj.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(format!("{}-install-{unix_millis}", cj.name_any())),
            namespace: cj.namespace(),
            labels: Some(labels),
            annotations: Some(
                [(
                    "cronjob.kubernetes.io/instantiate".to_string(),
                    "manual".to_string(),
                )]
                .into(),
            ),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(template.spec.unwrap_or_default()),
        status: None,
    })
}

async fn look(
    kube: &Kube,
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    name: &str,
    selector: &str,
    image: &str,
    waiting_since: &std::sync::Mutex<std::collections::BTreeMap<String, std::time::Instant>>,
) -> Result<Seen> {
    let job = jobs
        .get(name)
        .await
        .map_err(|e| api_error(e, &format!("reading Job {name}"), &kube.server))?;
    if condition(&job, "Complete").is_some() {
        return Ok(Seen::Succeeded);
    }
    let mut list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| api_error(e, &format!("listing Job {name}'s pods"), &kube.server))?
        .items;
    list.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    for pod in &list {
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for st in &statuses {
            let Some(w) = st.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = w.reason.clone().unwrap_or_default();
            let lasted = waiting_since
                .lock()
                .expect("not poisoned: no panic holds it")
                .entry(format!("{}/{reason}", pod.name_any()))
                .or_insert_with(std::time::Instant::now)
                .elapsed();
            if STUCK.contains(&reason.as_str())
                || (MAYBE_STUCK.contains(&reason.as_str()) && lasted >= STUCK_AFTER)
            {
                let message = w.message.clone().unwrap_or_default();
                return Ok(Seen::Failed(
                    format!("the job's image {image} cannot be used ({reason}): {message}"),
                    pull_hint(image),
                ));
            }
        }
    }
    // A failed pod is retried by the Job (backoffLimit); its end is the Job's Failed condition.
    if let Some(failed) = condition(&job, "Failed") {
        let last = list
            .iter()
            .rev()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        let (error, hint, code) = match last {
            Some(pod) => {
                let (error, hint) = logged_error(kube, pods, &pod.name_any()).await;
                let code = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|cs| {
                        cs.iter().find_map(|c| {
                            c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
                        })
                    })
                    .map(|c| format!(", exit {c}"))
                    .unwrap_or_default();
                (error, hint, code)
            }
            None => (
                failed.message.clone().unwrap_or_default(),
                None,
                String::new(),
            ),
        };
        let reason = failed.reason.clone().unwrap_or_else(|| "Failed".into());
        return Ok(Seen::Failed(
            format!("the snapshot job failed ({reason}{code}): {error}"),
            hint.unwrap_or_else(|| {
                format!(
                    "fix the cause and run install again; the Job's events stay a while: `kubectl -n {} get events --field-selector involvedObject.name={name}`",
                    kube.namespace
                )
            }),
        ));
    }
    let what = list
        .last()
        .and_then(|p| {
            let st = p.status.as_ref()?;
            let waiting = st
                .container_statuses
                .as_ref()
                .and_then(|cs| cs.first()?.state.as_ref()?.waiting.as_ref()?.reason.clone());
            Some(waiting.unwrap_or_else(|| st.phase.clone().unwrap_or_default()))
        })
        .map_or("waiting for its pod".to_string(), |s| {
            format!("pod {}", s.to_lowercase())
        });
    Ok(Seen::Waiting(what))
}

/// The `error:` and `hint:` lines the tool printed in the job's container.
async fn logged_error(kube: &Kube, pods: &Api<Pod>, pod: &str) -> (String, Option<String>) {
    let params = LogParams {
        container: Some("snapshot".into()),
        tail_lines: Some(50),
        ..Default::default()
    };
    let log = match pods.logs(pod, &params).await {
        Ok(l) => l,
        Err(e) => {
            let e = api_error(e, &format!("reading pod {pod}'s log"), &kube.server);
            return (crate::error::report(&e).error, None);
        }
    };
    let line = |prefix: &str| {
        log.lines()
            .rev()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
    };
    (
        line("error: ").unwrap_or_else(|| "it printed no error line".into()),
        line("hint: "),
    )
}

/// What to do about an image the nodes cannot pull.
fn pull_hint(image: &str) -> String {
    let registry = image.split('/').next().unwrap_or_default();
    let acr = registry.strip_suffix(".azurecr.io").unwrap_or("REGISTRY");
    format!(
        "build and push the image (docs/container.md: docker build -t {image} . && docker push {image}), let the cluster pull from the registry (az aks update -n CLUSTER -g GROUP --attach-acr {acr}), then install again; or set snapshots.image in a --values file, or snapshots.enabled: false to go without the schedule"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_is_the_cron_jobs_template_owned_by_it() {
        let cj: CronJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "r-snapshots", "namespace": "ns", "uid": "u-1"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {
                "metadata": {"labels": {"app.kubernetes.io/instance": "r"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "snapshot", "image": "x"}]}}}}}
        }))
        .unwrap();
        let job = from_cron_job(&cj, 1_700_000_000_123).unwrap();
        assert_eq!(job.name_any(), "r-snapshots-install-1700000000123");
        assert_eq!(job.labels()["app.kubernetes.io/instance"], "r");
        assert_eq!(job.labels()["phonebill-db/run"], "install");
        let owner = &job.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("CronJob", "u-1")
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(2));
        assert!(spec.selector.is_none(), "the API server makes the selector");
    }

    #[test]
    fn the_pull_hint_names_the_registry_to_attach() {
        let hint = pull_hint("phonebilldev.azurecr.io/phonebill-db:0.1.0");
        assert!(hint.contains("--attach-acr phonebilldev"), "{hint}");
        assert!(hint.contains("docker push phonebilldev.azurecr.io/phonebill-db:0.1.0"));
    }
}
