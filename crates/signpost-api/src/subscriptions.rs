//! Subscriptions of subscriber subaccounts to a provider's service instance (SaaS
//! multitenancy, docs/MULTITENANCY.md), managed with the broker credentials:
//! `PUT`/`DELETE /signpost/v1/subscriptions/{instance}/{subaccount}` and
//! `GET /signpost/v1/subscriptions/{instance}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Json;
use serde_json::Value;

use crate::auth::Platform;
use crate::extract::RawBody;
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub fn routes() -> Routes {
    Routes::new()
        .route("/signpost/v1/subscriptions/{instance}", get(list))
        .route(
            "/signpost/v1/subscriptions/{instance}/{subaccount}",
            put(subscribe).delete(unsubscribe),
        )
}

/// The body of a subscription: `{"subdomain": "..."}` and nothing else.
fn subdomain_of(body: &[u8]) -> Result<String, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("The body must be JSON: {\"subdomain\": \"...\"}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::bad_request("The body must be a JSON object"))?;
    if let Some(key) = obj.keys().find(|k| k.as_str() != "subdomain") {
        return Err(ApiError::bad_request(format!(
            "Unknown key '{key}'; a subscription's body is {{\"subdomain\": \"...\"}}"
        )));
    }
    match obj.get("subdomain") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::bad_request("subdomain must be a string")),
        None => Err(ApiError::bad_request("subdomain is required")),
    }
}

/// `PUT /signpost/v1/subscriptions/{instance}/{subaccount}`: subscribes the subaccount (made
/// when new) to the provider's instance with its subdomain; 201 when new, 200 when it was
/// subscribed already (the subdomain is set either way).
#[utoipa::path(put, path = "/signpost/v1/subscriptions/{instance}/{subaccount}", tag = "signpost", security(("broker" = [])),
    params(("instance" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,200}$", description = "The provider's service instance"), ("subaccount" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,200}$", description = "The subscriber subaccount")),
    request_body(content = Object, description = "`{\"subdomain\": \"...\"}`: the subscriber's subdomain (a DNS label); its tenant token URL is `<scheme>://<subdomain>.<uaadomain>/oauth/token`"),
    responses((status = 201, description = "Subscribed: `{instanceId, subaccountId, subdomain, createdAt}`"), (status = 200, description = "Subscribed already; the subdomain is set"),
        (status = 400, body = signpost_wire::ErrorBody), (status = 401, body = signpost_wire::ErrorBody), (status = 404, description = "No such instance", body = signpost_wire::ErrorBody),
        (status = 409, description = "The provider's own subaccount, or a subdomain another subaccount has", body = signpost_wire::ErrorBody)))]
async fn subscribe(
    State(state): State<AppState>,
    _: Platform,
    Path((instance, subaccount)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let subdomain = subdomain_of(&body)?;
    let (created, subscription) = state
        .core
        .subscribe(&instance, &subaccount, &subdomain)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(subscription)).into_response())
}

/// `DELETE /signpost/v1/subscriptions/{instance}/{subaccount}`: ends the subscription and
/// deletes its subscription-level destinations, fragments and certificates, all or nothing.
#[utoipa::path(delete, path = "/signpost/v1/subscriptions/{instance}/{subaccount}", tag = "signpost", security(("broker" = [])),
    params(("instance" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,200}$"), ("subaccount" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,200}$")),
    responses((status = 200, description = "Unsubscribed (the subscription as it was); the subscriber's tokens stop working"), (status = 400, body = signpost_wire::ErrorBody),
        (status = 401, body = signpost_wire::ErrorBody), (status = 404, description = "Not subscribed", body = signpost_wire::ErrorBody)))]
async fn unsubscribe(
    State(state): State<AppState>,
    _: Platform,
    Path((instance, subaccount)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(state.core.unsubscribe(&instance, &subaccount).await?).into_response())
}

/// `GET /signpost/v1/subscriptions/{instance}`: the instance's subscriptions.
#[utoipa::path(get, path = "/signpost/v1/subscriptions/{instance}", tag = "signpost", security(("broker" = [])),
    params(("instance" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,200}$")),
    responses((status = 200, description = "`[{instanceId, subaccountId, subdomain, createdAt}]` by subaccount"),
        (status = 401, body = signpost_wire::ErrorBody), (status = 404, description = "No such instance", body = signpost_wire::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    _: Platform,
    Path(instance): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.core.subscriptions(&instance).await?).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_body_is_a_subdomain_and_nothing_else() {
        assert_eq!(subdomain_of(br#"{"subdomain": "t1"}"#).unwrap(), "t1");
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"subdomain": 1}"#,
            br#"{"subdomain": "t1", "extra": true}"#,
        ] {
            assert!(
                subdomain_of(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
