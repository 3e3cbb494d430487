//! `/metrics` in the Prometheus text format: a few gauges and counters kept in atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::AppState;

static EXPIRING_UPLOADED: AtomicU64 = AtomicU64::new(0);

/// Uploaded certificates that expire within 30 days (set by the certificate job).
pub fn set_expiring_uploaded(n: usize) {
    EXPIRING_UPLOADED.store(n as u64, Ordering::Relaxed);
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let body = format!(
        "# HELP signpost_uploaded_certificates_expiring Uploaded certificates that expire within 30 days.\n\
         # TYPE signpost_uploaded_certificates_expiring gauge\n\
         signpost_uploaded_certificates_expiring {}\n\
         # HELP signpost_token_requests_total Token requests sent to destinations' token services (cache misses).\n\
         # TYPE signpost_token_requests_total counter\n\
         signpost_token_requests_total {}\n\
         # HELP signpost_rate_limited_total Requests refused with 429 (SIGNPOST_RATE_LIMIT).\n\
         # TYPE signpost_rate_limited_total counter\n\
         signpost_rate_limited_total {}\n\
         # HELP signpost_unknown_kid_reloads_total Reads of the signing keys caused by bearer tokens with an unknown kid.\n\
         # TYPE signpost_unknown_kid_reloads_total counter\n\
         signpost_unknown_kid_reloads_total {}\n",
        EXPIRING_UPLOADED.load(Ordering::Relaxed),
        state.core.flows().token_requests(),
        state.limits.rate_limited(),
        state.core.unknown_kid_reloads(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
