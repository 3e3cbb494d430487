//! The token service for Signpost's own credentials: RS256 JWTs in XSUAA's shape, signed with a
//! key pair kept encrypted in the store; verification of the bearer tokens that callers present.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::EncodePublicKey;
use rsa::traits::PublicKeyParts;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest as _;
use signpost_store::{BindingRecord, SigningKeyRecord, Store};
use subtle::ConstantTimeEq;

use crate::audit::Entry;
use crate::{now_secs, Error, Result, Signpost};

/// How old (in seconds) the signing keys in memory may get on a shared database before a token
/// request reads them again.
const KEY_RING_MAX_AGE_SECS: u64 = 60;

/// Bearer tokens with a `kid` this process does not know read the signing keys from the store
/// at most once per this long, whatever the number of such tokens (issue 11 §4): a key rotated
/// in by another process is found within it, and a flood of made-up `kid`s costs one read.
pub const UNKNOWN_KID_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The scope every service-key token carries (XSUAA's client-credentials default).
pub const SERVICE_SCOPE: &str = "uaa.resource";

/// The audit entry of a token request of a binding.
fn token_entry(client_id: &str, instance_id: &str) -> Entry {
    Entry::new(client_id, "issue", "token").instance(instance_id)
}

/// A token endpoint failure, in OAuth terms (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid_client")]
    InvalidClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(String),
    #[error("invalid_request")]
    InvalidRequest(String),
    /// The client certificate is the binding's but outside its validity period (the sentence
    /// says which way, for `error_description`).
    #[error("invalid_client")]
    CertificateNotValid(String),
    /// The jwt-bearer grant's assertion was refused (the sentence says why).
    #[error("invalid_grant")]
    InvalidGrant(String),
    /// The database is not available now (503, `temporarily_unavailable`).
    #[error("temporarily_unavailable")]
    Unavailable,
    #[error("server_error")]
    Server,
}

impl TokenError {
    /// The HTTP status the token endpoint answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            TokenError::InvalidClient | TokenError::CertificateNotValid(_) => 401,
            TokenError::UnsupportedGrantType(_)
            | TokenError::InvalidRequest(_)
            | TokenError::InvalidGrant(_) => 400,
            TokenError::Unavailable => 503,
            TokenError::Server => 500,
        }
    }

    /// A store failure: `Unavailable` when the database is down or busy, else `Server`.
    fn from_store(e: signpost_store::Error) -> Self {
        if e.outage().is_some() {
            crate::error::outage(&e);
            return TokenError::Unavailable;
        }
        tracing::error!(error = %e, "store failure in the token service");
        TokenError::Server
    }

    /// A core failure on the way to a token.
    fn from_core(e: Error) -> Self {
        match e {
            Error::Unavailable(_) | Error::InsufficientStorage(_) => TokenError::Unavailable,
            _ => TokenError::Server,
        }
    }
}

/// The token endpoint's answer.
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    pub jti: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("jti", &self.jti)
            .finish_non_exhaustive()
    }
}

/// An instance as the editor's platform sign-in lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformInstance {
    pub instance_id: String,
    pub subaccount_id: String,
    pub subdomain: Option<String>,
    pub bindings: usize,
}

/// Who is calling: established from a verified bearer token of a live binding. Only the token
/// verifier (`authenticate`) makes one: its fields are not public, so no other crate can name an
/// owner for a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's tenant (`zid`): the instance's own subaccount, or for a subscriber's token
    /// (a tenant token of one of the provider's bindings) the subscriber subaccount.
    pub(crate) subaccount_id: String,
    /// The tenant's subdomain (`ext_attr.zdn`).
    pub(crate) subdomain: String,
    pub(crate) instance_id: String,
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    /// For a subscriber's token: the provider's subaccount (the instance's); `None` for the
    /// provider's own token.
    pub(crate) provider_subaccount_id: Option<String>,
}

impl Principal {
    /// Roughly the bytes it holds: its strings and a fixed part.
    pub(crate) fn weight(&self) -> usize {
        self.subaccount_id.len()
            + self.subdomain.len()
            + self.instance_id.len()
            + self.client_id.len()
            + self.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
            + self.provider_subaccount_id.as_ref().map_or(0, String::len)
            + 192
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    jti: String,
    iss: String,
    sub: String,
    zid: String,
    cid: String,
    client_id: String,
    ext_attr: ExtAttr,
    scope: Vec<String>,
    #[serde(default)]
    authorities: Vec<String>,
    #[serde(default)]
    aud: Vec<String>,
    #[serde(default)]
    azp: String,
    #[serde(default)]
    grant_type: String,
    /// The user of a jwt-bearer token (XSUAA's `user_id`, `user_name`, `email`, `origin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    iat: u64,
    exp: u64,
}

/// The user a jwt-bearer token is issued for, from the verified assertion.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenUser {
    pub(crate) zid: String,
    pub(crate) user_id: String,
    pub(crate) user_name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) origin: Option<String>,
}

/// The jwt-bearer grant's `grant_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Debug, Serialize, Deserialize)]
struct ExtAttr {
    enhancer: String,
    subaccountid: String,
    zdn: String,
    serviceinstanceid: String,
}

struct LoadedKey {
    kid: String,
    created_at: i64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
    public_pem: String,
}

/// Where a signing key is in its life. The newest key is `active` and signs; a key with a
/// successor is `retired` at the successor's creation and still verifies (and is published in
/// the JWKS) for one token lifetime, because tokens it signed may live that long; after that it
/// is `expired`: neither published nor accepted, and deleted at the next rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Retired,
    Expired,
}

/// A signing key as the admin API lists it: public facts only, times in RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyInfo {
    pub kid: String,
    pub state: KeyState,
    /// Seconds since the epoch.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: i64,
    /// When its successor took over signing (retired and expired keys).
    #[serde(
        serialize_with = "rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub retired_at: Option<i64>,
    /// When the last token it can have signed expires: `retired_at` plus the token lifetime.
    #[serde(
        serialize_with = "rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<i64>,
}

/// The answer of a rotation: the new signing key and every key kept after pruning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    pub kid: String,
    pub keys: Vec<SigningKeyInfo>,
}

fn rfc3339<S: serde::Serializer>(secs: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    let t = time::OffsetDateTime::from_unix_timestamp(*secs).map_err(serde::ser::Error::custom)?;
    s.serialize_str(&crate::rfc3339(t))
}

fn rfc3339_opt<S: serde::Serializer>(
    secs: &Option<i64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match secs {
        Some(v) => rfc3339(v, s),
        None => s.serialize_none(),
    }
}

/// The life of each key of `keys` (`(kid, created_at)`, oldest first) at `now`.
fn lifecycle<'a>(
    keys: impl IntoIterator<Item = (&'a str, i64)>,
    lifetime: u64,
    now: u64,
) -> Vec<SigningKeyInfo> {
    let keys: Vec<(&str, i64)> = keys.into_iter().collect();
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let lifetime = i64::try_from(lifetime).unwrap_or(i64::MAX);
    keys.iter()
        .enumerate()
        .map(|(i, (kid, created_at))| {
            let retired_at = keys.get(i + 1).map(|(_, c)| *c);
            let expires_at = retired_at.map(|r| r.saturating_add(lifetime));
            let state = match expires_at {
                None => KeyState::Active,
                Some(e) if now < e => KeyState::Retired,
                Some(_) => KeyState::Expired,
            };
            SigningKeyInfo {
                kid: (*kid).to_owned(),
                state,
                created_at: *created_at,
                retired_at,
                expires_at,
            }
        })
        .collect()
}

/// Records in key order: by creation, then kid (as the store returns them; sorted again so that
/// nothing depends on it).
fn sorted(mut records: Vec<SigningKeyRecord>) -> Vec<SigningKeyRecord> {
    records.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    records
}

fn infos(records: &[SigningKeyRecord], lifetime: u64, now: u64) -> Vec<SigningKeyInfo> {
    lifecycle(
        records.iter().map(|r| (r.kid.as_str(), r.created_at)),
        lifetime,
        now,
    )
}

/// The signing keys known to this process, oldest first: the newest signs, retired ones verify
/// until their retention ends.
pub(crate) struct KeyRing {
    keys: RwLock<Vec<LoadedKey>>,
    /// Reloads run one at a time, so that a slow one cannot put back an older state after a
    /// later one; a caller whose request a reload already covered does not read again.
    reloading: tokio::sync::Mutex<()>,
    /// Reload requests made so far, and the highest one a finished reload has covered.
    requested: AtomicU64,
    covered: AtomicU64,
    /// When the keys were last read from the store (seconds since the epoch).
    loaded_at: AtomicU64,
    /// One rotation at a time in this process.
    rotating: tokio::sync::Mutex<()>,
    /// When a token with an unknown `kid` last made the keys be read, and how often that was.
    unknown_kid_at: std::sync::Mutex<Option<std::time::Instant>>,
    unknown_kid_reloads: AtomicU64,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing(<redacted>)")
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

fn load_key(rec: &SigningKeyRecord) -> Result<LoadedKey> {
    let encoding = EncodingKey::from_rsa_pem(rec.private_key_pem.expose_secret().as_bytes())
        .map_err(internal)?;
    let jwk: Value = serde_json::from_str(&rec.public_jwk).map_err(internal)?;
    let n = jwk["n"].as_str().unwrap_or_default();
    let e = jwk["e"].as_str().unwrap_or_default();
    let decoding = DecodingKey::from_rsa_components(n, e).map_err(internal)?;
    let public_pem = jwk["value"].as_str().unwrap_or_default().to_owned();
    Ok(LoadedKey {
        kid: rec.kid.clone(),
        created_at: rec.created_at,
        encoding,
        decoding,
        jwk,
        public_pem,
    })
}

/// Generates a fresh RSA-2048 signing key record, created at `created_at`.
fn generate_key(created_at: i64) -> Result<SigningKeyRecord> {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(internal)?;
    let pem = private.to_pkcs1_pem(LineEnding::LF).map_err(internal)?;
    let public = private.to_public_key();
    let public_pem = public.to_public_key_pem(LineEnding::LF).map_err(internal)?;
    let kid = format!(
        "signpost-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let jwk = json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        "value": public_pem,
    });
    Ok(SigningKeyRecord {
        kid,
        private_key_pem: SecretString::from(pem.to_string()),
        public_jwk: jwk.to_string(),
        created_at,
    })
}

async fn generate(created_at: i64) -> Result<SigningKeyRecord> {
    signpost_oauth::cpu::run(move || generate_key(created_at))
        .await
        .map_err(internal)?
}

impl KeyRing {
    pub(crate) async fn load_or_create(store: &dyn Store) -> Result<Self> {
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            store
                .insert_signing_key(generate(now_secs() as i64).await?)
                .await?;
            records = store.signing_keys().await?;
        }
        let keys = sorted(records)
            .iter()
            .map(load_key)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            keys: RwLock::new(keys),
            reloading: tokio::sync::Mutex::new(()),
            requested: AtomicU64::new(0),
            covered: AtomicU64::new(0),
            loaded_at: AtomicU64::new(now_secs()),
            rotating: tokio::sync::Mutex::new(()),
            unknown_kid_at: std::sync::Mutex::new(None),
            unknown_kid_reloads: AtomicU64::new(0),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<LoadedKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the keys from the store again. Safe to call concurrently: reloads are serialized,
    /// the ring only ever moves to a state read after the call began, and calls that arrive
    /// while a reload is waiting share the next one.
    pub(crate) async fn reload(&self, store: &dyn Store) -> Result<()> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _one = self.reloading.lock().await;
        if self.covered.load(Ordering::SeqCst) >= ticket {
            // A reload that began reading after this call was made has finished.
            return Ok(());
        }
        let covers = self.requested.load(Ordering::SeqCst);
        let records = sorted(store.signing_keys().await?);
        if records.is_empty() {
            // Never sign with nothing: keep what we have; the next reload reads again.
            tracing::warn!("the store holds no token signing key; keeping the keys in memory");
            return Ok(());
        }
        let keys = records.iter().map(load_key).collect::<Result<Vec<_>>>()?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        self.loaded_at.store(now_secs(), Ordering::SeqCst);
        self.covered.store(covers, Ordering::SeqCst);
        Ok(())
    }

    /// For a token whose `kid` is not in the ring: reads the keys again if no such read ran
    /// within [`UNKNOWN_KID_RELOAD_EVERY`]; otherwise only waits for a reload under way.
    async fn reload_for_unknown_kid(&self, store: &dyn Store) -> Result<()> {
        let due = {
            let mut at = self
                .unknown_kid_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match *at {
                Some(t) if t.elapsed() < UNKNOWN_KID_RELOAD_EVERY => false,
                _ => {
                    *at = Some(std::time::Instant::now());
                    true
                }
            }
        };
        if due {
            self.unknown_kid_reloads.fetch_add(1, Ordering::Relaxed);
            return self.reload(store).await;
        }
        drop(self.reloading.lock().await);
        Ok(())
    }

    /// The public JWKs of the keys that are active or retired at `now`, newest first (a client
    /// that takes the first key gets the one that signs).
    fn published(&self, lifetime: u64, now: u64) -> Vec<Value> {
        let keys = self.read();
        let life = lifecycle_of(&keys, lifetime, now);
        keys.iter()
            .zip(life)
            .rev()
            .filter(|(_, info)| info.state != KeyState::Expired)
            .map(|(k, _)| k.jwk.clone())
            .collect()
    }

    /// Whether `kid` is in the ring at all (expired or not).
    fn knows(&self, kid: &str) -> bool {
        self.read().iter().any(|k| k.kid == kid)
    }

    /// Runs `f` with the key `kid` if it may verify at `now` (active or retired).
    fn with_verifying_key<R>(
        &self,
        kid: &str,
        lifetime: u64,
        now: u64,
        f: impl FnOnce(&DecodingKey) -> R,
    ) -> Option<R> {
        let keys = self.read();
        let life = lifecycle_of(&keys, lifetime, now);
        keys.iter()
            .zip(life)
            .find(|(k, info)| k.kid == kid && info.state != KeyState::Expired)
            .map(|(k, _)| f(&k.decoding))
    }
}

fn lifecycle_of(keys: &[LoadedKey], lifetime: u64, now: u64) -> Vec<SigningKeyInfo> {
    lifecycle(
        keys.iter().map(|k| (k.kid.as_str(), k.created_at)),
        lifetime,
        now,
    )
}

/// Verified tokens (with their expiry), so that a busy client does not pay an RSA verification
/// per request. Cleared whenever a binding or instance goes away, so a revoked token is refused
/// at once.
pub(crate) type PrincipalCache = crate::epoch_map::EpochMap<(Principal, u64)>;

/// Bytes of verified tokens kept unless configured: 12 MiB, some 30,000 tokens.
pub const DEFAULT_PRINCIPAL_CACHE_BYTES: u64 = 12 * 1024 * 1024;

/// What the principal cache's bookkeeping costs an entry besides its strings (its node, the
/// key's allocation, the tuple).
const PRINCIPAL_ENTRY_OVERHEAD: usize = 160;

/// What a verified token weighs in the principal cache: its key ([`principal_key`]) and its
/// principal.
pub(crate) fn principal_size(key: &str, (p, _): &(Principal, u64)) -> usize {
    key.len() + p.weight() + PRINCIPAL_ENTRY_OVERHEAD
}

/// The principal cache's key of a bearer token: its SHA-256. Keyed by the whole token (about
/// 1 KB), 12 MiB held 60 % of 10,000 tenants' tokens and four finds in ten verified a signature
/// again (bench/tenants); by a digest an entry is a few hundred bytes.
fn principal_key(bearer: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(bearer.as_bytes()))
}

/// Longest a verification is kept (a token's own expiry still applies within it).
pub(crate) const PRINCIPAL_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

impl Signpost {
    /// The issuer written into tokens: the token endpoint URL.
    fn issuer(&self) -> String {
        format!("{}/oauth/token", self.inner.config.public_url)
    }

    fn token_lifetime(&self) -> u64 {
        self.inner.config.token_lifetime_secs
    }

    /// `GET /token_keys`: the active key and the retired keys whose tokens may still be alive.
    pub fn jwks(&self) -> Value {
        self.jwks_at(now_secs())
    }

    pub(crate) fn jwks_at(&self, now: u64) -> Value {
        json!({ "keys": self.inner.keys.published(self.token_lifetime(), now) })
    }

    /// The PEM public key of the current signing key (`verificationkey` of service keys).
    pub fn verification_key(&self) -> String {
        self.inner
            .keys
            .read()
            .last()
            .map(|k| k.public_pem.clone())
            .unwrap_or_default()
    }

    /// The stored signing keys and where each is in its life (public facts only), oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyInfo>> {
        self.signing_keys_at(now_secs()).await
    }

    pub(crate) async fn signing_keys_at(&self, now: u64) -> Result<Vec<SigningKeyInfo>> {
        let records = sorted(self.store().signing_keys().await?);
        Ok(infos(&records, self.token_lifetime(), now))
    }

    /// Makes a fresh signing key the active one: the previous one retires and stays published
    /// and accepted for one token lifetime; keys whose retention is over are deleted. Every
    /// process picks the new key up on [`Signpost::reload_signing_keys`] or when it first sees
    /// a token signed with it.
    pub async fn rotate_signing_key(&self) -> Result<Rotation> {
        let result = self.rotate_signing_key_at(now_secs()).await;
        let entry = Entry::broker("rotate", "signing-key");
        let entry = match &result {
            Ok(r) => entry.name(r.kid.as_str()),
            Err(_) => entry,
        };
        self.audited(entry, 201, result).await
    }

    pub(crate) async fn rotate_signing_key_at(&self, now: u64) -> Result<Rotation> {
        let _one = self.inner.keys.rotating.lock().await;
        let store = self.store();
        let lifetime = self.token_lifetime();
        // Strictly newer than every stored key, so that the new key sorts last and signs even
        // when rotations follow each other within one second.
        let newest = store
            .signing_keys()
            .await?
            .iter()
            .map(|k| k.created_at)
            .max();
        let created_at = newest.map_or(now as i64, |n| (now as i64).max(n.saturating_add(1)));
        let record = generate(created_at).await?;
        let kid = record.kid.clone();
        store.insert_signing_key(record).await?;

        let mut records = sorted(store.signing_keys().await?);
        let mut pruned = Vec::new();
        for info in infos(&records, lifetime, now) {
            if info.state != KeyState::Expired {
                continue;
            }
            match store.delete_signing_key(&info.kid).await {
                Ok(_) => pruned.push(info.kid),
                // The rotation itself succeeded; the key is pruned at the next one.
                Err(e) => {
                    tracing::warn!(kid = %info.kid, error = %e, "could not delete an expired signing key")
                }
            }
        }
        records.retain(|r| !pruned.contains(&r.kid));
        self.inner.keys.reload(store.as_ref()).await?;
        tracing::info!(kid = %kid, pruned = ?pruned, "token signing key rotated");
        Ok(Rotation {
            kid,
            keys: infos(&records, lifetime, now),
        })
    }

    /// How often a bearer token with an unknown `kid` made this process read the signing keys
    /// (`signpost_unknown_kid_reloads_total`).
    pub fn unknown_kid_reloads(&self) -> u64 {
        self.inner.keys.unknown_kid_reloads.load(Ordering::Relaxed)
    }

    /// Reads the signing keys from the store again, e.g. when another process rotated them.
    /// Safe to call concurrently and often: calls that overlap share one read, and the keys in
    /// memory never go back to an older state.
    pub async fn reload_signing_keys(&self) -> Result<()> {
        self.inner.keys.reload(self.store().as_ref()).await
    }

    /// A token for a client id and secret: `grant_type=client_credentials`, or with
    /// `assertion` (a user's JWT) the jwt-bearer grant.
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        client_secret: &str,
        zid: Option<&str>,
        assertion: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let store = self.store();
        let binding = store
            .get_binding_by_client(client_id)
            .await
            .map_err(TokenError::from_store)?
            .ok_or(TokenError::InvalidClient)?;
        // Only secret bindings authenticate with a secret (an X.509 binding's stored secret is
        // its private key).
        let expected = match (&binding.credential_type[..], binding.client_secret.as_ref()) {
            ("binding-secret", Some(s)) => s,
            _ => return Err(TokenError::InvalidClient),
        };
        let ok: bool = expected
            .expose_secret()
            .as_bytes()
            .ct_eq(client_secret.as_bytes())
            .into();
        if !ok {
            return self.refused(&binding).await;
        }
        self.token_for_binding(&binding, zid, assertion).await
    }

    /// A token request of an existing binding that failed to authenticate: an event of the
    /// audit log (requests naming no binding are not, so they cannot fill it).
    async fn refused(&self, binding: &BindingRecord) -> Result<TokenResponse, TokenError> {
        let mut entry = token_entry(&binding.client_id, &binding.instance_id);
        if let Ok(Some(i)) = self.store().get_instance(&binding.instance_id).await {
            entry = entry.subaccount(i.subaccount_id);
        }
        self.audit(vec![(entry, 401)]).await;
        Err(TokenError::InvalidClient)
    }

    /// `grant_type=client_credentials` with a client id and the client certificate presented on
    /// the HTTPS listener (X.509 bindings): the certificate must be the binding's.
    pub async fn certificate_token(
        &self,
        client_id: &str,
        presented_der: &[u8],
        zid: Option<&str>,
        assertion: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let binding = self
            .store()
            .get_binding_by_client(client_id)
            .await
            .map_err(TokenError::from_store)?
            .ok_or(TokenError::InvalidClient)?;
        let expected = binding
            .certificate_sha256
            .as_deref()
            .ok_or(TokenError::InvalidClient)?;
        let presented = signpost_certs::sha256_fingerprint(presented_der);
        let same: bool = expected.as_bytes().ct_eq(presented.as_bytes()).into();
        if !same {
            return self.refused(&binding).await;
        }
        // Every binding certificate, generated or brought by the client, must be valid now.
        let now = time::OffsetDateTime::now_utc();
        let cert = signpost_certs::parse::CertInfo::from_der(presented_der)
            .map_err(|_| TokenError::InvalidClient)?;
        if now < cert.not_before || now > cert.not_after {
            // Recorded as a refused token request, answered with the reason.
            let _ = self.refused(&binding).await;
        }
        if now < cert.not_before {
            return Err(TokenError::CertificateNotValid(format!(
                "The client certificate is not valid yet: it is valid from {}",
                crate::rfc3339(cert.not_before)
            )));
        }
        if now > cert.not_after {
            return Err(TokenError::CertificateNotValid(format!(
                "The client certificate expired at {}",
                crate::rfc3339(cert.not_after)
            )));
        }
        // A certificate Signpost made must also be signed by its CA.
        let generated = binding.client_secret.is_some();
        if generated && !self.inner.ca.verify_client_certificate(presented_der, now) {
            return self.refused(&binding).await;
        }
        self.token_for_binding(&binding, zid, assertion).await
    }

    /// The instances a platform operator can sign in to from the editor, with their subaccount
    /// and number of bindings (the caller holds the broker credentials; the API checks them).
    pub async fn platform_instances(&self) -> Result<Vec<PlatformInstance>> {
        let store = self.store();
        let subdomains: std::collections::BTreeMap<String, String> = store
            .list_subaccounts()
            .await?
            .into_iter()
            .map(|s| (s.id, s.subdomain))
            .collect();
        let mut out = Vec::new();
        for i in store.list_instances().await? {
            let bindings = store.list_bindings(&i.id).await?.len();
            out.push(PlatformInstance {
                subdomain: subdomains.get(&i.subaccount_id).cloned(),
                instance_id: i.id,
                subaccount_id: i.subaccount_id,
                bindings,
            });
        }
        out.sort_by(|a, b| {
            (&a.subaccount_id, &a.instance_id).cmp(&(&b.subaccount_id, &b.instance_id))
        });
        Ok(out)
    }

    /// A token of `instance_id` for a platform operator (the editor's sign-in with broker
    /// credentials): issued for the instance's oldest binding, so that it is revoked with it;
    /// an audit event with actor `broker`. 404 for an unknown instance, 409 without a binding.
    pub async fn platform_token(&self, instance_id: &str) -> Result<TokenResponse> {
        let store = self.store();
        let entry = Entry::broker("issue", "token").instance(instance_id);
        let Some(instance) = store.get_instance(instance_id).await? else {
            return Err(Error::NotFound(format!(
                "The service instance '{instance_id}' does not exist"
            )));
        };
        let entry = entry.subaccount(instance.subaccount_id.as_str());
        let binding = store
            .list_bindings(instance_id)
            .await?
            .into_iter()
            .min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let result = match binding {
            None => Err(Error::Conflict(format!(
                "The service instance '{instance_id}' has no service key; create one first (signpost key create)"
            ))),
            Some(b) => self
                .sign_for(&b, &instance, &instance.subaccount_id, None)
                .await
                .map_err(|_| Error::Internal("the token could not be signed".into())),
        };
        let entry = match &result {
            Ok(t) => entry.name(t.jti.as_str()),
            Err(_) => entry,
        };
        self.audited(entry, 200, result).await
    }

    /// A token for a binding. `zid` (the `x-zid` header SAP's clients send for tenant tokens,
    /// or the tenant of the token URL's subdomain) names the binding's own subaccount or a
    /// subaccount subscribed to its instance; any other tenant is refused like a wrong secret.
    async fn token_for_binding(
        &self,
        binding: &BindingRecord,
        zid: Option<&str>,
        assertion: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let entry = token_entry(&binding.client_id, &binding.instance_id);
        let (entry, result) = match assertion {
            None => self.token_for_instance(entry, binding, zid, None).await,
            Some(a) => match self.assertion_user(a, zid).await {
                Ok(user) => {
                    let zid = user.zid.clone();
                    self.token_for_instance(entry, binding, Some(&zid), Some(&user))
                        .await
                }
                Err(e) => (entry, Err(e)),
            },
        };
        let status = match &result {
            Ok(_) => 200,
            Err(e) => e.status(),
        };
        let entry = match &result {
            Ok(t) => entry.name(t.jti.as_str()),
            Err(_) => entry,
        };
        self.audit(vec![(entry, status)]).await;
        result
    }

    /// The user of a jwt-bearer grant: the assertion verified against the trusted issuers, its
    /// tenant (`zid`, IAS's `app_tid`, or the subaccount of `ext_attr.zdn`) the one `zid` (the
    /// token URL's) names, if any.
    async fn assertion_user(
        &self,
        assertion: &str,
        zid: Option<&str>,
    ) -> Result<TokenUser, TokenError> {
        let verified = self
            .flows()
            .verify_trusted_user_token(assertion)
            .await
            .map_err(|e| TokenError::InvalidGrant(format!("The assertion was refused: {e}")))?;
        let tenant = match verified.claim("zid").or_else(|| verified.claim("app_tid")) {
            Some(t) => Some(t.to_owned()),
            None => match verified
                .claims
                .get("ext_attr")
                .and_then(|e| e.get("zdn"))
                .and_then(Value::as_str)
            {
                Some(zdn) => self
                    .tenant_of_subdomain(zdn)
                    .await
                    .map_err(TokenError::from_core)?,
                None => None,
            },
        };
        let Some(tenant) = tenant else {
            return Err(TokenError::InvalidGrant(
                "The assertion names no tenant (zid, app_tid or ext_attr.zdn)".into(),
            ));
        };
        if zid.is_some_and(|z| z != tenant) {
            return Err(TokenError::InvalidGrant(
                "The assertion is of another tenant than the token URL's".into(),
            ));
        }
        let user_id = verified
            .claim("user_id")
            .or_else(|| verified.claim("sub"))
            .ok_or_else(|| TokenError::InvalidGrant("The assertion names no user (sub)".into()))?
            .to_owned();
        Ok(TokenUser {
            zid: tenant,
            user_name: verified
                .claim("user_name")
                .or_else(|| verified.claim("sub"))
                .map(str::to_owned),
            email: verified.claim("email").map(str::to_owned),
            origin: verified.claim("origin").map(str::to_owned),
            user_id,
        })
    }

    /// A token for a binding of `instance_id`; the audit entry with the subaccount when known.
    async fn token_for_instance(
        &self,
        entry: Entry,
        binding: &BindingRecord,
        zid: Option<&str>,
        user: Option<&TokenUser>,
    ) -> (Entry, Result<TokenResponse, TokenError>) {
        let instance_id = binding.instance_id.as_str();
        let store = self.store();
        let instance = match store.get_instance(instance_id).await {
            Ok(Some(i)) => i,
            Ok(None) => return (entry, Err(TokenError::InvalidClient)),
            Err(e) => return (entry, Err(TokenError::from_store(e))),
        };
        let entry = entry.subaccount(instance.subaccount_id.as_str());
        // A tenant token: the provider's own tenant, or a subscriber of the instance.
        let tenant = match zid {
            None => instance.subaccount_id.clone(),
            Some(z) if z == instance.subaccount_id => z.to_owned(),
            Some(z) => match store.get_subscription(instance_id, z).await {
                Ok(Some(_)) => z.to_owned(),
                Ok(None) => return (entry, Err(TokenError::InvalidClient)),
                Err(e) => return (entry, Err(TokenError::from_store(e))),
            },
        };
        // The event belongs to the tenant whose token it is.
        let entry = entry.subaccount(tenant.as_str());
        (
            entry,
            self.sign_for(binding, &instance, &tenant, user).await,
        )
    }

    /// Signs a token for a client of `instance` in the tenant `zid` (the instance's subaccount
    /// or a subscriber's).
    async fn sign_for(
        &self,
        binding: &BindingRecord,
        instance: &signpost_store::InstanceRecord,
        zid: &str,
        user: Option<&TokenUser>,
    ) -> Result<TokenResponse, TokenError> {
        let store = self.store();
        let subdomain = store
            .get_subaccount(zid)
            .await
            .map_err(TokenError::from_store)?
            .map(|s| s.subdomain)
            .unwrap_or_else(|| zid.to_owned());
        if !store.coherent() {
            self.refresh_stale_keys().await;
        }
        let scopes = std::iter::once(SERVICE_SCOPE.to_owned())
            .chain(binding.scopes.iter().cloned())
            .collect();
        self.sign(
            &binding.client_id,
            (zid, &subdomain),
            &instance.id,
            scopes,
            user,
        )
        .await
        .map_err(TokenError::from_core)
    }

    /// The subaccount whose subdomain is `subdomain` (tenant token URLs start with it); `None`
    /// when no subaccount or more than one has it.
    pub async fn tenant_of_subdomain(&self, subdomain: &str) -> Result<Option<String>> {
        let mut found = self.store().subaccounts_by_subdomain(subdomain).await?;
        Ok(match found.len() {
            1 => found.pop().map(|s| s.id),
            _ => None,
        })
    }

    /// While the change feed of a shared database is down, another process may have rotated the
    /// keys unseen: a ring read more than [`KEY_RING_MAX_AGE_SECS`] ago is read again before it
    /// signs, so that no process keeps signing with a retired key for long.
    async fn refresh_stale_keys(&self) {
        let loaded = self.inner.keys.loaded_at.load(Ordering::SeqCst);
        if now_secs().saturating_sub(loaded) < KEY_RING_MAX_AGE_SECS {
            return;
        }
        if let Err(e) = self.reload_signing_keys().await {
            tracing::warn!(error = %e, "could not reload the token signing keys; signing with the known ones");
        }
    }

    /// Signs a token for a binding; the RSA signature is made on the CPU pool.
    async fn sign(
        &self,
        client_id: &str,
        (zid, zdn): (&str, &str),
        instance_id: &str,
        scopes: Vec<String>,
        user: Option<&TokenUser>,
    ) -> Result<TokenResponse> {
        let now = now_secs();
        let lifetime = self.inner.config.token_lifetime_secs;
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            jti: jti.clone(),
            iss: self.issuer(),
            sub: user.map_or(client_id, |u| u.user_id.as_str()).into(),
            zid: zid.into(),
            cid: client_id.into(),
            client_id: client_id.into(),
            azp: client_id.into(),
            ext_attr: ExtAttr {
                enhancer: "XSUAA".into(),
                subaccountid: zid.into(),
                zdn: zdn.into(),
                serviceinstanceid: instance_id.into(),
            },
            scope: scopes.clone(),
            authorities: scopes.clone(),
            aud: vec!["uaa".into(), client_id.into()],
            grant_type: if user.is_some() {
                JWT_BEARER.into()
            } else {
                "client_credentials".into()
            },
            user_id: user.map(|u| u.user_id.clone()),
            user_name: user.and_then(|u| u.user_name.clone()),
            email: user.and_then(|u| u.email.clone()),
            origin: user.and_then(|u| u.origin.clone()),
            iat: now,
            exp: now + lifetime,
        };
        let (kid, encoding) = {
            let keys = self.inner.keys.read();
            let key = keys
                .last()
                .ok_or_else(|| Error::Internal("no signing key".into()))?;
            (key.kid.clone(), key.encoding.clone())
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid);
        header.jku = Some(format!("{}/token_keys", self.inner.config.public_url));
        let token =
            signpost_oauth::cpu::run(move || jsonwebtoken::encode(&header, &claims, &encoding))
                .await
                .map_err(internal)?
                .map_err(internal)?;
        Ok(TokenResponse {
            access_token: token,
            token_type: "bearer",
            expires_in: lifetime,
            scope: scopes.join(" "),
            jti,
        })
    }

    /// The principal's binding still exists, and a subscriber's tenant is still subscribed.
    async fn binding_is_live(&self, p: &Principal) -> Result<bool> {
        let store = self.store();
        let bound = store
            .get_binding_by_client(&p.client_id)
            .await?
            .is_some_and(|b| b.instance_id == p.instance_id);
        if !bound || !p.is_subscriber() {
            return Ok(bound);
        }
        Ok(store
            .get_subscription(&p.instance_id, &p.subaccount_id)
            .await?
            .is_some())
    }

    /// Verifies a bearer token (signature, expiry, issuer) and that its binding and instance
    /// still exist. Every failure is the same 401 so that nothing leaks about why.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        let now = now_secs();
        let epoch = self.store().epoch();
        self.inner.principals.sync_epoch(epoch);
        let cache_key = principal_key(bearer);
        let cached = self
            .inner
            .principals
            .get(&cache_key)
            .filter(|(_, exp)| *exp > now);
        if let Some((p, _)) = cached {
            // Another process may have deleted the binding: while the store's change feed is
            // down the cache saves the signature check only, and the binding is looked up.
            if self.store().coherent() || self.binding_is_live(&p).await? {
                return Ok(p);
            }
            return Err(Error::Unauthorized(
                "The bearer token is missing, invalid or expired".into(),
            ));
        }
        // Boxed: the verification's state would otherwise be part of every request's future.
        Box::pin(self.verify_bearer(bearer, now, epoch, &cache_key)).await
    }

    /// [`Self::authenticate`] for a token not in the cache: signature, expiry and issuer, the
    /// binding and instance; the principal is cached.
    async fn verify_bearer(
        &self,
        bearer: &str,
        now: u64,
        epoch: u64,
        cache_key: &str,
    ) -> Result<Principal> {
        let unauthorized =
            || Error::Unauthorized("The bearer token is missing, invalid or expired".into());
        let header = jsonwebtoken::decode_header(bearer).map_err(|_| unauthorized())?;
        let kid = header.kid.ok_or_else(unauthorized)?;
        if !self.inner.keys.knows(&kid) {
            // A key rotated in by another process: look once more in the store (throttled).
            self.inner
                .keys
                .reload_for_unknown_kid(self.store().as_ref())
                .await?;
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[self.issuer()]);
        validation.validate_aud = false;
        validation.leeway = 0;
        // Only the active key and retired keys within their retention verify.
        // The RSA verification of a token not seen before runs on the CPU pool.
        let key = self
            .inner
            .keys
            .with_verifying_key(&kid, self.token_lifetime(), now, DecodingKey::clone)
            .ok_or_else(unauthorized)?;
        let token = bearer.to_owned();
        let claims = signpost_oauth::cpu::run(move || {
            jsonwebtoken::decode::<Claims>(&token, &key, &validation)
        })
        .await
        .map_err(internal)?
        .map_err(|_| unauthorized())?
        .claims;
        let binding = self
            .store()
            .get_binding_by_client(&claims.client_id)
            .await?
            .ok_or_else(unauthorized)?;
        if binding.instance_id != claims.ext_attr.serviceinstanceid {
            return Err(unauthorized());
        }
        let instance = self
            .store()
            .get_instance(&binding.instance_id)
            .await?
            .ok_or_else(unauthorized)?;
        // The provider's own tenant, or one subscribed to the instance (until it unsubscribes).
        let provider_subaccount_id = if instance.subaccount_id == claims.zid {
            None
        } else if self
            .store()
            .get_subscription(&instance.id, &claims.zid)
            .await?
            .is_some()
        {
            Some(instance.subaccount_id)
        } else {
            return Err(unauthorized());
        };
        let principal = Principal {
            subdomain: claims.ext_attr.zdn,
            subaccount_id: claims.zid,
            instance_id: instance.id,
            client_id: claims.client_id,
            scopes: claims.scope,
            provider_subaccount_id,
        };
        self.inner
            .principals
            .put(cache_key, (principal.clone(), claims.exp), epoch);
        Ok(principal)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use signpost_store::{MasterKey, SqliteStore};

    use super::*;
    use crate::CoreConfig;

    const LIFETIME: u64 = 100;

    async fn open(path: &std::path::Path, master: &MasterKey) -> Signpost {
        let store = SqliteStore::open(&path.display().to_string(), master, 100)
            .await
            .unwrap();
        let config = CoreConfig {
            public_url: "http://127.0.0.1:1".into(),
            uaadomain: "127.0.0.1:1".into(),
            token_lifetime_secs: LIFETIME,
            oauth: signpost_oauth::OAuthConfig::default(),
            cert_url: None,
            principal_cache_bytes: DEFAULT_PRINCIPAL_CACHE_BYTES,
        };
        Signpost::new(Arc::new(store), config).await.unwrap()
    }

    fn published_kids(sp: &Signpost, now: u64) -> Vec<String> {
        sp.jwks_at(now)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn signed_kid(sp: &Signpost) -> String {
        let token = sp
            .sign(
                "client",
                ("zid", "zdn"),
                "instance",
                vec![SERVICE_SCOPE.into()],
                None,
            )
            .await
            .unwrap();
        jsonwebtoken::decode_header(&token.access_token)
            .unwrap()
            .kid
            .unwrap()
    }

    #[test]
    fn a_key_retires_at_its_successor_and_expires_a_lifetime_later() {
        let keys = [("a", 10), ("b", 20), ("c", 30)];
        let life = lifecycle(keys, 15, 35);
        let states: Vec<_> = life.iter().map(|k| (k.kid.as_str(), k.state)).collect();
        assert_eq!(
            states,
            [
                ("a", KeyState::Expired),
                ("b", KeyState::Retired),
                ("c", KeyState::Active)
            ]
        );
        assert_eq!(
            (life[0].retired_at, life[0].expires_at),
            (Some(20), Some(35))
        );
        assert_eq!(lifecycle(keys, 15, 34)[0].state, KeyState::Retired);
        assert_eq!(
            serde_json::to_value(&life[1]).unwrap(),
            json!({"kid": "b", "state": "retired", "createdAt": "1970-01-01T00:00:20Z",
                   "retiredAt": "1970-01-01T00:00:30Z", "expiresAt": "1970-01-01T00:00:45Z"})
        );
        assert_eq!(
            serde_json::to_value(&life[2]).unwrap(),
            json!({"kid": "c", "state": "active", "createdAt": "1970-01-01T00:00:30Z"})
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_old_key_verifies_until_its_retention_ends_and_is_pruned_after() {
        let dir = tempfile::tempdir().unwrap();
        let sp = open(&dir.path().join("s.db"), &MasterKey::generate()).await;
        let first = sp.signing_keys().await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].state, KeyState::Active);
        let old = first[0].kid.clone();
        assert_eq!(signed_kid(&sp).await, old);

        let t = u64::try_from(first[0].created_at).unwrap() + 10;
        let rotation = sp.rotate_signing_key_at(t).await.unwrap();
        let new = rotation.kid.clone();
        assert_ne!(new, old);
        let t = t as i64;
        assert_eq!(rotation.keys.len(), 2);
        assert_eq!(rotation.keys[0].kid, old);
        assert_eq!(rotation.keys[0].state, KeyState::Retired);
        assert_eq!(rotation.keys[0].retired_at, Some(t));
        assert_eq!(rotation.keys[0].expires_at, Some(t + LIFETIME as i64));
        assert_eq!(rotation.keys[1].kid, new);
        assert_eq!(rotation.keys[1].state, KeyState::Active);
        assert_eq!(signed_kid(&sp).await, new, "the new key signs at once");

        // Both are published and verify while the old key's tokens may live ...
        let t = t as u64;
        assert_eq!(
            published_kids(&sp, t + LIFETIME - 1),
            [new.clone(), old.clone()]
        );
        let ring = &sp.inner.keys;
        assert!(ring
            .with_verifying_key(&old, LIFETIME, t + LIFETIME - 1, |_| ())
            .is_some());
        // ... and the old one is neither published nor accepted after.
        assert_eq!(published_kids(&sp, t + LIFETIME), [new.as_str()]);
        assert!(ring
            .with_verifying_key(&old, LIFETIME, t + LIFETIME, |_| ())
            .is_none());
        assert!(ring
            .with_verifying_key(&new, LIFETIME, t + LIFETIME, |_| ())
            .is_some());
        let listed = sp.signing_keys_at(t + LIFETIME).await.unwrap();
        assert_eq!(
            listed[0].state,
            KeyState::Expired,
            "kept until the next rotation"
        );

        // The next rotation prunes it.
        let next = sp.rotate_signing_key_at(t + LIFETIME).await.unwrap();
        let kids: Vec<_> = next.keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, [new.clone(), next.kid.clone()]);
        let stored: Vec<_> = sp
            .store()
            .signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(stored, kids);
        assert!(!ring.knows(&old));
        assert!(!format!("{sp:?}").contains("PRIVATE KEY"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotations_within_one_second_still_make_the_new_key_active() {
        let dir = tempfile::tempdir().unwrap();
        let sp = open(&dir.path().join("s.db"), &MasterKey::generate()).await;
        let now = now_secs();
        let a = sp.rotate_signing_key_at(now).await.unwrap();
        let b = sp.rotate_signing_key_at(now).await.unwrap();
        let created: Vec<_> = b.keys.iter().map(|k| k.created_at).collect();
        assert!(created.windows(2).all(|w| w[0] < w[1]), "{created:?}");
        assert_eq!(b.keys.last().unwrap().kid, b.kid);
        assert_eq!(b.keys.last().unwrap().state, KeyState::Active);
        assert_eq!(b.keys[b.keys.len() - 2].kid, a.kid);
        assert_eq!(signed_kid(&sp).await, b.kid);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_process_sees_a_rotation_after_reload_even_when_reloads_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let master = MasterKey::generate();
        let one = open(&path, &master).await;
        let two = open(&path, &master).await;
        let before = signed_kid(&two).await;

        let rotation = one.rotate_signing_key().await.unwrap();
        assert_eq!(signed_kid(&two).await, before, "no reload yet");
        assert!(!published_kids(&two, now_secs()).contains(&rotation.kid));

        // Many overlapping reloads (as notifications may arrive) while `one` rotates again.
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let two = two.clone();
            tasks.push(tokio::spawn(async move { two.reload_signing_keys().await }));
        }
        let again = one.rotate_signing_key().await.unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        two.reload_signing_keys().await.unwrap();
        assert_eq!(signed_kid(&two).await, again.kid);
        assert_eq!(
            published_kids(&two, now_secs()),
            [again.kid.clone(), rotation.kid.clone(), before.clone()]
        );
        assert_eq!(two.verification_key(), one.verification_key());
    }
}
