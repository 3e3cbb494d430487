//! The Open Service Broker API 2.17 under `/v2`, behind HTTP Basic with the broker credentials
//! and the `X-Broker-API-Version` header.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use signpost_core::{BrokerError, BrokerErrorKind, ProvisionOutcome};
use signpost_wire::OsbError;

use crate::extract::{header_str, RawBody};
use crate::routes::Routes;
use crate::AppState;

pub fn routes(state: AppState) -> Routes {
    Routes::new()
        .route("/v2/catalog", get(catalog))
        .route(
            "/v2/service_instances/{instance_id}",
            put(provision).patch(update).delete(deprovision),
        )
        .route(
            "/v2/service_instances/{instance_id}/service_bindings/{binding_id}",
            put(bind).delete(unbind),
        )
        .map(|r| r.route_layer(middleware::from_fn_with_state(state, guard)))
}

fn osb_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    (
        status,
        Json(OsbError {
            error: error.into(),
            description: description.into(),
        }),
    )
        .into_response()
}

fn from_broker(e: BrokerError) -> Response {
    osb_error(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.kind.code(),
        e.description,
    )
}

/// Broker credentials (401) and API version (412), before anything else.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !crate::auth::broker_authorized(&state, req.headers()) {
        let mut res = osb_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Broker credentials (HTTP Basic) are missing or wrong",
        );
        res.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"signpost broker\""),
        );
        return res;
    }
    match header_str(req.headers(), "x-broker-api-version") {
        None => osb_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed", "The header X-Broker-API-Version is required (2.17)"),
        Some(v) if !supported_version(v) => osb_error(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!("X-Broker-API-Version '{v}' is not supported; this broker speaks 2.x from 2.11 (2.17)"),
        ),
        Some(_) => next.run(req).await,
    }
}

fn supported_version(v: &str) -> bool {
    let mut parts = v.split('.');
    let major = parts.next().and_then(|m| m.parse::<u32>().ok());
    let minor = parts.next().and_then(|m| m.parse::<u32>().ok());
    matches!((major, minor, parts.next()), (Some(2), Some(minor), None) if minor >= 11)
}

/// A JSON body of type `T`, or the OSB 400 naming what is wrong.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<(T, Value), BrokerError> {
    let bad = |description: String| BrokerError {
        kind: BrokerErrorKind::BadRequest,
        description,
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("The request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("The request body must be a JSON object".into()));
    }
    let typed = serde_json::from_value(value.clone())
        .map_err(|e| bad(format!("The request body is not a valid OSB request: {e}")))?;
    Ok((typed, value))
}

#[utoipa::path(get, path = "/v2/catalog", tag = "broker", security(("broker" = [])),
    params(("X-Broker-API-Version" = String, Header, description = "2.x from 2.11")),
    responses((status = 200, body = signpost_wire::Catalog), (status = 401, body = OsbError), (status = 412, body = OsbError)))]
async fn catalog(State(state): State<AppState>) -> Response {
    Json(state.core.catalog()).into_response()
}

#[utoipa::path(put, path = "/v2/service_instances/{instance_id}", tag = "broker", security(("broker" = [])),
    params(("instance_id" = String, Path), ("X-Broker-API-Version" = String, Header)),
    request_body = signpost_wire::ProvisionRequest,
    responses((status = 201, description = "Provisioned, with every entity of the configuration JSON"), (status = 200, description = "The identical instance exists"),
        (status = 400, body = OsbError), (status = 401, body = OsbError), (status = 409, body = OsbError), (status = 412, body = OsbError)))]
async fn provision(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Response {
    let (req, raw) = match parse(&body) {
        Ok(p) => p,
        Err(e) => return from_broker(e),
    };
    match state.core.provision(&id, req, &raw).await {
        Ok(ProvisionOutcome::Created) => (StatusCode::CREATED, Json(json!({}))).into_response(),
        Ok(ProvisionOutcome::AlreadyExists) => (StatusCode::OK, Json(json!({}))).into_response(),
        Err(e) => from_broker(e),
    }
}

#[utoipa::path(patch, path = "/v2/service_instances/{instance_id}", tag = "broker", security(("broker" = [])),
    params(("instance_id" = String, Path), ("X-Broker-API-Version" = String, Header)),
    request_body = signpost_wire::UpdateRequest,
    responses((status = 200, description = "Updated"), (status = 400, body = OsbError), (status = 404, body = OsbError), (status = 409, body = OsbError)))]
async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Response {
    let (req, raw) = match parse(&body) {
        Ok(p) => p,
        Err(e) => return from_broker(e),
    };
    match state.core.update_instance(&id, req, &raw).await {
        Ok(()) => (StatusCode::OK, Json(json!({}))).into_response(),
        Err(e) => from_broker(e),
    }
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    service_id: Option<String>,
    plan_id: Option<String>,
}

#[utoipa::path(delete, path = "/v2/service_instances/{instance_id}", tag = "broker", security(("broker" = [])),
    params(("instance_id" = String, Path), ("X-Broker-API-Version" = String, Header), ("service_id" = Option<String>, Query), ("plan_id" = Option<String>, Query)),
    responses((status = 200, description = "Deleted with its bindings and instance-level entities"), (status = 410, description = "No such instance"), (status = 400, body = OsbError)))]
async fn deprovision(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Ok(q) = serde_urlencoded::from_str::<DeleteQuery>(raw.as_deref().unwrap_or_default())
    else {
        return osb_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The query string could not be decoded",
        );
    };
    match state
        .core
        .deprovision(&id, q.service_id.as_deref(), q.plan_id.as_deref())
        .await
    {
        Ok(true) => (StatusCode::OK, Json(json!({}))).into_response(),
        Ok(false) => (StatusCode::GONE, Json(json!({}))).into_response(),
        Err(e) => from_broker(e),
    }
}

#[utoipa::path(put, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", tag = "broker", security(("broker" = [])),
    params(("instance_id" = String, Path), ("binding_id" = String, Path), ("X-Broker-API-Version" = String, Header)),
    request_body = signpost_wire::BindRequest,
    responses((status = 201, description = "`{\"credentials\": <service key>}`", body = signpost_wire::ServiceKey), (status = 200, description = "The identical binding exists"),
        (status = 400, body = OsbError), (status = 404, body = OsbError), (status = 409, body = OsbError), (status = 422, body = OsbError)))]
async fn bind(
    State(state): State<AppState>,
    Path((instance_id, binding_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Response {
    let (req, raw) = match parse(&body) {
        Ok(p) => p,
        Err(e) => return from_broker(e),
    };
    match state.core.bind(&instance_id, &binding_id, req, &raw).await {
        Ok(outcome) => {
            let status = if outcome.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(json!({ "credentials": outcome.credentials }))).into_response()
        }
        Err(e) => from_broker(e),
    }
}

#[utoipa::path(delete, path = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}", tag = "broker", security(("broker" = [])),
    params(("instance_id" = String, Path), ("binding_id" = String, Path), ("X-Broker-API-Version" = String, Header)),
    responses((status = 200, description = "Deleted; its tokens stop working at once"), (status = 410, description = "No such binding")))]
async fn unbind(
    State(state): State<AppState>,
    Path((instance_id, binding_id)): Path<(String, String)>,
) -> Response {
    match state.core.unbind(&instance_id, &binding_id).await {
        Ok(true) => (StatusCode::OK, Json(json!({}))).into_response(),
        Ok(false) => (StatusCode::GONE, Json(json!({}))).into_response(),
        Err(e) => from_broker(e),
    }
}
