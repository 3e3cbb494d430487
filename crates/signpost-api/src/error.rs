use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use signpost_core::Error;
use signpost_wire::ErrorBody;

/// The one error of the HTTP layer: a status and a clear, secret-free sentence, rendered as
/// `{"ErrorMessage": "..."}` with `Content-Type: application/json`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub etag: Option<String>,
    /// Whole seconds for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            etag: None,
            retry_after: None,
        }
    }

    /// A 429 with `Retry-After`: the wait rounded up to whole seconds, at least 1.
    pub fn too_many_requests(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        // The core's one mapping of its errors to HTTP statuses.
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let etag = match &e {
            Error::PreconditionFailed { etag } => Some(etag.clone()),
            _ => None,
        };
        Self {
            status,
            message: e.to_string(),
            etag,
            // A database outage is short, as a rule: clients may retry after a second.
            retry_after: matches!(e, Error::Unavailable(_)).then_some(1),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            axum::Json(ErrorBody {
                error_message: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(etag) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            res.headers_mut().insert(header::ETAG, etag);
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
