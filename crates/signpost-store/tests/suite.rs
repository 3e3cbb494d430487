//! The store contract, written once against `dyn Store` so that every engine runs it unchanged:
//! SQLite on a temp file, PostgreSQL on a throwaway cluster (or `SIGNPOST_TEST_DATABASE_URL`, see
//! `pg.rs`), with and without the read-through cache. Each behaviour is a test of its own on each
//! engine (`on_sqlite::lists_order_filter_page_and_count`, ...), on a store of its own.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use signpost_test_peers::pg;

use secrecy::{ExposeSecret, SecretString};
use signpost_model::{EntityKind, Label, LabelAction, NameFilter, OwnerRef};
use signpost_store::*;

fn instance(id: &str, sub: &str) -> InstanceRecord {
    InstanceRecord {
        id: id.into(),
        subaccount_id: sub.into(),
        service_id: "svc".into(),
        plan_id: "plan".into(),
        organization_guid: None,
        space_guid: None,
        context: "{}".into(),
        request_digest: "d1".into(),
        created_at: 0,
        updated_at: 0,
        subscriber_access: None,
    }
}

fn put(owner: &OwnerRef, name: &str, body: &str, mode: PutMode) -> WriteOp {
    WriteOp::PutEntity {
        owner: owner.clone(),
        kind: EntityKind::Destination,
        name: name.into(),
        body: body.as_bytes().to_vec(),
        mode,
    }
}

fn sub(id: &str) -> WriteOp {
    WriteOp::EnsureSubaccount(SubaccountRecord {
        id: id.into(),
        subdomain: format!("{id}-dom"),
    })
}

async fn names(store: &dyn Store, owner: &OwnerRef, q: ListQuery) -> Vec<String> {
    store
        .list_entities(owner, EntityKind::Destination, &q)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// The binding the tests store: a secret, a certificate and two scopes.
fn binding() -> BindingRecord {
    BindingRecord {
        id: "b1".into(),
        instance_id: "i1".into(),
        client_id: "client-1".into(),
        client_secret: Some(SecretString::from("s3cr3t".to_owned())),
        credential_type: "binding-secret".into(),
        request_digest: "x".into(),
        created_at: 0,
        certificate: Some("PEM".into()),
        certificate_sha256: Some("ab12".into()),
        scopes: vec!["app!b1.read".into(), "app!b1.write".into()],
    }
}

/// Subaccount `s1` with instance `i1`, where most behaviours start.
async fn tenancy(store: &dyn Store) {
    store
        .write(vec![
            sub("s1"),
            WriteOp::CreateInstance(instance("i1", "s1")),
        ])
        .await
        .unwrap();
}

/// Tenancy records; `EnsureSubaccount` keeps the first subdomain.
async fn tenancy_records_and_the_first_subdomain(store: &dyn Store) {
    // Tenancy records.
    store
        .write(vec![
            sub("s1"),
            WriteOp::CreateInstance(instance("i1", "s1")),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get_subaccount("s1").await.unwrap().unwrap().subdomain,
        "s1-dom"
    );
    assert_eq!(
        store
            .get_instance("i1")
            .await
            .unwrap()
            .unwrap()
            .subaccount_id,
        "s1"
    );
    let err = store
        .write(vec![WriteOp::CreateInstance(instance("i1", "s1"))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { index: 0, .. }));
    // EnsureSubaccount keeps the first subdomain.
    store
        .write(vec![WriteOp::EnsureSubaccount(SubaccountRecord {
            id: "s1".into(),
            subdomain: "other".into(),
        })])
        .await
        .unwrap();
    assert_eq!(
        store.get_subaccount("s1").await.unwrap().unwrap().subdomain,
        "s1-dom"
    );
}

/// Bindings: the secret round-trips; client ids are unique.
async fn bindings_keep_their_secret_and_unique_client_ids(store: &dyn Store) {
    tenancy(store).await;
    // Bindings: the secret round-trips; client ids are unique.
    let binding = binding();
    store
        .write(vec![WriteOp::CreateBinding(binding.clone())])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_binding_by_certificate("ab12")
            .await
            .unwrap()
            .unwrap()
            .id,
        "b1"
    );
    assert!(store
        .get_binding_by_certificate("ff")
        .await
        .unwrap()
        .is_none());
    let got = store
        .get_binding_by_client("client-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.client_secret.unwrap().expose_secret(), "s3cr3t");
    assert_eq!(got.scopes, ["app!b1.read", "app!b1.write"]);
    let mut dup = binding.clone();
    dup.id = "b2".into();
    assert!(matches!(
        store
            .write(vec![WriteOp::CreateBinding(dup)])
            .await
            .unwrap_err(),
        Error::Conflict { .. }
    ));
    assert_eq!(store.list_bindings("i1").await.unwrap().len(), 1);
}

/// Entities: the write modes; the same name at the other level or as another kind is another entity.
async fn entity_write_modes_levels_and_kinds(store: &dyn Store) {
    tenancy(store).await;
    let sa = OwnerRef::subaccount("s1");
    let inst = OwnerRef::instance("i1");
    // Entities: modes.
    let out = store
        .write(vec![put(&sa, "a", "{\"v\":1}", PutMode::Create)])
        .await
        .unwrap();
    let WriteOutcome::Created { etag: Some(etag1) } = &out[0] else {
        panic!("{out:?}")
    };
    assert!(matches!(
        store
            .write(vec![put(&sa, "a", "{}", PutMode::Create)])
            .await
            .unwrap_err(),
        Error::Conflict { .. }
    ));
    assert_eq!(
        store
            .write(vec![put(&sa, "a", "{\"v\":2}", PutMode::CreateIfAbsent)])
            .await
            .unwrap()[0],
        WriteOutcome::Unchanged
    );
    assert_eq!(
        store
            .get_entity(&sa, EntityKind::Destination, "a")
            .await
            .unwrap()
            .unwrap()
            .body,
        b"{\"v\":1}"
    );
    assert!(matches!(
        store
            .write(vec![put(&sa, "zz", "{}", PutMode::Replace)])
            .await
            .unwrap_err(),
        Error::NotFound { .. }
    ));
    let out = store
        .write(vec![put(&sa, "a", "{\"v\":3}", PutMode::Upsert)])
        .await
        .unwrap();
    let WriteOutcome::Updated { etag: Some(etag3) } = &out[0] else {
        panic!("{out:?}")
    };
    assert_ne!(etag1, etag3);
    let e = store
        .get_entity(&sa, EntityKind::Destination, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.body.as_slice(), e.etag.as_str()),
        (&b"{\"v\":3}"[..], etag3.as_str())
    );
    // The same name at the other level and as another kind is another entity.
    store
        .write(vec![put(&inst, "a", "{\"i\":1}", PutMode::Create)])
        .await
        .unwrap();
    assert!(store
        .get_entity(&sa, EntityKind::Fragment, "a")
        .await
        .unwrap()
        .is_none());
}

/// Atomic batches: a failure at the end undoes the beginning.
async fn a_failing_batch_undoes_its_beginning(store: &dyn Store) {
    tenancy(store).await;
    let sa = OwnerRef::subaccount("s1");
    let inst = OwnerRef::instance("i1");
    store
        .write(vec![put(&sa, "a", "{\"v\":3}", PutMode::Create)])
        .await
        .unwrap();
    // Atomic batches: a failure at the end undoes the beginning.
    let err = store
        .write(vec![
            put(&sa, "b", "{}", PutMode::Create),
            put(&inst, "c", "{}", PutMode::Create),
            put(&sa, "a", "{}", PutMode::Create),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { index: 2, .. }));
    assert!(store
        .get_entity(&sa, EntityKind::Destination, "b")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_entity(&inst, EntityKind::Destination, "c")
        .await
        .unwrap()
        .is_none());
}

/// Lists: order, filters, paging, counts.
async fn lists_order_filter_page_and_count(store: &dyn Store) {
    tenancy(store).await;
    let sa = OwnerRef::subaccount("s1");
    store
        .write(vec![put(&sa, "a", "{\"v\":3}", PutMode::Create)])
        .await
        .unwrap();
    // Lists: order, filters, paging, counts.
    let batch = ["b", "ab", "abc", "xb", "c"]
        .iter()
        .map(|n| put(&sa, n, "{}", PutMode::Create))
        .collect();
    store.write(batch).await.unwrap();
    assert_eq!(
        names(store, &sa, ListQuery::default()).await,
        ["a", "ab", "abc", "b", "c", "xb"]
    );
    let q = |filter| ListQuery {
        filter,
        ..Default::default()
    };
    assert_eq!(
        names(store, &sa, q(NameFilter::StartsWith("ab".into()))).await,
        ["ab", "abc"]
    );
    assert_eq!(
        names(store, &sa, q(NameFilter::EndsWith("b".into()))).await,
        ["ab", "b", "xb"]
    );
    assert_eq!(
        names(
            store,
            &sa,
            q(NameFilter::In(vec!["c".into(), "nope".into(), "a".into()]))
        )
        .await,
        ["a", "c"]
    );
    assert_eq!(
        names(store, &sa, q(NameFilter::StartsWith("%".into()))).await,
        Vec::<String>::new()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(
        names(
            store,
            &sa,
            q(NameFilter::ModifiedWithin {
                minutes: 1,
                now_ms: now
            })
        )
        .await
        .len(),
        6
    );
    assert_eq!(
        names(
            store,
            &sa,
            q(NameFilter::ModifiedWithin {
                minutes: 1,
                now_ms: now + 3_600_000
            })
        )
        .await
        .len(),
        0
    );
    let page = store
        .list_entities(
            &sa,
            EntityKind::Destination,
            &ListQuery {
                offset: 2,
                limit: Some(3),
                count_total: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(6));
    assert_eq!(
        page.items
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["abc", "b", "c"]
    );
}

/// Deletes: deleted or missing, in one batch.
async fn deletes_say_what_they_deleted(store: &dyn Store) {
    tenancy(store).await;
    let sa = OwnerRef::subaccount("s1");
    store
        .write(vec![put(&sa, "c", "{}", PutMode::Create)])
        .await
        .unwrap();
    // Deletes.
    let out = store
        .write(vec![
            WriteOp::DeleteEntity {
                owner: sa.clone(),
                kind: EntityKind::Destination,
                name: "c".into(),
            },
            WriteOp::DeleteEntity {
                owner: sa.clone(),
                kind: EntityKind::Destination,
                name: "nope".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(out, [WriteOutcome::Deleted, WriteOutcome::Missing]);
}

fn label(key: &str, values: &[&str]) -> Label {
    Label {
        key: key.into(),
        values: values.iter().map(|v| (*v).into()).collect(),
    }
}

async fn labels_of(store: &dyn Store, owner: &OwnerRef, name: &str) -> Option<Vec<Label>> {
    store
        .get_entity(owner, EntityKind::Destination, name)
        .await
        .unwrap()
        .map(|e| e.labels)
}

/// Labels: set and patched without touching the body or the ETag, kept by updates of the body,
/// filtered on in lists (every clause, any value), refused past a limit with nothing changed,
/// and gone with their entity.
async fn labels_live_with_their_entity(store: &dyn Store) {
    tenancy(store).await;
    let sa = OwnerRef::subaccount("s1");
    store
        .write(vec![
            put(&sa, "a", r#"{"v":1}"#, PutMode::Create),
            put(&sa, "b", "{}", PutMode::Create),
            put(&sa, "c", "{}", PutMode::Create),
        ])
        .await
        .unwrap();
    let etag = store
        .get_entity(&sa, EntityKind::Destination, "a")
        .await
        .unwrap()
        .unwrap()
        .etag;
    assert_eq!(labels_of(store, &sa, "a").await.unwrap(), vec![]);
    let set = |name: &str, labels: Vec<Label>| WriteOp::SetLabels {
        owner: sa.clone(),
        kind: EntityKind::Destination,
        name: name.into(),
        labels,
    };
    let patch = |name: &str, action: LabelAction, labels: Vec<Label>| WriteOp::PatchLabels {
        owner: sa.clone(),
        kind: EntityKind::Destination,
        name: name.into(),
        action,
        labels,
    };
    store
        .write(vec![
            set(
                "a",
                vec![label("env", &["prod", "eu"]), label("team", &["x"])],
            ),
            set("b", vec![label("env", &["dev"])]),
        ])
        .await
        .unwrap();
    let a = store
        .get_entity(&sa, EntityKind::Destination, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.etag, etag);
    assert_eq!(a.body, br#"{"v":1}"#);
    assert_eq!(
        a.labels,
        vec![label("env", &["prod", "eu"]), label("team", &["x"])]
    );
    // An update of the body keeps the labels.
    store
        .write(vec![put(&sa, "a", r#"{"v":2}"#, PutMode::Replace)])
        .await
        .unwrap();
    assert_eq!(labels_of(store, &sa, "a").await.unwrap().len(), 2);
    // Patches.
    store
        .write(vec![
            patch("a", LabelAction::Add, vec![label("env", &["us"])]),
            patch("b", LabelAction::Delete, vec![label("env", &["dev"])]),
            patch("c", LabelAction::Add, vec![label("env", &["dev"])]),
        ])
        .await
        .unwrap();
    assert_eq!(
        labels_of(store, &sa, "a").await.unwrap(),
        vec![label("env", &["prod", "eu", "us"]), label("team", &["x"])]
    );
    assert_eq!(labels_of(store, &sa, "b").await.unwrap(), vec![]);
    // Lists by label, alone and with a name filter, and counted.
    let by = |labels: Vec<Label>| ListQuery {
        labels,
        ..Default::default()
    };
    assert_eq!(
        names(store, &sa, by(vec![label("env", &["dev", "us"])])).await,
        ["a", "c"]
    );
    assert_eq!(
        names(
            store,
            &sa,
            by(vec![label("env", &["prod"]), label("team", &["x"])])
        )
        .await,
        ["a"]
    );
    assert!(names(store, &sa, by(vec![label("team", &["y"])]))
        .await
        .is_empty());
    let q = ListQuery {
        filter: NameFilter::In(vec!["c".into(), "b".into()]),
        count_total: true,
        ..by(vec![label("env", &["dev"])])
    };
    let page = store
        .list_entities(&sa, EntityKind::Destination, &q)
        .await
        .unwrap();
    assert_eq!(page.total, Some(1));
    assert_eq!(page.items[0].name, "c");
    let window = ListQuery {
        offset: 1,
        limit: Some(1),
        ..by(vec![label("env", &["dev", "us"])])
    };
    assert_eq!(names(store, &sa, window).await, ["c"]);
    // A patch past a limit, or of a missing entity, changes nothing in its batch.
    let eleven: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    let many = Label {
        key: "env".into(),
        values: eleven,
    };
    let err = store
        .write(vec![
            set("c", vec![]),
            patch("a", LabelAction::Add, vec![many]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref m) if m.contains("at most 10")),
        "{err}"
    );
    assert_eq!(
        labels_of(store, &sa, "c").await.unwrap(),
        vec![label("env", &["dev"])]
    );
    for op in [
        set("nope", vec![label("k", &[])]),
        patch("nope", LabelAction::Add, vec![label("k", &[])]),
    ] {
        let err = store.write(vec![op]).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { ref name, .. } if name == "nope"));
    }
    // Deleted with the entity: a new one of the same name starts without labels.
    store
        .write(vec![WriteOp::DeleteEntity {
            owner: sa.clone(),
            kind: EntityKind::Destination,
            name: "a".into(),
        }])
        .await
        .unwrap();
    assert!(labels_of(store, &sa, "a").await.is_none());
    store
        .write(vec![put(&sa, "a", "{}", PutMode::Create)])
        .await
        .unwrap();
    assert_eq!(labels_of(store, &sa, "a").await.unwrap(), vec![]);
    // Carried by all_entities (what copies between engines read).
    let all = store.all_entities(EntityKind::Destination).await.unwrap();
    let c = all.iter().find(|e| e.name == "c").unwrap();
    assert_eq!(c.labels, vec![label("env", &["dev"])]);
}

/// Deleting an instance removes its bindings and instance-level entities, not the subaccount's.
async fn deleting_an_instance_takes_its_bindings_and_entities(store: &dyn Store) {
    tenancy(store).await;
    let sa = OwnerRef::subaccount("s1");
    let inst = OwnerRef::instance("i1");
    store
        .write(vec![
            WriteOp::CreateBinding(binding()),
            put(&sa, "a", "{}", PutMode::Create),
            put(&inst, "a", "{}", PutMode::Create),
        ])
        .await
        .unwrap();
    // Deleting an instance removes its bindings and instance-level entities, not the subaccount's.
    assert_eq!(
        store
            .write(vec![WriteOp::DeleteInstance { id: "i1".into() }])
            .await
            .unwrap()[0],
        WriteOutcome::Deleted
    );
    assert!(store.get_instance("i1").await.unwrap().is_none());
    assert!(store.get_binding("b1").await.unwrap().is_none());
    assert!(store
        .get_entity(&inst, EntityKind::Destination, "a")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_entity(&sa, EntityKind::Destination, "a")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .write(vec![WriteOp::DeleteInstance { id: "i1".into() }])
            .await
            .unwrap()[0],
        WriteOutcome::Missing
    );
}

/// Signing keys round-trip and are deleted one by one (rotation prunes them).
async fn signing_keys_round_trip_and_are_deleted_one_by_one(store: &dyn Store) {
    // Signing keys round-trip.
    store
        .insert_signing_key(SigningKeyRecord {
            kid: "k1".into(),
            private_key_pem: SecretString::from("PEM".to_owned()),
            public_jwk: "{}".into(),
            created_at: 1,
        })
        .await
        .unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].private_key_pem.expose_secret(), "PEM");
    // ... and are deleted one by one (rotation prunes them).
    store
        .insert_signing_key(SigningKeyRecord {
            kid: "k0".into(),
            private_key_pem: SecretString::from("PEM0".to_owned()),
            public_jwk: "{}".into(),
            created_at: 0,
        })
        .await
        .unwrap();
    let kids = |keys: Vec<SigningKeyRecord>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(kids(store.signing_keys().await.unwrap()), ["k0", "k1"]);
    assert!(store.delete_signing_key("k0").await.unwrap());
    assert!(!store.delete_signing_key("k0").await.unwrap());
    assert_eq!(kids(store.signing_keys().await.unwrap()), ["k1"]);
}

/// SAML key pairs: slots, replacement, rotation in one batch, deletion, create-if-absent.
async fn saml_key_slots_rotation_and_create_if_absent(store: &dyn Store) {
    tenancy(store).await;
    // SAML key pairs: slots, replacement, rotation in one batch, deletion.
    let saml = |slot, pem: &str, cert: &str| SamlKeyRecord {
        subaccount_id: "s1".into(),
        slot,
        private_key_pem: SecretString::from(pem.to_owned()),
        certificate_pem: cert.into(),
        created_at: 0,
    };
    assert!(store.saml_keys("s1").await.unwrap().is_empty());
    store
        .write(vec![WriteOp::PutSamlKey(saml(
            SamlSlot::Active,
            "k-a",
            "c-a",
        ))])
        .await
        .unwrap();
    store
        .write(vec![WriteOp::PutSamlKey(saml(
            SamlSlot::Passive,
            "k-p",
            "c-p",
        ))])
        .await
        .unwrap();
    store
        .write(vec![
            WriteOp::PutSamlKey(saml(SamlSlot::Active, "k-p", "c-p")),
            WriteOp::PutSamlKey(saml(SamlSlot::Passive, "k-a", "c-a")),
        ])
        .await
        .unwrap();
    let keys = store.saml_keys("s1").await.unwrap();
    let active = keys.iter().find(|k| k.slot == SamlSlot::Active).unwrap();
    assert_eq!(
        (
            active.private_key_pem.expose_secret(),
            active.certificate_pem.as_str()
        ),
        ("k-p", "c-p")
    );
    assert!(store.saml_keys("other").await.unwrap().is_empty());
    let out = store
        .write(vec![WriteOp::DeleteSamlKey {
            subaccount_id: "s1".into(),
            slot: SamlSlot::Passive,
        }])
        .await
        .unwrap();
    assert_eq!(out, [WriteOutcome::Deleted]);
    assert_eq!(store.saml_keys("s1").await.unwrap().len(), 1);
    // Create-if-absent: an occupied slot keeps its pair, an empty one takes the new pair.
    assert_eq!(
        store
            .write(vec![WriteOp::CreateSamlKey(saml(
                SamlSlot::Active,
                "k-late",
                "c-late"
            ))])
            .await
            .unwrap(),
        [WriteOutcome::Unchanged]
    );
    assert_eq!(
        store
            .write(vec![WriteOp::CreateSamlKey(saml(
                SamlSlot::Passive,
                "k-new",
                "c-new"
            ))])
            .await
            .unwrap(),
        [WriteOutcome::Created { etag: None }]
    );
    let keys = store.saml_keys("s1").await.unwrap();
    let cert = |slot| {
        keys.iter()
            .find(|k| k.slot == slot)
            .map(|k| k.certificate_pem.clone())
    };
    assert_eq!(
        (cert(SamlSlot::Active), cert(SamlSlot::Passive)),
        (Some("c-p".into()), Some("c-new".into()))
    );
    store
        .write(vec![WriteOp::DeleteSamlKey {
            subaccount_id: "s1".into(),
            slot: SamlSlot::Passive,
        }])
        .await
        .unwrap();
}

/// Named secrets: `if_absent` keeps the first; values round-trip.
async fn named_secrets_keep_the_first_if_absent(store: &dyn Store) {
    // Named secrets: if_absent keeps the first; values round-trip.
    assert!(store.get_secret("ca").await.unwrap().is_none());
    let put_secret = |v: &str, if_absent| WriteOp::PutSecret {
        name: "ca".into(),
        value: SecretString::from(v.to_owned()),
        if_absent,
    };
    store.write(vec![put_secret("first", true)]).await.unwrap();
    assert_eq!(
        store.write(vec![put_secret("second", true)]).await.unwrap(),
        [WriteOutcome::Unchanged]
    );
    assert_eq!(
        store
            .get_secret("ca")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "first"
    );
    store.write(vec![put_secret("third", false)]).await.unwrap();
    assert_eq!(
        store
            .get_secret("ca")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "third"
    );
}

/// Entities of one kind across owners.
async fn entities_of_one_kind_across_owners(store: &dyn Store) {
    tenancy(store).await;
    let sa = OwnerRef::subaccount("s1");
    let inst = OwnerRef::instance("i1");
    store
        .write(vec![
            put(&sa, "a", "{}", PutMode::Create),
            put(&inst, "b", "{}", PutMode::Create),
            WriteOp::PutEntity {
                owner: sa.clone(),
                kind: EntityKind::Fragment,
                name: "f".into(),
                body: b"{}".to_vec(),
                mode: PutMode::Create,
            },
        ])
        .await
        .unwrap();
    // Entities of one kind across owners.
    let all = store.all_entities(EntityKind::Destination).await.unwrap();
    assert!(all.iter().any(|e| e.owner == sa && e.name == "a"));
    assert!(all.iter().all(|e| e.kind == EntityKind::Destination));

    assert!(all.iter().any(|e| e.owner == inst && e.name == "b"));
    assert_eq!(all.len(), 2);
}

/// A precondition (If-Match): the writes after it happen only while the entity's ETag is one of those expected; otherwise nothing of the batch does.
async fn preconditions_guard_the_whole_batch(store: &dyn Store) {
    tenancy(store).await;
    let sa = OwnerRef::subaccount("s1");
    store
        .write(vec![put(&sa, "a", "{\"v\":3}", PutMode::Create)])
        .await
        .unwrap();
    // A precondition (If-Match): the writes after it happen only while the entity's ETag is
    // one of those expected; otherwise nothing of the batch does.
    let expect = |name: &str, etags: Vec<String>| WriteOp::ExpectEntity {
        owner: sa.clone(),
        kind: EntityKind::Destination,
        name: name.into(),
        etags,
    };
    let before = store
        .get_entity(&sa, EntityKind::Destination, "a")
        .await
        .unwrap()
        .unwrap();
    let err = store
        .write(vec![
            expect("a", vec!["stale".into()]),
            put(&sa, "a", r#"{"v":"lost"}"#, PutMode::Replace),
        ])
        .await
        .unwrap_err();
    match err {
        Error::Precondition { index, current, .. } => {
            assert_eq!(index, 0);
            assert_eq!(current.as_deref(), Some(before.etag.as_str()));
        }
        other => panic!("{other:?}"),
    }
    let after = store
        .get_entity(&sa, EntityKind::Destination, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.body, before.body, "nothing of the batch was written");
    let out = store
        .write(vec![
            expect("a", vec!["x".into(), before.etag.clone()]),
            put(
                &sa,
                "a",
                &String::from_utf8(before.body.clone()).unwrap(),
                PutMode::Replace,
            ),
        ])
        .await
        .unwrap();
    assert!(matches!(out[0], WriteOutcome::Checked), "{out:?}");
    match store
        .write(vec![expect("ghost", vec![before.etag.clone()])])
        .await
    {
        Err(Error::Precondition { current: None, .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// Leases: one holder at a time until expiry; the holder may extend.
async fn leases_have_one_holder_until_they_expire(store: &dyn Store) {
    // Leases: one holder at a time until expiry; the holder may extend.
    assert!(store.try_lease("renewal", "p1", 1_000, 100).await.unwrap());
    assert!(!store.try_lease("renewal", "p2", 1_050, 100).await.unwrap());
    assert!(store.try_lease("renewal", "p1", 1_050, 100).await.unwrap());
    assert!(!store.try_lease("renewal", "p2", 1_149, 100).await.unwrap());
    assert!(store.try_lease("renewal", "p2", 1_151, 100).await.unwrap());
}

/// Digests are keyed and deterministic.
async fn digests_are_keyed_and_deterministic(store: &dyn Store) {
    // Digests are keyed and deterministic.
    assert_eq!(store.digest(&[b"a", b"b"]), store.digest(&[b"a", b"b"]));
    assert_ne!(store.digest(&[b"ab"]), store.digest(&[b"a", b"b"]));
}

async fn subscription_entities(store: &dyn Store, owner: &OwnerRef) -> Vec<String> {
    names(store, owner, ListQuery::default()).await
}

/// Subscriptions and the subscription level (`OwnerRef::subscription`): made and ended all or
/// nothing, and gone with their instance, without touching another instance's.
async fn subscription_suite(store: &dyn Store) {
    let subscription = |i: &str, s: &str| {
        WriteOp::Subscribe(SubscriptionRecord {
            instance_id: i.into(),
            subaccount_id: s.into(),
            created_at: 0,
        })
    };
    store
        .write(vec![
            sub("prov"),
            sub("cust"),
            sub("cust2"),
            WriteOp::CreateInstance(instance("si", "prov")),
            WriteOp::CreateInstance(instance("s", "prov")),
        ])
        .await
        .unwrap();
    let out = store.write(vec![subscription("si", "cust")]).await.unwrap();
    assert!(matches!(out[0], WriteOutcome::Created { .. }), "{out:?}");
    let out = store.write(vec![subscription("si", "cust")]).await.unwrap();
    assert_eq!(out, vec![WriteOutcome::Unchanged]);
    for (i, s) in [("si", "nobody"), ("missing", "cust")] {
        assert!(
            matches!(
                store.write(vec![subscription(i, s)]).await,
                Err(Error::NotFound { .. })
            ),
            "{i}/{s}"
        );
    }
    store
        .write(vec![subscription("si", "cust2"), subscription("s", "cust")])
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list_subscriptions("si")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.subaccount_id)
        .collect();
    assert_eq!(listed, ["cust", "cust2"]);
    assert!(store
        .get_subscription("si", "cust")
        .await
        .unwrap()
        .is_some());
    assert!(store
        .get_subscription("si", "prov")
        .await
        .unwrap()
        .is_none());

    // Subdomains.
    let found = store.subaccounts_by_subdomain("cust-dom").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "cust");
    store
        .write(vec![WriteOp::SetSubdomain {
            subaccount_id: "cust".into(),
            subdomain: "renamed".into(),
        }])
        .await
        .unwrap();
    assert!(store
        .subaccounts_by_subdomain("cust-dom")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .get_subaccount("cust")
            .await
            .unwrap()
            .unwrap()
            .subdomain,
        "renamed"
    );
    assert!(matches!(
        store
            .write(vec![WriteOp::SetSubdomain {
                subaccount_id: "ghost".into(),
                subdomain: "x".into(),
            }])
            .await,
        Err(Error::NotFound { .. })
    ));

    // The subscription levels, the instance level and another instance's subscription level.
    let si_cust = OwnerRef::subscription("si", "cust");
    let si_cust2 = OwnerRef::subscription("si", "cust2");
    let s_cust = OwnerRef::subscription("s", "cust");
    let si = OwnerRef::instance("si");
    store
        .write(vec![
            put(&si_cust, "a", "{}", PutMode::Create),
            put(&si_cust, "b", "{}", PutMode::Create),
            put(&si_cust2, "a", "{}", PutMode::Create),
            put(&s_cust, "a", "{}", PutMode::Create),
            put(&si, "i", "{}", PutMode::Create),
        ])
        .await
        .unwrap();
    assert_eq!(subscription_entities(store, &si_cust).await, ["a", "b"]);

    // Ending a subscription inside a batch that fails changes nothing.
    let failed = store
        .write(vec![
            WriteOp::Unsubscribe {
                instance_id: "si".into(),
                subaccount_id: "cust".into(),
            },
            put(&si_cust2, "a", "{}", PutMode::Create),
        ])
        .await;
    assert!(matches!(failed, Err(Error::Conflict { .. })), "{failed:?}");
    assert!(store
        .get_subscription("si", "cust")
        .await
        .unwrap()
        .is_some());
    assert_eq!(subscription_entities(store, &si_cust).await, ["a", "b"]);

    // Ended: its entities go, nobody else's.
    let out = store
        .write(vec![WriteOp::Unsubscribe {
            instance_id: "si".into(),
            subaccount_id: "cust".into(),
        }])
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Deleted]);
    assert!(subscription_entities(store, &si_cust).await.is_empty());
    assert!(store
        .get_entity(&si_cust, EntityKind::Destination, "a")
        .await
        .unwrap()
        .is_none());
    assert_eq!(subscription_entities(store, &si_cust2).await, ["a"]);
    assert_eq!(subscription_entities(store, &s_cust).await, ["a"]);
    assert!(matches!(
        store
            .write(vec![WriteOp::Unsubscribe {
                instance_id: "si".into(),
                subaccount_id: "cust".into(),
            }])
            .await,
        Err(Error::NotFound { .. })
    ));
    // A new subscription starts empty.
    store.write(vec![subscription("si", "cust")]).await.unwrap();
    assert!(subscription_entities(store, &si_cust).await.is_empty());

    // Deprovisioning takes the subscriptions and subscription levels with it; "s" keeps its own.
    store
        .write(vec![WriteOp::DeleteInstance { id: "si".into() }])
        .await
        .unwrap();
    assert!(store.list_subscriptions("si").await.unwrap().is_empty());
    assert!(subscription_entities(store, &si_cust2).await.is_empty());
    assert!(subscription_entities(store, &si).await.is_empty());
    assert_eq!(subscription_entities(store, &s_cust).await, ["a"]);
    assert_eq!(store.list_subscriptions("s").await.unwrap().len(), 1);
}

async fn limit_suite(store: &dyn Store) {
    let owner = OwnerRef::instance("lim");
    store
        .write(vec![
            put(&owner, "a", "{}", PutMode::Create),
            put(&owner, "b", "{}", PutMode::Create),
        ])
        .await
        .unwrap();
    let err = store
        .write(vec![put(&owner, "c", "{}", PutMode::Create)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { limit: 2, .. }));
    // Replacing does not count against the limit.
    store
        .write(vec![put(&owner, "a", "{\"x\":1}", PutMode::Upsert)])
        .await
        .unwrap();
    assert_eq!(names(store, &owner, ListQuery::default()).await, ["a", "b"]);
    // A deletion makes room again; the failed create above left no count behind.
    store
        .write(vec![WriteOp::DeleteEntity {
            owner: owner.clone(),
            kind: EntityKind::Destination,
            name: "b".into(),
        }])
        .await
        .unwrap();
    store
        .write(vec![put(&owner, "c", "{}", PutMode::Create)])
        .await
        .unwrap();
    let err = store
        .write(vec![put(&owner, "d", "{}", PutMode::CreateIfAbsent)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { limit: 2, .. }));
}

/// One page of `size` from `offset` with the total, as the API asks for it.
async fn page(store: &dyn Store, owner: &OwnerRef, offset: u64, size: u64) -> (Vec<String>, u64) {
    let page = store
        .list_entities(
            owner,
            EntityKind::Destination,
            &ListQuery {
                offset,
                limit: Some(size),
                count_total: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (
        page.items.into_iter().map(|e| e.name).collect(),
        page.total.unwrap(),
    )
}

/// Every page of ten at offsets around the anchors matches `all`.
async fn check_pages(store: &dyn Store, owner: &OwnerRef, all: &[String]) {
    for offset in [
        0u64, 10, 255, 256, 257, 300, 511, 512, 690, 699, 700, 900, 5000,
    ] {
        let (got, total) = page(store, owner, offset, 10).await;
        let start = usize::try_from(offset).unwrap().min(all.len());
        let end = (start + 10).min(all.len());
        assert_eq!(got, all[start..end], "offset {offset}");
        assert_eq!(total, all.len() as u64);
    }
}

/// Pages anywhere in a collection (behind a cache they are read from anchors), kept counts, and
/// pages that follow writes.
async fn paging_suite(store: &dyn Store) {
    let owner = OwnerRef::subaccount("pages");
    let mut all: Vec<String> = (0..700).map(|i| format!("p{i:04}")).collect();
    store
        .write(
            all.iter()
                .map(|n| put(&owner, n, "{}", PutMode::Create))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .page_anchors(&owner, EntityKind::Destination, 256)
            .await
            .unwrap(),
        ["p0000", "p0256", "p0512"]
    );
    let from = ListQuery {
        from: Some("p0256".into()),
        offset: 3,
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(names(store, &owner, from).await, ["p0259", "p0260"]);
    check_pages(store, &owner, &all).await;
    // Writes before and inside deep pages move them; the counts follow.
    store
        .write(vec![
            put(&owner, "p0100a", "{}", PutMode::Create),
            put(&owner, "p0001", "{\"v\":2}", PutMode::Upsert),
            WriteOp::DeleteEntity {
                owner: owner.clone(),
                kind: EntityKind::Destination,
                name: "p0300".into(),
            },
            WriteOp::DeleteEntity {
                owner: owner.clone(),
                kind: EntityKind::Destination,
                name: "absent".into(),
            },
        ])
        .await
        .unwrap();
    all.push("p0100a".into());
    all.retain(|n| n != "p0300");
    all.sort();
    check_pages(store, &owner, &all).await;
    // A deleted instance takes its count with it.
    store.write(vec![sub("pages-sub")]).await.unwrap();
    let inst = OwnerRef::instance("pages-i");
    store
        .write(vec![
            WriteOp::CreateInstance(instance("pages-i", "pages-sub")),
            put(&inst, "x", "{}", PutMode::Create),
            put(&inst, "y", "{}", PutMode::Create),
        ])
        .await
        .unwrap();
    assert_eq!(page(store, &inst, 0, 10).await.1, 2);
    store
        .write(vec![WriteOp::DeleteInstance {
            id: "pages-i".into(),
        }])
        .await
        .unwrap();
    store
        .write(vec![WriteOp::CreateInstance(instance(
            "pages-i",
            "pages-sub",
        ))])
        .await
        .unwrap();
    assert_eq!(page(store, &inst, 0, 10).await, (vec![], 0));
}

fn audit(at_ms: i64, action: &str, status: u16) -> AuditEvent {
    AuditEvent {
        id: 0,
        at_ms,
        actor: "client-1".into(),
        subaccount_id: Some("s1".into()),
        instance_id: None,
        action: action.into(),
        entity_kind: Some("destination".into()),
        entity_name: Some(format!("d-{at_ms}")),
        status,
        request_id: Some(format!("rid-{at_ms}")),
    }
}

/// The audit log: recorded as given, read newest first (time, then order of recording) with a
/// `since` bound and a `before` cursor, pruned by time.
/// Find destination's read: the first owner that has the name, across levels, in one read; a
/// cached "absent" on the first level is dropped when the name is created there.
async fn find_takes_the_first_owner_that_has_the_name(store: &dyn Store) {
    let inst = OwnerRef::instance("find-i");
    let sub = OwnerRef::subaccount("find-s");
    let levels = [inst.clone(), sub.clone()];
    let find = |name: &'static str| {
        let levels = levels.clone();
        async move {
            store
                .find_entity(&levels, EntityKind::Destination, name)
                .await
                .unwrap()
                .map(|e| (e.owner, e.body))
        }
    };
    store
        .write(vec![
            put(&sub, "both", "{\"at\":\"sub\"}", PutMode::Create),
            put(&inst, "both", "{\"at\":\"inst\"}", PutMode::Create),
            put(&sub, "sub-only", "{\"at\":\"sub\"}", PutMode::Create),
            put(&inst, "inst-only", "{\"at\":\"inst\"}", PutMode::Create),
        ])
        .await
        .unwrap();
    for _ in 0..2 {
        // The second round is answered from a cache where there is one.
        assert_eq!(
            find("both").await,
            Some((inst.clone(), b"{\"at\":\"inst\"}".to_vec()))
        );
        assert_eq!(
            find("sub-only").await,
            Some((sub.clone(), b"{\"at\":\"sub\"}".to_vec()))
        );
        assert_eq!(
            find("inst-only").await,
            Some((inst.clone(), b"{\"at\":\"inst\"}".to_vec()))
        );
        assert_eq!(find("nowhere").await, None);
    }
    // Another kind of the same name is not found.
    assert!(store
        .find_entity(&levels, EntityKind::Fragment, "both")
        .await
        .unwrap()
        .is_none());
    // Created on the first level after it was found absent there: that one now.
    store
        .write(vec![put(
            &inst,
            "sub-only",
            "{\"at\":\"new\"}",
            PutMode::Create,
        )])
        .await
        .unwrap();
    assert_eq!(
        find("sub-only").await,
        Some((inst.clone(), b"{\"at\":\"new\"}".to_vec()))
    );
    // Deleted there again: the other level's.
    store
        .write(vec![WriteOp::DeleteEntity {
            owner: inst.clone(),
            kind: EntityKind::Destination,
            name: "sub-only".into(),
        }])
        .await
        .unwrap();
    assert_eq!(
        find("sub-only").await,
        Some((sub.clone(), b"{\"at\":\"sub\"}".to_vec()))
    );
    assert_eq!(
        store
            .find_entity(
                std::slice::from_ref(&sub),
                EntityKind::Destination,
                "inst-only"
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_entity(&[], EntityKind::Destination, "both")
            .await
            .unwrap(),
        None
    );
}

/// The number of destinations `owner` holds, as a counted list says.
async fn total(store: &dyn Store, owner: &OwnerRef) -> Option<u64> {
    let q = ListQuery {
        count_total: true,
        ..Default::default()
    };
    store
        .list_entities(owner, EntityKind::Destination, &q)
        .await
        .unwrap()
        .total
}

/// Runs of creations go to the database many rows a statement: the outcomes, conflicts (the
/// first one's index), duplicates within a batch, the entity limit and the audit rows are those
/// of one write at a time, across several statements of a batch. (The stores hold at most 1000.)
async fn bulk_creations_answer_as_one_at_a_time(store: &dyn Store) {
    let owner = OwnerRef::subaccount("bulk");
    let name = |i: usize| format!("b-{i:04}");
    let creates = |range: std::ops::Range<usize>, mode| -> Vec<WriteOp> {
        range
            .map(|i| put(&owner, &name(i), &format!("{{\"i\":{i}}}"), mode))
            .collect()
    };
    let outcomes = store.write(creates(0..250, PutMode::Create)).await.unwrap();
    assert_eq!(outcomes.len(), 250);
    for (i, o) in outcomes.iter().enumerate() {
        let stored = store
            .get_entity(&owner, EntityKind::Destination, &name(i))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.body, format!("{{\"i\":{i}}}").as_bytes());
        assert_eq!(
            o,
            &WriteOutcome::Created {
                etag: Some(stored.etag)
            },
            "item {i}"
        );
    }
    assert_eq!(total(store, &owner).await, Some(250));

    // An existing name in the third statement: a conflict naming it, and nothing written.
    let mut batch = creates(300..550, PutMode::Create);
    batch[230] = put(&owner, &name(10), "{}", PutMode::Create);
    let err = store.write(batch).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { index: 230, name: n, .. } if *n == name(10)),
        "{err:?}"
    );
    // A name given twice in one batch: the second is the conflict.
    let mut batch = creates(300..320, PutMode::Create);
    batch[15] = put(&owner, &name(302), "{}", PutMode::Create);
    let err = store.write(batch).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { index: 15, .. }), "{err:?}");
    assert_eq!(total(store, &owner).await, Some(250));
    assert!(store
        .get_entity(&owner, EntityKind::Destination, &name(300))
        .await
        .unwrap()
        .is_none());

    // Create-if-absent: the new ones created, the existing ones unchanged.
    let outcomes = store
        .write(creates(200..350, PutMode::CreateIfAbsent))
        .await
        .unwrap();
    assert!(outcomes[..50].iter().all(|o| *o == WriteOutcome::Unchanged));
    assert!(outcomes[50..]
        .iter()
        .all(|o| matches!(o, WriteOutcome::Created { etag: Some(_) })));
    assert_eq!(total(store, &owner).await, Some(350));

    // The limit (1000) passed at the 651st new row of a batch of 700, before its conflict at
    // 690: the limit is the error; a conflict before that point is the error instead.
    let mut batch = creates(400..1100, PutMode::Create);
    batch[690] = put(&owner, &name(0), "{}", PutMode::Create);
    let err = store.write(batch.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::LimitExceeded { limit: 1000, .. }),
        "{err:?}"
    );
    batch[640] = put(&owner, &name(1), "{}", PutMode::Create);
    let err = store.write(batch).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { index: 640, .. }), "{err:?}");
    assert_eq!(total(store, &owner).await, Some(350));
    // Exactly up to the limit is fine.
    store
        .write(creates(400..1050, PutMode::Create))
        .await
        .unwrap();
    assert_eq!(total(store, &owner).await, Some(1000));

    // Audit events in several statements keep their order.
    let events: Vec<AuditEvent> = (0..250).map(|i| audit(10_000 + i, "create", 201)).collect();
    store.record_audit(&events).await.unwrap();
    let back = store
        .audit_events(&AuditQuery {
            limit: 300,
            ..Default::default()
        })
        .await
        .unwrap();
    let times: Vec<i64> = back.iter().map(|e| e.at_ms).collect();
    assert_eq!(times, (10_000..10_250).rev().collect::<Vec<_>>());
}

async fn audit_suite(store: &dyn Store) {
    assert!(store
        .audit_events(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
    store.record_audit(&[]).await.unwrap();
    // Two events in the same millisecond and one recorded later with an earlier time.
    store
        .record_audit(&[audit(1_000, "create", 201), audit(2_000, "update", 409)])
        .await
        .unwrap();
    store
        .record_audit(&[audit(2_000, "delete", 200)])
        .await
        .unwrap();
    store
        .record_audit(&[audit(1_500, "issue", 200)])
        .await
        .unwrap();
    let all = store
        .audit_events(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let seen: Vec<(i64, &str)> = all.iter().map(|e| (e.at_ms, e.action.as_str())).collect();
    assert_eq!(
        seen,
        [
            (2_000, "delete"),
            (2_000, "update"),
            (1_500, "issue"),
            (1_000, "create")
        ]
    );
    assert!(all[0].id > all[1].id, "ids grow in the order of recording");
    let update = &all[1];
    assert_eq!(update.outcome(), "failure");
    assert_eq!(all[0].outcome(), "success");
    assert_eq!(
        (
            update.actor.as_str(),
            update.subaccount_id.as_deref(),
            update.instance_id.as_deref(),
            update.entity_kind.as_deref(),
            update.entity_name.as_deref(),
            update.status,
            update.request_id.as_deref()
        ),
        (
            "client-1",
            Some("s1"),
            None,
            Some("destination"),
            Some("d-2000"),
            409,
            Some("rid-2000")
        )
    );

    // Pages of two, each after the last event of the previous one.
    let first = store
        .audit_events(&AuditQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first, all[..2]);
    let last = &first[1];
    let second = store
        .audit_events(&AuditQuery {
            limit: 2,
            before: Some((last.at_ms, last.id)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(second, all[2..]);
    // `since` is inclusive.
    let since = store
        .audit_events(&AuditQuery {
            limit: 10,
            since_ms: Some(1_500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since, all[..3]);

    // Pruning removes what is older than the bound, and only that.
    assert_eq!(store.prune_audit(1_500).await.unwrap(), 1);
    assert_eq!(store.prune_audit(1_500).await.unwrap(), 0);
    let kept = store
        .audit_events(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(kept, all[..3]);
    // Ids are never given twice, even once the newest events are gone.
    let newest = kept[0].id;
    store.prune_audit(i64::MAX).await.unwrap();
    store
        .record_audit(&[audit(3_000, "rotate", 201)])
        .await
        .unwrap();
    let again = store
        .audit_events(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].id > newest);
}

async fn sqlite(dir: &std::path::Path, master: &MasterKey, max: u32) -> SqliteStore {
    SqliteStore::open(
        &format!("sqlite://{}", dir.join("t.db").display()),
        master,
        max,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn sqlite_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), &MasterKey::generate(), 2).await;
    limit_suite(&store).await;
}

#[tokio::test]
async fn sqlite_refuses_a_wrong_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let store = sqlite(dir.path(), &master, 10).await;
    store.write(vec![sub("s")]).await.unwrap();
    drop(store);
    let err = SqliteStore::open(
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        &MasterKey::generate(),
        10,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey));
    // The right key opens it again.
    let again = sqlite(dir.path(), &master, 10).await;
    assert!(again.get_subaccount("s").await.unwrap().is_some());
}

#[tokio::test]
async fn cached_sqlite_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = CachedStore::new(Arc::new(
        sqlite(dir.path(), &MasterKey::generate(), 2).await,
    ));
    limit_suite(&store).await;
}

/// Finds of a database file run on the caller's thread (`direct.rs`), beside sqlx's pool: while
/// another connection holds a write transaction open they answer at once with the committed
/// state, and once it commits they see the write within a second (the longest a direct reader
/// keeps a snapshot); the store's own writes they see at once, also after a quiet spell in
/// which the readers keep their snapshots.
#[tokio::test]
async fn sqlite_reads_see_committed_writes_and_never_wait_for_an_open_one() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), &MasterKey::generate(), 1000).await;
    let owner = OwnerRef::subaccount("direct");
    let instance = OwnerRef::instance("direct-instance");
    store
        .write(vec![put(&owner, "x", r#"{"v":1}"#, PutMode::Create)])
        .await
        .unwrap();
    let find = || async {
        store
            .find_entity(
                &[instance.clone(), owner.clone()],
                EntityKind::Destination,
                "x",
            )
            .await
            .unwrap()
            .map(|e| (e.owner, String::from_utf8(e.body).unwrap()))
    };
    assert_eq!(find().await, Some((owner.clone(), r#"{"v":1}"#.to_owned())));

    // Another connection (another process, say) holds the write lock with a change pending.
    let mut other =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    other
        .execute("UPDATE entities SET etag = 'pending' WHERE name = 'x'")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let during = store
        .find_entity(std::slice::from_ref(&owner), EntityKind::Destination, "x")
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_ne!(during.etag, "pending", "an uncommitted write was read");
    other.execute("COMMIT").await.unwrap();
    let committed = std::time::Instant::now();
    let mut after = during;
    while after.etag != "pending" && committed.elapsed() < std::time::Duration::from_secs(3) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = store
            .find_entity(std::slice::from_ref(&owner), EntityKind::Destination, "x")
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(after.etag, "pending", "a committed write was not read");

    // A write through the store is seen by the next find, on the other level too.
    store
        .write(vec![put(&instance, "x", r#"{"v":2}"#, PutMode::Create)])
        .await
        .unwrap();
    assert_eq!(
        find().await,
        Some((instance.clone(), r#"{"v":2}"#.to_owned()))
    );
    // And every time, with finds in between; every few writes after a quiet spell, in which
    // the readers keep their snapshots from one find to the next.
    for v in 3u32..40 {
        if v.is_multiple_of(8) {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            for _ in 0..3 {
                assert_eq!(find().await.map(|(o, _)| o), Some(instance.clone()));
            }
        }
        assert_eq!(find().await.map(|(o, _)| o), Some(instance.clone()));
        store
            .write(vec![put(
                &instance,
                "x",
                &format!(r#"{{"v":{v}}}"#),
                PutMode::Replace,
            )])
            .await
            .unwrap();
        assert_eq!(
            find().await,
            Some((instance.clone(), format!(r#"{{"v":{v}}}"#))),
            "write {v} was not seen by the next find"
        );
    }
}

/// With finds running all the time while the store writes, the WAL must still be checkpointed and
/// start over, not grow with every write (readers that keep SQLite snapshots open across writes
/// starve the checkpoint: a tried optimisation grew it to 18-38 MB here). 300 writes of 20
/// destinations of 2 KB each put about 18 MB through the WAL; SQLite's automatic checkpoint
/// (every 1,000 pages, 4 MB) keeps it near that size when nothing holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_wal_starts_over_while_finds_run() {
    wal_under_finds(300, 20, std::time::Duration::ZERO).await;
}

/// The same with quiet spells between the writes (350 ms, longer than the direct readers wait
/// after a write before they keep snapshots again): 30 writes of 200 destinations of 2 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_wal_starts_over_with_quiet_spells_between_writes() {
    wal_under_finds(30, 200, std::time::Duration::from_millis(350)).await;
}

/// `batches` writes of `per_batch` destinations of 2 KB, `pause` apart, while three tasks find
/// all the time; the WAL must stay under 12 MB (about 18 MB go through it).
async fn wal_under_finds(batches: usize, per_batch: usize, pause: std::time::Duration) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(sqlite(dir.path(), &MasterKey::generate(), 100_000).await);
    let owner = OwnerRef::subaccount("wal");
    let instance = OwnerRef::instance("wal-instance");
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2000));
    store
        .write(vec![put(&owner, "seed", &body, PutMode::Create)])
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (store, stop) = (store.clone(), stop.clone());
            let owners = [instance.clone(), owner.clone()];
            tokio::spawn(async move {
                let mut finds = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = if finds.is_multiple_of(2) {
                        "seed".to_owned()
                    } else {
                        format!("d{r}-{finds}")
                    };
                    store
                        .find_entity(&owners, EntityKind::Destination, &name)
                        .await
                        .unwrap();
                    finds += 1;
                    tokio::task::yield_now().await;
                }
                finds
            })
        })
        .collect();
    let wal = dir.path().join("t.db-wal");
    let mut largest = 0;
    for batch in 0..batches {
        tokio::time::sleep(pause).await;
        let ops = (0..per_batch)
            .map(|i| put(&owner, &format!("b{batch}-{i}"), &body, PutMode::Create))
            .collect();
        store.write(ops).await.unwrap();
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut finds = 0;
    for r in readers {
        finds += r.await.unwrap();
    }
    assert!(finds > 300, "the finds ran alongside the writes ({finds})");
    assert!(
        largest < 12 * 1024 * 1024,
        "the WAL grew to {largest} bytes: snapshots kept it from starting over"
    );
}

/// A URL with sqlx's options still opens, and its finds go through sqlx's pool.
#[tokio::test]
async fn a_sqlite_url_with_options_opens_and_finds() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url, &MasterKey::generate(), 10)
        .await
        .unwrap();
    let owner = OwnerRef::subaccount("opts");
    store
        .write(vec![put(&owner, "x", "{}", PutMode::Create)])
        .await
        .unwrap();
    let found = store
        .find_entity(std::slice::from_ref(&owner), EntityKind::Destination, "x")
        .await
        .unwrap();
    assert_eq!(found.map(|e| e.name), Some("x".to_owned()));
}

/// Reads racing writes never leave a stale entity in the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_never_keeps_a_stale_entity() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CachedStore::new(Arc::new(
        sqlite(dir.path(), &MasterKey::generate(), 1000).await,
    )));
    let owner = OwnerRef::subaccount("race");
    for round in 0..200u32 {
        let body = format!("{{\"v\":{round}}}");
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                let owner = owner.clone();
                tokio::spawn(async move {
                    store
                        .get_entity(&owner, EntityKind::Destination, "x")
                        .await
                        .unwrap()
                })
            })
            .collect();
        store
            .write(vec![put(&owner, "x", &body, PutMode::Upsert)])
            .await
            .unwrap();
        for r in readers {
            r.await.unwrap();
        }
        let now = store
            .get_entity(&owner, EntityKind::Destination, "x")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now.body, body.as_bytes(), "round {round}");
    }
}

async fn postgres(db: &pg::TestDb, master: &MasterKey, max: u32) -> PgStore {
    PgStore::open(&db.url, master, max).await.unwrap()
}

/// A behaviour of the contract, run on a store it is given.
type Behaviour = for<'a> fn(&'a dyn Store) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

async fn run_on_sqlite(behaviour: Behaviour) {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), &MasterKey::generate(), 1000).await;
    behaviour(&store).await;
}

async fn run_on_cached_sqlite(behaviour: Behaviour) {
    let dir = tempfile::tempdir().unwrap();
    let store = CachedStore::new(Arc::new(
        sqlite(dir.path(), &MasterKey::generate(), 1000).await,
    ));
    behaviour(&store).await;
}

/// Each behaviour with a database of its own.
async fn run_on_postgres(behaviour: Behaviour) {
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let store = postgres(&db, &MasterKey::generate(), 1000).await;
    behaviour(&store).await;
    store.close().await;
    db.drop_db().await;
}

async fn run_on_cached_postgres(behaviour: Behaviour) {
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let pg = Arc::new(postgres(&db, &MasterKey::generate(), 1000).await);
    let store = CachedStore::new(pg.clone());
    behaviour(&store).await;
    drop(store);
    pg.close().await;
    db.drop_db().await;
}

/// One test per behaviour on one engine (`on_sqlite::<behaviour>`), each on a store of its
/// own, so that one failure hides no other.
macro_rules! on_engine {
    ($module:ident, $run:ident) => {
        mod $module {
            on_engine!(@tests $run,
                tenancy_records_and_the_first_subdomain,
            bindings_keep_their_secret_and_unique_client_ids,
            entity_write_modes_levels_and_kinds,
            a_failing_batch_undoes_its_beginning,
            lists_order_filter_page_and_count,
            deletes_say_what_they_deleted,
            labels_live_with_their_entity,
            deleting_an_instance_takes_its_bindings_and_entities,
            signing_keys_round_trip_and_are_deleted_one_by_one,
            saml_key_slots_rotation_and_create_if_absent,
            named_secrets_keep_the_first_if_absent,
            entities_of_one_kind_across_owners,
            preconditions_guard_the_whole_batch,
            leases_have_one_holder_until_they_expire,
            digests_are_keyed_and_deterministic,
            paging_suite,
            subscription_suite,
            audit_suite,
            bulk_creations_answer_as_one_at_a_time,
            find_takes_the_first_owner_that_has_the_name
            );
        }
    };
    (@tests $run:ident, $($behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $behaviour() {
                super::$run(|store| Box::pin(super::$behaviour(store))).await;
            }
        )*
    };
}

on_engine!(on_sqlite, run_on_sqlite);
on_engine!(on_cached_sqlite, run_on_cached_sqlite);
on_engine!(on_postgres, run_on_postgres);
on_engine!(on_cached_postgres, run_on_cached_postgres);

#[tokio::test]
async fn postgres_limits() {
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let store = postgres(&db, &MasterKey::generate(), 2).await;
    limit_suite(&store).await;
    store.close().await;
    db.drop_db().await;
}

/// Replicas starting at once on an empty database: the migrations run once (under the
/// migrator's advisory lock) and all agree on one data key; a wrong master key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replicas_start_together() {
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let master = MasterKey::generate();
    let opened = join_all(
        (0..4)
            .map(|_| {
                let url = db.url.clone();
                let master = master.clone();
                tokio::spawn(async move { PgStore::open(&url, &master, 10).await })
            })
            .collect(),
    )
    .await;
    let stores: Vec<PgStore> = opened.into_iter().map(Result::unwrap).collect();
    let digest = stores[0].digest(&[b"x"]);
    assert!(stores.iter().all(|s| s.digest(&[b"x"]) == digest));
    stores[0].write(vec![sub("s")]).await.unwrap();
    assert!(stores[3].get_subaccount("s").await.unwrap().is_some());
    let err = PgStore::open(&db.url, &MasterKey::generate(), 10)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey));
    for s in &stores {
        s.close().await;
    }
    db.drop_db().await;
}

/// Writers on separate pools (as separate replicas): of concurrent creates of one name exactly
/// one wins, and concurrent creates of distinct names stop exactly at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_writers() {
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let master = MasterKey::generate();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(postgres(&db, &master, 5).await));
    }
    let owner = OwnerRef::subaccount("race");
    let same: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let owner = owner.clone();
            tokio::spawn(async move {
                store
                    .write(vec![put(
                        &owner,
                        "same",
                        &format!("{{\"v\":{i}}}"),
                        PutMode::Create,
                    )])
                    .await
            })
        })
        .collect();
    let results = join_all(same).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, Error::Conflict { index: 0, .. })));

    let owner = OwnerRef::instance("limit");
    let distinct: Vec<_> = (0..12)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let owner = owner.clone();
            tokio::spawn(async move {
                store
                    .write(vec![put(
                        &owner,
                        &format!("n{i:02}"),
                        "{}",
                        PutMode::Create,
                    )])
                    .await
            })
        })
        .collect();
    let results = join_all(distinct).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 5, "{results:?}");
    assert_eq!(
        names(&*stores[0], &owner, ListQuery::default()).await.len(),
        5
    );
    for s in &stores {
        s.close().await;
    }
    db.drop_db().await;
}

/// Awaits every task, in order (a panicking task fails the test).
async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Polls `read` until it returns `want`, for at most five seconds; the time it took.
async fn eventually<F, Fut>(want: &str, read: F) -> std::time::Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    let start = std::time::Instant::now();
    loop {
        let got = read().await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "still {got:?}, want {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Two replicas with caches on one database: a write through one reaches the other's cache by
/// the change feed; a write that bypasses the feed stays invisible while the feed is live
/// (proof that the cache is in use), and a listener that loses its connection drops the whole
/// cache when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replica_caches_follow_the_change_feed() {
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let master = MasterKey::generate();
    let pg_a = Arc::new(postgres(&db, &master, 100).await);
    let pg_b = Arc::new(postgres(&db, &master, 100).await);
    let a = CachedStore::new(pg_a.clone());
    let b = CachedStore::new(pg_b.clone());
    let start = std::time::Instant::now();
    while !(a.coherent() && b.coherent()) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "feed never live"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let owner = OwnerRef::subaccount("feed");
    let body_on_b = || async {
        b.get_entity(&owner, EntityKind::Destination, "x")
            .await
            .unwrap()
            .map(|e| String::from_utf8(e.body).unwrap())
            .unwrap_or_default()
    };
    a.write(vec![put(&owner, "x", "{\"v\":1}", PutMode::Upsert)])
        .await
        .unwrap();
    eventually("{\"v\":1}", body_on_b).await;
    // Cached on b now; a's next write reaches it through the feed.
    a.write(vec![put(&owner, "x", "{\"v\":2}", PutMode::Upsert)])
        .await
        .unwrap();
    let took = eventually("{\"v\":2}", body_on_b).await;
    println!("write on a seen on b after {took:?}");
    // A deletion too.
    a.write(vec![WriteOp::DeleteEntity {
        owner: owner.clone(),
        kind: EntityKind::Destination,
        name: "x".into(),
    }])
    .await
    .unwrap();
    eventually("", body_on_b).await;
    a.write(vec![put(&owner, "x", "{\"v\":3}", PutMode::Upsert)])
        .await
        .unwrap();
    eventually("{\"v\":3}", body_on_b).await;
    // b may have read v3 from the database before the feed delivered v3's notification, which
    // then drops the entry again: let the feed settle and read once more so that v3 is cached.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(body_on_b().await, "{\"v\":3}");
    // A level that b's finds know to be empty: a's first entity there reaches them through the
    // feed, and wins over the subaccount's.
    let instance = OwnerRef::instance("feed-instance");
    let owners = [instance.clone(), owner.clone()];
    let level_on_b = || async {
        b.find_entity(&owners, EntityKind::Destination, "x")
            .await
            .unwrap()
            .map(|e| e.owner.level.as_str().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(level_on_b().await, "subaccount");
    a.write(vec![put(&instance, "x", "{\"v\":4}", PutMode::Upsert)])
        .await
        .unwrap();
    eventually("instance", level_on_b).await;
    // A change behind the feed's back (here: the etag, by plain SQL) stays unseen by b's cache.
    let mut raw = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::query("UPDATE entities SET etag = 'behind-the-back' WHERE name = 'x'")
        .execute(&mut raw)
        .await
        .unwrap();
    let etag_on_b = || async {
        b.get_entity(&owner, EntityKind::Destination, "x")
            .await
            .unwrap()
            .map(|e| e.etag)
            .unwrap_or_default()
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_ne!(
        etag_on_b().await,
        "behind-the-back",
        "b reads through its cache"
    );
    // Cut every listener's connection: b's feed goes down and comes back, dropping its cache.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    eventually("behind-the-back", etag_on_b).await;
    let start = std::time::Instant::now();
    while !b.coherent() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "feed not back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop((a, b));
    pg_a.close().await;
    pg_b.close().await;
    db.drop_db().await;
}

/// A write whose caller goes away mid-way (a request cancelled when its client disconnects or it
/// times out) leaves no connection in an open transaction: the writes after it all succeed.
/// Before the fix the pool got such a connection back holding the write lock: the next writes
/// waited out the busy timeout ("database is locked") or failed to begin ("cannot start a
/// transaction within a transaction").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cancelled_writes_leave_no_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), &MasterKey::generate(), 1000).await;
    store.write(vec![sub("s1")]).await.unwrap();
    let events: Vec<AuditEvent> = (0..200).map(|i| audit(i, "create", 201)).collect();
    // Cut the writes off at many points, some of them inside their transactions.
    for i in 0..300u64 {
        let write = store.record_audit(&events);
        let _ = tokio::time::timeout(std::time::Duration::from_micros(i * 7), write).await;
    }
    for round in 0..20 {
        store
            .record_audit(&[audit(10_000 + round, "update", 200)])
            .await
            .unwrap_or_else(|e| panic!("write {round} after the cancelled ones failed: {e}"));
    }
}

/// A bulk write refreshes the planner's statistics of `entities` (`ANALYZE`, in the background):
/// without them, a freshly imported collection is read through the wrong index until autovacuum
/// comes by (bench/README.md, `scale` on PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bulk_writes_refresh_the_statistics() {
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let store = postgres(&db, &MasterKey::generate(), 5000).await;
    let mut watch = db.watch().await;
    let analyzed =
        "SELECT COALESCE(analyze_count, 0) FROM pg_stat_user_tables WHERE relname = 'entities'";
    let owner = OwnerRef::subaccount("bulk");
    store
        .write(vec![sub("bulk"), put(&owner, "one", "{}", PutMode::Create)])
        .await
        .unwrap();
    let ops: Vec<WriteOp> = (0..1500)
        .map(|i| put(&owner, &format!("d-{i:04}"), "{}", PutMode::Create))
        .collect();
    store.write(ops).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // The statistics collector reports with a delay of its own: poll.
    while watch.count(analyzed).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "entities was not analyzed after a write of 1,500 rows"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    store.close().await;
    db.drop_db().await;
}

/// Find's single-entity reads on PostgreSQL, alone and batched, probe the hash index over the
/// key (`entities_find`, migration 0010) with the one generic plan their connections keep, not
/// the primary key's B-tree (bench/README.md: 28 % more lookups a second in batches of four).
#[tokio::test]
async fn postgres_entity_reads_probe_the_find_index() {
    use sqlx::{Connection, Executor, Row};
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let store = postgres(&db, &MasterKey::generate(), 10_000).await;
    let owner = OwnerRef::subaccount("plans");
    store.write(vec![sub("plans")]).await.unwrap();
    let ops: Vec<WriteOp> = (0..3000)
        .map(|i| put(&owner, &format!("d-{i:04}"), "{}", PutMode::Create))
        .collect();
    store.write(ops).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    conn.execute("ANALYZE entities").await.unwrap();
    conn.execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    let [one, many] = PgStore::ENTITY_READS;
    let cases = [
        (one, "'subaccount', 'plans', 'destination', 'd-0001', 0, 0"),
        (
            many,
            "'{subaccount,subaccount}', '{plans,plans}', '{destination,destination}', '{d-0001,d-0002}', '{0,1}', '{0,0}'",
        ),
    ];
    for (i, (statement, args)) in cases.into_iter().enumerate() {
        conn.execute(format!("PREPARE read_{i} AS {statement}").as_str())
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN EXECUTE read_{i}({args})"))
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("Index Scan using entities_find on entities"),
            "{statement}:\n{plan}"
        );
    }
    // And they answer as before.
    let found = store
        .find_entity(
            std::slice::from_ref(&owner),
            EntityKind::Destination,
            "d-2999",
        )
        .await
        .unwrap();
    assert_eq!(found.map(|e| e.name).as_deref(), Some("d-2999"));
    conn.close().await.unwrap();
    store.close().await;
    db.drop_db().await;
}

/// Many finds at once on PostgreSQL share statements (one `unnest` of arrays for any number of
/// lookups): each still gets its own answer, from the first of its owners that has the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_at_once_each_get_their_own_answer() {
    let server = pg::PgServer::start();
    let db = server.create_db().await;
    let store = Arc::new(postgres(&db, &MasterKey::generate(), 10_000).await);
    let (instance, sub) = (OwnerRef::instance("i1"), OwnerRef::subaccount("s1"));
    // n0..n199: even names on subaccount level, every third also on instance level.
    let mut ops = Vec::new();
    for i in 0..200 {
        let name = format!("n{i}");
        if i % 2 == 0 {
            ops.push(put(
                &sub,
                &name,
                &format!("{{\"at\":\"sub-{i}\"}}"),
                PutMode::Upsert,
            ));
        }
        if i % 3 == 0 {
            ops.push(put(
                &instance,
                &name,
                &format!("{{\"at\":\"inst-{i}\"}}"),
                PutMode::Upsert,
            ));
        }
    }
    store.write(ops).await.unwrap();
    let owners = [instance.clone(), sub.clone()];
    let finds = (0..400).map(|j| {
        let (store, owners) = (store.clone(), owners.clone());
        async move {
            let i = j % 200;
            let found = store
                .find_entity(&owners, EntityKind::Destination, &format!("n{i}"))
                .await
                .unwrap()
                .map(|e| String::from_utf8(e.body).unwrap());
            (i, found)
        }
    });
    for (i, found) in join_all(finds.map(tokio::spawn).collect()).await {
        let want = if i % 3 == 0 {
            Some(format!("{{\"at\":\"inst-{i}\"}}"))
        } else if i % 2 == 0 {
            Some(format!("{{\"at\":\"sub-{i}\"}}"))
        } else {
            None
        };
        assert_eq!(found, want, "n{i}");
    }
    // The batched reads ran on their own connections, at most one per batch in flight.
    let mut raw = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let readers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'signpost-reads'",
    )
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert!((1..=2).contains(&readers), "{readers} reader connections");
    drop(raw);
    store.close().await;
    db.drop_db().await;
}
