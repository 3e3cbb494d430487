//! The proxy's state: what lives as long as the process (metrics, the destination cache, the
//! egress clients) and the current [`Snapshot`] of the configuration (routes and one client of
//! the Destination service per instance), swapped whole on every good reload. A reload that
//! fails keeps the last good snapshot and says why (log, `/readyz`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use signpost_client::{ClientOptions, DestinationClient, ServiceKey};

use crate::config::{self, ConfigError, CredentialSource, ProxyConfig};
use crate::egress::Egress;
use crate::metrics::Metrics;
use crate::resolve::Resolver;
use crate::routing::RouteTable;
use crate::tcp::TcpRoutes;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub config: PathBuf,
    pub routes: Option<PathBuf>,
    pub credentials: CredentialSource,
    /// The proxy's own namespace.
    pub namespace: String,
}

/// One loaded configuration, ready to serve.
#[derive(Debug)]
pub struct Snapshot {
    pub config: ProxyConfig,
    pub fingerprint: [u8; 32],
    pub routes: RouteTable,
    pub clients: HashMap<String, DestinationClient>,
}

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    pub sources: Sources,
    pub metrics: Metrics,
    pub resolver: Resolver,
    pub egress: Egress,
    pub tcp: TcpRoutes,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Counts snapshot swaps (bumped after the resolver forgot what the old one cached): what
    /// the lean path's per-connection memo is checked against.
    generation: std::sync::atomic::AtomicU64,
    /// Why the last reload failed, while it does.
    reload_error: RwLock<Option<String>>,
}

impl Shared {
    /// Loads the configuration once; an error here stops the start. `workers`: the data plane's
    /// worker threads (each gets its own egress clients).
    pub fn load(
        sources: Sources,
        allow_private: bool,
        workers: usize,
    ) -> Result<Arc<Self>, ConfigError> {
        let config = config::load(
            &sources.config,
            sources.routes.as_deref(),
            &sources.credentials,
        )?;
        let metrics = Metrics::default();
        let snapshot = build(config, &sources.namespace, None, &metrics)?;
        Ok(Arc::new(Self {
            sources,
            metrics,
            resolver: Resolver::new(),
            egress: Egress::new(allow_private, workers),
            tcp: TcpRoutes::default(),
            snapshot: RwLock::new(Arc::new(snapshot)),
            generation: std::sync::atomic::AtomicU64::new(0),
            reload_error: RwLock::new(None),
        }))
    }

    /// How many times the snapshot was swapped.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current configuration.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Why the last reload failed, while the configuration on disk is bad.
    pub fn reload_error(&self) -> Option<String> {
        self.reload_error.read().ok().and_then(|e| e.clone())
    }

    /// Reads the files again; swaps the snapshot when anything changed. Returns whether it did.
    pub fn reload(&self) -> bool {
        let loaded = config::load(
            &self.sources.config,
            self.sources.routes.as_deref(),
            &self.sources.credentials,
        );
        let current = self.snapshot();
        let outcome = loaded.and_then(|config| {
            if config.fingerprint() == current.fingerprint {
                return Ok(None);
            }
            build(
                config,
                &self.sources.namespace,
                Some(&current),
                &self.metrics,
            )
            .map(Some)
        });
        match outcome {
            Ok(None) => {
                self.set_error(None);
                false
            }
            Ok(Some(next)) => {
                // Cached answers carry what was prepared from them with the old settings
                // (connectivity proxy, clients of the instances).
                let instances_changed = next.clients.len() != current.clients.len()
                    || next.config.instances != current.config.instances
                    || next.config.connectivity_proxy != current.config.connectivity_proxy
                    || next.config.additional_cas != current.config.additional_cas;
                if let Ok(mut s) = self.snapshot.write() {
                    *s = Arc::new(next);
                }
                if instances_changed {
                    self.resolver.clear();
                }
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::Release);
                Metrics::inc(&self.metrics.reloads_ok);
                self.set_error(None);
                tracing::info!("configuration reloaded");
                true
            }
            Err(e) => {
                let message = e.to_string();
                if self.reload_error().as_deref() != Some(message.as_str()) {
                    Metrics::inc(&self.metrics.reloads_failed);
                    tracing::error!(error = %message, "configuration reload failed; the last good configuration stays in use");
                }
                self.set_error(Some(message));
                false
            }
        }
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut slot) = self.reload_error.write() {
            *slot = e;
        }
    }

    /// TCP listeners that could not be opened.
    pub fn tcp_errors(&self) -> Vec<String> {
        self.tcp.errors()
    }

    /// Reloads every `interval` until the process ends.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                // Reading files blocks; keep it off the async workers.
                let s = shared.clone();
                let _ = tokio::task::spawn_blocking(move || s.reload()).await;
            }
        });
    }
}

/// A snapshot of `config`; clients of unchanged instances are kept with their tokens.
fn build(
    config: ProxyConfig,
    namespace: &str,
    previous: Option<&Snapshot>,
    metrics: &Metrics,
) -> Result<Snapshot, ConfigError> {
    let clients = instance_clients(&config, previous.map(|p| (&p.config, &p.clients)))?;
    let routes = RouteTable::new(&config, namespace, metrics);
    for problem in config.route_problems() {
        tracing::warn!("{problem}");
    }
    Ok(Snapshot {
        fingerprint: config.fingerprint(),
        config,
        routes,
        clients,
    })
}

/// One Destination-service client per instance of `config`, by instance name. A client of
/// `previous` is kept (with its cached token) when its instance and the timeouts and CAs are
/// unchanged.
pub fn instance_clients(
    config: &ProxyConfig,
    previous: Option<(&ProxyConfig, &HashMap<String, DestinationClient>)>,
) -> Result<HashMap<String, DestinationClient>, ConfigError> {
    let mut clients = HashMap::new();
    for (i, instance) in config.instances.iter().enumerate() {
        let kept = previous.and_then(|(old_config, old_clients)| {
            let old = old_config
                .instances
                .iter()
                .find(|o| o.name == instance.name)?;
            (old == instance
                && old_config.connection_timeout == config.connection_timeout
                && old_config.read_timeout == config.read_timeout
                && old_config.additional_cas == config.additional_cas)
                .then(|| old_clients.get(&instance.name).cloned())
                .flatten()
        });
        let client = match kept {
            Some(c) => c,
            None => {
                let path = format!(
                    "config.integration.destinationService.instances[{i}].serviceCredentials"
                );
                let key =
                    ServiceKey::from_json(&instance.service_key.0).map_err(|e| ConfigError {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                let options = ClientOptions {
                    connect_timeout: config.connection_timeout,
                    read_timeout: config.read_timeout,
                    extra_roots_pem: config.additional_cas.clone(),
                    ..ClientOptions::default()
                };
                DestinationClient::new(key, options).map_err(|e| ConfigError {
                    path,
                    message: e.to_string(),
                })?
            }
        };
        clients.insert(instance.name.clone(), client);
    }
    Ok(clients)
}
