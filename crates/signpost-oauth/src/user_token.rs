//! Verification of the user tokens that user flows exchange or assert: signature, `exp`, `nbf`
//! and issuer, against the destination's `x_user_token.jwks` / `x_user_token.jwks_uri` or the
//! issuers the operator trusts server-wide. An unverifiable token never reaches a flow.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::net::GuardedClient;

/// An identity provider that the operator trusts for every destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    pub issuer: String,
    pub jwks_uri: String,
}

/// Parses `SIGNPOST_TRUSTED_ISSUERS`: `ISSUER=JWKS_URL` pairs separated by commas or whitespace.
pub fn parse_trusted_issuers(text: &str) -> Result<Vec<TrustedIssuer>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (issuer, jwks) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not ISSUER=JWKS_URL"))?;
            for (what, url) in [("issuer", issuer), ("JWKS URL", jwks)] {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!("the {what} '{url}' must be an http(s) URL"));
                }
            }
            Ok(TrustedIssuer {
                issuer: issuer.trim_end_matches('/').to_owned(),
                jwks_uri: jwks.to_owned(),
            })
        })
        .collect()
}

/// The verified claims of a user token.
#[derive(Debug, Clone)]
pub struct VerifiedUser {
    pub claims: Map<String, Value>,
}

impl VerifiedUser {
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

const JWKS_TTL: Duration = Duration::from_secs(600);

/// Most JWKS documents kept (one per URL).
pub(crate) const JWKS_CACHE_MAX: u64 = 1_000;

/// Fetched JWKS documents, by URL: at most [`JWKS_CACHE_MAX`], each for [`JWKS_TTL`]; concurrent
/// misses of one URL make one request.
pub(crate) struct JwksCache {
    sets: moka::future::Cache<String, Arc<JwkSet>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("entries", &self.sets.entry_count())
            .finish()
    }
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new(JWKS_CACHE_MAX)
    }
}

impl JwksCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            sets: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(JWKS_TTL)
                .build(),
        }
    }

    /// How many documents are kept (after pending evictions ran).
    #[cfg(test)]
    pub(crate) async fn len(&self) -> u64 {
        self.sets.run_pending_tasks().await;
        self.sets.entry_count()
    }

    pub(crate) async fn get(
        &self,
        client: &GuardedClient,
        url: &str,
        refresh: bool,
    ) -> Result<Arc<JwkSet>, String> {
        if refresh {
            self.sets.invalidate(url).await;
        }
        self.sets
            .try_get_with_by_ref(url, fetch(client, url))
            .await
            .map_err(|e: Arc<String>| (*e).clone())
    }
}

/// Reads one JWKS document through the guard, at most [`crate::net::MAX_BODY_BYTES`] of it.
async fn fetch(client: &GuardedClient, url: &str) -> Result<Arc<JwkSet>, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| format!("the JWKS URL {url} is not a URL"))?;
    let res = client
        .request(reqwest::Method::GET, parsed)
        .map_err(|e| crate::net::refused(&format!("the JWKS URL {url}"), &e))?
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| {
            format!(
                "the JWKS at {url} could not be fetched: {}",
                crate::flows::describe(&e)
            )
        })?;
    if !res.status().is_success() {
        return Err(format!(
            "the JWKS at {url} answered {}",
            res.status().as_u16()
        ));
    }
    let body = crate::net::read_capped(res, crate::net::MAX_BODY_BYTES)
        .await
        .map_err(|e| format!("the JWKS at {url} could not be fetched: {e}"))?;
    let set: JwkSet = serde_json::from_slice(&body)
        .map_err(|_| format!("the JWKS at {url} is not a JSON Web Key Set"))?;
    Ok(Arc::new(set))
}

fn algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
}

/// Why a user token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserTokenError {
    /// No key of the JWKS matches the token's `kid`: the issuer may have rotated its keys, so
    /// a cached JWKS is fetched again once.
    #[error("no key of the issuer's JWKS matches the user token's kid")]
    NoMatchingKey,
    /// Refused for the reason given (a secret-free sentence).
    #[error("{0}")]
    Refused(String),
}

impl From<String> for UserTokenError {
    fn from(reason: String) -> Self {
        UserTokenError::Refused(reason)
    }
}

/// The unverified `iss` of a token, to pick its keys.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss").and_then(Value::as_str).map(str::to_owned)
}

fn verify_with(
    token: &str,
    set: &JwkSet,
    issuer: Option<&str>,
) -> Result<VerifiedUser, UserTokenError> {
    let header = decode_header(token).map_err(|_| "the user token is not a JWT".to_string())?;
    if !algorithms().contains(&header.alg) {
        return Err(UserTokenError::Refused(format!(
            "the user token's algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or(UserTokenError::NoMatchingKey)?;
    let key =
        DecodingKey::from_jwk(jwk).map_err(|_| "the matching JWK is not usable".to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "iss"]);
    if let Some(iss) = issuer {
        validation.set_issuer(&[iss, &format!("{iss}/")]);
    }
    let data = decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => "the user token has expired".to_string(),
            ErrorKind::ImmatureSignature => "the user token is not valid yet (nbf)".to_string(),
            ErrorKind::InvalidIssuer => "the user token's issuer does not match".to_string(),
            ErrorKind::InvalidSignature => "the user token's signature is invalid".to_string(),
            ErrorKind::MissingRequiredClaim(c) => format!("the user token has no '{c}' claim"),
            _ => "the user token could not be verified".to_string(),
        }
    })?;
    Ok(VerifiedUser {
        claims: data.claims,
    })
}

/// [`verify_with`] on the CPU pool: an RSA or ECDSA verification is not done on a request thread.
async fn verify_off(
    token: &str,
    set: Arc<JwkSet>,
    issuer: Option<&str>,
) -> Result<VerifiedUser, UserTokenError> {
    let token = token.to_owned();
    let issuer = issuer.map(str::to_owned);
    crate::cpu::run(move || verify_with(&token, &set, issuer.as_deref()))
        .await
        .map_err(|e| UserTokenError::Refused(e.to_string()))?
}

/// Verifies `token` for a destination, with its `x_user_token.*` properties.
pub(crate) async fn verify(
    token: &str,
    destination: &Map<String, Value>,
    trusted: &[TrustedIssuer],
    cache: &JwksCache,
    client: &GuardedClient,
) -> Result<VerifiedUser, UserTokenError> {
    let prop = |k: &str| {
        destination
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(b64) = prop("x_user_token.jwks") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(b64.trim().trim_end_matches('='))
            })
            .map_err(|_| "x_user_token.jwks is not base64".to_string())?;
        let set: JwkSet = serde_json::from_slice(&raw)
            .map_err(|_| "x_user_token.jwks is not a JSON Web Key Set".to_string())?;
        return verify_off(token, Arc::new(set), None).await;
    }
    if let Some(url) = prop("x_user_token.jwks_uri") {
        let set = cache.get(client, url, false).await?;
        return match verify_off(token, set, None).await {
            Err(UserTokenError::NoMatchingKey) => {
                verify_off(token, cache.get(client, url, true).await?, None).await
            }
            other => other,
        };
    }
    let iss = unverified_issuer(token)
        .ok_or_else(|| "the user token is not a JWT with an 'iss' claim".to_string())?;
    let trusted_issuer = trusted
        .iter()
        .find(|t| t.issuer == iss.trim_end_matches('/'))
        .ok_or_else(|| format!("the user token's issuer {iss} is not trusted: set x_user_token.jwks_uri on the destination or add the issuer to SIGNPOST_TRUSTED_ISSUERS"))?;
    let set = cache.get(client, &trusted_issuer.jwks_uri, false).await?;
    match verify_off(token, set, Some(&trusted_issuer.issuer)).await {
        Err(UserTokenError::NoMatchingKey) => {
            verify_off(
                token,
                cache.get(client, &trusted_issuer.jwks_uri, true).await?,
                Some(&trusted_issuer.issuer),
            )
            .await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_jwks_cache_stays_at_its_capacity() {
        use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"keys": []})))
            .mount(&server)
            .await;
        let client = crate::net::client(
            Duration::from_secs(5),
            Duration::from_secs(5),
            false,
            &crate::TlsSettings::default(),
        )
        .unwrap();
        let cache = JwksCache::default();
        for i in 0..3_000 {
            let url = format!("{}/jwks/{i}", server.uri());
            cache.get(&client, &url, false).await.unwrap();
        }
        let kept = cache.len().await;
        assert!(kept <= JWKS_CACHE_MAX, "{kept} JWKS documents kept");
        assert!(kept > 0);
        assert_eq!(server.received_requests().await.unwrap().len(), 3_000);
    }

    #[test]
    fn trusted_issuer_list() {
        let t = parse_trusted_issuers(
            "https://a.example=https://a.example/jwks, http://b/=http://b/keys",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].issuer, "http://b");
        assert!(parse_trusted_issuers("nonsense").is_err());
        assert!(parse_trusted_issuers("a=b").is_err());
        assert!(parse_trusted_issuers("").unwrap().is_empty());
    }
}
