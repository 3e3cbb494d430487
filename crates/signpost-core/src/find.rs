//! Find destination (v1, with fallback from instance to subaccount level) and the v2 consume
//! lookup (explicit level, no fallback): fragments, credentials, tokens and certificates.

use serde_json::{Map, Value};
use signpost_model::{is_secret_property, EntityKind, Level, OwnerRef};
use signpost_oauth::{FlowContext, FlowHeaders};
use signpost_store::StoredEntity;
use signpost_wire::{AuthToken, CertificateItem, FindResponse, Owner};

use crate::body::body_json;
use crate::{Error, Principal, Result, Signpost};

/// SAP's exact text for an unknown name; SAP's clients treat exactly this as "no destination".
pub const NOT_FOUND_MESSAGE: &str = "Configuration with the specified name was not found";

/// What the caller asked for besides the name.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// `X-fragment-name`, in order; on v2 each may carry `@level`.
    pub fragments: Vec<String>,
    /// `X-fragment-optional: true` (only with a single fragment).
    pub fragment_optional: bool,
    pub skip_credentials: bool,
    pub skip_token_retrieval: bool,
    /// The headers the token flows read (`X-user-token`, `X-tenant`, `X-refresh-token`, ...).
    pub headers: FlowHeaders,
    /// `X-client-assertion-destination-name`.
    pub client_assertion_destination: Option<String>,
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
        let levels = [who.owner(Level::Instance), who.owner(Level::Subaccount)];
        let dest = self
            .store()
            .find_entity(&levels, EntityKind::Destination, name)
            .await?
            .ok_or_else(|| Error::NotFound(NOT_FOUND_MESSAGE.into()))?;
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
        let owner = consume_owner(who, level)?;
        let dest = self
            .lookup(&owner, EntityKind::Destination, name)
            .await?
            .ok_or_else(|| Error::NotFound(NOT_FOUND_MESSAGE.into()))?;
        let mut fragments = Vec::new();
        for f in &opts.fragments {
            match f.rsplit_once('@') {
                Some((n, l)) => fragments.push((n.to_owned(), Some(consume_owner(who, l)?))),
                None => fragments.push((f.clone(), None)),
            }
        }
        self.resolve(who, dest, &fragments, opts, false).await
    }

    async fn resolve(
        &self,
        who: &Principal,
        dest: StoredEntity,
        fragments: &[(String, Option<OwnerRef>)],
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
            // Without a level, a fragment is looked up beside the destination.
            let owner = flevel.clone().unwrap_or_else(|| dest.owner.clone());
            match self.lookup(&owner, EntityKind::Fragment, fname).await? {
                Some(frag) => {
                    apply_fragment(&mut config, body_json(&frag)?);
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
        // ClientCertificateAuthentication hands out its stores; with $skipTokenRetrieval, an
        // mTLS token flow's key store goes to the caller, who then fetches the token itself.
        let mut cert_keys: Vec<&str> = Vec::new();
        if auth == "ClientCertificateAuthentication" {
            cert_keys.extend(["KeyStoreLocation", "TrustStoreLocation"]);
        }
        if opts.skip_token_retrieval {
            cert_keys.push("tokenService.KeyStoreLocation");
        }
        for key in cert_keys {
            let Some(cname) = prop(&config, key).map(str::to_owned) else {
                continue;
            };
            if let Some(cert) = self.certificate_for(who, &dest.owner, &cname).await? {
                etag_parts.push(cert.etag.clone().into_bytes());
                certificates.push(certificate_item(&cert)?);
            }
        }
        let auth_tokens = if opts.skip_token_retrieval {
            None
        } else {
            // Boxed: the token flows' state (about 4 KB) would otherwise be part of every
            // find's future, which the HTTP stack moves several times per request.
            Box::pin(self.run_flow(who, &dest, &config, &auth, opts, true)).await?
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
            // A subscription-level hit names the subscriber and the provider's instance.
            Level::Instance => Owner {
                subaccount_id: dest.owner.subscriber().map(str::to_owned),
                instance_id: dest.owner.instance_id().map(str::to_owned),
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
    pub(crate) async fn certificate_for(
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
                .lookup(
                    &subaccount_beside(who, owner),
                    EntityKind::Certificate,
                    name,
                )
                .await;
        }
        Ok(None)
    }
}

/// The subaccount level that an instance-level owner falls back to: the provider's subaccount
/// for the provider's instance, the tenant's own for a subscription level or the caller's own
/// instance.
fn subaccount_beside(who: &Principal, owner: &OwnerRef) -> OwnerRef {
    match (&who.provider_subaccount_id, owner.subscriber()) {
        (Some(provider), None) => OwnerRef::subaccount(provider),
        _ => who.owner(Level::Subaccount),
    }
}

/// The owner a v2 consume level names for this caller. `provider_subaccount` and
/// `provider_instance` reach the provider's levels from a subscriber's token.
fn consume_owner(who: &Principal, level: &str) -> Result<OwnerRef> {
    match (level, &who.provider_subaccount_id) {
        ("subaccount", _) => Ok(who.owner(Level::Subaccount)),
        ("instance", _) => Ok(who.owner(Level::Instance)),
        ("provider_subaccount", Some(provider)) => Ok(OwnerRef::subaccount(provider)),
        ("provider_instance", Some(_)) => Ok(OwnerRef::instance(&who.instance_id)),
        ("provider_subaccount" | "provider_instance", None) => Err(Error::BadRequest(format!(
            "The level '{level}' is only available to subscriber tokens"
        ))),
        (other, _) => Err(Error::BadRequest(format!(
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

pub(crate) fn certificate_item(cert: &StoredEntity) -> Result<CertificateItem> {
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

impl Signpost {
    /// Whether a Common token flow may run in the tenant with subdomain `tenant` (`X-tenant`):
    /// the caller's own, or for the provider's token one subscribed to its instance. A
    /// subscriber's token reaches its own tenant only.
    async fn tenant_allowed(&self, who: &Principal, tenant: &str) -> Result<bool> {
        if tenant == who.subdomain {
            return Ok(true);
        }
        if who.is_subscriber() {
            return Ok(false);
        }
        let Some(subaccount) = self.tenant_of_subdomain(tenant).await? else {
            return Ok(false);
        };
        Ok(self
            .store()
            .get_subscription(&who.instance_id, &subaccount)
            .await?
            .is_some())
    }

    /// Runs the destination's token flow. `nested` is false for the destination that supplies a
    /// client assertion, which may not name another one.
    async fn run_flow(
        &self,
        who: &Principal,
        dest: &StoredEntity,
        config: &Map<String, Value>,
        auth: &str,
        opts: &FindOptions,
        nested: bool,
    ) -> Result<Option<Vec<AuthToken>>> {
        let saml = if needs_saml_key(auth, config) {
            Some(self.saml_signer(&who.subaccount_id).await?)
        } else {
            None
        };
        let assertion_from = opts
            .client_assertion_destination
            .clone()
            .or_else(|| prop(config, "clientAssertion.destinationName").map(str::to_owned));
        let client_assertion = match assertion_from {
            Some(name) if nested => match self.client_assertion(who, &name, config, opts).await? {
                Ok(pair) => Some(pair),
                Err(e) => return Ok(Some(vec![AuthToken::failed(e)])),
            },
            _ => None,
        };
        let tls = match self.flow_tls(who, &dest.owner, config).await? {
            Ok(t) => t,
            Err(e) => return Ok(Some(vec![AuthToken::failed(e)])),
        };
        if let Some(tenant) = opts.headers.tenant.as_deref() {
            if prop(config, "tokenServiceURLType") == Some("Common")
                && !self.tenant_allowed(who, tenant).await?
            {
                return Ok(Some(vec![AuthToken::failed(format!(
                    "X-tenant '{tenant}' is neither the caller's tenant nor subscribed to its instance"
                ))]));
            }
        }
        let ctx = FlowContext {
            destination: config,
            headers: &opts.headers,
            subdomain: &who.subdomain,
            level: dest.owner.level.as_str(),
            owner: &dest.owner.id,
            name: &dest.name,
            etag: &dest.etag,
            saml: saml.as_ref(),
            client_assertion,
            tls,
        };
        Ok(self.flows().auth_tokens(&ctx).await)
    }

    /// The token of the destination named by `clientAssertion.destinationName`, used as the
    /// client assertion of another flow.
    async fn client_assertion(
        &self,
        who: &Principal,
        name: &str,
        config: &Map<String, Value>,
        opts: &FindOptions,
    ) -> Result<std::result::Result<(String, String), String>> {
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
        let Some(source) = found else {
            return Ok(Err(format!(
                "The client assertion destination '{name}' does not exist"
            )));
        };
        let source_config = body_json(&source)?;
        let auth = prop(&source_config, "Authentication")
            .unwrap_or("NoAuthentication")
            .to_owned();
        let tokens =
            Box::pin(self.run_flow(who, &source, &source_config, &auth, opts, false)).await?;
        let token = tokens
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.error.is_none() && !t.value.is_empty());
        let assertion_type = prop(config, "clientAssertion.type")
            .unwrap_or("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            .to_owned();
        Ok(match token {
            Some(t) => Ok((t.value, assertion_type)),
            None => Err(format!(
                "The client assertion destination '{name}' gave no token"
            )),
        })
    }
}

fn needs_saml_key(auth: &str, config: &Map<String, Value>) -> bool {
    auth == "SAMLAssertion"
        || (auth == "OAuth2SAMLBearerAssertion"
            && prop(config, "SAMLAssertionProvider") != Some("ClientProvided"))
}

/// Merges a fragment into a destination's properties: each of the fragment's properties but its
/// own `FragmentName` replaces the destination's of the same name (or adds it); the rest of the
/// destination stays as it was.
pub(crate) fn apply_fragment(config: &mut Map<String, Value>, fragment: Map<String, Value>) {
    for (k, v) in fragment {
        if k != "FragmentName" {
            config.insert(k, v);
        }
    }
}

/// Property tests of fragment merging.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Properties with names that collide often (`FragmentName` among them).
    fn properties() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("FragmentName".to_owned()),
                    Just("URL".to_owned()),
                    Just("Authentication".to_owned()),
                    "[a-c]{1,2}",
                ],
                any::<String>(),
            ),
            0..8,
        )
        .prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn a_fragment_overrides_what_it_names_and_leaves_the_rest(
            destination in properties(),
            fragment in properties(),
        ) {
            let mut merged = destination.clone();
            apply_fragment(&mut merged, fragment.clone());
            for (k, v) in &fragment {
                if k != "FragmentName" {
                    prop_assert_eq!(merged.get(k), Some(v));
                }
            }
            for (k, v) in &destination {
                if k == "FragmentName" || !fragment.contains_key(k) {
                    prop_assert_eq!(merged.get(k), Some(v));
                }
            }
            let expected = destination.len()
                + fragment
                    .keys()
                    .filter(|k| *k != "FragmentName" && !destination.contains_key(*k))
                    .count();
            prop_assert_eq!(merged.len(), expected);
            // Applying the same fragment again changes nothing more.
            let mut again = merged.clone();
            apply_fragment(&mut again, fragment);
            prop_assert_eq!(again, merged);
        }
    }
}
