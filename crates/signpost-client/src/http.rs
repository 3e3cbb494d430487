//! Shared HTTP plumbing: building reqwest clients from [`ClientOptions`], sending with transport
//! failures mapped to [`Error::Unreachable`], URL helpers and error-body reading.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde_json::Value;

use crate::{Error, Result, Side};

/// Timeouts and trust of a [`crate::DestinationClient`] (and of [`crate::TenantClient::login`]).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time to establish a TCP (and TLS) connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer. Default 10 s.
    pub read_timeout: Duration,
    /// Renew a cached token this long before it expires. Default 60 s. (At most half of a
    /// token's lifetime is used, so short-lived tokens are still cached.)
    pub renew_before: Duration,
    /// Extra trusted CAs (a PEM bundle) for the token service and the Destination service, on
    /// top of the built-in web PKI roots.
    pub extra_roots_pem: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            renew_before: Duration::from_secs(60),
            extra_roots_pem: None,
        }
    }
}

/// A rustls client with `options`' timeouts and roots, following no redirects, presenting
/// `identity_pem` (certificate chain and private key) as TLS client certificate when given.
/// The system's resolver, except that `localhost` and every name under it are the loopback
/// addresses (RFC 6761 §6.3, as browsers and curl do): tenant token URLs of a service on
/// `localhost` (`<subdomain>.localhost`) resolve without entries in `/etc/hosts`.
#[derive(Debug, Clone, Copy)]
struct LoopbackAware;

impl reqwest::dns::Resolve for LoopbackAware {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if host == "localhost" || host.ends_with(".localhost") {
                let loopback: Vec<std::net::SocketAddr> = vec![
                    (std::net::Ipv4Addr::LOCALHOST, 0).into(),
                    (std::net::Ipv6Addr::LOCALHOST, 0).into(),
                ];
                return Ok(Box::new(loopback.into_iter()) as reqwest::dns::Addrs);
            }
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

pub(crate) fn build_client(
    options: &ClientOptions,
    identity_pem: Option<&str>,
) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .dns_resolver(Arc::new(LoopbackAware))
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("signpost-client/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &options.extra_roots_pem {
        let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|_| {
            Error::Invalid("extra_roots_pem holds no usable PEM certificate".into())
        })?;
        if roots.is_empty() {
            return Err(Error::Invalid(
                "extra_roots_pem holds no PEM certificate".into(),
            ));
        }
        for root in roots {
            b = b.add_root_certificate(root);
        }
    }
    if let Some(pem) = identity_pem {
        let identity = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|_| {
            Error::Invalid(
                "the service key's certificate and private key cannot be used as a TLS client certificate"
                    .into(),
            )
        })?;
        b = b.identity(identity);
    }
    b.build()
        .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))
}

pub(crate) fn parse_base(base: &str) -> Result<Url> {
    let url = Url::parse(base.trim_end_matches('/'))
        .map_err(|e| Error::Invalid(format!("'{base}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Invalid(format!(
            "'{base}' is not an http:// or https:// URL"
        )));
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// `scheme://host[:port]` of `url`: what error messages show (never a path, query or user info).
pub(crate) fn origin(url: &Url) -> String {
    let host = match url.host_str() {
        Some(h) => match url.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_owned(),
        },
        None => String::new(),
    };
    format!("{}://{host}", url.scheme())
}

/// `scheme://host[:port]/path` of `url`: no query and no user info.
pub(crate) fn shown(url: &Url) -> String {
    format!("{}{}", origin(url), url.path())
}

/// The failure's text with its sources, without the URL reqwest puts in.
fn transport_reason(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !reason.contains(&text) {
            reason = format!("{reason}: {text}");
        }
        source = s.source();
    }
    reason
}

fn transport_error(e: reqwest::Error, side: Side, url: &Url) -> Error {
    let timeout = e.is_timeout();
    Error::Unreachable {
        side,
        url: origin(url),
        reason: transport_reason(e),
        timeout,
    }
}

/// Sends and turns transport failures into [`Error::Unreachable`] of `side`.
pub(crate) async fn send(req: RequestBuilder, side: Side, url: &Url) -> Result<Response> {
    req.send().await.map_err(|e| transport_error(e, side, url))
}

/// The whole body; a failure while reading it (e.g. a read timeout) is [`Error::Unreachable`].
pub(crate) async fn body(res: Response, side: Side, url: &Url) -> Result<Vec<u8>> {
    res.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| transport_error(e, side, url))
}

/// The body of a successful answer, or the server's error message as [`Error::Api`].
pub(crate) async fn read_answer(
    res: Response,
    url: &Url,
) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = body(res, Side::DestinationService, url).await?;
    if status.is_success() || status == StatusCode::MULTI_STATUS {
        return Ok((status, headers, bytes));
    }
    Err(Error::Api {
        status: status.as_u16(),
        message: error_message(status, &bytes),
    })
}

/// The server's sentence from an error body: `ErrorMessage`, OSB `description`, OAuth
/// `error_description`, else the status' reason.
pub fn error_message(status: StatusCode, bytes: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        for key in ["ErrorMessage", "description", "error_description", "error"] {
            if let Some(s) = v.get(key).and_then(Value::as_str) {
                if !s.is_empty() {
                    return s.to_owned();
                }
            }
        }
    }
    let text = String::from_utf8_lossy(bytes).trim().to_owned();
    if !text.is_empty() && text.len() < 300 && !text.starts_with('{') && !text.starts_with('<') {
        return text;
    }
    status
        .canonical_reason()
        .unwrap_or("request failed")
        .to_owned()
}

/// Why a body did not parse, without quoting any of it (a value in the body may be a secret).
pub(crate) fn decode_reason(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "cannot be read",
        serde_json::error::Category::Syntax => "is not valid JSON",
        serde_json::error::Category::Data => "does not have the expected shape",
        serde_json::error::Category::Eof => "ends too early",
    };
    // Data errors may quote a value ("invalid type: string \"...\""); keep only those that
    // do not (e.g. "missing field `x`").
    let text = e.to_string();
    let detail = match e.classify() {
        serde_json::error::Category::Data if !text.contains('"') => format!(": {text}"),
        _ => format!(" (line {}, column {})", e.line(), e.column()),
    };
    format!("the body {what}{detail}")
}

pub(crate) fn json_of(side: Side, url: &Url, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        side,
        url: shown(url),
        reason: decode_reason(&e),
    })
}
