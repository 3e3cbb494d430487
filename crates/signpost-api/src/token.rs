//! The token service: `POST /oauth/token` and `GET /token_keys`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::Engine as _;
use serde_json::json;
use signpost_core::TokenError;

use crate::extract::{header_str, RawBody};
use crate::routes::Routes;
use crate::{AppState, PeerCertificate};

pub fn routes() -> Routes {
    Routes::new()
        .route("/oauth/token", post(token))
        .route("/token_keys", get(token_keys))
}

#[utoipa::path(get, path = "/token_keys", tag = "token",
    responses((status = 200, description = "The JWKS of the token service: the active key first, then retired keys whose tokens may still live")))]
async fn token_keys(State(state): State<AppState>) -> Response {
    Json(state.core.jwks()).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// Client id and secret from HTTP Basic (form-encoded parts, RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = header_str(headers, "authorization")?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
            .unwrap_or_else(|| s.to_owned())
    };
    Some((decode(id), decode(secret)))
}

#[utoipa::path(post, path = "/oauth/token", tag = "token",
    description = "`grant_type=client_credentials` with `client_id` and `client_secret` (form or HTTP Basic), or `client_id` and the client certificate on the HTTPS listener (X.509 bindings). Optional header `x-zid`: the binding's subaccount.",
    request_body(content_type = "application/x-www-form-urlencoded", content = String, description = "grant_type, client_id, client_secret"),
    security((), ("oauth_client" = [])),
    responses((status = 200, description = "An RS256 access token: `{access_token, token_type, expires_in, scope, jti}`"),
        (status = 400, description = "invalid_request or unsupported_grant_type (RFC 6749 §5.2)"),
        (status = 401, description = "invalid_client")))]
async fn token(
    State(state): State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded",
        );
    };
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let grant = field("grant_type").unwrap_or_default();
    if grant.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        );
    }
    if grant != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Signpost's token service supports grant_type=client_credentials",
        );
    }
    let zid = header_str(&headers, "x-zid").filter(|z| !z.is_empty());
    let basic = basic_credentials(&headers);
    // Counted per client id as claimed, before the credentials are checked: guessing secrets
    // for one client is as limited as using it.
    let client_id = basic
        .as_ref()
        .map(|(id, _)| id.clone())
        .or_else(|| field("client_id"));
    if let Some(id) = &client_id {
        if let Err(e) = state.limits.check_client(id) {
            return e.into_response();
        }
    }
    let result = match (field("client_id"), field("client_secret"), basic) {
        (_, _, Some((id, secret))) => state.core.client_credentials_token(&id, &secret, zid).await,
        (Some(id), Some(secret), None) => {
            state.core.client_credentials_token(&id, &secret, zid).await
        }
        // mTLS: the certificate presented on the HTTPS listener authenticates an X.509 binding.
        (Some(id), None, None) => match peer.as_ref() {
            Some(Extension(PeerCertificate(der))) => {
                state.core.certificate_token(&id, der, zid).await
            }
            None => Err(TokenError::InvalidClient),
        },
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication is required",
            )
        }
    };
    match result {
        Ok(t) => {
            let mut res = Json(t).into_response();
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(TokenError::InvalidClient) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        ),
        Err(TokenError::CertificateNotValid(why)) => {
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &why)
        }
        Err(TokenError::UnsupportedGrantType(g)) => {
            oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &g)
        }
        Err(TokenError::InvalidRequest(m)) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &m)
        }
        Err(TokenError::Server) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The token service failed; see the server log",
        ),
    }
}
