//! `/destination-configuration/v1/saml2Metadata...`: the subaccount's SAML trust certificates.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::json;
use signpost_wire::Count;

use crate::auth::Caller;
use crate::extract::RawBody;
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub fn routes() -> Routes {
    Routes::new()
        .route("/destination-configuration/v1/saml2Metadata", get(metadata))
        .route(
            "/destination-configuration/v1/saml2Metadata/certificate",
            get(active).post(renew_active),
        )
        .route(
            "/destination-configuration/v1/saml2Metadata/certificate/passive",
            get(passive).post(renew_passive).delete(delete_passive),
        )
        .route(
            "/destination-configuration/v1/saml2Metadata/rotateCertificate",
            post(rotate),
        )
}

/// SAP's rule for the generating POSTs.
fn empty(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(ApiError::bad_request("Request body should be empty!"))
    }
}

fn certificate(pem: String) -> Response {
    Json(json!({ "certificate": pem })).into_response()
}

#[utoipa::path(get, path = "/destination-configuration/v1/saml2Metadata", tag = "saml", security(("bearer" = [])),
    responses((status = 200, description = "`{\"idpMetadata\": <base64 XML>}`"), (status = 401, body = signpost_wire::ErrorBody)))]
async fn metadata(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let b64 = state.core.saml_metadata(&who).await?;
    Ok(Json(json!({ "idpMetadata": b64 })).into_response())
}

#[utoipa::path(get, path = "/destination-configuration/v1/saml2Metadata/certificate", tag = "saml", security(("bearer" = [])),
    responses((status = 200, description = "`{\"certificate\": <PEM>}`"), (status = 404, body = signpost_wire::ErrorBody)))]
async fn active(State(state): State<AppState>, Caller(who): Caller) -> Result<Response, ApiError> {
    Ok(certificate(state.core.saml_certificate(&who, false).await?))
}

#[utoipa::path(get, path = "/destination-configuration/v1/saml2Metadata/certificate/passive", tag = "saml", security(("bearer" = [])),
    responses((status = 200, description = "`{\"certificate\": <PEM>}`"), (status = 404, body = signpost_wire::ErrorBody)))]
async fn passive(State(state): State<AppState>, Caller(who): Caller) -> Result<Response, ApiError> {
    Ok(certificate(state.core.saml_certificate(&who, true).await?))
}

#[utoipa::path(post, path = "/destination-configuration/v1/saml2Metadata/certificate", tag = "saml", security(("bearer" = [])),
    responses((status = 200, description = "A new active key pair: `{\"certificate\": <PEM>}`"), (status = 400, body = signpost_wire::ErrorBody)))]
async fn renew_active(
    State(state): State<AppState>,
    Caller(who): Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    empty(&body)?;
    Ok(certificate(
        state.core.renew_saml_certificate(&who, false).await?,
    ))
}

#[utoipa::path(post, path = "/destination-configuration/v1/saml2Metadata/certificate/passive", tag = "saml", security(("bearer" = [])),
    responses((status = 200, description = "A new passive key pair: `{\"certificate\": <PEM>}`"), (status = 400, body = signpost_wire::ErrorBody)))]
async fn renew_passive(
    State(state): State<AppState>,
    Caller(who): Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    empty(&body)?;
    Ok(certificate(
        state.core.renew_saml_certificate(&who, true).await?,
    ))
}

#[utoipa::path(delete, path = "/destination-configuration/v1/saml2Metadata/certificate/passive", tag = "saml", security(("bearer" = [])),
    responses((status = 200, body = Count), (status = 404, body = signpost_wire::ErrorBody)))]
async fn delete_passive(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    state.core.delete_passive_saml_certificate(&who).await?;
    Ok((StatusCode::OK, Json(Count { count: 1 })).into_response())
}

#[utoipa::path(post, path = "/destination-configuration/v1/saml2Metadata/rotateCertificate", tag = "saml", security(("bearer" = [])),
    responses((status = 200, description = "`{\"activeCertificate\", \"passiveCertificate\"}`"), (status = 404, body = signpost_wire::ErrorBody)))]
async fn rotate(
    State(state): State<AppState>,
    Caller(who): Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    empty(&body)?;
    let (active, passive) = state.core.rotate_saml_certificates(&who).await?;
    Ok(Json(json!({ "activeCertificate": active, "passiveCertificate": passive })).into_response())
}
