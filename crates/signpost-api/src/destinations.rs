//! `/destination-configuration/v1/...` and `/destination-configuration/v2/destinations/...`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use signpost_core::{FindOptions, FindResult, FlowHeaders, ListMode, WriteResult};
use signpost_model::{EntityKind, Label, LabelPatch, Level, NameFilter};
use signpost_wire::{split_body, BulkDeleteResponse, Count};

use crate::auth::Caller;
use crate::extract::{header_str, RawBody};
use crate::query::{flag, list_mode, pairs, parse_filter};
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub fn routes() -> Routes {
    Routes::new()
        .route(
            "/destination-configuration/v1/destinations/{name}",
            get(find),
        )
        .route(
            "/destination-configuration/v2/destinations/{name}",
            get(consume),
        )
        .route(
            "/destination-configuration/v1/{collection}",
            get(list).post(create).put(update).delete(bulk_delete),
        )
        .route(
            "/destination-configuration/v1/{collection}/{name}",
            get(get_one).delete(delete_one),
        )
        .route(
            "/destination-configuration/v1/{collection}/{name}/publicKeys",
            get(public_keys),
        )
        .route(
            "/destination-configuration/v1/{collection}/{name}/labels",
            get(get_labels).put(put_labels).patch(patch_labels),
        )
}

/// The six collections: level and kind by path segment.
fn collection(segment: &str) -> Result<(Level, EntityKind), ApiError> {
    Ok(match segment {
        "subaccountDestinations" => (Level::Subaccount, EntityKind::Destination),
        "instanceDestinations" => (Level::Instance, EntityKind::Destination),
        "subaccountDestinationFragments" => (Level::Subaccount, EntityKind::Fragment),
        "instanceDestinationFragments" => (Level::Instance, EntityKind::Fragment),
        "subaccountCertificates" => (Level::Subaccount, EntityKind::Certificate),
        "instanceCertificates" => (Level::Instance, EntityKind::Certificate),
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "No such endpoint")),
    })
}

fn json_ok(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/destination-configuration/v1/{collection}", tag = "configuration", security(("bearer" = [])),
    params(("$filter" = Option<String>, Query), ("$select" = Option<String>, Query), ("$page" = Option<u64>, Query), ("$pageSize" = Option<u64>, Query),
        ("$pageCount" = Option<bool>, Query), ("$entityCount" = Option<bool>, Query), ("$includeMetadata" = Option<bool>, Query)),
    responses((status = 200, description = "The entities of the level; `Page-Count`, `Entity-Count` and `Link` headers when paging"), (status = 400, body = signpost_wire::ErrorBody), (status = 401, body = signpost_wire::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(segment): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let mode = list_mode(kind, &pairs(raw.as_deref())?)?;
    let page_size = match &mode {
        ListMode::Page { page_size, .. } => Some(*page_size),
        _ => None,
    };
    let result = state.core.list_entities(&who, level, kind, mode).await?;
    let mut res = json_ok(StatusCode::OK, &result.items);
    let headers = res.headers_mut();
    if let Some(n) = result.page_count {
        headers.insert("Page-Count", HeaderValue::from(n));
    }
    if let Some(n) = result.entity_count {
        headers.insert("Entity-Count", HeaderValue::from(n));
    }
    if let (Some((prev, next)), Some(size)) = (result.links, page_size) {
        let link =
            |p: u64, rel: &str| format!("</{segment}?$page={p}&$pageSize={size}>; rel='{rel}'");
        let parts: Vec<String> = prev
            .map(|p| link(p, "previous"))
            .into_iter()
            .chain(next.map(|p| link(p, "next")))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&parts.join(", ")) {
            if !parts.is_empty() {
                headers.insert(header::LINK, v);
            }
        }
    }
    Ok(res)
}

#[utoipa::path(post, path = "/destination-configuration/v1/{collection}", tag = "configuration", security(("bearer" = [])),
    request_body(content = Object, description = "One entity or an array of them"),
    responses((status = 201, description = "Created"), (status = 207, description = "An array: one result per item", body = Vec<signpost_wire::BulkItem>),
        (status = 400, body = signpost_wire::ErrorBody), (status = 401, body = signpost_wire::ErrorBody), (status = 409, body = signpost_wire::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(segment): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let body = split_body(&body).map_err(ApiError::bad_request)?;
    let result = state.core.create_entities(&who, level, kind, body).await?;
    Ok(written(
        result,
        StatusCode::CREATED,
        StatusCode::CREATED.into_response(),
    ))
}

/// The answer to a POST or PUT: `one` for a single object; for an array the items, with `ok`
/// when every item succeeded and 207 otherwise.
fn written(result: WriteResult, ok: StatusCode, one: Response) -> Response {
    match result {
        WriteResult::One => one,
        WriteResult::Many { items, all_ok } => {
            json_ok(if all_ok { ok } else { StatusCode::MULTI_STATUS }, items)
        }
    }
}

#[utoipa::path(put, path = "/destination-configuration/v1/{collection}", tag = "configuration", security(("bearer" = [])),
    params(("If-Match" = Option<String>, Header, description = "ETags (or `*`) the entity must have: replaced only while nobody changed it meanwhile; one entity, not an array")),
    request_body(content = Object, description = "One entity or an array of them"),
    responses((status = 200, description = "Updated"), (status = 207, description = "An array: one result per item", body = Vec<signpost_wire::BulkItem>),
        (status = 400, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody),
        (status = 412, description = "If-Match did not match; the current ETag in `ETag`", body = signpost_wire::ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(segment): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let body = split_body(&body).map_err(ApiError::bad_request)?;
    let if_match = if_match(&headers);
    let result = state
        .core
        .update_entities(&who, level, kind, body, if_match.as_deref())
        .await?;
    Ok(written(
        result,
        StatusCode::OK,
        json_ok(StatusCode::OK, Count { count: 1 }),
    ))
}

#[utoipa::path(delete, path = "/destination-configuration/v1/{collection}", tag = "configuration", security(("bearer" = [])),
    params(("$filter" = String, Query, description = "Name in ('a','b',...)", pattern = r"^Name in \('[^'%]+'(, ?'[^'%]+')*\)$")),
    responses((status = 200, body = BulkDeleteResponse), (status = 400, body = signpost_wire::ErrorBody), (status = 409, body = signpost_wire::ErrorBody)))]
async fn bulk_delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(segment): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let q = pairs(raw.as_deref())?;
    let filter = q
        .iter()
        .find(|(k, _)| k == "$filter")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::bad_request("A bulk delete needs $filter=Name in ('a', 'b')"))?;
    let NameFilter::In(names) = parse_filter(filter, kind)? else {
        return Err(ApiError::bad_request(
            "A bulk delete takes only $filter=Name in (...)",
        ));
    };
    let summary = state.core.delete_entities(&who, level, kind, names).await?;
    Ok(json_ok(
        StatusCode::OK,
        BulkDeleteResponse {
            count: summary.count,
            summary: summary.summary,
        },
    ))
}

/// The ETags of an `If-Match` header (quoted or not, weak markers dropped); `None` without the
/// header or with `*` (any current entity: the write's own not-found answer covers a missing one).
fn if_match(headers: &HeaderMap) -> Option<Vec<String>> {
    let value = header_str(headers, "if-match")?;
    let tags: Vec<String> = etag_list(value).map(str::to_owned).collect();
    (!tags.iter().any(|t| t == "*")).then_some(tags)
}

/// The entries of an ETag list header.
fn etag_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .filter(|t| !t.is_empty())
}

/// `If-None-Match` → 304, `If-Match` mismatch → 412; else the body with its `ETag`.
fn with_etag(headers: &HeaderMap, etag: &str, body: impl serde::Serialize) -> Response {
    let matches = |value: &str| etag_list(value).any(|t| t == "*" || t == etag);
    let etag_value = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static(""));
    if let Some(v) = header_str(headers, "if-none-match") {
        if matches(v) {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
        }
    }
    if let Some(v) = header_str(headers, "if-match") {
        if !matches(v) {
            let mut e = ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "The entity's current ETag does not match If-Match",
            );
            e.etag = Some(etag.to_owned());
            return e.into_response();
        }
    }
    let mut res = json_ok(StatusCode::OK, body);
    res.headers_mut().insert(header::ETAG, etag_value);
    res
}

#[utoipa::path(get, path = "/destination-configuration/v1/{collection}/{name}", tag = "configuration", security(("bearer" = [])),
    params(("name" = String, Path), ("If-None-Match" = Option<String>, Header, description = "ETags (or `*`): 304 when the entity has one of them"),
        ("If-Match" = Option<String>, Header, description = "ETags (or `*`): 412 unless the entity has one of them")),
    responses((status = 200, description = "The entity, with its ETag"), (status = 304, description = "Not modified"), (status = 404, body = signpost_wire::ErrorBody),
        (status = 412, description = "If-Match did not match; the current ETag in `ETag`", body = signpost_wire::ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((segment, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let (body, etag) = state.core.get_entity(&who, level, kind, &name).await?;
    Ok(with_etag(&headers, &etag, body))
}

#[utoipa::path(delete, path = "/destination-configuration/v1/{collection}/{name}", tag = "configuration", security(("bearer" = [])),
    params(("name" = String, Path), ("If-Match" = Option<String>, Header, description = "ETags (or `*`) the entity must have: deleted only while nobody changed it meanwhile")),
    responses((status = 200, body = Count), (status = 404, body = signpost_wire::ErrorBody), (status = 409, body = signpost_wire::ErrorBody),
        (status = 412, description = "If-Match did not match; the current ETag in `ETag`", body = signpost_wire::ErrorBody)))]
async fn delete_one(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((segment, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let if_match = if_match(&headers);
    state
        .core
        .delete_entity(&who, level, kind, &name, if_match.as_deref())
        .await?;
    Ok(json_ok(StatusCode::OK, Count { count: 1 }))
}

/// The headers and query options of a find request.
fn find_options(headers: &HeaderMap, raw: Option<&str>) -> Result<FindOptions, ApiError> {
    if header_str(headers, "x-user-token").is_some() && header_str(headers, "x-tenant").is_some() {
        return Err(ApiError::bad_request(
            "X-user-token and X-tenant cannot be sent together",
        ));
    }
    let q = pairs(raw)?;
    let fragments = header_str(headers, "x-fragment-name")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let fragment_optional = match header_str(headers, "x-fragment-optional") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "X-fragment-optional must be true or false, not '{v}'"
            )))
        }
    };
    let h = |name: &str| {
        header_str(headers, name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let client_assertion_destination = h("x-client-assertion-destination-name");
    if client_assertion_destination.is_some()
        && (h("x-client-assertion").is_some() || h("x-client-assertion-type").is_some())
    {
        return Err(ApiError::bad_request(
            "X-client-assertion-destination-name cannot be combined with X-client-assertion or X-client-assertion-type",
        ));
    }
    Ok(FindOptions {
        fragments,
        fragment_optional,
        skip_credentials: flag(&q, "$skipCredentials")?,
        skip_token_retrieval: flag(&q, "$skipTokenRetrieval")?,
        headers: FlowHeaders {
            user_token: h("x-user-token"),
            tenant: h("x-tenant"),
            refresh_token: h("x-refresh-token"),
            code: h("x-code"),
            redirect_uri: h("x-redirect-uri"),
            code_verifier: h("x-code-verifier"),
            subject_token: h("x-subject-token"),
            subject_token_type: h("x-subject-token-type"),
            actor_token: h("x-actor-token"),
            actor_token_type: h("x-actor-token-type"),
            saml_assertion: h("x-samlassertion"),
            client_assertion: h("x-client-assertion"),
            client_assertion_type: h("x-client-assertion-type"),
        },
        client_assertion_destination,
    })
}

fn found(headers: &HeaderMap, result: FindResult) -> Response {
    with_etag(headers, &result.etag, result.response)
}

#[utoipa::path(get, path = "/destination-configuration/v1/destinations/{name}", tag = "find", security(("bearer" = [])),
    description = "Find a destination (instance level, then subaccount level) with its auth tokens and certificates. Headers `X-fragment-name`, `X-user-token`, `X-tenant`, `X-refresh-token`, `X-code`, `X-redirect-uri`, `X-code-verifier`, `X-chain-name`, `X-chain-var-*`, `If-None-Match`, `If-Match`.",
    params(("name" = String, Path), ("$skipCredentials" = Option<bool>, Query), ("$skipTokenRetrieval" = Option<bool>, Query)),
    responses((status = 200, body = signpost_wire::FindResponse), (status = 304, description = "Not modified"), (status = 400, body = signpost_wire::ErrorBody), (status = 401, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody), (status = 412, body = signpost_wire::ErrorBody)))]
async fn find(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let opts = find_options(&headers, raw.as_deref())?;
    let result = state.core.find_destination(&who, &name, &opts).await?;
    Ok(found(&headers, result))
}

#[utoipa::path(get, path = "/destination-configuration/v2/destinations/{name}", tag = "find", security(("bearer" = [])),
    description = "The v2 lookup: `{name}` or `{name}@{level}` (`@subaccount`, `@instance`, `@first`...).",
    params(("name" = String, Path, description = "name or name@level")),
    responses((status = 200, body = signpost_wire::FindResponse), (status = 304, description = "Not modified"), (status = 400, body = signpost_wire::ErrorBody), (status = 401, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody),
        (status = 412, description = "If-Match did not match the destination's ETag", body = signpost_wire::ErrorBody)))]
async fn consume(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let opts = find_options(&headers, raw.as_deref())?;
    let (name, level) = name.rsplit_once('@').unwrap_or((name.as_str(), "instance"));
    let result = state
        .core
        .consume_destination(&who, name, level, &opts)
        .await?;
    Ok(found(&headers, result))
}

/// A labels body: JSON of type `T`, or a 400 that says what is wrong with it.
fn labels_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The labels body must be {shape}: {e}")))
}

#[utoipa::path(get, path = "/destination-configuration/v1/{collection}/{name}/labels", tag = "configuration", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, description = "The entity's labels (an empty array when it has none)", body = Vec<Label>), (status = 404, body = signpost_wire::ErrorBody)))]
async fn get_labels(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((segment, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let labels = state.core.entity_labels(&who, level, kind, &name).await?;
    Ok(json_ok(StatusCode::OK, labels))
}

#[utoipa::path(put, path = "/destination-configuration/v1/{collection}/{name}/labels", tag = "configuration", security(("bearer" = [])),
    params(("name" = String, Path)),
    request_body(content = Vec<Label>, description = "All of the entity's labels, replacing those it has"),
    responses((status = 200, description = "The entity's labels now", body = Vec<Label>), (status = 400, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody)))]
async fn put_labels(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((segment, name)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let labels: Vec<Label> =
        labels_body(&body, r#"an array of {"key": "...", "values": ["..."]}"#)?;
    state
        .core
        .set_entity_labels(&who, level, kind, &name, labels)
        .await?;
    get_labels(State(state), Caller(who), Path((segment, name))).await
}

#[utoipa::path(patch, path = "/destination-configuration/v1/{collection}/{name}/labels", tag = "configuration", security(("bearer" = [])),
    params(("name" = String, Path)),
    request_body(content = LabelPatch, description = "`ADD` puts the values into their keys (new keys are added); `DELETE` takes them out (a key left empty, or given without values, goes)"),
    responses((status = 200, description = "The entity's labels now", body = Vec<Label>), (status = 400, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody)))]
async fn patch_labels(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((segment, name)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    let patch: LabelPatch = labels_body(
        &body,
        r#"{"action": "ADD" or "DELETE", "labels": [{"key": "...", "values": ["..."]}]}"#,
    )?;
    state
        .core
        .patch_entity_labels(&who, level, kind, &name, patch.action, patch.labels)
        .await?;
    get_labels(State(state), Caller(who), Path((segment, name))).await
}

#[utoipa::path(get, path = "/destination-configuration/v1/{collection}/{name}/publicKeys", tag = "configuration", security(("bearer" = [])),
    params(("name" = String, Path), ("If-None-Match" = Option<String>, Header, description = "ETags (or `*`): 304 when the certificate has one of them"),
        ("If-Match" = Option<String>, Header, description = "ETags (or `*`): 412 unless the certificate has one of them")),
    responses((status = 200, description = "SAP's public keys of a stored certificate"), (status = 304, description = "Not modified"), (status = 400, body = signpost_wire::ErrorBody), (status = 404, body = signpost_wire::ErrorBody),
        (status = 412, description = "If-Match did not match; the current ETag in `ETag`", body = signpost_wire::ErrorBody)))]
async fn public_keys(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((segment, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (level, kind) = collection(&segment)?;
    if kind != EntityKind::Certificate {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "No such endpoint"));
    }
    let (keys, etag) = state
        .core
        .certificate_public_keys(&who, level, &name)
        .await?;
    Ok(with_etag(&headers, &etag, keys))
}
