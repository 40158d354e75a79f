//! Where the webhook reads ServiceAccount annotations: a watch cache of every
//! ServiceAccount's metadata (a kube-runtime reflector), and a direct GET when the cache
//! does not have it yet (a ServiceAccount created a moment before its first pod), or has
//! it without a role (perhaps annotated a moment ago), so a cache that lags never denies a
//! pod its role.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::review::{ROLE_ANNOTATION, SaLookup, SaRef};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of ServiceAccount annotations.
pub trait ServiceAccounts: Send + Sync + 'static {
    fn lookup<'a>(&'a self, sa: &'a SaRef) -> BoxFuture<'a, SaLookup>;
    /// The cache has its first full listing (`/readyz`).
    fn ready(&self) -> bool;
    /// Lookups so far by how they were answered (`/metrics`), e.g. `("cache", 10)`.
    fn lookups(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// A fixed set (tests, benchmarks).
#[derive(Debug, Default, Clone)]
pub struct Fixed(pub HashMap<SaRef, BTreeMap<String, String>>);

impl ServiceAccounts for Fixed {
    fn lookup<'a>(&'a self, sa: &'a SaRef) -> BoxFuture<'a, SaLookup> {
        Box::pin(async move {
            match self.0.get(sa) {
                Some(a) => SaLookup::Found(a.clone()),
                None => SaLookup::NotFound,
            }
        })
    }
    fn ready(&self) -> bool {
        true
    }
}

/// How long a cache-miss GET may take: the API server gives the whole review at most the
/// webhook's timeoutSeconds (5 s in the chart).
const GET_TIMEOUT: Duration = Duration::from_secs(2);

/// The API server's ServiceAccounts, cached.
pub struct Kube {
    client: kube::Client,
    store: Store<PartialObjectMeta<ServiceAccount>>,
    synced: Arc<AtomicBool>,
    /// Answered from the cache, by a GET, and lookups that failed.
    counts: [AtomicU64; 3],
}

impl Kube {
    /// A client from `kubeconfig`, or the in-cluster configuration.
    pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, String> {
        let config = match kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?
            }
            None => kube::Config::incluster().map_err(|e| {
                format!("no in-cluster configuration ({e}); outside a cluster pass --kubeconfig")
            })?,
        };
        kube::Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
    }

    /// Start the watch (a task on the current runtime) and return the cache.
    pub fn start(client: kube::Client) -> Self {
        let (store, writer) = reflector::store();
        // Metadata only: the annotations are all the webhook reads.
        let api: Api<PartialObjectMeta<ServiceAccount>> = Api::all(client.clone());
        let stream = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect(writer)
            .applied_objects();
        tokio::spawn(async move {
            stream
                .for_each(|event| async move {
                    if let Err(e) = event {
                        tracing::warn!(error = %e, "ServiceAccount watch: retrying");
                    }
                })
                .await;
        });
        let synced = Arc::new(AtomicBool::new(false));
        let flag = synced.clone();
        let ready = store.clone();
        tokio::spawn(async move {
            if ready.wait_until_ready().await.is_ok() {
                tracing::info!(count = ready.len(), "ServiceAccount cache synced");
                flag.store(true, Ordering::Release);
            }
        });
        Self {
            client,
            store,
            synced,
            counts: Default::default(),
        }
    }
}

fn annotations(meta: &PartialObjectMeta<ServiceAccount>) -> BTreeMap<String, String> {
    meta.metadata.annotations.clone().unwrap_or_default()
}

impl ServiceAccounts for Kube {
    fn lookup<'a>(&'a self, sa: &'a SaRef) -> BoxFuture<'a, SaLookup> {
        Box::pin(async move {
            let key = ObjectRef::new(&sa.name).within(&sa.namespace);
            // A cached ServiceAccount without a role may be one annotated a moment ago whose
            // update the watch has not delivered yet: ask the API server before that denies.
            if let Some(meta) = self.store.get(&key) {
                let found = annotations(&meta);
                if found.contains_key(ROLE_ANNOTATION) {
                    self.counts[0].fetch_add(1, Ordering::Relaxed);
                    return SaLookup::Found(found);
                }
            }
            let api: Api<PartialObjectMeta<ServiceAccount>> =
                Api::namespaced(self.client.clone(), &sa.namespace);
            let answer = tokio::time::timeout(GET_TIMEOUT, api.get_opt(&sa.name)).await;
            let i = if matches!(answer, Ok(Ok(_))) { 1 } else { 2 };
            self.counts[i].fetch_add(1, Ordering::Relaxed);
            match answer {
                Ok(Ok(Some(meta))) => SaLookup::Found(annotations(&meta)),
                Ok(Ok(None)) => SaLookup::NotFound,
                Ok(Err(e)) => SaLookup::Failed(format!("API server: {e}")),
                Err(_) => SaLookup::Failed(format!(
                    "API server did not answer within {}s",
                    GET_TIMEOUT.as_secs()
                )),
            }
        })
    }

    fn ready(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn lookups(&self) -> Vec<(&'static str, u64)> {
        ["cache", "api", "error"]
            .into_iter()
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect()
    }
}
