//! `/metrics`: the service's counters and gauges (kept in atomics where they are counted), read
//! per scrape and written in the OpenMetrics text format by `prometheus-client`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::AppState;

/// The media type of the exposition.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

static EXPIRING_UPLOADED: AtomicU64 = AtomicU64::new(0);

/// Uploaded certificates that expire within 30 days (set by the certificate job).
pub fn set_expiring_uploaded(n: usize) {
    EXPIRING_UPLOADED.store(n as u64, Ordering::Relaxed);
}

/// The values of one scrape.
#[derive(Debug)]
struct Snapshot {
    expiring_uploaded: u64,
    token_requests: u64,
    rate_limited: u64,
    unknown_kid_reloads: u64,
    caches: Vec<signpost_core::CacheStats>,
    /// The async runtime's worker threads (`SIGNPOST_WORKER_THREADS`).
    worker_threads: usize,
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let expiring = ConstGauge::new(i64::try_from(self.expiring_uploaded).unwrap_or(i64::MAX));
        one(
            &mut enc,
            "signpost_uploaded_certificates_expiring",
            "Uploaded certificates that expire within 30 days.",
            expiring,
        )?;
        one(
            &mut enc,
            "signpost_worker_threads",
            "Threads that serve requests (SIGNPOST_WORKER_THREADS; by default one per core).",
            ConstGauge::new(i64::try_from(self.worker_threads).unwrap_or(i64::MAX)),
        )?;
        for (name, help, n) in [
            (
                "signpost_token_requests",
                "Token requests sent to destinations' token services (cache misses).",
                self.token_requests,
            ),
            (
                "signpost_rate_limited",
                "Requests refused with 429 (SIGNPOST_RATE_LIMIT).",
                self.rate_limited,
            ),
            (
                "signpost_unknown_kid_reloads",
                "Reads of the signing keys caused by bearer tokens with an unknown kid.",
                self.unknown_kid_reloads,
            ),
        ] {
            one(&mut enc, name, help, ConstCounter::new(n))?;
        }
        self.encode_caches(&mut enc)
    }
}

impl Snapshot {
    /// Each in-process cache's lookups, hits and size, labelled `cache="entities"`, ...:
    /// the hit rate is `hits / (hits + misses)`.
    fn encode_caches(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        type Pick = fn(&signpost_core::CacheStats) -> u64;
        let counters: [(&str, &str, Pick); 2] = [
            (
                "signpost_cache_hits",
                "Lookups answered from an in-process cache.",
                |c| c.hits,
            ),
            (
                "signpost_cache_misses",
                "Lookups an in-process cache could not answer.",
                |c| c.misses,
            ),
        ];
        for (name, help, pick) in counters {
            let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &self.caches {
                ConstCounter::new(pick(c)).encode(family.encode_family(&[("cache", c.name)])?)?;
            }
        }
        let gauges: [(&str, &str, Pick); 2] = [
            (
                "signpost_cache_size_bytes",
                "Bytes an in-process cache holds, as it weighs its entries.",
                |c| c.bytes,
            ),
            (
                "signpost_cache_capacity_bytes",
                "The budget of an in-process cache (SIGNPOST_CACHE_MB shared out).",
                |c| c.capacity_bytes,
            ),
        ];
        for (name, help, pick) in gauges {
            let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for c in &self.caches {
                let n = i64::try_from(pick(c)).unwrap_or(i64::MAX);
                ConstGauge::new(n).encode(family.encode_family(&[("cache", c.name)])?)?;
            }
        }
        Ok(())
    }
}

/// One metric without labels (a counter's sample is `<name>_total`).
fn one(enc: &mut DescriptorEncoder, name: &str, help: &str, m: impl EncodeMetric) -> fmt::Result {
    m.encode(enc.encode_descriptor(name, help, None, m.metric_type())?)
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = Snapshot {
        expiring_uploaded: EXPIRING_UPLOADED.load(Ordering::Relaxed),
        token_requests: state.core.flows().token_requests(),
        rate_limited: state.limits.rate_limited(),
        unknown_kid_reloads: state.core.unknown_kid_reloads(),
        caches: state.core.cache_stats(),
        worker_threads: tokio::runtime::Handle::current().metrics().num_workers(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut body = String::new();
    // Writing to a `String` does not fail.
    let _ = text::encode(&mut body, &registry);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}
