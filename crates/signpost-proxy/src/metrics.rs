//! Prometheus metrics of the proxy, kept in atomics and a few small labelled maps and rendered
//! in the text exposition format at `/metrics` on the admin port. SAP's metric names
//! (`tp_received_requests_total`, `tp_target_system_requests_total`, `tp_open_tcp_connections`,
//! `tp_tcp_connections_total`) are served beside Signpost's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Upper bounds (seconds) of the target latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The answers of one route by status: a short list, searched linearly (a route sees few
/// distinct statuses), so counting a request allocates nothing and touches no shared map.
#[derive(Debug, Default)]
pub struct RouteCounters(Mutex<Vec<(u16, u64)>>);

impl RouteCounters {
    pub fn count(&self, status: u16) {
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match v.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => v.push((status, 1)),
        }
    }

    fn snapshot(&self) -> Vec<(u16, u64)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// route → its counters; kept across reloads.
    routes: RwLock<BTreeMap<String, Arc<RouteCounters>>>,
    /// origin label → errors the proxy answered itself.
    errors: Mutex<BTreeMap<&'static str, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    target_requests: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_stale: AtomicU64,
    pub tcp_open: AtomicU64,
    pub tcp_total: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
}

impl Metrics {
    /// The counters of `route` (made on first use, kept across reloads).
    pub fn route(&self, route: &str) -> Arc<RouteCounters> {
        if let Some(c) = self.routes.read().ok().and_then(|m| m.get(route).cloned()) {
            return c;
        }
        let mut m = self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(route.to_owned()).or_default().clone()
    }

    /// A request answered (by the target or by the proxy) on `route` (slow path; the forwarder
    /// holds its route's counters).
    pub fn request(&self, route: &str, status: u16) {
        self.route(route).count(status);
    }

    /// An error the proxy answered itself.
    pub fn error(&self, origin: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(origin).or_default() += 1;
        }
    }

    /// A call to a target system took `d` until its response head.
    pub fn target_latency(&self, d: Duration) {
        self.target_requests.fetch_add(1, Ordering::Relaxed);
        let secs = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format; `token_fetches` is the instances' clients' count.
    pub fn render(&self, token_fetches: u64) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let requests: Vec<(String, Vec<(u16, u64)>)> = self
            .routes
            .read()
            .map(|m| m.iter().map(|(r, c)| (r.clone(), c.snapshot())).collect())
            .unwrap_or_default();
        let total: u64 = requests
            .iter()
            .flat_map(|(_, v)| v.iter().map(|(_, n)| n))
            .sum();
        out.push_str("# HELP signpost_proxy_requests_total HTTP requests answered, by route and status.\n# TYPE signpost_proxy_requests_total counter\n");
        for (route, status, n) in requests
            .iter()
            .flat_map(|(r, v)| v.iter().map(move |(s, n)| (r, s, n)))
        {
            let _ = writeln!(
                out,
                "signpost_proxy_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP tp_received_requests_total HTTP requests received (SAP's name).\n# TYPE tp_received_requests_total counter\n");
        let _ = writeln!(out, "tp_received_requests_total {total}");
        out.push_str("# HELP tp_target_system_requests_total Requests sent to target systems (SAP's name).\n# TYPE tp_target_system_requests_total counter\n");
        let _ = writeln!(
            out,
            "tp_target_system_requests_total {}",
            get(&self.target_requests)
        );
        out.push_str("# HELP signpost_proxy_target_latency_seconds Time from sending a request to a target system until its response head.\n# TYPE signpost_proxy_target_latency_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "signpost_proxy_target_latency_seconds_bucket{{le=\"{le}\"}} {}",
                get(&self.latency_buckets[i])
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "signpost_proxy_target_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "signpost_proxy_target_latency_seconds_sum {}",
            get(&self.latency_sum_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "signpost_proxy_target_latency_seconds_count {count}");
        out.push_str("# HELP signpost_proxy_destination_cache_total Find-destination cache lookups by result: hit, miss, or stale (served while the Destination service failed).\n# TYPE signpost_proxy_destination_cache_total counter\n");
        for (label, a) in [
            ("hit", &self.cache_hits),
            ("miss", &self.cache_misses),
            ("stale", &self.cache_stale),
        ] {
            let _ = writeln!(
                out,
                "signpost_proxy_destination_cache_total{{result=\"{label}\"}} {}",
                get(a)
            );
        }
        out.push_str("# HELP signpost_proxy_token_fetches_total Tokens fetched from the token services of the Destination service instances.\n# TYPE signpost_proxy_token_fetches_total counter\n");
        let _ = writeln!(out, "signpost_proxy_token_fetches_total {token_fetches}");
        out.push_str("# HELP signpost_proxy_errors_total Errors the proxy answered itself, by origin.\n# TYPE signpost_proxy_errors_total counter\n");
        let errors = self.errors.lock().map(|m| m.clone()).unwrap_or_default();
        for origin in ["proxy", "token_service", "destination_service"] {
            let _ = writeln!(
                out,
                "signpost_proxy_errors_total{{origin=\"{origin}\"}} {}",
                errors.get(origin).copied().unwrap_or(0)
            );
        }
        out.push_str("# HELP tp_open_tcp_connections Open relayed TCP connections (SAP's name).\n# TYPE tp_open_tcp_connections gauge\n");
        let _ = writeln!(out, "tp_open_tcp_connections {}", get(&self.tcp_open));
        out.push_str("# HELP tp_tcp_connections_total Relayed TCP connections (SAP's name).\n# TYPE tp_tcp_connections_total counter\n");
        let _ = writeln!(out, "tp_tcp_connections_total {}", get(&self.tcp_total));
        out.push_str("# HELP signpost_proxy_config_reloads_total Configuration reloads by result.\n# TYPE signpost_proxy_config_reloads_total counter\n");
        let _ = writeln!(
            out,
            "signpost_proxy_config_reloads_total{{result=\"ok\"}} {}",
            get(&self.reloads_ok)
        );
        let _ = writeln!(
            out,
            "signpost_proxy_config_reloads_total{{result=\"failed\"}} {}",
            get(&self.reloads_failed)
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
