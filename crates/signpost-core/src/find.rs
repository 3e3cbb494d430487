//! Find destination (v1, with fallback from instance to subaccount level) and the v2 consume
//! lookup (explicit level, no fallback): fragments, credentials, tokens and certificates.

use base64::Engine as _;
use serde_json::{Map, Value};
use signpost_model::{is_secret_property, EntityKind, Level, OwnerRef};
use signpost_store::StoredEntity;
use signpost_wire::{AuthToken, CertificateItem, FindResponse, Owner};

use crate::entities::body_json;
use crate::{Error, Principal, Result, Signpost};

/// SAP's exact text for an unknown name; SAP's clients treat exactly this as "no destination".
pub const NOT_FOUND_MESSAGE: &str = "Configuration with the specified name was not found";

/// Authentication types whose flows come with the token-flows capability.
const OAUTH_TYPES: &[&str] = &[
    "OAuth2ClientCredentials",
    "OAuth2Password",
    "OAuth2UserTokenExchange",
    "OAuth2JWTBearer",
    "OAuth2RefreshToken",
    "OAuth2AuthorizationCode",
    "OAuth2TokenExchange",
    "OAuth2TechnicalUserPropagation",
    "OAuth2SAMLBearerAssertion",
    "SAMLAssertion",
    "SAPAssertionSSO",
];

/// What the caller asked for besides the name.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// `X-fragment-name`, in order; on v2 each may carry `@level`.
    pub fragments: Vec<String>,
    /// `X-fragment-optional: true` (only with a single fragment).
    pub fragment_optional: bool,
    pub skip_credentials: bool,
    pub skip_token_retrieval: bool,
}

#[derive(Debug, Clone)]
pub struct FindResult {
    pub response: FindResponse,
    pub etag: String,
}

impl Signpost {
    async fn lookup(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        name: &str,
    ) -> Result<Option<StoredEntity>> {
        Ok(self.store().get_entity(owner, kind, name).await?)
    }

    /// v1: instance level first, then subaccount level.
    pub async fn find_destination(
        &self,
        who: &Principal,
        name: &str,
        opts: &FindOptions,
    ) -> Result<FindResult> {
        let mut found = None;
        for level in [Level::Instance, Level::Subaccount] {
            if let Some(e) = self
                .lookup(&who.owner(level), EntityKind::Destination, name)
                .await?
            {
                found = Some(e);
                break;
            }
        }
        let dest = found.ok_or_else(|| Error::NotFound(NOT_FOUND_MESSAGE.into()))?;
        let fragments = opts
            .fragments
            .iter()
            .map(|f| (f.clone(), None))
            .collect::<Vec<_>>();
        self.resolve(who, dest, &fragments, opts, true).await
    }

    /// v2 consume: `name@level`, no fallback; no `owner` in the answer.
    pub async fn consume_destination(
        &self,
        who: &Principal,
        name: &str,
        level: &str,
        opts: &FindOptions,
    ) -> Result<FindResult> {
        let level = parse_consume_level(level)?;
        let dest = self
            .lookup(&who.owner(level), EntityKind::Destination, name)
            .await?
            .ok_or_else(|| Error::NotFound(NOT_FOUND_MESSAGE.into()))?;
        let mut fragments = Vec::new();
        for f in &opts.fragments {
            match f.rsplit_once('@') {
                Some((n, l)) => fragments.push((n.to_owned(), Some(parse_consume_level(l)?))),
                None => fragments.push((f.clone(), None)),
            }
        }
        self.resolve(who, dest, &fragments, opts, false).await
    }

    async fn resolve(
        &self,
        who: &Principal,
        dest: StoredEntity,
        fragments: &[(String, Option<Level>)],
        opts: &FindOptions,
        with_owner: bool,
    ) -> Result<FindResult> {
        if opts.fragment_optional && fragments.len() > 1 {
            return Err(Error::BadRequest(
                "X-fragment-optional works only with a single fragment in X-fragment-name".into(),
            ));
        }
        let mut config = body_json(&dest)?;
        let mut etag_parts: Vec<Vec<u8>> = vec![dest.etag.clone().into_bytes()];
        let mut applied = Vec::new();
        for (fname, flevel) in fragments {
            let owner = who.owner(flevel.unwrap_or(dest.owner.level));
            match self.lookup(&owner, EntityKind::Fragment, fname).await? {
                Some(frag) => {
                    for (k, v) in body_json(&frag)? {
                        if k != "FragmentName" {
                            config.insert(k, v);
                        }
                    }
                    etag_parts.push(frag.etag.into_bytes());
                    applied.push(fname.clone());
                }
                None if opts.fragment_optional => {}
                None => {
                    return Err(Error::NotFound(format!(
                    "The fragment '{fname}' named in X-fragment-name does not exist on {} level",
                    owner.level
                )))
                }
            }
        }
        if !applied.is_empty() {
            config.insert("FragmentName".into(), Value::String(applied.join(",")));
        }

        let auth = prop(&config, "Authentication")
            .unwrap_or("NoAuthentication")
            .to_owned();
        let mut certificates = Vec::new();
        if auth == "ClientCertificateAuthentication" {
            for key in ["KeyStoreLocation", "TrustStoreLocation"] {
                let Some(cname) = prop(&config, key).map(str::to_owned) else {
                    continue;
                };
                if let Some(cert) = self.certificate_for(who, &dest.owner, &cname).await? {
                    etag_parts.push(cert.etag.clone().into_bytes());
                    certificates.push(certificate_item(&cert)?);
                }
            }
        }
        let auth_tokens = if opts.skip_token_retrieval {
            None
        } else {
            auth_tokens(&auth, &config)
        };
        if opts.skip_credentials {
            config.retain(|k, _| !is_secret_property(k));
        }
        let refs: Vec<&[u8]> = etag_parts.iter().map(Vec::as_slice).collect();
        let etag = self.store().digest(&refs);
        let owner = with_owner.then(|| match dest.owner.level {
            Level::Subaccount => Owner {
                subaccount_id: Some(dest.owner.id.clone()),
                instance_id: None,
            },
            Level::Instance => Owner {
                subaccount_id: None,
                instance_id: Some(dest.owner.id.clone()),
            },
        });
        Ok(FindResult {
            response: FindResponse {
                owner,
                destination_configuration: config,
                auth_tokens,
                certificates: (!certificates.is_empty()).then_some(certificates),
            },
            etag,
        })
    }

    /// A certificate named by a destination: the destination's level first, then the subaccount.
    async fn certificate_for(
        &self,
        who: &Principal,
        owner: &OwnerRef,
        name: &str,
    ) -> Result<Option<StoredEntity>> {
        if let Some(c) = self.lookup(owner, EntityKind::Certificate, name).await? {
            return Ok(Some(c));
        }
        if owner.level == Level::Instance {
            return self
                .lookup(&who.owner(Level::Subaccount), EntityKind::Certificate, name)
                .await;
        }
        Ok(None)
    }
}

fn parse_consume_level(level: &str) -> Result<Level> {
    match level {
        "subaccount" => Ok(Level::Subaccount),
        "instance" => Ok(Level::Instance),
        "provider_subaccount" | "provider_instance" => Err(Error::BadRequest(format!(
            "The level '{level}' is only available to subscriber tokens"
        ))),
        other => Err(Error::BadRequest(format!(
            "Unknown level '{other}'; use subaccount, instance, provider_subaccount or provider_instance"
        ))),
    }
}

fn prop<'a>(config: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn certificate_item(cert: &StoredEntity) -> Result<CertificateItem> {
    let body = body_json(cert)?;
    Ok(CertificateItem {
        name: cert.name.clone(),
        content: body
            .get("Content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        cert_type: "CERTIFICATE".into(),
    })
}

/// The `authTokens` of a destination, or `None` for types that produce no token.
fn auth_tokens(auth: &str, config: &Map<String, Value>) -> Option<Vec<AuthToken>> {
    match auth {
        "NoAuthentication" | "PrincipalPropagation" | "ClientCertificateAuthentication" => None,
        "BasicAuthentication" => {
            let token = match (prop(config, "User"), config.get("Password").and_then(Value::as_str)) {
                (Some(user), Some(password)) => {
                    let value = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                    AuthToken::with_header("Basic", value, "Authorization")
                }
                _ => AuthToken::failed("BasicAuthentication needs the properties User and Password"),
            };
            Some(vec![token])
        }
        t if OAUTH_TYPES.contains(&t) => Some(vec![AuthToken::failed(format!(
            "The token flow of authentication type '{t}' is not available in this Signpost release yet"
        ))]),
        other => Some(vec![AuthToken::failed(format!("Unknown authentication type '{other}'"))]),
    }
}
