//! The Destinations editor: the static files under `web/` at the workspace root, embedded into
//! the binary and served at `/` and `/ui/...` with a strict Content-Security-Policy (no inline
//! script or style, no `eval`, nothing from other origins) and the usual security headers. The
//! page itself talks only to the public REST API and the documented `/signpost/v1` extensions.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::{ApiError, AppState};

/// The editor's files: name under `/ui/`, media type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../../web/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/style.css"),
    ),
    ("app.js", JS, include_str!("../../../web/app.js")),
    ("api.js", JS, include_str!("../../../web/api.js")),
    ("dom.js", JS, include_str!("../../../web/dom.js")),
    ("signin.js", JS, include_str!("../../../web/signin.js")),
    ("entities.js", JS, include_str!("../../../web/entities.js")),
    ("forms.js", JS, include_str!("../../../web/forms.js")),
    (
        "certificates.js",
        JS,
        include_str!("../../../web/certificates.js"),
    ),
    ("transfer.js", JS, include_str!("../../../web/transfer.js")),
    ("labels.js", JS, include_str!("../../../web/labels.js")),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../../web/favicon.svg"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The policy of every editor response: only this origin's scripts, styles, images and API.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The editor's routes. They are not part of the API's route list (nor of its OpenAPI document).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>, h: HeaderMap| async move {
                // A path without a dot is a view of the page (a bookmark): the page answers it.
                let name = if path.contains('.') {
                    path.as_str()
                } else {
                    "index.html"
                };
                file(name, &h)
            }),
        )
}

async fn index(headers: HeaderMap) -> Response {
    file("index.html", &headers)
}

/// The entity tag of each file (in the order of [`FILES`]): a hash of its content, computed once.
fn etags() -> &'static [String] {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| FILES.iter().map(|(_, _, content)| etag(content)).collect())
}

/// FNV-1a of the content: a change detector for embedded files, not a security measure.
fn etag(content: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in content.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn file(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = FILES.iter().position(|(n, _, _)| *n == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, "No such file of the editor").into_response();
    };
    let (_, media, content) = FILES[i];
    let tag = etags()[i].as_str();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, media)], content).into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    for (k, v) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
        ("cache-control", "no-cache"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let index = FILES[0].2;
        for (name, _, content) in FILES {
            assert!(!content.is_empty(), "{name} is empty");
        }
        // Every module imported by another is embedded (a missing one would 404 in the browser).
        for (_, _, content) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            for part in content.split("from './").skip(1) {
                let module = part.split('\'').next().unwrap_or_default();
                assert!(
                    FILES.iter().any(|(n, _, _)| *n == module),
                    "{module} is imported but not embedded"
                );
            }
        }
        assert!(index.contains("/ui/app.js") && index.contains("/ui/style.css"));
        // No inline script or style: the policy would block them.
        assert!(!index.contains("<script>") && !index.contains("style="));
    }

    #[test]
    fn files_answer_with_the_policy_and_revalidate() {
        let res = file("app.js", &HeaderMap::new());
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        let tag = res.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(file("app.js", &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            file("nope.js", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
