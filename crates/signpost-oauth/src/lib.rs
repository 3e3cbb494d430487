//! The outbound side of Signpost: every authentication type's token flow against a destination's
//! token service, the single-flight token cache, verification of user tokens, and the SAML 2.0
//! assertions that SAML flows need. No HTTP-server code; must not depend on the store or the API.

mod cache;
pub mod cpu;
mod error;
mod flows;
mod net;
pub mod probe;
pub mod saml;
mod saml_params;
mod user_token;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use signpost_wire::AuthToken;

pub use cache::CacheKey;
pub use error::FlowError;
pub use flows::{FlowHeaders, Grant, TokenReply};
pub use net::is_private;
pub use user_token::{parse_trusted_issuers, TrustedIssuer, UserTokenError, VerifiedUser};

/// The token cache's budget unless configured: 12 MiB (about 8,000 tokens of 1 KB).
pub const DEFAULT_TOKEN_CACHE_BYTES: u64 = 12 * 1024 * 1024;

/// Server-wide settings of the token flows.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Let token requests reach loopback, link-local and private addresses.
    pub allow_private_networks: bool,
    /// Identity providers whose user tokens are trusted for every destination.
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Bytes of tokens kept in the cache, as its weigher counts them (`SIGNPOST_CACHE_MB`).
    pub cache_bytes: u64,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            trusted_issuers: Vec::new(),
            cache_bytes: DEFAULT_TOKEN_CACHE_BYTES,
        }
    }
}

/// Everything a flow needs about one find request. `Debug` redacts the destination's secrets
/// and the client assertion.
pub struct FlowContext<'a> {
    /// The destination's properties after fragments were merged.
    pub destination: &'a Map<String, Value>,
    pub headers: &'a FlowHeaders,
    /// The caller's tenant subdomain (`tokenServiceURLType=Common` without `X-tenant`).
    pub subdomain: &'a str,
    /// Where the destination lives and which version it is: the cache scope.
    pub level: &'static str,
    pub owner: &'a str,
    pub name: &'a str,
    pub etag: &'a str,
    /// The subaccount's SAML signing key, for SAML flows.
    pub saml: Option<&'a SamlSigner>,
    /// A client assertion resolved from `clientAssertion.destinationName`.
    pub client_assertion: Option<(String, String)>,
    /// mTLS to the token service and its trust anchors.
    pub tls: TlsSettings,
}

impl std::fmt::Debug for FlowContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowContext")
            .field(
                "destination",
                &signpost_model::RedactedObject(self.destination),
            )
            .field("headers", self.headers)
            .field("subdomain", &self.subdomain)
            .field("level", &self.level)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("etag", &self.etag)
            .field("saml", &self.saml)
            .field(
                "client_assertion",
                &self
                    .client_assertion
                    .as_ref()
                    .map(|(_, ty)| (signpost_model::REDACTED, ty)),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

/// How a flow's HTTP client talks TLS to the token service: a client certificate
/// (`tokenService.KeyStoreLocation`) and extra trust anchors (`TrustStoreLocation`), both PEM.
#[derive(Clone, Default)]
pub struct TlsSettings {
    pub identity_pem: Option<secrecy::SecretString>,
    pub trust_pem: Option<String>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field(
                "identity",
                &self.identity_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("trust_pem", &self.trust_pem.as_ref().map(|p| p.len()))
            .finish()
    }
}

impl TlsSettings {
    fn digest(&self) -> String {
        use secrecy::ExposeSecret;
        let mut h = Sha256::new();
        h.update(
            self.identity_pem
                .as_ref()
                .map(|p| p.expose_secret().as_bytes())
                .unwrap_or_default(),
        );
        h.update([0]);
        h.update(self.trust_pem.as_deref().unwrap_or_default().as_bytes());
        hex::encode(h.finalize())
    }
}

/// The subaccount's SAML trust key pair and the defaults of its assertions.
#[derive(Debug, Clone)]
pub struct SamlSigner {
    pub keys: Arc<saml::TrustKeyPair>,
    /// Default `assertionIssuer`: the subaccount's entity id.
    pub issuer: String,
}

/// Which HTTP client: connect and read timeouts (seconds), guarded, TLS settings digest.
type ClientKey = (u64, u64, bool, String);

/// Most HTTP clients kept (one per pair of timeouts and TLS identity).
pub const CLIENT_CACHE_MAX: u64 = 256;

/// How long an unused HTTP client is kept.
const CLIENT_IDLE: Duration = Duration::from_secs(600);

/// The outbound token flows of destinations (what find destination runs for `authTokens`), with
/// their caches and HTTP clients. Not the inbound token service of `/oauth/token` (core's `tokens`).
/// Cheap to share behind an `Arc`.
pub struct FlowRunner {
    config: OAuthConfig,
    clients: moka::sync::Cache<ClientKey, net::GuardedClient>,
    cache: moka::future::Cache<CacheKey, Arc<cache::Cached>>,
    jwks: user_token::JwksCache,
    token_requests: AtomicU64,
    /// Lookups of the token cache (hits are these less `token_requests`).
    token_lookups: AtomicU64,
}

/// The token cache's figures (`FlowRunner::token_cache_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
    pub capacity_bytes: u64,
}

impl std::fmt::Debug for FlowRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRunner")
            .field("config", &self.config)
            .field("cached_tokens", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// The flow an authentication type runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OAuthFlow {
    ClientCredentials,
    Password,
    UserTokenExchange,
    JwtBearer,
    RefreshToken,
    AuthorizationCode,
    TokenExchange,
    TechnicalUserPropagation,
    SamlBearer,
}

impl OAuthFlow {
    fn parse(auth: &str) -> Option<Self> {
        Some(match auth {
            "OAuth2ClientCredentials" => Self::ClientCredentials,
            "OAuth2Password" => Self::Password,
            "OAuth2UserTokenExchange" => Self::UserTokenExchange,
            "OAuth2JWTBearer" => Self::JwtBearer,
            "OAuth2RefreshToken" => Self::RefreshToken,
            "OAuth2AuthorizationCode" => Self::AuthorizationCode,
            "OAuth2TokenExchange" => Self::TokenExchange,
            "OAuth2TechnicalUserPropagation" => Self::TechnicalUserPropagation,
            "OAuth2SAMLBearerAssertion" => Self::SamlBearer,
            _ => return None,
        })
    }

    fn needs_user(self) -> bool {
        matches!(
            self,
            Self::UserTokenExchange | Self::JwtBearer | Self::SamlBearer
        )
    }
}

fn proxy_type(d: &Map<String, Value>) -> &str {
    flows::prop(d, "ProxyType").unwrap_or("Internet")
}

impl FlowRunner {
    pub fn new(config: OAuthConfig) -> Self {
        let cache = cache::new_cache(config.cache_bytes);
        Self {
            config,
            clients: moka::sync::Cache::builder()
                .max_capacity(CLIENT_CACHE_MAX)
                .time_to_idle(CLIENT_IDLE)
                .build(),
            cache,
            jwks: user_token::JwksCache::default(),
            token_requests: AtomicU64::new(0),
            token_lookups: AtomicU64::new(0),
        }
    }

    /// The token cache's figures: lookups, those that reached a token service (misses), the
    /// bytes held and the budget.
    pub fn token_cache_stats(&self) -> TokenCacheStats {
        let misses = self.token_requests();
        TokenCacheStats {
            hits: self
                .token_lookups
                .load(Ordering::Relaxed)
                .saturating_sub(misses),
            misses,
            bytes: self.cache.weighted_size(),
            capacity_bytes: self.config.cache_bytes,
        }
    }

    /// Token requests sent so far (every cache miss that reached a token service).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// The HTTP client for one pair of timeouts and one TLS setting (reqwest sets them per
    /// client). A bad identity or trust store is an error for `authTokens`.
    fn client(
        &self,
        connect_timeout: Duration,
        read_timeout: Duration,
        tls: &TlsSettings,
    ) -> Result<net::GuardedClient, FlowError> {
        let guarded = !self.config.allow_private_networks;
        let key = (
            connect_timeout.as_secs(),
            read_timeout.as_secs(),
            guarded,
            tls.digest(),
        );
        self.clients
            .try_get_with(key, || {
                net::client(connect_timeout, read_timeout, guarded, tls)
            })
            .map_err(|e: Arc<FlowError>| (*e).clone())
    }

    /// How many HTTP clients are kept (after pending evictions ran).
    pub fn client_count(&self) -> u64 {
        self.clients.run_pending_tasks();
        self.clients.entry_count()
    }

    /// Drops the cached tokens of a destination (`name`) or of every destination of an owner.
    /// Drops every cached token (another process may have changed any destination).
    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }

    /// Drops the cached tokens of an owner's destinations named in `names`, or of all of them
    /// (`None`). The cache's key holds the destination's version, so a changed destination
    /// misses anyway: this only frees the memory early, and costs nothing while the cache is
    /// empty (bulk writes). It walks the cache once instead of registering a predicate, which
    /// the cache would keep until its next maintenance: a million writes in a row left a
    /// million of them behind (hundreds of MB).
    pub async fn forget(
        &self,
        level: &'static str,
        owner: &str,
        names: Option<&std::collections::HashSet<String>>,
    ) {
        if self.cache.entry_count() == 0 {
            return;
        }
        let doomed: Vec<Arc<CacheKey>> = self
            .cache
            .iter()
            .filter(|(k, _)| {
                k.level == level && k.owner == owner && names.is_none_or(|n| n.contains(&k.name))
            })
            .map(|(k, _)| k)
            .collect();
        for k in doomed {
            self.cache.invalidate(&*k).await;
        }
    }

    /// The `authTokens` of a destination, or `None` for types that produce no token.
    pub async fn auth_tokens(&self, ctx: &FlowContext<'_>) -> Option<Vec<AuthToken>> {
        let d = ctx.destination;
        let auth = flows::prop(d, "Authentication").unwrap_or("NoAuthentication");
        let token = match auth {
            "NoAuthentication" | "ClientCertificateAuthentication" => return None,
            "PrincipalPropagation" => {
                if proxy_type(d) == "OnPremise" {
                    return None;
                }
                AuthToken::failed("PrincipalPropagation needs ProxyType OnPremise")
            }
            "BasicAuthentication" => basic(d),
            "SAMLAssertion" => match self.saml_assertion(ctx).await {
                Ok(t) => t,
                Err(e) => AuthToken::failed(e.to_string()),
            },
            other => match OAuthFlow::parse(other) {
                Some(flow) => match self.oauth(ctx, flow).await {
                    Ok(t) => t,
                    Err(e) => AuthToken::failed(e.to_string()),
                },
                None => AuthToken::failed(format!("Unknown authentication type '{other}'")),
            },
        };
        Some(vec![token])
    }

    /// Verifies a user token presented to Signpost's own token service (the jwt-bearer grant):
    /// its issuer must be one of the trusted issuers, its signature and expiry valid.
    pub async fn verify_trusted_user_token(
        &self,
        token: &str,
    ) -> Result<VerifiedUser, UserTokenError> {
        let client = self
            .client(
                Duration::from_secs(10),
                Duration::from_secs(10),
                &TlsSettings::default(),
            )
            .map_err(|e| UserTokenError::Refused(e.to_string()))?;
        user_token::verify(
            token,
            &Map::new(),
            &self.config.trusted_issuers,
            &self.jwks,
            &client,
        )
        .await
    }

    async fn verified_user(
        &self,
        ctx: &FlowContext<'_>,
    ) -> Result<(String, VerifiedUser), FlowError> {
        let token = flows::user_token(ctx.headers)?;
        let client = self.client(
            Duration::from_secs(10),
            Duration::from_secs(10),
            &TlsSettings::default(),
        )?;
        let user = user_token::verify(
            token,
            ctx.destination,
            &self.config.trusted_issuers,
            &self.jwks,
            &client,
        )
        .await
        .map_err(FlowError::UserToken)?;
        Ok((token.to_owned(), user))
    }

    async fn oauth(&self, ctx: &FlowContext<'_>, flow: OAuthFlow) -> Result<AuthToken, FlowError> {
        let d = ctx.destination;
        let h = ctx.headers;
        let client_provided = flows::prop(d, "SAMLAssertionProvider") == Some("ClientProvided");
        let user = if flow.needs_user() && !(flow == OAuthFlow::SamlBearer && client_provided) {
            Some(self.verified_user(ctx).await?)
        } else {
            None
        };
        let required = |v: &Option<String>, name: &str| -> Result<String, FlowError> {
            v.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
                FlowError::Request(format!(
                    "The header {name} is required for this authentication type"
                ))
            })
        };
        let property = |name: &str| {
            flows::prop(d, name)
                .ok_or_else(|| FlowError::Destination(format!("the property {name} is required")))
        };
        let mut params: Vec<(String, String)> = Vec::new();
        let (grant, tenant_aware, header_key) = match flow {
            OAuthFlow::ClientCredentials => (Grant::ClientCredentials, true, "Authorization"),
            OAuthFlow::TechnicalUserPropagation => {
                if proxy_type(d) != "OnPremise" {
                    return Err(FlowError::Destination(
                        "OAuth2TechnicalUserPropagation needs ProxyType OnPremise".into(),
                    ));
                }
                (
                    Grant::ClientCredentials,
                    true,
                    "SAP-Connectivity-Technical-Authentication",
                )
            }
            OAuthFlow::Password => {
                let user = property("User")?;
                let password = property("Password")?;
                params.push(("username".into(), user.into()));
                params.push(("password".into(), password.into()));
                (Grant::Password, true, "Authorization")
            }
            OAuthFlow::UserTokenExchange | OAuthFlow::JwtBearer => {
                let (token, _) = user
                    .as_ref()
                    .ok_or_else(|| FlowError::Request("no user".into()))?;
                params.push(("assertion".into(), token.clone()));
                (Grant::JwtBearer, true, "Authorization")
            }
            OAuthFlow::RefreshToken => {
                params.push((
                    "refresh_token".into(),
                    required(&h.refresh_token, "X-refresh-token")?,
                ));
                (Grant::RefreshToken, true, "Authorization")
            }
            OAuthFlow::AuthorizationCode => {
                params.push(("code".into(), required(&h.code, "X-code")?));
                if let Some(r) = h.redirect_uri.clone().filter(|s| !s.is_empty()) {
                    params.push(("redirect_uri".into(), r));
                }
                if let Some(v) = h.code_verifier.clone().filter(|s| !s.is_empty()) {
                    params.push(("code_verifier".into(), v));
                }
                (Grant::AuthorizationCode, true, "Authorization")
            }
            OAuthFlow::TokenExchange => {
                params.push((
                    "subject_token".into(),
                    required(&h.subject_token, "X-subject-token")?,
                ));
                params.push((
                    "subject_token_type".into(),
                    required(&h.subject_token_type, "X-subject-token-type")?,
                ));
                if let Some(a) = h.actor_token.clone().filter(|s| !s.is_empty()) {
                    params.push(("actor_token".into(), a));
                    params.push((
                        "actor_token_type".into(),
                        required(&h.actor_token_type, "X-actor-token-type")?,
                    ));
                }
                (Grant::TokenExchange, false, "Authorization")
            }
            OAuthFlow::SamlBearer => {
                let assertion = self
                    .saml_bearer_assertion(ctx, user.as_ref().map(|(_, u)| u))
                    .await?;
                params.push(("assertion".into(), assertion));
                (Grant::Saml2Bearer, true, "Authorization")
            }
        };
        let req = flows::build(
            d,
            h,
            ctx.subdomain,
            grant,
            params,
            tenant_aware,
            ctx.client_assertion.clone(),
        )?;
        let key = CacheKey {
            level: ctx.level,
            owner: ctx.owner.to_owned(),
            name: ctx.name.to_owned(),
            rest: request_digest(ctx.etag, header_key, &req, &ctx.tls),
        };
        self.token_lookups.fetch_add(1, Ordering::Relaxed);
        let cached = self
            .cache
            .try_get_with(key, async {
                // On a miss only: a cached token was checked and fetched with these already.
                if !self.config.allow_private_networks {
                    net::check_public(&req.url).await?;
                }
                let client = self.client(req.connect_timeout, req.read_timeout, &ctx.tls)?;
                self.token_requests.fetch_add(1, Ordering::Relaxed);
                let reply = flows::send(&client, &req, d).await?;
                Ok::<_, FlowError>(Arc::new(cache::Cached {
                    reply,
                    fetched: Instant::now(),
                }))
            })
            .await
            .map_err(|e: Arc<FlowError>| (*e).clone())?;
        let reply = &cached.reply;
        let mut token =
            AuthToken::with_header(&reply.token_type, reply.access_token.clone(), header_key);
        token.expires_in = cached.remaining().map(|s| s.to_string());
        token.scope = reply.scope.clone();
        token.refresh_token = reply.refresh_token.clone();
        token.issued_token_type = reply.issued_token_type.clone();
        Ok(token)
    }

    /// The assertion of `OAuth2SAMLBearerAssertion`: the caller's (`ClientProvided`) or one
    /// Signpost builds for the verified user.
    async fn saml_bearer_assertion(
        &self,
        ctx: &FlowContext<'_>,
        user: Option<&VerifiedUser>,
    ) -> Result<String, FlowError> {
        let d = ctx.destination;
        if flows::prop(d, "SAMLAssertionProvider") == Some("ClientProvided") {
            return ctx
                .headers
                .saml_assertion
                .clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| FlowError::Request("SAMLAssertionProvider is ClientProvided but the X-samlAssertion header is missing".into()));
        }
        let user = user.ok_or_else(|| FlowError::Request("no verified user".into()))?;
        let xml = self.build_assertion(ctx, user, true).await?;
        let url_safe = flows::prop(d, "samlAssertionEncoding") != Some("base64");
        Ok(saml::encode(&xml, url_safe))
    }

    /// `SAMLAssertion`: the signed assertion itself, as a `SAML2.0` token.
    async fn saml_assertion(&self, ctx: &FlowContext<'_>) -> Result<AuthToken, FlowError> {
        let (_, user) = self.verified_user(ctx).await?;
        let xml = self.build_assertion(ctx, &user, false).await?;
        let url_safe = flows::prop(ctx.destination, "samlAssertionEncoding") == Some("base64url");
        let value = saml::encode(&xml, url_safe);
        Ok(AuthToken::with_header("SAML2.0", value, "Authorization"))
    }

    /// Builds and signs an assertion on the CPU pool (an RSA signature per assertion).
    async fn build_assertion(
        &self,
        ctx: &FlowContext<'_>,
        user: &VerifiedUser,
        bearer: bool,
    ) -> Result<String, FlowError> {
        let signer = ctx
            .saml
            .ok_or_else(|| FlowError::Saml("the subaccount has no SAML signing key; create one with POST /destination-configuration/v1/saml2Metadata/certificate".into()))?
            .clone();
        let (destination, user) = (ctx.destination.clone(), user.clone());
        cpu::run(move || saml_params::assertion(&destination, &user, &signer, bearer))
            .await
            .map_err(|e| FlowError::Saml(e.to_string()))?
    }
}

fn basic(d: &Map<String, Value>) -> AuthToken {
    match (
        flows::prop(d, "User"),
        d.get("Password").and_then(Value::as_str),
    ) {
        (Some(user), Some(password)) => {
            let value =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            AuthToken::with_header("Basic", value, "Authorization")
        }
        _ => AuthToken::failed("BasicAuthentication needs the properties User and Password"),
    }
}

/// Digest of everything in a token request that changes the token, plus the destination version
/// and the header the token is delivered in.
fn request_digest(
    etag: &str,
    header_key: &str,
    req: &flows::TokenRequest,
    tls: &TlsSettings,
) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    put(etag);
    put(header_key);
    put(req.url.as_str());
    for (k, v) in req.form.iter().chain(req.headers.iter()) {
        put(k);
        put(v);
    }
    if let Some((u, p)) = &req.basic {
        put(u);
        put(p);
    }
    put(&tls.digest());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_cache_stays_at_its_capacity() {
        let flows = FlowRunner::new(OAuthConfig::default());
        let tls = TlsSettings::default();
        for connect in 1..=40 {
            for read in 1..=75 {
                flows
                    .client(
                        Duration::from_secs(connect),
                        Duration::from_secs(read),
                        &tls,
                    )
                    .unwrap();
            }
        }
        let kept = flows.client_count();
        assert!(
            kept <= CLIENT_CACHE_MAX,
            "{kept} clients kept for 3000 keys"
        );
        assert!(kept > 0);
    }
}
