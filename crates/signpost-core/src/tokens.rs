//! The token service for Signpost's own credentials: RS256 JWTs in XSUAA's shape, signed with a
//! key pair kept encrypted in the store; verification of the bearer tokens that callers present.

use std::collections::HashMap;
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
use signpost_store::{SigningKeyRecord, Store};
use subtle::ConstantTimeEq;

use crate::{now_secs, Error, Result, Signpost};

/// The scope every service-key token carries (XSUAA's client-credentials default).
pub const SERVICE_SCOPE: &str = "uaa.resource";

/// A token endpoint failure, in OAuth terms (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid_client")]
    InvalidClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(String),
    #[error("invalid_request")]
    InvalidRequest(String),
    #[error("server_error")]
    Server,
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

/// Who is calling: established from a verified bearer token of a live binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subaccount_id: String,
    /// The subaccount's subdomain (`ext_attr.zdn`).
    pub subdomain: String,
    pub instance_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
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
    iat: u64,
    exp: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ExtAttr {
    enhancer: String,
    subaccountid: String,
    zdn: String,
    serviceinstanceid: String,
}

struct LoadedKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
    public_pem: String,
}

/// The signing keys known to this process; the newest signs, all verify.
pub(crate) struct KeyRing {
    keys: RwLock<Vec<LoadedKey>>,
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
        encoding,
        decoding,
        jwk,
        public_pem,
    })
}

/// Generates a fresh RSA-2048 signing key record.
pub(crate) fn generate_key() -> Result<SigningKeyRecord> {
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
        created_at: now_secs() as i64,
    })
}

impl KeyRing {
    pub(crate) async fn load_or_create(store: &dyn Store) -> Result<Self> {
        let mut records = store.signing_keys().await?;
        if records.is_empty() {
            let rec = tokio::task::spawn_blocking(generate_key)
                .await
                .map_err(internal)??;
            store.insert_signing_key(rec).await?;
            records = store.signing_keys().await?;
        }
        let keys = records.iter().map(load_key).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            keys: RwLock::new(keys),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<LoadedKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn reload(&self, store: &dyn Store) -> Result<()> {
        let records = store.signing_keys().await?;
        let keys = records.iter().map(load_key).collect::<Result<Vec<_>>>()?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(())
    }
}

/// Verified tokens, so that a busy client does not pay an RSA verification per request. Cleared
/// whenever a binding or instance goes away, so a revoked token is refused at once.
#[derive(Debug, Default)]
pub(crate) struct PrincipalCache {
    map: RwLock<HashMap<String, (Principal, u64)>>,
}

const PRINCIPAL_CACHE_MAX: usize = 10_000;

impl PrincipalCache {
    fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(token)
            .filter(|(_, exp)| *exp > now)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, token: &str, principal: Principal, exp: u64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRINCIPAL_CACHE_MAX {
            map.clear();
        }
        map.insert(token.to_owned(), (principal, exp));
    }

    pub(crate) fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Signpost {
    /// The issuer written into tokens: the token endpoint URL.
    fn issuer(&self) -> String {
        format!("{}/oauth/token", self.inner.config.public_url)
    }

    /// `GET /token_keys`.
    pub fn jwks(&self) -> Value {
        let keys = self.inner.keys.read();
        json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
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

    /// `grant_type=client_credentials` with a client id and secret.
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        client_secret: &str,
        zid: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let store = self.store();
        let binding = store
            .get_binding_by_client(client_id)
            .await
            .map_err(|_| TokenError::Server)?
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
            return Err(TokenError::InvalidClient);
        }
        self.token_for_binding(client_id, &binding.instance_id, zid)
            .await
    }

    /// `grant_type=client_credentials` with a client id and the client certificate presented on
    /// the HTTPS listener (X.509 bindings): the certificate must be the binding's.
    pub async fn certificate_token(
        &self,
        client_id: &str,
        presented_der: &[u8],
        zid: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let binding = self
            .store()
            .get_binding_by_client(client_id)
            .await
            .map_err(|_| TokenError::Server)?
            .ok_or(TokenError::InvalidClient)?;
        let expected = binding
            .certificate_sha256
            .as_deref()
            .ok_or(TokenError::InvalidClient)?;
        let presented = signpost_certs::sha256_fingerprint(presented_der);
        let same: bool = expected.as_bytes().ct_eq(presented.as_bytes()).into();
        if !same {
            return Err(TokenError::InvalidClient);
        }
        // A certificate Signpost made must also still be valid and signed by its CA.
        let generated = binding.client_secret.is_some();
        if generated
            && !self
                .inner
                .ca
                .verify_client_certificate(presented_der, time::OffsetDateTime::now_utc())
        {
            return Err(TokenError::InvalidClient);
        }
        self.token_for_binding(client_id, &binding.instance_id, zid)
            .await
    }

    /// A token for a binding. `zid` (the `x-zid` header SAP's clients send for tenant tokens)
    /// must name the binding's own subaccount: Signpost has no subscriber tenants yet, and a
    /// token for another tenant would give a client a view it must not have.
    async fn token_for_binding(
        &self,
        client_id: &str,
        instance_id: &str,
        zid: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let store = self.store();
        let instance = store
            .get_instance(instance_id)
            .await
            .map_err(|_| TokenError::Server)?
            .ok_or(TokenError::InvalidClient)?;
        if zid.is_some_and(|z| z != instance.subaccount_id) {
            return Err(TokenError::InvalidClient);
        }
        let subdomain = store
            .get_subaccount(&instance.subaccount_id)
            .await
            .map_err(|_| TokenError::Server)?
            .map(|s| s.subdomain)
            .unwrap_or_else(|| instance.subaccount_id.clone());
        self.sign(client_id, &instance.subaccount_id, &subdomain, &instance.id)
            .map_err(|_| TokenError::Server)
    }

    fn sign(
        &self,
        client_id: &str,
        zid: &str,
        zdn: &str,
        instance_id: &str,
    ) -> Result<TokenResponse> {
        let now = now_secs();
        let lifetime = self.inner.config.token_lifetime_secs;
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            jti: jti.clone(),
            iss: self.issuer(),
            sub: client_id.into(),
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
            scope: vec![SERVICE_SCOPE.into()],
            authorities: vec![SERVICE_SCOPE.into()],
            aud: vec!["uaa".into(), client_id.into()],
            grant_type: "client_credentials".into(),
            iat: now,
            exp: now + lifetime,
        };
        let keys = self.inner.keys.read();
        let key = keys
            .last()
            .ok_or_else(|| Error::Internal("no signing key".into()))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        header.jku = Some(format!("{}/token_keys", self.inner.config.public_url));
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(internal)?;
        Ok(TokenResponse {
            access_token: token,
            token_type: "bearer",
            expires_in: lifetime,
            scope: SERVICE_SCOPE.into(),
            jti,
        })
    }

    async fn binding_is_live(&self, p: &Principal) -> Result<bool> {
        Ok(self
            .store()
            .get_binding_by_client(&p.client_id)
            .await?
            .is_some_and(|b| b.instance_id == p.instance_id))
    }

    /// Verifies a bearer token (signature, expiry, issuer) and that its binding and instance
    /// still exist. Every failure is the same 401 so that nothing leaks about why.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        let now = now_secs();
        if let Some(p) = self.inner.principals.get(bearer, now) {
            // Another process may have deleted the binding: while the store's change feed is
            // down the cache saves the signature check only, and the binding is looked up.
            if self.store().coherent() || self.binding_is_live(&p).await? {
                return Ok(p);
            }
            return Err(Error::Unauthorized(
                "The bearer token is missing, invalid or expired".into(),
            ));
        }
        let unauthorized =
            || Error::Unauthorized("The bearer token is missing, invalid or expired".into());
        let header = jsonwebtoken::decode_header(bearer).map_err(|_| unauthorized())?;
        let kid = header.kid.ok_or_else(unauthorized)?;
        let known = self.inner.keys.read().iter().any(|k| k.kid == kid);
        if !known {
            // A key rotated in by another process: look once more in the store.
            self.inner.keys.reload(self.store().as_ref()).await?;
        }
        let claims = {
            let keys = self.inner.keys.read();
            let key = keys
                .iter()
                .find(|k| k.kid == kid)
                .ok_or_else(unauthorized)?;
            let mut validation = Validation::new(Algorithm::RS256);
            validation.set_issuer(&[self.issuer()]);
            validation.validate_aud = false;
            validation.leeway = 0;
            jsonwebtoken::decode::<Claims>(bearer, &key.decoding, &validation)
                .map_err(|_| unauthorized())?
                .claims
        };
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
        if instance.subaccount_id != claims.zid {
            return Err(unauthorized());
        }
        let principal = Principal {
            subdomain: claims.ext_attr.zdn,
            subaccount_id: claims.zid,
            instance_id: instance.id,
            client_id: claims.client_id,
            scopes: claims.scope,
        };
        self.inner
            .principals
            .put(bearer, principal.clone(), claims.exp);
        Ok(principal)
    }
}
