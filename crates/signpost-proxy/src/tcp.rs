//! `Type: TCP` destinations (`Address: tcp://host:port`): each static route whose destination
//! is a TCP one gets a listener of its own on `spec.service.port` (default 20004), and every
//! connection to it is relayed to the destination's address, plain TCP both ways. Which routes
//! are TCP is learnt by resolving them after every reload and every cache period.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Metrics;
use crate::resolve::CallerCredentials;
use crate::routing::{self, RouteEntry};
use crate::state::Shared;

/// SAP's default port of a TCP destination's Service.
pub const DEFAULT_TCP_PORT: u16 = 20004;

/// The TCP listeners of the process, by port.
#[derive(Debug, Default)]
pub struct TcpRoutes {
    listeners: Mutex<HashMap<u16, (String, tokio::task::AbortHandle)>>,
    errors: Mutex<Vec<String>>,
}

impl TcpRoutes {
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Stops every listener.
    pub fn close(&self) {
        if let Ok(mut m) = self.listeners.lock() {
            for (_, (_, handle)) in m.drain() {
                handle.abort();
            }
        }
    }
}

/// Opens and closes listeners so that each TCP route has one.
pub async fn reconcile(shared: &Arc<Shared>, bind_ip: IpAddr) {
    let snapshot = shared.snapshot();
    let mut wanted: HashMap<u16, String> = HashMap::new();
    let mut errors = Vec::new();
    for entry in snapshot.routes.routes() {
        if entry.route.is_dynamic() {
            continue;
        }
        let Ok(client) = entry.client(&snapshot.clients) else {
            continue;
        };
        let Ok(lookup) = routing::lookup_for(&entry.route, &http::HeaderMap::new()) else {
            continue;
        };
        let resolved = shared
            .resolver
            .probe(
                &entry.instance,
                client,
                &lookup,
                snapshot.config.cache_ttl,
                &shared.metrics,
            )
            .await;
        let Ok(resolved) = resolved else { continue };
        let config = &resolved.cached.found.response.destination_configuration;
        if config.get("Type").and_then(|v| v.as_str()) != Some("TCP") {
            continue;
        }
        let port = entry
            .route
            .spec
            .service
            .as_ref()
            .and_then(|s| s.port)
            .unwrap_or(DEFAULT_TCP_PORT);
        if let Some(other) = wanted.get(&port) {
            errors.push(format!(
                "TCP route {} wants port {port}, which {other} already uses",
                entry.id
            ));
            continue;
        }
        wanted.insert(port, entry.id.clone());
    }
    let Ok(mut listeners) = shared.tcp.listeners.lock().map(|m| {
        m.iter()
            .map(|(p, (r, h))| (*p, (r.clone(), h.clone())))
            .collect::<HashMap<_, _>>()
    }) else {
        return;
    };
    // Close what is no longer wanted.
    listeners.retain(|port, (route, handle)| {
        let keep = wanted.get(port) == Some(route);
        if !keep {
            handle.abort();
            tracing::info!(port = *port, route = %route, "TCP listener closed");
        }
        keep
    });
    for (port, route) in wanted {
        if listeners.contains_key(&port) {
            continue;
        }
        match TcpListener::bind(SocketAddr::new(bind_ip, port)).await {
            Ok(listener) => {
                tracing::info!(port, route = %route, "TCP listener open");
                let task = tokio::spawn(accept(shared.clone(), listener, route.clone()));
                listeners.insert(port, (route, task.abort_handle()));
            }
            Err(e) => errors.push(format!(
                "TCP route {route} cannot listen on port {port}: {e}"
            )),
        }
    }
    if let Ok(mut m) = shared.tcp.listeners.lock() {
        *m = listeners;
    }
    if let Ok(mut e) = shared.tcp.errors.lock() {
        *e = errors;
    }
}

/// Reconciles now and then every `interval`.
pub fn watch(shared: &Arc<Shared>, bind_ip: IpAddr, interval: Duration) {
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move {
        let mut last = None;
        let mut since = tokio::time::Instant::now();
        loop {
            let Some(shared) = weak.upgrade() else { return };
            let fingerprint = shared.snapshot().fingerprint;
            if last != Some(fingerprint) || since.elapsed() >= interval {
                reconcile(&shared, bind_ip).await;
                last = Some(fingerprint);
                since = tokio::time::Instant::now();
            }
            drop(shared);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

async fn accept(shared: Arc<Shared>, listener: TcpListener, route: String) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        let route = route.clone();
        tokio::spawn(async move {
            let request_id = signpost_wire::request_id::request_id(None);
            if let Err(e) = relay(&shared, stream, &route).await {
                tracing::warn!(request_id = %request_id, route = %route, peer = %peer, "TCP relay failed: {e}");
            }
        });
    }
}

async fn relay(shared: &Arc<Shared>, mut inbound: TcpStream, route_id: &str) -> Result<(), String> {
    let snapshot = shared.snapshot();
    let entry: &RouteEntry = snapshot
        .routes
        .routes()
        .iter()
        .find(|r| r.id == route_id)
        .ok_or("the route is gone")?;
    let client = entry.client(&snapshot.clients)?;
    let lookup =
        routing::lookup_for(&entry.route, &http::HeaderMap::new()).map_err(|e| e.message)?;
    let resolved = shared
        .resolver
        .resolve(
            &entry.instance,
            client,
            &lookup,
            &CallerCredentials::default(),
            snapshot.config.cache_ttl,
            &shared.metrics,
        )
        .await
        .map_err(|e| e.message)?;
    let config = &resolved.cached.found.response.destination_configuration;
    if config
        .get("ProxyType")
        .and_then(|v| v.as_str())
        .unwrap_or("Internet")
        != "Internet"
    {
        return Err("only ProxyType Internet is relayed for TCP destinations".into());
    }
    let address = config
        .get("Address")
        .and_then(|v| v.as_str())
        .ok_or("the destination has no Address")?;
    let hostport = address
        .strip_prefix("tcp://")
        .ok_or("the destination's Address is not tcp://host:port")?
        .trim_end_matches('/');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(hostport)
        .await
        .map_err(|e| format!("the destination's address cannot be resolved: {e}"))?
        .collect();
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| shared.egress.allow_private() || !signpost_net::is_private(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(format!(
            "the destination's address is private or loopback ({}-LoopbackUrlNotSupported)",
            crate::egress::REFERENCED
        ));
    }
    let mut outbound =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&allowed[..]))
            .await
            .map_err(|_| "connecting to the destination timed out".to_owned())?
            .map_err(|e| format!("the destination cannot be reached: {e}"))?;
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    Metrics::inc(&shared.metrics.tcp_total);
    Metrics::inc(&shared.metrics.tcp_open);
    let outcome = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    shared
        .metrics
        .tcp_open
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    outcome.map(drop).map_err(|e| format!("relay ended: {e}"))
}
