//! The admin port: `/healthz` (the process runs), `/readyz` (the configuration is loaded and
//! each instance's token can be had), `/metrics` (Prometheus) and `/status` (SAP's health JSON of
//! PROXY.md §1).

use std::sync::Arc;
use std::time::Duration;

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use crate::body::{self, ProxyBody};
use crate::state::Shared;

/// How long `/readyz` waits for a token.
const TOKEN_WAIT: Duration = Duration::from_secs(5);

/// The admin port while the proxy waits for its configuration (`--wait-for-config`): alive, not
/// ready, and why.
pub fn waiting(path: &str, reason: &str) -> Response<ProxyBody> {
    match path {
        "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        "/readyz" => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "configuration": {"loaded": false, "error": reason}}),
        ),
        // SAP's shape here too: nothing is served yet, so every component is critical.
        "/status" => {
            let waiting = || {
                (
                    "critical",
                    format!("Waiting for the configuration: {reason}"),
                )
            };
            json_response(StatusCode::OK, &sap_json(waiting(), waiting(), waiting()))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
    }
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ProxyBody> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        "/metrics" => {
            let snapshot = shared.snapshot();
            let token_fetches = snapshot
                .clients
                .values()
                .map(signpost_client::DestinationClient::token_fetches)
                .sum();
            let mut routes = crate::metrics::RouteAvailability::default();
            for entry in snapshot.routes.routes() {
                if entry.unresolved.is_none() {
                    routes.available += 1;
                } else {
                    routes.unavailable += 1;
                }
            }
            text(
                StatusCode::OK,
                crate::metrics::CONTENT_TYPE,
                shared.metrics.render(token_fetches, routes),
            )
        }
        "/readyz" => {
            let report = readiness(&shared).await;
            let status = if report.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_response(
                status,
                &json!({
                    "ready": report.ready,
                    "configuration": report.configuration,
                    "instances": report.instances,
                    "tcp": report.tcp,
                }),
            )
        }
        "/status" => {
            let report = readiness(&shared).await;
            json_response(StatusCode::OK, &report.sap_status())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
    }
}

/// What `/readyz` and `/status` report.
#[derive(Debug)]
pub struct Readiness {
    pub ready: bool,
    /// "loaded", or why the last reload failed (the last good configuration stays in use).
    pub configuration: String,
    /// instance name → "ok" or why no token can be had.
    pub instances: Map<String, Value>,
    /// TCP listeners that could not be opened.
    pub tcp: Vec<String>,
}

impl Readiness {
    /// SAP's `{"Status", "Components": {...}}` of this report ([`sap_json`]).
    pub fn sap_status(&self) -> Value {
        let tokens_ok = self.instances.values().all(|v| v == "ok");
        let http = if tokens_ok {
            ("ok", "Serving HTTP destinations".to_owned())
        } else {
            (
                "critical",
                format!("Token errors: {}", Value::Object(self.instances.clone())),
            )
        };
        let tcp = if self.tcp.is_empty() {
            ("ok", "Serving TCP destinations".to_owned())
        } else {
            ("critical", self.tcp.join("; "))
        };
        let manager = if self.configuration == "loaded" {
            ("ok", "Configuration loaded".to_owned())
        } else {
            ("critical", self.configuration.clone())
        };
        sap_json(http, tcp, manager)
    }
}

/// SAP's `/status` JSON of the three components' status and message: ok when all are ok,
/// critical when all are critical, else warning.
fn sap_json(http: (&str, String), tcp: (&str, String), manager: (&str, String)) -> Value {
    let statuses = [http.0, tcp.0, manager.0];
    let overall = if statuses.iter().all(|s| *s == "ok") {
        "ok"
    } else if statuses.iter().all(|s| *s == "critical") {
        "critical"
    } else {
        "warning"
    };
    json!({
        "Status": overall,
        "Components": {
            "sap-transp-proxy-http": {"Status": http.0, "Message": http.1},
            "sap-transp-proxy-tcp": {"Status": tcp.0, "Message": tcp.1, "AffectedDeployments": []},
            "sap-transp-proxy-manager": {"Status": manager.0, "Message": manager.1},
        }
    })
}

pub async fn readiness(shared: &Shared) -> Readiness {
    let snapshot = shared.snapshot();
    let mut checks = Vec::new();
    for (name, client) in &snapshot.clients {
        let name = name.clone();
        let client = client.clone();
        checks.push(async move {
            let outcome = match tokio::time::timeout(TOKEN_WAIT, client.token()).await {
                Ok(Ok(_)) => "ok".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the token service did not answer in time".to_owned(),
            };
            (name, outcome)
        });
    }
    let mut instances = Map::new();
    for (name, outcome) in futures_join_all(checks).await {
        instances.insert(name, Value::String(outcome));
    }
    let configuration = shared.reload_error().unwrap_or_else(|| "loaded".to_owned());
    let tcp = shared.tcp_errors();
    Readiness {
        ready: configuration == "loaded" && instances.values().all(|v| v == "ok"),
        configuration,
        instances,
        tcp,
    }
}

/// Runs the futures concurrently and collects their outputs (in order).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: Vec<F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut res = Response::new(body::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res
}

fn json_response(status: StatusCode, value: &Value) -> Response<ProxyBody> {
    text(status, "application/json", value.to_string())
}
