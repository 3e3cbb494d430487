//! Who is calling: a tenant's client with a verified bearer token ([`Caller`]), or the platform
//! with the broker credentials ([`Platform`], and [`QuietPlatform`] for the editor's sign-in,
//! whose 401 carries no Basic challenge so that a browser shows no dialog of its own).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use secrecy::ExposeSecret;
use signpost_core::Principal;
use subtle::ConstantTimeEq;

use crate::extract::header_str;
use crate::{ApiError, AppState};

/// Whether the request carries the broker credentials (HTTP Basic), compared in constant time.
/// The broker and Signpost's platform endpoints authenticate with them.
pub(crate) fn broker_authorized(state: &AppState, headers: &HeaderMap) -> bool {
    header_str(headers, "authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|text| {
            let (user, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
            let user_ok: bool = user.as_bytes().ct_eq(state.broker.user.as_bytes()).into();
            let pw_ok: bool = password
                .as_bytes()
                .ct_eq(state.broker.password.expose_secret().as_bytes())
                .into();
            user_ok & pw_ok
        })
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
        if broker_authorized(state, &parts.headers) {
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

/// The platform like [`Platform`], but a 401 without a `WWW-Authenticate` challenge: for the
/// editor's platform sign-in, so that a browser shows the editor's message, not its own dialog.
#[derive(Debug, Clone, Copy)]
pub struct QuietPlatform;

impl FromRequestParts<AppState> for QuietPlatform {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if broker_authorized(state, &parts.headers) {
            Ok(QuietPlatform)
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Broker credentials (HTTP Basic) are missing or wrong",
            ))
        }
    }
}
