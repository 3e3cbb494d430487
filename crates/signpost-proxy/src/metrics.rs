//! Prometheus metrics of the proxy, kept in atomics and a few small labelled maps (counting a
//! request takes no lock shared between routes and allocates nothing) and written at `/metrics`
//! on the admin port in the OpenMetrics text format by `prometheus-client`, from a snapshot taken
//! per scrape. SAP's metric names of PROXY.md §1
//! (`tp_cpu_percent`, `tp_memory_bytes`, `tp_destination_crs{Available}`,
//! `tp_received_requests_total`, `tp_target_system_requests_total`, `tp_open_tcp_connections`,
//! `tp_tcp_connections_total`) are served beside Signpost's own.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text, DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

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
    /// The process's CPU time (seconds) at the last scrape and when, for `tp_cpu_percent`.
    cpu_mark: Mutex<Option<(std::time::Instant, f64)>>,
}

/// Which routes can be served (`tp_destination_crs{Available}`): `available` have a Destination
/// service instance to use, `unavailable` name one that is not configured, or none.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteAvailability {
    pub available: u64,
    pub unavailable: u64,
}

/// The process's CPU time in seconds (user and system, `/proc/self/stat`, in the kernel's fixed
/// user-visible tick of 1/100 s) and seconds since it started; `None` off Linux.
fn process_cpu() -> Option<(f64, f64)> {
    const TICKS: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name in parentheses may hold spaces: fields are counted after its end.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // Field 3 of stat(5) is fields[0] here: utime (14), stime (15), starttime (22).
    let ticks = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let cpu = (ticks(14)? + ticks(15)?) / TICKS;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((cpu, (uptime - ticks(22)? / TICKS).max(0.0)))
}

/// The process's resident memory in bytes (`VmRSS` of `/proc/self/status`); `None` off Linux.
fn process_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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

    /// A call to a target system took `d` until its response head: one bucket counted (the
    /// first whose bound holds it; none past the last bound, which is `+Inf`'s share).
    pub fn target_latency(&self, d: Duration) {
        self.target_requests.fetch_add(1, Ordering::Relaxed);
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
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

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]), written by `prometheus-client` from
    /// a snapshot of the counters; `token_fetches` is the instances' clients' count.
    /// `tp_cpu_percent` is the CPU used since the last scrape (since the start at the first), in
    /// percent of one core.
    pub fn render(&self, token_fetches: u64, routes: RouteAvailability) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let requests = self
            .routes
            .read()
            .map(|m| m.iter().map(|(r, c)| (r.clone(), c.snapshot())).collect())
            .unwrap_or_default();
        let count = get(&self.latency_count);
        let mut latency: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.latency_buckets)
            .map(|(le, n)| (*le, get(n)))
            .collect();
        let below: u64 = latency.iter().map(|(_, n)| n).sum();
        // `f64::MAX` is prometheus-client's `+Inf` bound.
        latency.push((f64::MAX, count.saturating_sub(below)));
        let now = std::time::Instant::now();
        let cpu_percent = process_cpu().map(|(cpu, alive)| {
            let mut mark = self
                .cpu_mark
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (used, over) = match *mark {
                Some((at, before)) => (cpu - before, now.duration_since(at).as_secs_f64()),
                None => (cpu, alive),
            };
            *mark = Some((now, cpu));
            if over > 0.0 {
                (used / over * 100.0).max(0.0)
            } else {
                0.0
            }
        });
        let snapshot = Snapshot {
            cpu_percent,
            memory_bytes: process_rss(),
            routes,
            requests,
            target_requests: get(&self.target_requests),
            latency,
            latency_count: count,
            latency_sum: get(&self.latency_sum_micros) as f64 / 1e6,
            cache: [
                get(&self.cache_hits),
                get(&self.cache_misses),
                get(&self.cache_stale),
            ],
            token_fetches,
            errors: self.errors.lock().map(|m| m.clone()).unwrap_or_default(),
            tcp_open: get(&self.tcp_open),
            tcp_total: get(&self.tcp_total),
            reloads: [get(&self.reloads_ok), get(&self.reloads_failed)],
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(snapshot));
        let mut out = String::new();
        // Writing to a `String` does not fail.
        let _ = text::encode(&mut out, &registry);
        out
    }
}

/// The media type of [`Metrics::render`]'s exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The values of one scrape, encoded by prometheus-client.
#[derive(Debug)]
struct Snapshot {
    cpu_percent: Option<f64>,
    memory_bytes: Option<u64>,
    routes: RouteAvailability,
    requests: Vec<(String, Vec<(u16, u64)>)>,
    target_requests: u64,
    /// Per-bucket (not cumulative) counts, the last one `+Inf`'s.
    latency: Vec<(f64, u64)>,
    latency_count: u64,
    latency_sum: f64,
    /// hit, miss, stale.
    cache: [u64; 3],
    token_fetches: u64,
    errors: BTreeMap<&'static str, u64>,
    tcp_open: u64,
    tcp_total: u64,
    /// ok, failed.
    reloads: [u64; 2],
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let total: u64 = self
            .requests
            .iter()
            .flat_map(|(_, v)| v.iter().map(|(_, n)| n))
            .sum();
        if let Some(percent) = self.cpu_percent {
            one(
                &mut enc,
                "tp_cpu_percent",
                "CPU used by the proxy since the last scrape, in percent of one core (SAP's name).",
                ConstGauge::new(percent),
            )?;
        }
        if let Some(bytes) = self.memory_bytes {
            one(
                &mut enc,
                "tp_memory_bytes",
                "Resident memory of the proxy in bytes (SAP's name).",
                ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX)),
            )?;
        }
        let mut family = enc.encode_descriptor(
            "tp_destination_crs",
            "Routes (Destination resources) by whether they can be served (SAP's name).",
            None,
            MetricType::Gauge,
        )?;
        for (available, n) in [
            ("True", self.routes.available),
            ("False", self.routes.unavailable),
        ] {
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                .encode(family.encode_family(&[("Available", available)])?)?;
        }
        let mut family = enc.encode_descriptor(
            "signpost_proxy_requests",
            "HTTP requests answered, by route and status.",
            None,
            MetricType::Counter,
        )?;
        for (route, statuses) in &self.requests {
            // prometheus-client writes label values as they are: the route is escaped here.
            let route = escape(route);
            for (status, n) in statuses {
                let labels = [("route", route.clone()), ("status", status.to_string())];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut enc,
            "tp_received_requests",
            "HTTP requests received (SAP's name).",
            total,
        )?;
        counter(
            &mut enc,
            "tp_target_system_requests",
            "Requests sent to target systems (SAP's name).",
            self.target_requests,
        )?;
        enc.encode_descriptor(
            "signpost_proxy_target_latency_seconds",
            "Time from sending a request to a target system until its response head.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            self.latency_sum,
            self.latency_count,
            &self.latency,
            None,
        )?;
        let cache = ["hit", "miss", "stale"].into_iter().zip(self.cache);
        labelled(
            &mut enc,
            "signpost_proxy_destination_cache",
            "Find-destination cache lookups by result: hit, miss, or stale (served while the Destination service failed).",
            "result",
            cache,
        )?;
        counter(
            &mut enc,
            "signpost_proxy_token_fetches",
            "Tokens fetched from the token services of the Destination service instances.",
            self.token_fetches,
        )?;
        let errors = ["proxy", "token_service", "destination_service"]
            .into_iter()
            .map(|origin| (origin, self.errors.get(origin).copied().unwrap_or(0)));
        labelled(
            &mut enc,
            "signpost_proxy_errors",
            "Errors the proxy answered itself, by origin.",
            "origin",
            errors,
        )?;
        one(
            &mut enc,
            "tp_open_tcp_connections",
            "Open relayed TCP connections (SAP's name).",
            ConstGauge::new(i64::try_from(self.tcp_open).unwrap_or(i64::MAX)),
        )?;
        counter(
            &mut enc,
            "tp_tcp_connections",
            "Relayed TCP connections (SAP's name).",
            self.tcp_total,
        )?;
        labelled(
            &mut enc,
            "signpost_proxy_config_reloads",
            "Configuration reloads by result.",
            "result",
            ["ok", "failed"].into_iter().zip(self.reloads),
        )
    }
}

/// A counter without labels (its sample is `<name>_total`).
fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, n: u64) -> fmt::Result {
    one(enc, name, help, ConstCounter::new(n))
}

/// One metric without labels.
fn one(enc: &mut DescriptorEncoder, name: &str, help: &str, m: impl EncodeMetric) -> fmt::Result {
    m.encode(enc.encode_descriptor(name, help, None, m.metric_type())?)
}

/// A counter with one label of fixed values.
fn labelled(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'static str, u64)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        ConstCounter::new(n).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_with_sap_names_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.request("basic.default", 200);
        m.request("basic.default", 200);
        m.request("we\"ird\\route", 502);
        m.error("destination_service");
        Metrics::inc(&m.cache_hits);
        m.target_latency(Duration::from_millis(3));
        m.target_latency(Duration::from_millis(40));
        m.target_latency(Duration::from_secs(30));
        let routes = RouteAvailability {
            available: 2,
            unavailable: 1,
        };
        let text = m.render(7, routes);
        for line in [
            "# TYPE tp_destination_crs gauge",
            "tp_destination_crs{Available=\"True\"} 2",
            "tp_destination_crs{Available=\"False\"} 1",
            "# TYPE tp_cpu_percent gauge",
            "# TYPE tp_memory_bytes gauge",
            "# TYPE signpost_proxy_requests counter",
            "signpost_proxy_requests_total{route=\"basic.default\",status=\"200\"} 2",
            "signpost_proxy_requests_total{route=\"we\\\"ird\\\\route\",status=\"502\"} 1",
            "tp_received_requests_total 3",
            "tp_target_system_requests_total 3",
            "signpost_proxy_target_latency_seconds_bucket{le=\"0.0025\"} 0",
            "signpost_proxy_target_latency_seconds_bucket{le=\"0.005\"} 1",
            "signpost_proxy_target_latency_seconds_bucket{le=\"0.05\"} 2",
            "signpost_proxy_target_latency_seconds_bucket{le=\"10.0\"} 2",
            "signpost_proxy_target_latency_seconds_bucket{le=\"+Inf\"} 3",
            "signpost_proxy_target_latency_seconds_count 3",
            "signpost_proxy_target_latency_seconds_sum 30.043",
            "signpost_proxy_destination_cache_total{result=\"hit\"} 1",
            "signpost_proxy_destination_cache_total{result=\"stale\"} 0",
            "signpost_proxy_token_fetches_total 7",
            "signpost_proxy_errors_total{origin=\"destination_service\"} 1",
            "signpost_proxy_errors_total{origin=\"proxy\"} 0",
            "# TYPE tp_open_tcp_connections gauge",
            "tp_open_tcp_connections 0",
            "signpost_proxy_config_reloads_total{result=\"failed\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // This process's resident memory: more than a megabyte, less than it has to spare.
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("tp_memory_bytes "))
            .and_then(|v| v.parse().ok())
            .expect("tp_memory_bytes has a value");
        assert!(rss > 1e6 && rss < 1e11, "{rss}");
        let cpu: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("tp_cpu_percent "))
            .and_then(|v| v.parse().ok())
            .expect("tp_cpu_percent has a value");
        assert!(cpu >= 0.0, "{cpu}");
    }
}
