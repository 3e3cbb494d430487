//! The token flows of every authentication type (API.md §3): building the token request from the
//! destination's properties and the caller's headers, sending it, and reading the answer.

use crate::FlowError;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};
use signpost_model::is_secret_property;

/// The caller's headers that flows read. `Debug` shows which are present, never their values.
#[derive(Clone, Default)]
pub struct FlowHeaders {
    pub user_token: Option<String>,
    pub tenant: Option<String>,
    pub refresh_token: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub actor_token: Option<String>,
    pub actor_token_type: Option<String>,
    pub saml_assertion: Option<String>,
    pub client_assertion: Option<String>,
    pub client_assertion_type: Option<String>,
}

impl fmt::Debug for FlowHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = |o: &Option<String>| o.as_ref().map(|_| "<set>");
        f.debug_struct("FlowHeaders")
            .field("user_token", &present(&self.user_token))
            .field("tenant", &self.tenant)
            .field("refresh_token", &present(&self.refresh_token))
            .field("code", &present(&self.code))
            .field("subject_token", &present(&self.subject_token))
            .field("saml_assertion", &present(&self.saml_assertion))
            .field("client_assertion", &present(&self.client_assertion))
            .finish_non_exhaustive()
    }
}

/// The grant of an OAuth flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    ClientCredentials,
    Password,
    JwtBearer,
    RefreshToken,
    AuthorizationCode,
    TokenExchange,
    Saml2Bearer,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            Grant::RefreshToken => "refresh_token",
            Grant::AuthorizationCode => "authorization_code",
            Grant::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
            Grant::Saml2Bearer => "urn:ietf:params:oauth:grant-type:saml2-bearer",
        }
    }
}

/// A token request, ready to send.
#[derive(Clone)]
pub struct TokenRequest {
    pub url: reqwest::Url,
    pub form: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub basic: Option<(String, String)>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("url", &redacted_url(&self.url))
            .field(
                "form_keys",
                &self
                    .form
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("basic", &self.basic.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// A successful token endpoint answer.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenReply {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub issued_token_type: Option<String>,
}

impl fmt::Debug for TokenReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReply")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// `scheme://host[:port]/path`: what error messages may show of a URL.
pub fn redacted_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

pub(crate) fn prop<'a>(d: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn is_true(d: &Map<String, Value>, key: &str, default: bool) -> bool {
    match prop(d, key) {
        Some(v) => v.eq_ignore_ascii_case("true"),
        None => default,
    }
}

fn seconds(d: &Map<String, Value>, key: &str, max: u64) -> Result<Duration, FlowError> {
    match prop(d, key) {
        None => Ok(Duration::from_secs(10)),
        Some(v) => {
            let n: u64 = v.trim().parse().map_err(|_| {
                FlowError::Destination(format!("{key} must be a whole number of seconds"))
            })?;
            if n > max {
                return Err(FlowError::Destination(format!(
                    "{key} must be from 0 to {max}"
                )));
            }
            // 0 means "no limit" in SAP's clients; Signpost caps it at the maximum.
            Ok(Duration::from_secs(if n == 0 { max } else { n }))
        }
    }
}

/// `tokenServiceURL` with `tokenServiceURLType` applied.
pub(crate) fn token_url(
    d: &Map<String, Value>,
    tenant: Option<&str>,
    subdomain: &str,
    tenant_aware: bool,
) -> Result<reqwest::Url, FlowError> {
    let destination = |s: &str| FlowError::Destination(s.to_owned());
    let raw = prop(d, "tokenServiceURL")
        .ok_or_else(|| destination("the property tokenServiceURL is required"))?;
    let common = prop(d, "tokenServiceURLType").is_some_and(|t| t.eq_ignore_ascii_case("Common"));
    if let Some(t) = prop(d, "tokenServiceURLType") {
        if !t.eq_ignore_ascii_case("Common") && !t.eq_ignore_ascii_case("Dedicated") {
            return Err(FlowError::Destination(format!(
                "tokenServiceURLType must be Dedicated or Common, not '{t}'"
            )));
        }
    }
    let text = if common && tenant_aware {
        let sub = tenant.unwrap_or(subdomain);
        if !sub.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || sub.is_empty() {
            return Err(FlowError::Request(
                "the tenant subdomain must be letters, digits and '-'".into(),
            ));
        }
        if raw.contains("{tenant}") {
            raw.replace("{tenant}", sub)
        } else {
            let mut url = reqwest::Url::parse(raw)
                .map_err(|_| destination("tokenServiceURL is not a valid URL"))?;
            let host = url
                .host_str()
                .ok_or_else(|| destination("tokenServiceURL has no host"))?
                .to_owned();
            url.set_host(Some(&format!("{sub}.{host}"))).map_err(|_| {
                FlowError::Request("the tenant subdomain does not form a valid host".into())
            })?;
            url.to_string()
        }
    } else {
        if tenant.is_some() && tenant_aware {
            return Err(FlowError::Request(
                "X-tenant is only allowed with tokenServiceURLType Common".into(),
            ));
        }
        raw.to_owned()
    };
    let mut url = reqwest::Url::parse(&text)
        .map_err(|_| destination("tokenServiceURL is not a valid URL"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(destination("tokenServiceURL must be an http or https URL"));
    }
    let extra: Vec<(String, String)> = d
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("tokenServiceURL.queries.")?.to_owned(),
                v.as_str()?.to_owned(),
            ))
        })
        .collect();
    if !extra.is_empty() {
        url.query_pairs_mut().extend_pairs(extra);
    }
    Ok(url)
}

/// Builds the token request of an OAuth flow: URL, grant, client authentication and the
/// `tokenService*` extras. `grant_params` are the grant's own form fields.
pub(crate) fn build(
    d: &Map<String, Value>,
    h: &FlowHeaders,
    subdomain: &str,
    grant: Grant,
    grant_params: Vec<(String, String)>,
    tenant_aware: bool,
    client_assertion: Option<(String, String)>,
) -> Result<TokenRequest, FlowError> {
    let url = token_url(d, h.tenant.as_deref(), subdomain, tenant_aware)?;
    let mut form: Vec<(String, String)> = vec![("grant_type".into(), grant.as_str().into())];
    form.extend(grant_params);
    let client_id = if grant == Grant::Saml2Bearer {
        prop(d, "clientKey")
    } else {
        prop(d, "clientId")
    };
    let client_id = client_id.ok_or_else(|| {
        FlowError::Destination(format!(
            "the property {} is required",
            if grant == Grant::Saml2Bearer {
                "clientKey"
            } else {
                "clientId"
            }
        ))
    })?;
    let secret = prop(d, "clientSecret");
    let assertion = match (&h.client_assertion, client_assertion) {
        (Some(a), _) => Some((
            a.clone(),
            h.client_assertion_type
                .clone()
                .unwrap_or_else(|| "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
        )),
        (None, Some(pair)) => Some(pair),
        (None, None) => None,
    };
    let mut basic = None;
    let in_body = is_true(d, "tokenService.addClientCredentialsInBody", true);
    let ts_user = prop(d, "tokenServiceUser");
    if let Some((a, t)) = assertion {
        form.push(("client_id".into(), client_id.into()));
        form.push(("client_assertion".into(), a));
        form.push(("client_assertion_type".into(), t));
    } else if let Some(user) = ts_user {
        basic = Some((
            user.to_owned(),
            prop(d, "tokenServicePassword")
                .unwrap_or_default()
                .to_owned(),
        ));
        form.push(("client_id".into(), client_id.into()));
        if let (Some(s), true) = (secret, in_body) {
            form.push(("client_secret".into(), s.into()));
        }
    } else if in_body || secret.is_none() {
        form.push(("client_id".into(), client_id.into()));
        if let Some(s) = secret {
            form.push(("client_secret".into(), s.into()));
        }
    } else {
        basic = Some((client_id.to_owned(), secret.unwrap_or_default().to_owned()));
    }
    if let Some(scope) = prop(d, "scope") {
        form.push(("scope".into(), scope.into()));
    }
    for (k, v) in d {
        if let (Some(name), Some(v)) = (k.strip_prefix("tokenService.body."), v.as_str()) {
            form.push((name.into(), v.into()));
        }
    }
    let headers = d
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("tokenServiceURL.headers.")?.to_owned(),
                v.as_str()?.to_owned(),
            ))
        })
        .collect();
    Ok(TokenRequest {
        url,
        form,
        headers,
        basic,
        connect_timeout: seconds(d, "tokenServiceURL.ConnectionTimeoutInSeconds", 60)?,
        read_timeout: seconds(d, "tokenServiceURL.SocketReadTimeoutInSeconds", 600)?,
    })
}

/// What a transport error was, without URLs or secrets.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "it timed out".into()
    } else if e.is_connect() {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        let mut detail = String::new();
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        if detail.is_empty() {
            "the connection failed".into()
        } else {
            format!("the connection failed: {detail}")
        }
    } else if e.is_body() || e.is_decode() {
        "its answer could not be read".into()
    } else {
        "the request failed".into()
    }
}

/// Replaces every secret of the destination or request in `text` (a remote server may echo them).
pub(crate) fn scrub(text: &str, d: &Map<String, Value>, req: &TokenRequest) -> String {
    let mut out = text.to_owned();
    let secrets = d
        .iter()
        .filter(|(k, _)| is_secret_property(k))
        .filter_map(|(_, v)| v.as_str())
        .chain(
            req.form
                .iter()
                .filter(|(k, _)| k != "grant_type" && k != "client_id" && k != "scope")
                .map(|(_, v)| v.as_str()),
        )
        .chain(req.basic.iter().map(|(_, p)| p.as_str()))
        .filter(|s| s.len() >= 4);
    for s in secrets {
        out = out.replace(s, "***");
    }
    out
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max {
        out.push('…');
    }
    out
}

/// Sends a token request and reads a token answer; the error is a sentence for `authTokens`.
pub(crate) async fn send(
    client: &crate::net::GuardedClient,
    req: &TokenRequest,
    d: &Map<String, Value>,
) -> Result<TokenReply, FlowError> {
    let mut r = client
        .request(reqwest::Method::POST, req.url.clone())
        .map_err(|e| FlowError::Network(crate::net::refused("the token service URL", &e)))?
        .timeout(req.connect_timeout + req.read_timeout)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&req.form);
    for (k, v) in &req.headers {
        r = r.header(k.as_str(), v.as_str());
    }
    if let Some((u, p)) = &req.basic {
        // RFC 6749 §2.3.1: the parts are form-encoded before Basic.
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let value =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(u), enc(p)));
        r = r.header(reqwest::header::AUTHORIZATION, format!("Basic {value}"));
    }
    let where_ = redacted_url(&req.url);
    let res = r.send().await.map_err(|e| {
        FlowError::Network(format!(
            "Token request to {where_} failed: {}",
            describe(&e)
        ))
    })?;
    let status = res.status();
    let body = crate::net::read_capped(res, crate::net::MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            FlowError::Network(match e {
                signpost_net::BodyError::Read(e) => {
                    format!("Token request to {where_} failed: {}", describe(&e))
                }
                too_large => format!("Token request to {where_} failed: {too_large}"),
            })
        })?;
    let json: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
    if !status.is_success() {
        let mut msg = format!("Token service {where_} answered HTTP {}", status.as_u16());
        if let Some(j) = &json {
            if let Some(err) = j.get("error").and_then(Value::as_str) {
                msg.push_str(&format!(": {err}"));
            }
            if let Some(desc) = j.get("error_description").and_then(Value::as_str) {
                msg.push_str(&format!(" ({})", first_line(desc, 200)));
            }
        }
        return Err(FlowError::TokenService(scrub(&msg, d, req)));
    }
    let Some(j) = json else {
        return Err(FlowError::TokenService(format!(
            "Token service {where_} answered HTTP {} with a body that is not JSON",
            status.as_u16()
        )));
    };
    let access_token = j
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            FlowError::TokenService(format!(
                "Token service {where_} answered without an access_token"
            ))
        })?
        .to_owned();
    let token_type = match j.get("token_type").and_then(Value::as_str) {
        None => "Bearer".to_owned(),
        Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_owned(),
        Some(t) => t.to_owned(),
    };
    let expires_in = match j.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let text = |k: &str| j.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(TokenReply {
        access_token,
        token_type,
        expires_in,
        refresh_token: text("refresh_token"),
        scope: text("scope"),
        issued_token_type: text("issued_token_type"),
    })
}

/// The user token of a user flow: `X-user-token`, else nothing (Signpost's own service tokens
/// carry no user).
pub(crate) fn user_token(h: &FlowHeaders) -> Result<&str, FlowError> {
    h.user_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            FlowError::Request(
                "This flow needs a user: send the user's JWT in the X-user-token header"
                    .to_string(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dest(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn common_url_types() {
        let d = dest(
            json!({"tokenServiceURL": "https://{tenant}.auth.example/oauth/token", "tokenServiceURLType": "Common"}),
        );
        assert_eq!(
            token_url(&d, Some("t1"), "own", true).unwrap().as_str(),
            "https://t1.auth.example/oauth/token"
        );
        assert_eq!(
            token_url(&d, None, "own", true).unwrap().as_str(),
            "https://own.auth.example/oauth/token"
        );
        let d = dest(
            json!({"tokenServiceURL": "https://auth.example/oauth/token", "tokenServiceURLType": "Common", "tokenServiceURL.queries.a": "b c"}),
        );
        assert_eq!(
            token_url(&d, Some("t1"), "own", true).unwrap().as_str(),
            "https://t1.auth.example/oauth/token?a=b+c"
        );
        let d = dest(json!({"tokenServiceURL": "https://auth.example/oauth/token"}));
        assert!(
            token_url(&d, Some("t1"), "own", true).is_err(),
            "X-tenant with Dedicated"
        );
        assert!(
            token_url(&d, Some("t1"), "own", false).is_ok(),
            "flows without tenants ignore X-tenant"
        );
    }

    #[test]
    fn client_authentication_variants() {
        let h = FlowHeaders::default();
        let d = dest(
            json!({"tokenServiceURL": "https://a/t", "clientId": "id", "clientSecret": "sec", "scope": "s1 s2", "tokenService.body.resource": "r"}),
        );
        let r = build(&d, &h, "x", Grant::ClientCredentials, vec![], true, None).unwrap();
        assert_eq!(r.basic, None);
        assert!(r.form.contains(&("client_secret".into(), "sec".into())));
        assert!(r.form.contains(&("scope".into(), "s1 s2".into())));
        assert!(r.form.contains(&("resource".into(), "r".into())));
        let mut d2 = d.clone();
        d2.insert(
            "tokenService.addClientCredentialsInBody".into(),
            json!("false"),
        );
        let r = build(&d2, &h, "x", Grant::ClientCredentials, vec![], true, None).unwrap();
        assert_eq!(r.basic, Some(("id".into(), "sec".into())));
        assert!(!r
            .form
            .iter()
            .any(|(k, _)| k == "client_secret" || k == "client_id"));
        d2.insert("tokenServiceUser".into(), json!("tsu"));
        d2.insert("tokenServicePassword".into(), json!("tsp"));
        let r = build(&d2, &h, "x", Grant::ClientCredentials, vec![], true, None).unwrap();
        assert_eq!(r.basic, Some(("tsu".into(), "tsp".into())));
        let h = FlowHeaders {
            client_assertion: Some("jwt".into()),
            ..Default::default()
        };
        let r = build(&d, &h, "x", Grant::ClientCredentials, vec![], true, None).unwrap();
        assert!(r.form.contains(&("client_assertion".into(), "jwt".into())));
        assert!(!r.form.iter().any(|(k, _)| k == "client_secret"));
        let bad = dest(
            json!({"tokenServiceURL": "https://a/t", "clientId": "id", "tokenServiceURL.ConnectionTimeoutInSeconds": "61"}),
        );
        assert!(build(
            &bad,
            &FlowHeaders::default(),
            "x",
            Grant::ClientCredentials,
            vec![],
            true,
            None
        )
        .is_err());
        let missing = dest(json!({"tokenServiceURL": "https://a/t"}));
        assert_eq!(
            build(
                &missing,
                &FlowHeaders::default(),
                "x",
                Grant::ClientCredentials,
                vec![],
                true,
                None
            )
            .unwrap_err(),
            FlowError::Destination("the property clientId is required".into())
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let h = FlowHeaders {
            user_token: Some("eyJsecret".into()),
            ..Default::default()
        };
        assert!(!format!("{h:?}").contains("eyJsecret"));
        let d = dest(
            json!({"tokenServiceURL": "https://a/t?key=hidden", "clientId": "id", "clientSecret": "sec-value"}),
        );
        let r = build(&d, &h, "x", Grant::ClientCredentials, vec![], true, None).unwrap();
        let shown = format!("{r:?}");
        assert!(!shown.contains("sec-value") && !shown.contains("hidden"));
    }
}
