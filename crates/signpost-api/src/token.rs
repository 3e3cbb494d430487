//! The token service: `POST /oauth/token` and `GET /token_keys`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::Engine as _;
use serde_json::json;
use signpost_core::{TokenError, JWT_BEARER};

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
    description = "`grant_type=client_credentials`, or `urn:ietf:params:oauth:grant-type:jwt-bearer` with a trusted issuer's user JWT in `assertion` (a token of its tenant with `user_id`/`user_name`), with `client_id` and `client_secret` (form or HTTP Basic), or `client_id` and the client certificate on the HTTPS listener (X.509 bindings). A tenant token: the header `x-zid` with the tenant's subaccount id, or the token URL `<scheme>://<tenant subdomain>.<uaadomain>/oauth/token`; the tenant is the binding's own subaccount or one subscribed to its instance (docs/MULTITENANCY.md).",
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
    // The jwt-bearer grant (RFC 7523): a user's JWT in `assertion`, for a token of its tenant
    // carrying the user (docs/MULTITENANCY.md).
    let assertion = if grant == JWT_BEARER {
        match field("assertion").filter(|a| !a.is_empty()) {
            Some(a) => Some(a),
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "The jwt-bearer grant needs the user's JWT in assertion",
                )
            }
        }
    } else if grant == "client_credentials" {
        None
    } else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Signpost's token service supports grant_type=client_credentials and urn:ietf:params:oauth:grant-type:jwt-bearer",
        );
    };
    let assertion = assertion.as_deref();
    let zid = header_str(&headers, "x-zid").filter(|z| !z.is_empty());
    // A tenant token URL names the tenant by its subdomain: <subdomain>.<uaadomain>.
    let zid = match host_subdomain(&headers, &state.core.config().uaadomain) {
        None => zid.map(str::to_owned),
        Some(subdomain) => match state.core.tenant_of_subdomain(subdomain).await {
            Ok(Some(tenant)) if zid.is_none_or(|z| z == tenant) => Some(tenant),
            Ok(_) => {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "No tenant of this client has the token URL's subdomain",
                )
            }
            Err(_) => {
                return oauth_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "The tenant could not be looked up; see the server log",
                )
            }
        },
    };
    let zid = zid.as_deref();
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
        (_, _, Some((id, secret))) => {
            state
                .core
                .client_credentials_token(&id, &secret, zid, assertion)
                .await
        }
        (Some(id), Some(secret), None) => {
            state
                .core
                .client_credentials_token(&id, &secret, zid, assertion)
                .await
        }
        // mTLS: the certificate presented on the HTTPS listener authenticates an X.509 binding.
        (Some(id), None, None) => match peer.as_ref() {
            Some(Extension(PeerCertificate(der))) => {
                state.core.certificate_token(&id, der, zid, assertion).await
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
        Err(TokenError::InvalidGrant(m)) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &m)
        }
        Err(TokenError::Unavailable) => {
            let mut res = oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The database is not available; try again shortly",
            );
            res.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            res
        }
        Err(TokenError::Server) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The token service failed; see the server log",
        ),
    }
}

/// A host name without its port (`[v6]:port` keeps the brackets' content).
fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The first label of a `Host` of the form `<subdomain>.<uaadomain>` (ports aside, case
/// ignored): the tenant a token URL names. `None` for the uaadomain itself or any other host.
fn host_subdomain<'a>(headers: &'a HeaderMap, uaadomain: &str) -> Option<&'a str> {
    let host = without_port(header_str(headers, "host")?);
    let domain = without_port(uaadomain);
    let cut = host.len().checked_sub(domain.len() + 1)?;
    let (sub, rest) = host.split_at(cut);
    let matches = rest.strip_prefix('.')?.eq_ignore_ascii_case(domain);
    (matches && !sub.is_empty() && !sub.contains('.')).then_some(sub)
}

#[cfg(test)]
mod host_tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("host", h.parse().expect("a header value"));
        m
    }

    #[test]
    fn the_tenant_is_the_first_label_before_the_uaadomain() {
        let d = "auth.example.com:8443";
        assert_eq!(
            host_subdomain(&host("t1.auth.example.com:8443"), d),
            Some("t1")
        );
        assert_eq!(host_subdomain(&host("T1.AUTH.example.com"), d), Some("T1"));
        assert_eq!(
            host_subdomain(&host("t1.localhost:8080"), "localhost:8080"),
            Some("t1")
        );
        for other in [
            "auth.example.com:8443",
            "a.b.auth.example.com",
            "xauth.example.com",
            ".auth.example.com",
            "127.0.0.1:8443",
            "[::1]:8443",
        ] {
            assert_eq!(host_subdomain(&host(other), d), None, "{other}");
        }
        assert_eq!(host_subdomain(&HeaderMap::new(), d), None);
    }
}
