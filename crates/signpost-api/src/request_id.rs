//! Request ids: the caller's `x-request-id` when it is a sane token (up to 128 letters, digits,
//! `-_.:`), else a new one (a random per-process prefix and a counter), as the proxy makes them
//! (docs/PROXY.md). It is answered as `x-request-id`, carried by the request's log lines and
//! written into the audit events the request records.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's id when it is usable, else a new one (`signpost_wire::request_id`).
pub fn request_id(headers: &HeaderMap) -> String {
    signpost_wire::request_id::request_id(headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()))
}

/// The middleware: every request runs with its id, and every answer carries it.
pub async fn layer(req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = signpost_core::audit::with_request_id(id.clone(), next.run(req))
        .instrument(span)
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-1.2:3_x"));
        assert_eq!(request_id(&h), "abc-1.2:3_x");
        for bad in ["", "a b", "x\"y", &"a".repeat(129)] {
            h.insert(
                X_REQUEST_ID,
                HeaderValue::from_str(bad).unwrap_or(HeaderValue::from_static("?")),
            );
            let made = request_id(&h);
            assert_ne!(made, bad);
            assert!(made.len() > 12 && made.contains('-'), "{made}");
        }
        let (a, b) = (request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
        assert_ne!(a, b);
    }
}
