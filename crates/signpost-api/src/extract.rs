//! Extractors: the raw body with its size limit, and header text. Who is calling is `auth`'s.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::{ApiError, MAX_BODY_BYTES};

/// The request body as bytes; a body over the limit is a JSON 413.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body is larger than {} bytes", MAX_BODY_BYTES),
            )),
            Err(e) => Err(ApiError::new(
                e.status(),
                "The request body could not be read",
            )),
        }
    }
}

/// A header's value as text, when present and readable.
pub fn header_str<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
