//! Keyset paging against offset paging, as a property: for any set of names, any anchor step and
//! any page, a page read from an anchor (`ListQuery::from`, what the read-through cache does) is
//! the page that the plain offset gives, on SQLite and behind the cache.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use proptest::prelude::*;
use signpost_model::{EntityKind, OwnerRef};
use signpost_store::*;

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

async fn check(store: &dyn Store, all: &[String], step: u64, offset: u64, size: u64) {
    let owner = OwnerRef::subaccount("props");
    let mut ops = vec![WriteOp::EnsureSubaccount(SubaccountRecord {
        id: "props".into(),
        subdomain: "props-dom".into(),
    })];
    ops.extend(all.iter().map(|n| WriteOp::PutEntity {
        owner: owner.clone(),
        kind: EntityKind::Destination,
        name: n.clone(),
        body: b"{}".to_vec(),
        mode: PutMode::Create,
    }));
    store.write(ops).await.unwrap();

    let anchors = store
        .page_anchors(&owner, EntityKind::Destination, step)
        .await
        .unwrap();
    let every: Vec<String> = all
        .iter()
        .step_by(usize::try_from(step).unwrap())
        .cloned()
        .collect();
    assert_eq!(anchors, every, "the anchors are every {step}th name");

    let window = |start: usize| {
        let start = start.min(all.len());
        all[start..(start + usize::try_from(size).unwrap()).min(all.len())].to_vec()
    };
    for (i, anchor) in anchors.iter().enumerate() {
        let keyset = ListQuery {
            from: Some(anchor.clone()),
            offset,
            limit: Some(size),
            ..Default::default()
        };
        let plain = ListQuery {
            offset: i as u64 * step + offset,
            limit: Some(size),
            count_total: true,
            ..Default::default()
        };
        let from_anchor = names(store, &owner, keyset).await;
        let expected =
            window(i * usize::try_from(step).unwrap() + usize::try_from(offset).unwrap());
        assert_eq!(from_anchor, expected, "from {anchor} + {offset}");
        assert_eq!(names(store, &owner, plain).await, expected, "offset paging");
    }
}

async fn sqlite(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(
        &format!("sqlite://{}", dir.join("t.db").display()),
        &MasterKey::generate(),
        100_000,
    )
    .await
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn pages_from_anchors_are_the_pages_of_offsets(
        set in proptest::collection::btree_set("[A-Za-z0-9_.-]{1,10}", 1..90),
        step in 1u64..30,
        offset in 0u64..40,
        size in 1u64..25,
        cached in any::<bool>(),
    ) {
        // A set iterates in name order, the order the store keeps.
        let all: Vec<String> = set.into_iter().collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = sqlite(dir.path()).await;
            if cached {
                check(&CachedStore::new(Arc::new(store)), &all, step, offset, size).await;
            } else {
                check(&store, &all, step, offset, size).await;
            }
        });
    }
}
