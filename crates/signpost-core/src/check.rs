//! Check connection (`POST /signpost/v1/destinations/{level}/{name}/check`): the destination is
//! resolved as a find does (tokens included), then its URL is called with the credentials
//! injected (`authTokens[].http_header`, `URL.headers.*`, `URL.queries.*`), through the outbound
//! guard, step by step (`signpost_oauth::probe`). The report names each step's outcome; no
//! credential appears in it.

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use signpost_model::{EntityKind, Level};
use signpost_oauth::probe::{self, ProbeRequest, Step};

use crate::access::Access;
use crate::{Error, FindOptions, Principal, Result, Signpost};

/// The report of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub level: &'static str,
    /// Scheme, host and port of the URL called (no path, no credentials).
    pub target: String,
    /// Every step passed.
    pub ok: bool,
    pub steps: Vec<Step>,
}

fn seconds(config: &serde_json::Map<String, Value>, key: &str, default: u64, max: u64) -> Duration {
    let n = config
        .get(key)
        .and_then(|v| {
            v.as_str()
                .and_then(|s| s.trim().parse().ok())
                .or(v.as_u64())
        })
        .unwrap_or(default)
        .clamp(1, max);
    Duration::from_secs(n)
}

impl Signpost {
    pub async fn check_destination(
        &self,
        who: &Principal,
        level: Level,
        name: &str,
    ) -> Result<CheckReport> {
        self.may(who, level, EntityKind::Destination, Access::Read)
            .await?;
        let found = self
            .consume_destination(who, name, level.as_str(), &FindOptions::default())
            .await?;
        let response = found.response;
        let config = &response.destination_configuration;
        let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or("");
        if text("Type") != "HTTP" {
            return Err(Error::Unprocessable(format!(
                "Only HTTP destinations can be checked; '{name}' has type '{}'",
                text("Type")
            )));
        }
        if !matches!(text("ProxyType"), "" | "Internet") {
            return Err(Error::Unprocessable(format!(
                "Only Internet destinations can be checked; '{name}' has proxy type '{}'",
                text("ProxyType")
            )));
        }
        let raw_url = text("URL");
        let with_scheme = if raw_url.contains("://") {
            raw_url.to_owned()
        } else {
            format!("https://{raw_url}")
        };
        let mut url = probe::Url::parse(&with_scheme)
            .map_err(|_| Error::Unprocessable(format!("The URL of '{name}' is not a valid URL")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Unprocessable(format!(
                "The URL of '{name}' must be http:// or https://"
            )));
        }
        let mut headers = Vec::new();
        for (key, value) in config {
            let Some(value) = value.as_str() else {
                continue;
            };
            if let Some(h) = key.strip_prefix("URL.headers.") {
                headers.push((h.to_owned(), value.to_owned()));
            } else if let Some(q) = key.strip_prefix("URL.queries.") {
                url.query_pairs_mut().append_pair(q, value);
            }
        }

        // The token flows already ran in the find: their outcome is a step of its own.
        let tokens = response.auth_tokens.as_deref().unwrap_or_default();
        let failed: Vec<&str> = tokens.iter().filter_map(|t| t.error.as_deref()).collect();
        let mut detail = serde_json::Map::new();
        detail.insert("authentication".into(), Value::from(text("Authentication")));
        detail.insert(
            "tokens".into(),
            Value::from(tokens.iter().filter(|t| t.error.is_none()).count()),
        );
        let token_step = Step {
            step: "token",
            ok: failed.is_empty(),
            ms: 0.0,
            detail,
            error: (!failed.is_empty()).then(|| failed.join("; ")),
        };
        for t in tokens.iter().filter(|t| t.error.is_none()) {
            if let Some(h) = &t.http_header {
                headers.push((h.key.clone(), h.value.clone()));
            }
        }
        // The trust store: from the find's certificates when it hands them out
        // (ClientCertificateAuthentication), else looked up as a find would.
        let mut certificates = response.certificates.clone().unwrap_or_default();
        if let Some(location) = config.get("TrustStoreLocation").and_then(Value::as_str) {
            if !certificates.iter().any(|c| c.name == location) {
                if let Some(cert) = self
                    .certificate_for(who, &who.owner(level), location)
                    .await?
                {
                    certificates.push(crate::find::certificate_item(&cert)?);
                }
            }
        }
        let extra_roots = trust_store(config, &certificates);
        let req = ProbeRequest {
            url: url.clone(),
            headers,
            allow_private: self.config().oauth.allow_private_networks,
            connect_timeout: seconds(config, "URL.connectionTimeoutInSeconds", 5, 60),
            read_timeout: seconds(config, "URL.socketReadTimeoutInSeconds", 30, 120),
            extra_roots,
            trust_all: text("TrustAll").eq_ignore_ascii_case("true"),
        };
        let mut steps = vec![token_step];
        steps.extend(probe::probe(&req).await);
        let ok = steps.iter().all(|s| s.ok);
        Ok(CheckReport {
            name: name.to_owned(),
            level: level.as_str(),
            target: url.origin().ascii_serialization(),
            ok,
            steps,
        })
    }
}

/// The destination's trust store (`TrustStoreLocation`): PEM or DER certificates from the
/// find's `certificates`. Keystore formats (JKS, PKCS#12) are not read here.
fn trust_store(
    config: &serde_json::Map<String, Value>,
    certificates: &[signpost_wire::CertificateItem],
) -> Vec<Vec<u8>> {
    let Some(location) = config.get("TrustStoreLocation").and_then(Value::as_str) else {
        return Vec::new();
    };
    certificates
        .iter()
        .filter(|c| c.name == location)
        .filter_map(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(&c.content)
                .ok()
        })
        .collect()
}
