//! The subaccounts' SAML trust key pairs (`/v1/saml2Metadata`): the active pair signs the
//! assertions of SAML flows, the passive one is prepared for a rotation. An active pair is made
//! on first need (a SAML flow or a metadata download), as SAP's cockpit does.

use std::sync::Arc;

use base64::Engine as _;
use signpost_oauth::saml::{self, TrustKeyPair};
use signpost_oauth::SamlSigner;
use signpost_store::{SamlKeyRecord, SamlSlot, WriteOp};

use crate::{Error, Principal, Result, Signpost};

/// Validity of generated trust certificates.
const TRUST_VALIDITY_DAYS: u32 = 5 * 365;

/// Parsed active signers by subaccount, so a SAML flow does not parse PEM on every request.
pub(crate) type SignerCache = crate::epoch_map::EpochMap<SamlSigner>;

/// Most parsed signers kept, and for how long.
pub(crate) const SIGNER_CACHE_MAX: u64 = 10_000;
pub(crate) const SIGNER_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

fn no_pair(sub: &str, passive: bool) -> Error {
    if passive {
        Error::NotFound(format!(
            "Passive Keypair for subaccount - {sub} does not exist"
        ))
    } else {
        Error::NotFound(format!("Keypair for subaccount - {sub} does not exist"))
    }
}

/// The audit entry of a change to a subaccount's SAML trust key pairs.
fn saml_entry(who: &Principal, action: &'static str) -> crate::audit::Entry {
    crate::audit::Entry::tenant(who, signpost_model::Level::Subaccount, action, "saml-key")
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

impl Signpost {
    /// The entity id of a subaccount's assertions and metadata.
    fn saml_entity_id(&self, sub: &str) -> String {
        format!("{}/saml2/{sub}", self.config().public_url)
    }

    async fn saml_record(&self, sub: &str, slot: SamlSlot) -> Result<Option<SamlKeyRecord>> {
        Ok(self
            .store()
            .saml_keys(sub)
            .await?
            .into_iter()
            .find(|k| k.slot == slot))
    }

    async fn new_pair(&self, who_sub: &str, slot: SamlSlot) -> Result<SamlKeyRecord> {
        let cn = format!("signpost-saml-{who_sub}");
        let pair = signpost_oauth::cpu::run(move || {
            saml::generate_trust_keypair(&cn, TRUST_VALIDITY_DAYS)
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        Ok(SamlKeyRecord {
            subaccount_id: who_sub.to_owned(),
            slot,
            private_key_pem: pair.private_key_pem.clone(),
            certificate_pem: pair.certificate_pem.clone(),
            created_at: 0,
        })
    }

    /// The active pair, made if there is none.
    async fn active_or_new(&self, sub: &str) -> Result<SamlKeyRecord> {
        if let Some(rec) = self.saml_record(sub, SamlSlot::Active).await? {
            return Ok(rec);
        }
        let rec = self.new_pair(sub, SamlSlot::Active).await?;
        // Create-if-absent: of concurrent first uses (in this process or another one on the same
        // database) the first write wins, and every caller signs with what is stored.
        let outcome = self
            .store()
            .write(vec![WriteOp::CreateSamlKey(rec)])
            .await?;
        // Only the first use that stored its pair made one: an event of Signpost's own.
        if matches!(
            outcome.first(),
            Some(signpost_store::WriteOutcome::Created { .. })
        ) {
            let entry =
                crate::audit::Entry::new(crate::audit::ACTOR_SIGNPOST, "generate", "saml-key")
                    .subaccount(sub)
                    .name(SamlSlot::Active.as_str());
            self.audit(vec![(entry, 200)]).await;
        }
        self.saml_record(sub, SamlSlot::Active)
            .await?
            .ok_or_else(|| internal("the SAML key pair vanished after it was stored"))
    }

    /// The signer of SAML flows for a subaccount.
    pub(crate) async fn saml_signer(&self, sub: &str) -> Result<SamlSigner> {
        // While a shared database's change feed is down, another process may have rotated the
        // pair unseen: read it again.
        let coherent = self.store().coherent();
        let epoch = self.store().epoch();
        self.inner.saml_signers.sync_epoch(epoch);
        if let Some(s) = self.inner.saml_signers.get(sub).filter(|_| coherent) {
            return Ok(s);
        }
        let rec = self.active_or_new(sub).await?;
        let keys =
            TrustKeyPair::from_pem(rec.private_key_pem, rec.certificate_pem).map_err(internal)?;
        let signer = SamlSigner {
            keys: Arc::new(keys),
            issuer: self.saml_entity_id(sub),
        };
        if coherent {
            self.inner.saml_signers.put(sub, signer.clone(), epoch);
        }
        Ok(signer)
    }

    /// `GET /v1/saml2Metadata`: base64 IdP metadata with the active (and passive) certificate.
    pub async fn saml_metadata(&self, who: &Principal) -> Result<String> {
        let sub = &who.subaccount_id;
        let active = self.active_or_new(sub).await?;
        let mut certs = vec![active.certificate_pem];
        if let Some(p) = self.saml_record(sub, SamlSlot::Passive).await? {
            certs.push(p.certificate_pem);
        }
        let refs: Vec<&str> = certs.iter().map(String::as_str).collect();
        let xml = saml::idp_metadata(&self.saml_entity_id(sub), &refs);
        Ok(base64::engine::general_purpose::STANDARD.encode(xml))
    }

    /// `GET /v1/saml2Metadata/certificate[/passive]`.
    pub async fn saml_certificate(&self, who: &Principal, passive: bool) -> Result<String> {
        let slot = if passive {
            SamlSlot::Passive
        } else {
            SamlSlot::Active
        };
        self.saml_record(&who.subaccount_id, slot)
            .await?
            .map(|r| r.certificate_pem)
            .ok_or_else(|| no_pair(&who.subaccount_id, passive))
    }

    /// `POST /v1/saml2Metadata/certificate[/passive]`: generate or renew a pair.
    pub async fn renew_saml_certificate(&self, who: &Principal, passive: bool) -> Result<String> {
        let slot = if passive {
            SamlSlot::Passive
        } else {
            SamlSlot::Active
        };
        let renewed = async {
            let rec = self.new_pair(&who.subaccount_id, slot).await?;
            let cert = rec.certificate_pem.clone();
            self.store().write(vec![WriteOp::PutSamlKey(rec)]).await?;
            self.inner.saml_signers.remove(&who.subaccount_id);
            Ok(cert)
        }
        .await;
        self.audited(
            saml_entry(who, "generate").name(slot.as_str()),
            200,
            renewed,
        )
        .await
    }

    /// `DELETE /v1/saml2Metadata/certificate/passive`.
    pub async fn delete_passive_saml_certificate(&self, who: &Principal) -> Result<()> {
        let deleted = async {
            let out = self
                .store()
                .write(vec![WriteOp::DeleteSamlKey {
                    subaccount_id: who.subaccount_id.clone(),
                    slot: SamlSlot::Passive,
                }])
                .await?;
            match out.first() {
                Some(signpost_store::WriteOutcome::Deleted) => Ok(()),
                _ => Err(no_pair(&who.subaccount_id, true)),
            }
        }
        .await;
        let entry = saml_entry(who, "delete").name(SamlSlot::Passive.as_str());
        self.audited(entry, 200, deleted).await
    }

    /// `POST /v1/saml2Metadata/rotateCertificate`: the passive pair becomes active and the active
    /// one passive, in one write.
    pub async fn rotate_saml_certificates(&self, who: &Principal) -> Result<(String, String)> {
        let rotated = self.rotate_saml_pairs(who).await;
        self.audited(saml_entry(who, "rotate"), 200, rotated).await
    }

    async fn rotate_saml_pairs(&self, who: &Principal) -> Result<(String, String)> {
        let sub = &who.subaccount_id;
        let passive = self
            .saml_record(sub, SamlSlot::Passive)
            .await?
            .ok_or_else(|| no_pair(sub, true))?;
        let active = self
            .saml_record(sub, SamlSlot::Active)
            .await?
            .ok_or_else(|| no_pair(sub, false))?;
        let (new_active, new_passive) = (
            SamlKeyRecord {
                slot: SamlSlot::Active,
                ..passive
            },
            SamlKeyRecord {
                slot: SamlSlot::Passive,
                ..active
            },
        );
        let certs = (
            new_active.certificate_pem.clone(),
            new_passive.certificate_pem.clone(),
        );
        self.store()
            .write(vec![
                WriteOp::PutSamlKey(new_active),
                WriteOp::PutSamlKey(new_passive),
            ])
            .await?;
        self.inner.saml_signers.remove(sub);
        Ok(certs)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use signpost_model::{EntityKind, OwnerRef};
    use signpost_store::{
        BindingRecord, InstanceRecord, ListPage, ListQuery, MasterKey, SigningKeyRecord,
        SqliteStore, Store, StoredEntity, SubaccountRecord, SubscriptionRecord, WriteOutcome,
    };

    use super::*;
    use crate::CoreConfig;

    /// A store whose SAML key writes wait until two of them are there: two first uses that both
    /// found no pair and made one, at the same moment.
    #[derive(Debug)]
    struct Gate {
        inner: SqliteStore,
        both: tokio::sync::Barrier,
    }

    type R<T> = signpost_store::Result<T>;

    #[async_trait]
    impl Store for Gate {
        fn engine(&self) -> &'static str {
            self.inner.engine()
        }
        async fn get_subaccount(&self, id: &str) -> R<Option<SubaccountRecord>> {
            self.inner.get_subaccount(id).await
        }
        async fn get_instance(&self, id: &str) -> R<Option<InstanceRecord>> {
            self.inner.get_instance(id).await
        }
        async fn get_binding(&self, id: &str) -> R<Option<BindingRecord>> {
            self.inner.get_binding(id).await
        }
        async fn get_binding_by_client(&self, c: &str) -> R<Option<BindingRecord>> {
            self.inner.get_binding_by_client(c).await
        }
        async fn get_binding_by_certificate(&self, s: &str) -> R<Option<BindingRecord>> {
            self.inner.get_binding_by_certificate(s).await
        }
        async fn list_instances(&self) -> R<Vec<InstanceRecord>> {
            self.inner.list_instances().await
        }
        async fn list_subaccounts(&self) -> R<Vec<SubaccountRecord>> {
            self.inner.list_subaccounts().await
        }
        async fn list_bindings(&self, i: &str) -> R<Vec<BindingRecord>> {
            self.inner.list_bindings(i).await
        }
        async fn list_subscriptions(&self, i: &str) -> R<Vec<SubscriptionRecord>> {
            self.inner.list_subscriptions(i).await
        }
        async fn get_subscription(&self, i: &str, s: &str) -> R<Option<SubscriptionRecord>> {
            self.inner.get_subscription(i, s).await
        }
        async fn subaccounts_by_subdomain(&self, s: &str) -> R<Vec<SubaccountRecord>> {
            self.inner.subaccounts_by_subdomain(s).await
        }
        async fn get_entity(
            &self,
            o: &OwnerRef,
            k: EntityKind,
            n: &str,
        ) -> R<Option<StoredEntity>> {
            self.inner.get_entity(o, k, n).await
        }
        async fn list_entities(&self, o: &OwnerRef, k: EntityKind, q: &ListQuery) -> R<ListPage> {
            self.inner.list_entities(o, k, q).await
        }
        async fn page_anchors(&self, o: &OwnerRef, k: EntityKind, e: u64) -> R<Vec<String>> {
            self.inner.page_anchors(o, k, e).await
        }
        async fn write(&self, ops: Vec<WriteOp>) -> R<Vec<WriteOutcome>> {
            if ops
                .iter()
                .any(|op| matches!(op, WriteOp::PutSamlKey(_) | WriteOp::CreateSamlKey(_)))
            {
                self.both.wait().await;
            }
            self.inner.write(ops).await
        }
        async fn saml_keys(&self, s: &str) -> R<Vec<SamlKeyRecord>> {
            self.inner.saml_keys(s).await
        }
        async fn get_secret(&self, n: &str) -> R<Option<secrecy::SecretString>> {
            self.inner.get_secret(n).await
        }
        async fn all_entities(&self, k: EntityKind) -> R<Vec<StoredEntity>> {
            self.inner.all_entities(k).await
        }
        async fn try_lease(&self, n: &str, h: &str, now: i64, ttl: i64) -> R<bool> {
            self.inner.try_lease(n, h, now, ttl).await
        }
        async fn signing_keys(&self) -> R<Vec<SigningKeyRecord>> {
            self.inner.signing_keys().await
        }
        async fn insert_signing_key(&self, k: SigningKeyRecord) -> R<()> {
            self.inner.insert_signing_key(k).await
        }
        async fn delete_signing_key(&self, kid: &str) -> R<bool> {
            self.inner.delete_signing_key(kid).await
        }
        async fn record_audit(&self, events: &[signpost_store::AuditEvent]) -> R<()> {
            self.inner.record_audit(events).await
        }
        async fn audit_events(
            &self,
            query: &signpost_store::AuditQuery,
        ) -> R<Vec<signpost_store::AuditEvent>> {
            self.inner.audit_events(query).await
        }
        async fn prune_audit(&self, before_ms: i64) -> R<u64> {
            self.inner.prune_audit(before_ms).await
        }
        fn digest(&self, parts: &[&[u8]]) -> String {
            self.inner.digest(parts)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_first_uses_at_once_sign_with_the_one_stored_pair() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let inner = SqliteStore::open(&path.display().to_string(), &MasterKey::generate(), 100)
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(Gate {
            inner,
            both: tokio::sync::Barrier::new(2),
        });
        let config = CoreConfig {
            public_url: "http://127.0.0.1".into(),
            uaadomain: "127.0.0.1".into(),
            token_lifetime_secs: 100,
            oauth: Default::default(),
            cert_url: None,
            principal_cache_bytes: crate::DEFAULT_PRINCIPAL_CACHE_BYTES,
        };
        let sp = Signpost::new(store.clone(), config).await.unwrap();
        let (a, b) = tokio::join!(sp.saml_signer("sub-1"), sp.saml_signer("sub-1"));
        let (a, b) = (a.unwrap(), b.unwrap());
        let stored = store.saml_keys("sub-1").await.unwrap();
        assert_eq!(stored.len(), 1);
        let stored = &stored[0].certificate_pem;
        assert_eq!(&a.keys.certificate_pem, stored, "the first caller's pair");
        assert_eq!(&b.keys.certificate_pem, stored, "the second caller's pair");
        // The one pair that was made is one event, Signpost's own.
        let events = store
            .audit_events(&signpost_store::AuditQuery {
                since_ms: None,
                before: None,
                limit: 100,
            })
            .await
            .unwrap();
        let made: Vec<_> = events
            .iter()
            .filter(|e| e.entity_kind.as_deref() == Some("saml-key"))
            .collect();
        assert_eq!(made.len(), 1, "{events:?}");
        assert_eq!(made[0].actor, "signpost");
        assert_eq!(made[0].action, "generate");
        assert_eq!(made[0].subaccount_id.as_deref(), Some("sub-1"));
        assert_eq!(made[0].entity_name.as_deref(), Some("active"));
    }
}
