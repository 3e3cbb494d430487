//! Signpost's own endpoints under `/signpost/v1`: the certificate details view, the CA, check
//! connection, the token signing keys and the audit log (platform credentials).

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use signpost_model::Level;

use crate::auth::{Caller, Platform, QuietPlatform};
use crate::query::pairs;
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub fn routes() -> Routes {
    Routes::new()
        .route("/signpost/v1/ca.pem", get(ca))
        .route("/signpost/v1/certificates/{level}", get(list))
        .route("/signpost/v1/certificates/{level}/{name}", get(details))
        .route(
            "/signpost/v1/destinations/{level}/{name}/check",
            post(check),
        )
        .route("/signpost/v1/signing-keys", get(signing_keys))
        .route("/signpost/v1/signing-keys/rotate", post(rotate_signing_key))
        .route("/signpost/v1/audit", get(audit))
        .route("/signpost/v1/instances", get(instances))
        .route("/signpost/v1/instances/{id}/token", post(instance_token))
}

/// `GET /signpost/v1/instances`: every service instance with its subaccount and number of
/// service keys (broker credentials), for the editor's platform sign-in.
#[utoipa::path(get, path = "/signpost/v1/instances", tag = "signpost", security(("broker" = [])),
    responses((status = 200, description = "`[{instanceId, subaccountId, subdomain, bindings}]`, by subaccount and instance"), (status = 401, body = signpost_wire::ErrorBody)))]
async fn instances(State(state): State<AppState>, _: QuietPlatform) -> Result<Response, ApiError> {
    Ok(Json(state.core.platform_instances().await?).into_response())
}

/// `POST /signpost/v1/instances/{id}/token`: a token of the instance (as its oldest service key
/// would get) for the holder of the broker credentials; the editor's platform sign-in.
#[utoipa::path(post, path = "/signpost/v1/instances/{id}/token", tag = "signpost", security(("broker" = [])),
    params(("id" = String, Path, description = "The service instance id")),
    responses((status = 200, description = "The token endpoint's answer: `{access_token, token_type, expires_in, scope, jti}`"),
        (status = 401, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody),
        (status = 409, description = "The instance has no service key", body = signpost_wire::ErrorBody)))]
async fn instance_token(
    State(state): State<AppState>,
    _: QuietPlatform,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let token = state.core.platform_token(&id).await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(token),
    )
        .into_response())
}

fn level(s: &str) -> Result<Level, ApiError> {
    Level::parse(s).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Unknown level '{s}'; use subaccount or instance"),
        )
    })
}

#[utoipa::path(get, path = "/signpost/v1/ca.pem", tag = "signpost",
    responses((status = 200, description = "The built-in CA's certificate", content_type = "application/x-pem-file", body = String)))]
async fn ca(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.core.ca_certificate_pem().to_owned(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/signpost/v1/certificates/{level}", tag = "signpost", security(("bearer" = [])),
    params(("level" = String, Path, description = "subaccount or instance"), ("expiringWithinDays" = Option<u32>, Query)),
    responses((status = 200, description = "The details view of every certificate of the level"), (status = 400, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(lvl): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let level = level(&lvl)?;
    let q = pairs(raw.as_deref())?;
    let within = match q.iter().find(|(k, _)| k == "expiringWithinDays") {
        None => None,
        Some((_, v)) => Some(v.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "expiringWithinDays must be a whole number of days, not '{v}'"
            ))
        })?),
    };
    Ok(Json(
        state
            .core
            .list_certificate_details(&who, level, within)
            .await?,
    )
    .into_response())
}

#[utoipa::path(get, path = "/signpost/v1/certificates/{level}/{name}", tag = "signpost", security(("bearer" = [])),
    params(("level" = String, Path, description = "subaccount or instance"), ("name" = String, Path)),
    responses((status = 200, description = "The details view of one certificate"), (status = 404, body = signpost_wire::ErrorBody)))]
async fn details(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((lvl, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let level = level(&lvl)?;
    Ok(Json(state.core.certificate_details(&who, level, &name).await?).into_response())
}

/// `POST /signpost/v1/destinations/{level}/{name}/check`: check connection (docs/API.md).
#[utoipa::path(post, path = "/signpost/v1/destinations/{level}/{name}/check", tag = "signpost", security(("bearer" = [])),
    params(("level" = String, Path, description = "subaccount or instance"), ("name" = String, Path)),
    responses((status = 200, description = "`{name, level, target, ok, steps: [{step: token|dns|tcp|tls|http, ok, ms, error?, ...}]}`: the destination resolved as a find does, then its URL called step by step"),
        (status = 401, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody),
        (status = 422, description = "Not an HTTP destination reached over the Internet", body = signpost_wire::ErrorBody)))]
async fn check(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((lvl, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let level = level(&lvl)?;
    Ok(Json(state.core.check_destination(&who, level, &name).await?).into_response())
}

#[utoipa::path(get, path = "/signpost/v1/signing-keys", tag = "signpost", security(("broker" = [])),
    responses((status = 200, description = "The token signing keys, oldest first, public facts only"), (status = 401, body = signpost_wire::ErrorBody)))]
async fn signing_keys(State(state): State<AppState>, _: Platform) -> Result<Response, ApiError> {
    Ok(Json(state.core.signing_keys().await?).into_response())
}

#[utoipa::path(post, path = "/signpost/v1/signing-keys/rotate", tag = "signpost", security(("broker" = [])),
    responses((status = 201, description = "`{\"kid\": <new key>, \"keys\": [...]}`"), (status = 401, body = signpost_wire::ErrorBody)))]
async fn rotate_signing_key(
    State(state): State<AppState>,
    _: Platform,
) -> Result<Response, ApiError> {
    let rotation = state.core.rotate_signing_key().await?;
    Ok((StatusCode::CREATED, Json(rotation)).into_response())
}

/// Events per page when `limit` is not given.
const DEFAULT_AUDIT_LIMIT: u32 = 100;

/// `GET /signpost/v1/audit?since=RFC3339&limit=N&cursor=C`: the audit log newest first, one
/// page; a `Link: <...>; rel="next"` header when there are older events (docs/API.md).
#[utoipa::path(get, path = "/signpost/v1/audit", tag = "signpost", security(("broker" = [])),
    params(("since" = Option<String>, Query, description = "RFC 3339: only events at or after this time"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1 to 1000 events per page, default 100"),
        ("cursor" = Option<String>, Query, description = "Where the page starts, from the previous page's Link header")),
    responses((status = 200, description = "Audit events newest first; `Link: <...>; rel=\"next\"` when older ones follow", body = Vec<signpost_wire::AuditEntry>),
        (status = 400, body = signpost_wire::ErrorBody), (status = 401, body = signpost_wire::ErrorBody)))]
async fn audit(
    State(state): State<AppState>,
    _: Platform,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = pairs(raw.as_deref())?;
    if let Some((k, _)) = q
        .iter()
        .find(|(k, _)| !["since", "limit", "cursor"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown query parameter '{k}'; use since, limit and cursor"
        )));
    }
    let value = |key: &str| {
        q.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let since = value("since");
    let since_ms = match since {
        None => None,
        Some(v) => Some(
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "since must be an RFC 3339 time such as 2026-01-31T00:00:00Z, not '{v}'"
                    ))
                })?,
        ),
    };
    let limit = match value("limit") {
        None => DEFAULT_AUDIT_LIMIT,
        Some(v) => v.parse::<u32>().map_err(|_| {
            ApiError::bad_request(format!(
                "limit must be a whole number from 1 to {}, not '{v}'",
                signpost_core::audit::MAX_AUDIT_LIMIT
            ))
        })?,
    };
    let page = state
        .core
        .audit_log(since_ms, value("cursor"), limit)
        .await?;
    let mut res = Json(&page.events).into_response();
    if let Some(cursor) = page.next {
        let limit = limit.to_string();
        let mut next = vec![("limit", limit.as_str()), ("cursor", cursor.as_str())];
        if let Some(s) = since {
            next.push(("since", s));
        }
        let query = serde_urlencoded::to_string(&next).unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&format!("</signpost/v1/audit?{query}>; rel=\"next\""))
        {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(res)
}
