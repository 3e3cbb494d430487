//! Signpost's own endpoints under `/signpost/v1`: the certificate details view, the CA, and the
//! token signing keys (platform credentials).

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use signpost_model::Level;

use crate::extract::{Caller, Platform};
use crate::query::pairs;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signpost/v1/ca.pem", get(ca))
        .route("/signpost/v1/certificates/{level}", get(list))
        .route("/signpost/v1/certificates/{level}/{name}", get(details))
        .route("/signpost/v1/signing-keys", get(signing_keys))
        .route("/signpost/v1/signing-keys/rotate", post(rotate_signing_key))
}

fn level(s: &str) -> Result<Level, ApiError> {
    Level::parse(s).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Unknown level '{s}'; use subaccount or instance"),
        )
    })
}

async fn ca(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.core.ca_certificate_pem().to_owned(),
    )
        .into_response()
}

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

async fn details(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((lvl, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let level = level(&lvl)?;
    Ok(Json(state.core.certificate_details(&who, level, &name).await?).into_response())
}

async fn signing_keys(State(state): State<AppState>, _: Platform) -> Result<Response, ApiError> {
    Ok(Json(state.core.signing_keys().await?).into_response())
}

async fn rotate_signing_key(
    State(state): State<AppState>,
    _: Platform,
) -> Result<Response, ApiError> {
    let rotation = state.core.rotate_signing_key().await?;
    Ok((StatusCode::CREATED, Json(rotation)).into_response())
}
