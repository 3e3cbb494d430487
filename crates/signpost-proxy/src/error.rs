//! Errors the proxy answers itself, in the shape of SAP's transparent proxy (PROXY.md §3.5): the
//! status code, and the headers `x-error-message`, `x-error-origin`, `x-internal-error-code`,
//! `x-request-id` and `x-proxy-server`. This is the one place that turns a failure into a response
//! (linkerd's `SyntheticHttpResponse`); every error says who is at fault.

use std::fmt;

use http::{HeaderValue, Response, StatusCode};

use crate::body::{self, ProxyBody};

/// Who failed: the value of `x-error-origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The proxy itself: the request, the configuration, or the target system.
    Proxy,
    /// The token service of the Destination service instance (XSUAA or IAS).
    TokenService,
    /// The Destination service.
    DestinationService,
}

impl Origin {
    /// SAP's header value.
    pub fn header_value(self) -> &'static str {
        match self {
            Origin::Proxy => "Transparent Proxy",
            Origin::TokenService => "XSUAA",
            Origin::DestinationService => "Destination Service",
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Origin::Proxy => "proxy",
            Origin::TokenService => "token_service",
            Origin::DestinationService => "destination_service",
        }
    }
}

/// A response the proxy makes instead of the target's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub status: StatusCode,
    pub origin: Origin,
    /// The status of the internal call that failed (`x-internal-error-code`), when there was one.
    pub internal_code: Option<u16>,
    /// A sentence for the caller. Never holds a secret.
    pub message: String,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.origin.header_value())
    }
}

impl ProxyError {
    pub fn new(status: StatusCode, origin: Origin, message: impl Into<String>) -> Self {
        Self {
            status,
            origin,
            internal_code: None,
            message: message.into(),
        }
    }

    /// A 400 for a bad request header.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Origin::Proxy, message)
    }

    /// A 502: the destination cannot be used, or the target cannot be reached.
    pub fn bad_gateway(origin: Origin, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, origin, message)
    }

    pub fn with_internal_code(mut self, code: u16) -> Self {
        self.internal_code = Some(code);
        self
    }

    /// The response, with SAP's error headers and the message as a plain-text body.
    pub fn into_response(self, request_id: &str) -> Response<ProxyBody> {
        let mut res = Response::new(body::full(format!("{}\n", self.message)));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert("x-error-message", header_text(&self.message));
        h.insert(
            "x-error-origin",
            HeaderValue::from_static(self.origin.header_value()),
        );
        let code = self.internal_code.unwrap_or(self.status.as_u16());
        h.insert("x-internal-error-code", HeaderValue::from(code));
        h.insert("x-request-id", header_text(request_id));
        h.insert(
            "x-proxy-server",
            HeaderValue::from_static("Transparent Proxy"),
        );
        res
    }
}

/// `text` as a header value: visible ASCII and spaces kept, anything else replaced by `?`, at
/// most 1,000 characters.
fn header_text(text: &str) -> HeaderValue {
    let clean: String = text
        .chars()
        .take(1000)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("error"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn error_headers() {
        let res = ProxyError::bad_gateway(
            Origin::DestinationService,
            "Destination 'x' not found\n\u{e9}",
        )
        .with_internal_code(404)
        .into_response("rid-1");
        assert_eq!(res.status(), 502);
        let h = res.headers();
        assert_eq!(h["x-error-message"], "Destination 'x' not found??");
        assert_eq!(h["x-error-origin"], "Destination Service");
        assert_eq!(h["x-internal-error-code"], "404");
        assert_eq!(h["x-request-id"], "rid-1");
        assert_eq!(h["x-proxy-server"], "Transparent Proxy");
    }
}
