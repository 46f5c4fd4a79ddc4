//! What wakes a wait: watches on the objects it observes, as the API server offers them (list for a
//! resourceVersion, then watch from it; a 410 Expired lists again). Each event wakes the wait at
//! once; where a watch is refused (RBAC without `watch`, a proxy that cuts streams) the wait
//! falls back to polling. Waits stay judgements of fresh observations: a watch only says when
//! to look again.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt;
use kube::Resource;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// How long a wait sleeps between looks when no watch runs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long it sleeps between looks while watches run (events wake it sooner): a safety net.
pub const WATCHED_INTERVAL: Duration = Duration::from_secs(5);
/// How long one watch request lasts before it is renewed (the server's own limit is longer).
const WATCH_SECONDS: u32 = 240;
/// A watch runs on the streams' client, which has no read deadline: it bounds its own time, as
/// kube's watcher does. The server ends it after [`WATCH_SECONDS`]; one still open this much
/// later is a connection that died without a word, and is renewed.
const WATCH_MARGIN: Duration = Duration::from_secs(30);

pub struct Wake {
    tx: mpsc::UnboundedSender<()>,
    rx: mpsc::UnboundedReceiver<()>,
    live: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Wake {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Wake {
    /// No watches: look every [`POLL_INTERVAL`].
    pub fn polling() -> Wake {
        let (tx, rx) = mpsc::unbounded_channel();
        Wake {
            tx,
            rx,
            live: Arc::new(AtomicUsize::new(0)),
            tasks: vec![],
        }
    }

    /// Also wake on every change of the objects `api` lists with these selectors.
    pub fn watch<K>(mut self, api: Api<K>, labels: Option<&str>, fields: Option<&str>) -> Wake
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let mut lp = ListParams::default();
        let mut wp = WatchParams::default().timeout(WATCH_SECONDS);
        if let Some(l) = labels {
            lp = lp.labels(l);
            wp = wp.labels(l);
        }
        if let Some(f) = fields {
            lp = lp.fields(f);
            wp = wp.fields(f);
        }
        let tx = self.tx.clone();
        let live = self.live.clone();
        live.fetch_add(1, Ordering::Relaxed);
        self.tasks.push(tokio::spawn(async move {
            run(api, lp, wp, tx.clone()).await;
            // Refused or broken: polling takes over, from now (the wait may be sleeping on us).
            live.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(());
        }));
        self
    }

    /// Also wake on every change of the namespace's object `name` (of kind `K`).
    pub fn named<K>(self, kube: &super::Kube, name: &str) -> Wake
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + 'static,
        K::DynamicType: Default,
    {
        let api = Api::<K>::namespaced(kube.streams.clone(), &kube.namespace);
        self.watch(api, None, Some(&format!("metadata.name={name}")))
    }

    /// What changes while a release rolls out, goes, or gets a new volume: its StatefulSet, pods
    /// and claims.
    pub fn release(kube: &super::Kube, profile: &crate::profile::Profile) -> Wake {
        use k8s_openapi::api::apps::v1::StatefulSet;
        use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
        let selector = format!("app.kubernetes.io/instance={}", profile.release);
        let c = || kube.streams.clone();
        let ns = kube.namespace.as_str();
        Wake::polling()
            .watch(
                Api::<StatefulSet>::namespaced(c(), ns),
                Some(&selector),
                None,
            )
            .watch(Api::<Pod>::namespaced(c(), ns), Some(&selector), None)
            .watch(
                Api::<PersistentVolumeClaim>::namespaced(c(), ns),
                Some(&selector),
                None,
            )
    }

    /// Is any watch still running?
    pub fn watching(&self) -> bool {
        self.live.load(Ordering::Relaxed) > 0
    }

    /// Sleep until a watched object changes, or `at_most`.
    pub async fn sleep(&mut self, at_most: Duration) {
        let at_most = if self.watching() {
            at_most.min(WATCHED_INTERVAL)
        } else {
            at_most.min(POLL_INTERVAL)
        };
        if tokio::time::timeout(at_most, self.rx.recv()).await.is_ok() {
            // Several changes at once make one look.
            while self.rx.try_recv().is_ok() {}
        }
    }
}

/// List for a resourceVersion, then watch from it, renewing the watch when it ends; list again
/// on 410 Expired. Returns when the server refuses to list or watch.
async fn run<K>(api: Api<K>, lp: ListParams, wp: WatchParams, tx: mpsc::UnboundedSender<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    loop {
        let Ok(list) = api.list_metadata(&lp).await else {
            return;
        };
        let mut version = list.metadata.resource_version.unwrap_or_default();
        'watching: loop {
            let Ok(stream) = api.watch(&wp, &version).await else {
                return;
            };
            let bound = tokio::time::Instant::now()
                + Duration::from_secs(WATCH_SECONDS.into())
                + WATCH_MARGIN;
            futures_util::pin_mut!(stream);
            loop {
                let Ok(next) = tokio::time::timeout_at(bound, stream.try_next()).await else {
                    continue 'watching; // silent past the server's own end: renewed
                };
                match next {
                    Ok(Some(
                        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o),
                    )) => {
                        if let Some(v) = o.meta().resource_version.clone() {
                            version = v;
                        }
                        if tx.send(()).is_err() {
                            return; // the wait is over
                        }
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => version = b.metadata.resource_version,
                    // 410 Expired: what we knew is too old; list again.
                    Ok(Some(WatchEvent::Error(s))) if s.code == 410 => break 'watching,
                    Ok(Some(WatchEvent::Error(_))) | Err(_) => return,
                    // The server ended this watch (its timeout): watch on from where we are.
                    Ok(None) => continue 'watching,
                }
            }
        }
    }
}
