//! The token source of a service key: `client_credentials` with the client secret at
//! `<url>/oauth/token`, or over mTLS with the key's certificate at `<certurl>/oauth/token`. The
//! token is cached and renewed [`ClientOptions::renew_before`] its expiry (`expires_in`, else the
//! JWT's `exp`); concurrent callers share one fetch (single flight), including its failure.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::Url;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::http::{self, build_client, join, parse_base};
use crate::{AccessToken, ClientOptions, Error, Result, ServiceKey, Side};

/// Lifetime assumed for a token whose answer has neither `expires_in` nor a JWT `exp`.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(300);

/// The wall clock the renewal decision uses; tests inject one that can be moved.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// [`SystemTime::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    fetched_at: SystemTime,
    expires_at: SystemTime,
}

type Flight = Arc<OnceCell<Result<Cached>>>;

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    inflight: Option<Flight>,
    fetches: u64,
}

/// A tenant of a multitenant provider's service key (docs/MULTITENANCY.md): its tokens are asked
/// for with `x-zid: <id>`, or at `<scheme>://<subdomain>.<uaadomain>/oauth/token`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tenant {
    /// The tenant's subaccount id (`zid`).
    Id(String),
    /// The tenant's subdomain.
    Subdomain(String),
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tenant::Id(id) => write!(f, "id {id}"),
            Tenant::Subdomain(s) => write!(f, "subdomain {s}"),
        }
    }
}

/// Gets, caches and renews the tokens of one service key.
pub(crate) struct TokenSource {
    clientid: String,
    /// `x-zid` of a tenant token asked for by id.
    zid: Option<String>,
    /// `Some` for client-secret keys.
    secret: Option<String>,
    url: Url,
    http: reqwest::Client,
    renew_before: Duration,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("clientid", &self.clientid)
            .field("url", &self.url.as_str())
            .field("mtls", &self.secret.is_none())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(
        key: &ServiceKey,
        options: &ClientOptions,
        clock: Arc<dyn Clock>,
        tenant: Option<&Tenant>,
    ) -> Result<Self> {
        let (secret, identity) = if key.is_x509() {
            let cert = key
                .certificate
                .as_deref()
                .ok_or_else(|| Error::Invalid("the X.509 service key has no certificate".into()))?;
            let private = key.key.as_deref().ok_or_else(|| {
                Error::Invalid(
                    "the X.509 service key has no private key (`key`): supply it with ServiceKey::with_private_key"
                        .into(),
                )
            })?;
            (
                None,
                Some(format!("{}\n{}\n", cert.trim_end(), private.trim_end())),
            )
        } else {
            let secret = key.clientsecret.clone().ok_or_else(|| {
                Error::Invalid(
                    "the service key has neither a clientsecret nor an X.509 certificate".into(),
                )
            })?;
            (Some(secret), None)
        };
        let mut base = parse_base(key.token_base())?;
        let zid = match tenant {
            None => None,
            Some(Tenant::Id(id)) => Some(id.clone()),
            Some(Tenant::Subdomain(sub)) => {
                let host = base
                    .host_str()
                    .ok_or_else(|| Error::Invalid("the token URL has no host".into()))?
                    .to_owned();
                let valid =
                    !sub.is_empty() && sub.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !valid || base.set_host(Some(&format!("{sub}.{host}"))).is_err() {
                    return Err(Error::Invalid(format!(
                        "'{sub}' is not a tenant subdomain (letters, digits and '-')"
                    )));
                }
                None
            }
        };
        Ok(Self {
            clientid: key.clientid.clone(),
            zid,
            secret,
            url: join(&base, &["oauth", "token"]),
            http: build_client(options, identity.as_deref())?,
            renew_before: options.renew_before,
            clock,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True while `c` need not be renewed at `now`.
    fn fresh(&self, c: &Cached, now: SystemTime) -> bool {
        let lifetime = c
            .expires_at
            .duration_since(c.fetched_at)
            .unwrap_or_default();
        let margin = self.renew_before.min(lifetime / 2);
        match c.expires_at.checked_sub(margin) {
            Some(renew_at) => now < renew_at,
            None => false,
        }
    }

    /// How many token requests this source has sent.
    pub(crate) fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    /// The cached token, or a new one (one fetch shared by every concurrent caller).
    pub(crate) async fn token(&self) -> Result<AccessToken> {
        let flight = {
            let mut state = self.lock();
            if let Some(c) = &state.cached {
                if self.fresh(c, self.clock.now()) {
                    return Ok(c.token.clone());
                }
            }
            state
                .inflight
                .get_or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        let result = flight.get_or_init(|| self.fetch()).await.clone();
        let mut state = self.lock();
        if state
            .inflight
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, &flight))
        {
            state.inflight = None;
            if let Ok(c) = &result {
                state.cached = Some(c.clone());
            }
        }
        result.map(|c| c.token)
    }

    async fn fetch(&self) -> Result<Cached> {
        self.lock().fetches += 1;
        let fetched_at = self.clock.now();
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.clientid.as_str()),
        ];
        if let Some(s) = &self.secret {
            form.push(("client_secret", s.as_str()));
        }
        let mut req = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        if let Some(zid) = &self.zid {
            req = req.header("x-zid", zid);
        }
        let res = http::send(req, Side::TokenService, &self.url).await?;
        let status = res.status();
        let bytes = http::body(res, Side::TokenService, &self.url).await?;
        if !status.is_success() {
            return Err(Error::TokenService {
                status: status.as_u16(),
                message: http::error_message(status, &bytes),
            });
        }
        let value = http::json_of(Side::TokenService, &self.url, &bytes)?;
        let token = value["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Decode {
                side: Side::TokenService,
                url: http::shown(&self.url),
                reason: "no access_token in the answer".into(),
            })?;
        let expires_at = match expires_in(&value) {
            Some(secs) => fetched_at + Duration::from_secs(secs),
            None => match jwt_exp(token) {
                Some(exp) => UNIX_EPOCH + Duration::from_secs(exp),
                None => fetched_at + UNKNOWN_LIFETIME,
            },
        };
        Ok(Cached {
            token: AccessToken::new(token.to_owned()),
            fetched_at,
            expires_at,
        })
    }
}

/// `expires_in` as a number or a numeric string.
fn expires_in(value: &Value) -> Option<u64> {
    match &value["expires_in"] {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The `exp` claim of a JWT (not verified: it only schedules the renewal).
fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["exp"].as_u64()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn expiry_from_expires_in_or_jwt() {
        assert_eq!(expires_in(&json!({"expires_in": 3600})), Some(3600));
        assert_eq!(expires_in(&json!({"expires_in": "120"})), Some(120));
        assert_eq!(expires_in(&json!({})), None);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"exp":1700000000,"zid":"t"}"#);
        assert_eq!(jwt_exp(&format!("h.{payload}.s")), Some(1_700_000_000));
        assert_eq!(jwt_exp("opaque"), None);
    }

    #[test]
    fn renewal_margin_is_at_most_half_the_lifetime() {
        let key = ServiceKey::from_json(&json!({
            "clientid": "c", "clientsecret": "s", "url": "http://127.0.0.1:1", "uri": "http://127.0.0.1:1"
        }))
        .unwrap();
        let source =
            TokenSource::new(&key, &ClientOptions::default(), Arc::new(SystemClock), None).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cached = |lifetime: u64| Cached {
            token: AccessToken::new("t".into()),
            fetched_at: t0,
            expires_at: t0 + Duration::from_secs(lifetime),
        };
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        // One hour: renewed in the last 60 s.
        assert!(source.fresh(&cached(3600), at(3539)));
        assert!(!source.fresh(&cached(3600), at(3541)));
        assert!(!source.fresh(&cached(3600), at(4000)));
        // 30 s: renewed in the last 15 s, so it is still cached for a while.
        assert!(source.fresh(&cached(30), at(14)));
        assert!(!source.fresh(&cached(30), at(16)));
        // Already expired when fetched: never fresh.
        assert!(!source.fresh(&cached(0), t0));
    }

    #[test]
    fn keys_without_credentials_are_refused() {
        let no_secret = ServiceKey::from_json(&json!({
            "clientid": "c", "url": "http://h", "uri": "http://h"
        }))
        .unwrap();
        let e = TokenSource::new(
            &no_secret,
            &ClientOptions::default(),
            Arc::new(SystemClock),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        let bad_pem = ServiceKey::from_json(&json!({
            "clientid": "c", "url": "http://h", "uri": "http://h", "credential-type": "x509",
            "certificate": "not a certificate", "key": "not a key", "certurl": "https://h"
        }))
        .unwrap();
        let e = TokenSource::new(
            &bad_pem,
            &ClientOptions::default(),
            Arc::new(SystemClock),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("TLS client certificate"), "{e}");
        assert!(!e.to_string().contains("not a key"));
    }
}
