//! Signpost's HTTP surface: axum routers for the destination configuration API, find destination,
//! the token service, the service broker and health; and the one mapping from errors to HTTP
//! (`ApiError`, rendering `{"ErrorMessage": "..."}`). Handlers are thin: parse, call one use case
//! in `signpost-core`, map the result.

mod auth;
mod broker;
mod destinations;
mod error;
mod extract;
mod limits;
pub mod listener;
pub mod metrics;
pub mod openapi;
/// Public so that the fuzz target `list_options` (crates/signpost-fuzz) parses query strings as
/// the list handlers do.
pub mod query;
pub mod request_id;
mod routes;
mod saml;
mod signpost_routes;
mod subscriptions;
pub mod tls;
mod token;
pub mod web;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::json;
use signpost_core::Signpost;

pub use error::ApiError;
pub use limits::{
    Limits, LimitsConfig, DEFAULT_HEADER_TIMEOUT_SECS, DEFAULT_MAX_CONNECTIONS, DEFAULT_RATE_LIMIT,
    DEFAULT_REQUEST_TIMEOUT_SECS,
};

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Longest request URI accepted (414 above), as SAP's service.
pub const MAX_URI_CHARS: usize = 4000;

/// The DER certificate a client presented on the HTTPS listener (mTLS), put into the request's
/// extensions by the listener; the token service authenticates X.509 bindings with it.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<Vec<u8>>);

/// The platform's credentials for the service broker (HTTP Basic).
#[derive(Clone)]
pub struct BrokerCredentials {
    pub user: String,
    pub password: SecretString,
}

impl std::fmt::Debug for BrokerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub core: Signpost,
    pub broker: Arc<BrokerCredentials>,
    /// The server limits; the listeners take the same `Arc` ([`listener::serve`], [`tls::serve`]).
    pub limits: Arc<Limits>,
}

/// Every route Signpost serves: the one list the router is built from.
fn routes(state: &AppState) -> routes::Routes {
    routes::Routes::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::serve))
        .merge(token::routes())
        .merge(broker::routes(state.clone()))
        .merge(saml::routes())
        .merge(signpost_routes::routes())
        .merge(subscriptions::routes())
        .merge(destinations::routes())
}

/// The paths of every route the router serves, as registered (`{name}` for path parameters).
pub fn route_paths(state: &AppState) -> Vec<&'static str> {
    routes(state).paths().to_vec()
}

/// The whole application: every route Signpost serves, on HTTP and HTTPS alike.
pub fn router(state: AppState) -> Router {
    routes(&state)
        .into_router()
        .merge(web::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "No such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "This method is not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_uri))
        .layer(middleware::from_fn_with_state(
            state.limits.clone(),
            limits::request_timeout,
        ))
        .layer(middleware::from_fn(request_id::layer))
        .with_state(state)
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive: `{\"status\": \"ok\"}`")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "The database answers: `{\"status\": \"ready\"}`"),
        (status = 503, description = "The database is not reachable", body = signpost_wire::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Response {
    match state.core.database_answers().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is not reachable",
        )
        .into_response(),
    }
}

async fn limit_uri(req: Request, next: Next) -> Response {
    if req.uri().to_string().len() > MAX_URI_CHARS {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("The request URI is longer than {MAX_URI_CHARS} characters"),
        )
        .into_response();
    }
    next.run(req).await
}
