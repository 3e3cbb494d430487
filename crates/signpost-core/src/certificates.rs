//! Certificates beyond storage: validation on upload, the details view, SAP's `/publicKeys`,
//! generation from the built-in CA (`Attributes`), automatic renewal, and presenting a keystore
//! as a TLS client identity.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use signpost_certs::ca::{GenerateRequest, KeyKind, OutputFormat, Serial, TimeUnit, Validity};
use signpost_certs::parse::{self, ParsedStore, PublicKeyItem};
use signpost_model::{EntityKind, Level, OwnerRef};
use signpost_store::{PutMode, StoredEntity, WriteOp};
use time::OffsetDateTime;

use crate::access::Access;
use crate::body::body_json;
use crate::{rfc3339, Error, Principal, Result, Signpost};

/// Where Signpost keeps its own facts about a certificate inside the stored body.
pub(crate) const META: &str = "$signpost";

pub(crate) fn decode_content(content: &str) -> std::result::Result<Vec<u8>, String> {
    let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| "Content is not valid base64".to_string())
}

/// Parses a certificate file and checks that every chain in it is complete.
pub(crate) fn validate_file(
    bytes: &[u8],
    password: Option<&str>,
) -> std::result::Result<ParsedStore, String> {
    let store = parse::parse(bytes, password).map_err(|e| e.to_string())?;
    parse::validate_chain(&store).map_err(|e| e.to_string())?;
    Ok(store)
}

/// The DER of the first certificate of a PEM chain (X.509 bindings).
pub(crate) fn leaf_der_of_pem(pem: &str) -> std::result::Result<Vec<u8>, String> {
    let store = validate_file(pem.as_bytes(), None)?;
    let leaf = store.certificates().next().map(|c| c.der.clone());
    leaf.ok_or_else(|| "holds no certificate".to_string())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// A parsed `Attributes` body: what to generate and how to store it.
pub(crate) struct Generation {
    pub name: String,
    pub request: GenerateRequest,
    pub auto_renew: bool,
}

fn attr_error(msg: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("Invalid certificate generation request: {msg}"))
}

/// Reads `{Name, Type?, Attributes: {CN, CSR?, Validity?: {TimeUnit, Value}, AutomaticRenew?, Password?}}`.
pub(crate) fn generation(value: &Value) -> Result<Generation> {
    let obj = value
        .as_object()
        .ok_or_else(|| attr_error("the body must be a JSON object"))?;
    let name = obj
        .get("Name")
        .and_then(Value::as_str)
        .ok_or_else(|| attr_error("Name is required"))?;
    signpost_model::validate_certificate_name("Name", name).map_err(attr_error)?;
    let attrs = obj
        .get("Attributes")
        .and_then(Value::as_object)
        .ok_or_else(|| attr_error("Attributes must be a JSON object"))?;
    for key in attrs.keys() {
        if !matches!(
            key.as_str(),
            "CN" | "CSR" | "Validity" | "AutomaticRenew" | "Password"
        ) {
            return Err(attr_error(format!(
                "Attributes.{key} is unknown; use CN, CSR, Validity, AutomaticRenew, Password"
            )));
        }
    }
    let text = |k: &str| -> Result<Option<String>> {
        match attrs.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(attr_error(format!("Attributes.{k} must be a string"))),
        }
    };
    let cn = text("CN")?.unwrap_or_else(|| {
        name.trim_end_matches(|c: char| c != '.')
            .trim_end_matches('.')
            .to_owned()
    });
    let cn = if cn.is_empty() { name.to_owned() } else { cn };
    let validity = match attrs.get("Validity") {
        None | Some(Value::Null) => Validity::days(30),
        Some(Value::Object(v)) => {
            let unit = v
                .get("TimeUnit")
                .and_then(Value::as_str)
                .and_then(TimeUnit::parse)
                .ok_or_else(|| {
                    attr_error("Attributes.Validity.TimeUnit must be DAYS, MONTHS or YEARS")
                })?;
            let value = v
                .get("Value")
                .and_then(|n| {
                    n.as_i64()
                        .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                })
                .ok_or_else(|| attr_error("Attributes.Validity.Value must be a whole number"))?;
            Validity { unit, value }
        }
        Some(_) => {
            return Err(attr_error(
                "Attributes.Validity must be {\"TimeUnit\": ..., \"Value\": ...}",
            ))
        }
    };
    let auto_renew = match attrs.get("AutomaticRenew") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(_) => {
            return Err(attr_error(
                "Attributes.AutomaticRenew must be true or false",
            ))
        }
    };
    let format = match obj
        .get("Type")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("PEM") | Some("CERTIFICATE") => OutputFormat::Pem,
        Some("PKCS12") | Some("P12") | Some("PFX") => OutputFormat::Pkcs12,
        Some("JKS") => OutputFormat::Jks,
        Some(other) => {
            return Err(attr_error(format!(
                "Type '{other}' cannot be generated; use PEM, PKCS12 or JKS"
            )))
        }
    };
    let csr = match text("CSR")? {
        None => None,
        Some(c) if c.contains("-----BEGIN") => Some(c),
        Some(c) => Some(
            String::from_utf8(decode_content(&c).map_err(attr_error)?)
                .map_err(|_| attr_error("Attributes.CSR is not a PEM CSR"))?,
        ),
    };
    let mut request = GenerateRequest::new(cn, validity);
    request.format = format;
    request.csr_pem = csr;
    request.password = text("Password")?.map(SecretString::from);
    Ok(Generation {
        name: name.to_owned(),
        request,
        auto_renew,
    })
}

/// The stored body of a generated certificate, with what renewal needs under `$signpost`.
/// `renewed` is the time of the automatic renewal that made it (`None` when first generated).
fn generated_body(
    name: &str,
    gen: &GenerateRequest,
    auto_renew: bool,
    file: &[u8],
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    renewed: Option<OffsetDateTime>,
) -> Vec<u8> {
    let ty = match gen.format {
        OutputFormat::Pem => "PEM",
        OutputFormat::Pkcs12 => "PKCS12",
        OutputFormat::Jks => "JKS",
    };
    let mut body = Map::new();
    body.insert("Name".into(), json!(name));
    body.insert("Type".into(), json!(ty));
    body.insert(
        "Content".into(),
        json!(base64::engine::general_purpose::STANDARD.encode(file)),
    );
    if let Some(p) = &gen.password {
        body.insert("Password".into(), json!(p.expose_secret()));
    }
    body.insert(
        META.into(),
        json!({
            "origin": "generated",
            "automaticRenewal": auto_renew,
            "lastRenewal": renewed.map(rfc3339),
            "notBefore": not_before.unix_timestamp(),
            "notAfter": not_after.unix_timestamp(),
            "request": {
                "CN": gen.common_name,
                "Validity": {"TimeUnit": gen.validity.unit.as_str(), "Value": gen.validity.value},
                "CSR": gen.csr_pem,
                "Format": ty,
                "KeyBits": match gen.key { KeyKind::Rsa { bits } => Some(bits), _ => None },
            }
        }),
    );
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Rebuilds the generation request of a stored generated certificate.
fn stored_request(body: &Map<String, Value>) -> Option<(GenerateRequest, bool, i64, i64)> {
    let meta = body.get(META)?;
    let r = &meta["request"];
    let validity = Validity {
        unit: TimeUnit::parse(r["Validity"]["TimeUnit"].as_str()?)?,
        value: r["Validity"]["Value"].as_i64()?,
    };
    let mut req = GenerateRequest::new(r["CN"].as_str()?, validity);
    req.format = match r["Format"].as_str()? {
        "PKCS12" => OutputFormat::Pkcs12,
        "JKS" => OutputFormat::Jks,
        _ => OutputFormat::Pem,
    };
    req.csr_pem = r["CSR"].as_str().map(str::to_owned);
    if let Some(bits) = r["KeyBits"].as_u64() {
        req.key = KeyKind::Rsa { bits: bits as u32 };
    }
    req.password = body
        .get("Password")
        .and_then(Value::as_str)
        .map(|p| SecretString::from(p.to_owned()));
    Some((
        req,
        meta["automaticRenewal"].as_bool().unwrap_or(false),
        meta["notBefore"].as_i64()?,
        meta["notAfter"].as_i64()?,
    ))
}

fn parsed_of(body: &Map<String, Value>) -> std::result::Result<ParsedStore, String> {
    let content = body
        .get("Content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bytes = decode_content(content)?;
    parse::parse(&bytes, body.get("Password").and_then(Value::as_str)).map_err(|e| e.to_string())
}

impl Signpost {
    /// Generates a certificate from the built-in CA: the stored body.
    pub(crate) async fn generate_certificate(&self, gen: Generation) -> Result<(String, Vec<u8>)> {
        let core = self.clone();
        let Generation {
            name,
            request,
            auto_renew,
        } = gen;
        signpost_oauth::cpu::run(move || {
            let out = core
                .inner
                .ca
                .issue(&request, now(), Serial::random())
                .map_err(|e| {
                    if e.is_bad_request() {
                        attr_error(e)
                    } else {
                        internal(e)
                    }
                })?;
            let body = generated_body(
                &name,
                &request,
                auto_renew,
                &out.file_bytes,
                (out.not_before, out.not_after),
                None,
            );
            Ok((name, body))
        })
        .await
        .map_err(internal)?
    }

    async fn certificate_entity(
        &self,
        who: &Principal,
        level: Level,
        name: &str,
    ) -> Result<StoredEntity> {
        self.may(who, level, EntityKind::Certificate, Access::Read)
            .await?;
        self.store()
            .get_entity(&who.owner(level), EntityKind::Certificate, name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "The certificate '{name}' does not exist on {level} level"
                ))
            })
    }

    /// Signpost's details view of one certificate.
    pub async fn certificate_details(
        &self,
        who: &Principal,
        level: Level,
        name: &str,
    ) -> Result<Value> {
        let entity = self.certificate_entity(who, level, name).await?;
        self.details_of(&entity).await
    }

    async fn details_of(&self, entity: &StoredEntity) -> Result<Value> {
        let body = body_json(entity)?;
        let parsed = self.parsed_store(entity, None).await?;
        let meta = body.get(META);
        let mut out = match parsed.as_ref() {
            Ok(p) => p.details_json(now()),
            Err(e) => json!({"format": null, "locked": false, "entries": [], "error": e}),
        };
        let generated = meta.is_some_and(|m| m["origin"] == "generated");
        out["name"] = json!(entity.name);
        out["origin"] = json!(if generated { "generated" } else { "uploaded" });
        out["automaticRenewal"] = json!(meta
            .and_then(|m| m["automaticRenewal"].as_bool())
            .unwrap_or(false));
        out["lastRenewal"] = meta
            .map(|m| m["lastRenewal"].clone())
            .unwrap_or(Value::Null);
        // Key order as the issue lists it.
        let ordered: Map<String, Value> = [
            "name",
            "format",
            "origin",
            "automaticRenewal",
            "locked",
            "lastRenewal",
            "entries",
            "error",
        ]
        .iter()
        .filter_map(|k| out.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
        Ok(Value::Object(ordered))
    }

    /// The details of every certificate of a level; with `expiring_within_days`, only those with
    /// a certificate that ends within that many days.
    pub async fn list_certificate_details(
        &self,
        who: &Principal,
        level: Level,
        expiring_within_days: Option<i64>,
    ) -> Result<Vec<Value>> {
        self.may(who, level, EntityKind::Certificate, Access::Read)
            .await?;
        let page = self
            .store()
            .list_entities(
                &who.owner(level),
                EntityKind::Certificate,
                &Default::default(),
            )
            .await?;
        let mut out = Vec::new();
        for e in &page.items {
            let d = self.details_of(e).await?;
            if let Some(days) = expiring_within_days {
                let soon = d["entries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|en| en["chain"].as_array().into_iter().flatten())
                    .any(|c| c["daysLeft"].as_i64().is_some_and(|left| left <= days));
                if !soon {
                    continue;
                }
            }
            out.push(d);
        }
        Ok(out)
    }

    /// SAP's `GET .../{name}/publicKeys`.
    pub async fn certificate_public_keys(
        &self,
        who: &Principal,
        level: Level,
        name: &str,
    ) -> Result<(Vec<PublicKeyItem>, String)> {
        let entity = self.certificate_entity(who, level, name).await?;
        let parsed = self.parsed_store(&entity, None).await?;
        let parsed = parsed
            .as_ref()
            .as_ref()
            .map_err(|e| Error::BadRequest(e.clone()))?;
        if parsed.locked {
            return Err(Error::BadRequest(
                "The keystore is password-protected and public keys cannot be retrieved".into(),
            ));
        }
        Ok((parse::public_keys(parsed), entity.etag))
    }

    /// Renews every generated certificate with automatic renewal that is due at `at` (two thirds
    /// of its life), under the same name; returns how many. Runs where the lease allows.
    pub async fn renew_due_certificates(&self, at: OffsetDateTime) -> Result<usize> {
        let mut renewed = 0;
        for entity in self.store().all_entities(EntityKind::Certificate).await? {
            let body = body_json(&entity)?;
            let Some((request, auto, nb, na)) = stored_request(&body) else {
                continue;
            };
            let (Ok(nb), Ok(na)) = (
                OffsetDateTime::from_unix_timestamp(nb),
                OffsetDateTime::from_unix_timestamp(na),
            ) else {
                continue;
            };
            if !auto || !signpost_certs::ca::renewal_due(nb, na, at) {
                continue;
            }
            let core = self.clone();
            let name = entity.name.clone();
            let renewed_body = signpost_oauth::cpu::run(move || {
                let out = core.inner.ca.renew(&request, at).map_err(internal)?;
                Ok::<_, Error>(generated_body(
                    &name,
                    &request,
                    true,
                    &out.file_bytes,
                    (out.not_before, out.not_after),
                    Some(at),
                ))
            })
            .await
            .map_err(internal)??;
            let written = self
                .write(vec![WriteOp::PutEntity {
                    owner: entity.owner.clone(),
                    kind: EntityKind::Certificate,
                    name: entity.name.clone(),
                    body: renewed_body,
                    mode: PutMode::Replace,
                }])
                .await
                .map_err(Error::from);
            let entry = self.renewal_entry(&entity.owner, &entity.name).await;
            self.audited(entry, 200, written).await?;
            tracing::info!(level = %entity.owner.level, owner = %entity.owner.id, certificate = %entity.name, "certificate renewed");
            renewed += 1;
        }
        Ok(renewed)
    }

    /// The audit entry of the certificate job renewing a certificate of `owner`.
    async fn renewal_entry(&self, owner: &OwnerRef, name: &str) -> crate::audit::Entry {
        let entry = crate::audit::Entry::new(
            crate::audit::ACTOR_SIGNPOST,
            "renew",
            EntityKind::Certificate.as_str(),
        )
        .name(name);
        match owner.level {
            Level::Subaccount => entry.subaccount(owner.id.as_str()),
            Level::Instance => {
                let entry = entry.instance(owner.id.as_str());
                match self.store().get_instance(&owner.id).await {
                    Ok(Some(i)) => entry.subaccount(i.subaccount_id),
                    _ => entry,
                }
            }
        }
    }

    /// Uploaded certificates that end within `days` (for the log and the metric).
    pub async fn expiring_uploaded_certificates(
        &self,
        days: i64,
    ) -> Result<Vec<(OwnerRef, String, i64)>> {
        let mut out = Vec::new();
        for entity in self.store().all_entities(EntityKind::Certificate).await? {
            let body = body_json(&entity)?;
            if body.contains_key(META) {
                continue;
            }
            let Ok(parsed) = parsed_of(&body) else {
                continue;
            };
            if let Some(left) = parsed.certificates().map(|c| c.days_left(now())).min() {
                if left <= days {
                    out.push((entity.owner.clone(), entity.name.clone(), left));
                }
            }
        }
        Ok(out)
    }
}

/// Parsed certificate stores (token flows' key and trust stores, the details and public-keys
/// views), by certificate version (its ETag, a digest of its content) and password: a find does
/// not decrypt a keystore again until the certificate changes.
/// Bounded in size and age like every cache of the server.
pub(crate) struct KeyStoreCache {
    stores: moka::sync::Cache<String, std::sync::Arc<std::result::Result<ParsedStore, String>>>,
    /// Stores parsed so far (cache misses).
    parses: std::sync::atomic::AtomicU64,
}

/// Most parsed stores kept, and for how long.
pub(crate) const KEY_STORE_CACHE_MAX: u64 = 1_000;
const KEY_STORE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl std::fmt::Debug for KeyStoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStoreCache")
            .field("entries", &self.stores.entry_count())
            .finish()
    }
}

impl KeyStoreCache {
    pub(crate) fn new() -> Self {
        Self::with_capacity(KEY_STORE_CACHE_MAX)
    }

    pub(crate) fn with_capacity(max: u64) -> Self {
        Self {
            stores: moka::sync::Cache::builder()
                .max_capacity(max)
                .time_to_live(KEY_STORE_CACHE_TTL)
                .build(),
            parses: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many parsed stores are kept (after pending evictions ran).
    pub(crate) fn len(&self) -> u64 {
        self.stores.run_pending_tasks();
        self.stores.entry_count()
    }
}

impl Signpost {
    /// A certificate entity parsed with `password` (or its own), from the cache or on the CPU
    /// pool; the inner error says why it cannot be read.
    pub(crate) async fn parsed_store(
        &self,
        entity: &StoredEntity,
        password: Option<&str>,
    ) -> Result<std::sync::Arc<std::result::Result<ParsedStore, String>>> {
        let key = self.store().digest(&[
            entity.owner.level.as_str().as_bytes(),
            entity.owner.id.as_bytes(),
            entity.name.as_bytes(),
            entity.etag.as_bytes(),
            &[u8::from(password.is_some())],
            password.unwrap_or_default().as_bytes(),
        ]);
        if let Some(hit) = self.inner.key_stores.stores.get(&key) {
            return Ok(hit);
        }
        let mut body = body_json(entity)?;
        if let Some(p) = password {
            body.insert("Password".into(), Value::String(p.to_owned()));
        }
        self.inner
            .key_stores
            .parses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let parsed = std::sync::Arc::new(
            signpost_oauth::cpu::run(move || parsed_of(&body))
                .await
                .map_err(internal)?,
        );
        self.inner.key_stores.stores.insert(key, parsed.clone());
        Ok(parsed)
    }

    /// How many parsed key stores this process keeps.
    pub fn cached_key_stores(&self) -> u64 {
        self.inner.key_stores.len()
    }

    /// How many times token flows parsed a key or trust store (the cache's misses).
    pub fn key_store_parses(&self) -> u64 {
        self.inner
            .key_stores
            .parses
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Signpost {
    /// The TLS settings of a destination's token requests: `tokenService.KeyStoreLocation` (with
    /// `tokenService.KeyStorePassword`) as client certificate, `TrustStoreLocation` as trust
    /// anchors. The inner error is a sentence for `authTokens`.
    pub(crate) async fn flow_tls(
        &self,
        who: &Principal,
        owner: &OwnerRef,
        config: &Map<String, Value>,
    ) -> Result<std::result::Result<signpost_oauth::TlsSettings, String>> {
        let prop = |k: &str| {
            config
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let mut tls = signpost_oauth::TlsSettings::default();
        if let Some(name) = prop("tokenService.KeyStoreLocation") {
            let Some(entity) = self.certificate_for(who, owner, name).await? else {
                return Ok(Err(format!(
                    "The token service key store '{name}' does not exist"
                )));
            };
            let parsed = self
                .parsed_store(&entity, prop("tokenService.KeyStorePassword"))
                .await?;
            let identity = parsed
                .as_ref()
                .as_ref()
                .map_err(|e| format!("The token service key store '{name}' cannot be read: {e}"))
                .and_then(|store| {
                    parse::client_identity_pem(store)
                        .ok_or_else(|| format!("The token service key store '{name}' holds no private key with its certificate"))
                });
            match identity {
                Ok((certs, key)) => {
                    tls.identity_pem = Some(SecretString::from(format!(
                        "{certs}{}",
                        key.expose_secret()
                    )))
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        if let Some(name) = prop("TrustStoreLocation") {
            let Some(entity) = self.certificate_for(who, owner, name).await? else {
                return Ok(Err(format!("The trust store '{name}' does not exist")));
            };
            let parsed = self
                .parsed_store(&entity, prop("TrustStorePassword"))
                .await?;
            match parsed.as_ref() {
                Ok(store) => {
                    tls.trust_pem = Some(store.certificates().map(|c| c.to_pem()).collect())
                }
                Err(e) => return Ok(Err(format!("The trust store '{name}' cannot be read: {e}"))),
            }
        }
        Ok(Ok(tls))
    }
}

#[cfg(test)]
mod key_store_cache_tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn thousands_of_versions_stay_within_the_capacity() {
        let cache = KeyStoreCache::new();
        for i in 0..3_000 {
            cache
                .stores
                .insert(format!("version-{i}"), Arc::new(Err(format!("store {i}"))));
        }
        let kept = cache.len();
        assert!(kept > 0 && kept <= KEY_STORE_CACHE_MAX, "{kept} kept");
    }
}
