//! Extractors: the raw body with its size limit, the authenticated caller, and the platform.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use signpost_core::Principal;

use crate::{ApiError, AppState, MAX_BODY_BYTES};

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

/// The caller, from a verified `Authorization: Bearer` token of a live binding; a 429 when the
/// token is over the rate limit.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "An Authorization header with a bearer token from the token service is required",
            )
        })?;
        // Counted per token before it is verified: a flood with one bad token is limited too.
        state.limits.check_bearer(token)?;
        Ok(Caller(state.core.authenticate(token).await?))
    }
}

/// The platform, authenticated with the broker's credentials (HTTP Basic): for Signpost's
/// admin endpoints. Anything else is a 401 `{"ErrorMessage"}` asking for Basic.
#[derive(Debug, Clone, Copy)]
pub struct Platform;

impl FromRequestParts<AppState> for Platform {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if crate::broker::broker_authorized(state, &parts.headers) {
            return Ok(Platform);
        }
        let mut res = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Broker credentials (HTTP Basic) are missing or wrong",
        )
        .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"signpost broker\""),
        );
        Err(res)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A header's value as text, when present and readable.
pub fn header_str<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
