//! Entity reads that arrive together go to the database together. Every read of one entity
//! (find destination's levels, a fragment, a certificate) joins a queue; while fewer than
//! [`LEADERS`] batches are in flight a task takes what is queued (up to [`MAX_BATCH`]) and reads
//! it in one statement. Alone, a read goes at once; under load, the many reads waiting while a
//! statement runs share the next one, instead of each paying its own hand-off to SQLite's worker
//! thread (a thread switch each way). On PostgreSQL, where each statement is a round trip that
//! puts the calling thread to sleep until the answer comes, a batch is one statement whatever its
//! size (`unnest` of arrays joined to the primary key, postgres.rs): random finds across a
//! million destinations went from about 9,800 to 17,000 a second and their p99 halved
//! (bench/README.md).
//!
//! A read is never answered from an older state than the one it was queued in: its statement
//! starts after it was queued.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use signpost_model::{EntityKind, OwnerRef};
use tokio::sync::oneshot;

use crate::records::StoredEntity;
use crate::{Error, Result};

/// Batches in flight at once: one in the database while the next one gathers.
pub(crate) const LEADERS: usize = 2;
/// The most reads one statement carries.
pub(crate) const MAX_BATCH: usize = 64;

/// One read: the entity `name` of the first of `owners` that has one.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    pub owners: Vec<OwnerRef>,
    pub kind: EntityKind,
    pub name: String,
}

/// What an engine provides: many lookups in one statement (SQLite: [`lookup_sql`]; PostgreSQL:
/// an `unnest` of arrays), its rows read by [`answers`].
#[async_trait]
pub(crate) trait Reader: Send + Sync + 'static {
    /// An answer per lookup, in order.
    async fn read(&self, lookups: &[Lookup]) -> Result<Vec<Option<StoredEntity>>>;
}

type Reply = oneshot::Sender<Result<Option<StoredEntity>>>;

#[derive(Default)]
struct Queue {
    waiting: Vec<(Lookup, Reply)>,
    leaders: usize,
}

pub(crate) struct Batcher<R> {
    reader: Arc<R>,
    queue: Arc<Mutex<Queue>>,
}

impl<R: Reader> Batcher<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader: Arc::new(reader),
            queue: Arc::default(),
        }
    }

    pub async fn find(&self, lookup: Lookup) -> Result<Option<StoredEntity>> {
        if lookup.owners.is_empty() {
            return Ok(None);
        }
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.waiting.push((lookup, reply));
            let lead = q.leaders < LEADERS;
            if lead {
                q.leaders += 1;
            }
            lead
        };
        if lead {
            // A task of its own: a caller that goes away mid-read strands no one queued behind.
            tokio::spawn(drain(self.reader.clone(), self.queue.clone()));
        }
        answer
            .await
            .map_err(|_| Error::Invalid("the read of an entity was abandoned".into()))?
    }
}

/// Gives the leader's place back however the task ends (a panic in a read included).
struct Leader(Arc<Mutex<Queue>>);

impl Drop for Leader {
    fn drop(&mut self) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.leaders -= 1;
    }
}

/// Reads what is queued, a batch at a time, until nothing is.
async fn drain<R: Reader>(reader: Arc<R>, queue: Arc<Mutex<Queue>>) {
    let _leader = Leader(queue.clone());
    loop {
        let batch: Vec<(Lookup, Reply)> = {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.waiting.is_empty() {
                return;
            }
            let n = q.waiting.len().min(MAX_BATCH);
            q.waiting.drain(..n).collect()
        };
        let (lookups, replies): (Vec<Lookup>, Vec<Reply>) = batch.into_iter().unzip();
        match reader.read(&lookups).await {
            Ok(found) => {
                for (reply, entity) in replies.into_iter().zip(found) {
                    let _ = reply.send(Ok(entity));
                }
            }
            Err(e) if lookups.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            // Errors are not shared: each read alone gets its own answer.
            Err(_) => {
                for (lookup, reply) in lookups.iter().zip(replies) {
                    let one = reader.read(std::slice::from_ref(lookup)).await;
                    let _ = reply.send(one.map(|mut v| v.pop().flatten()));
                }
            }
        }
    }
}

/// The statement of [`Reader::read`]: a full-key lookup per lookup and owner, each row with the
/// lookup's index (`lookup`) and the owner's rank (`owner_rank`); placeholders in the order of
/// [`lookup_args`].
pub(crate) fn lookup_sql(lookups: &[Lookup]) -> String {
    let mut sql = String::with_capacity(lookups.len() * 200);
    let mut n = 0;
    for (i, l) in lookups.iter().enumerate() {
        for r in 0..l.owners.len() {
            if n > 0 {
                sql.push_str(" UNION ALL ");
            }
            sql.push_str(&format!(
                "SELECT CAST({i} AS BIGINT) AS lookup, CAST({r} AS BIGINT) AS owner_rank, name, body, etag, modified_at, labels \
                 FROM entities WHERE level = ${} AND owner_id = ${} AND kind = ${} AND name = ${}",
                4 * n + 1,
                4 * n + 2,
                4 * n + 3,
                4 * n + 4
            ));
            n += 1;
        }
    }
    sql
}

/// The values of [`lookup_sql`]'s placeholders: level, owner, kind and name of each pair.
pub(crate) fn lookup_args(lookups: &[Lookup]) -> impl Iterator<Item = [&str; 4]> {
    lookups.iter().flat_map(|l| {
        l.owners.iter().map(move |o| {
            [
                o.level.as_str(),
                o.id.as_str(),
                l.kind.as_str(),
                l.name.as_str(),
            ]
        })
    })
}

/// For each lookup, the row of its best-ranked owner among `rows` (`(lookup, owner_rank, row)`).
pub(crate) fn best_rows<T>(
    lookups: &[Lookup],
    rows: impl IntoIterator<Item = (i64, i64, T)>,
) -> Vec<Option<(usize, T)>> {
    let mut best: Vec<Option<(usize, T)>> = (0..lookups.len()).map(|_| None).collect();
    for (i, r, row) in rows {
        let (Ok(i), Ok(r)) = (usize::try_from(i), usize::try_from(r)) else {
            continue;
        };
        if let Some(slot) = best.get_mut(i) {
            if slot.as_ref().is_none_or(|(have, _)| r < *have) {
                *slot = Some((r, row));
            }
        }
    }
    best
}

/// Each lookup's answer from the rows of a batch's statement (each with its lookup's index in
/// `lookup` and its owner's rank in `owner_rank` beside the entity's columns): the row of the
/// best-ranked owner, decrypted. The one way both engines' readers read their rows.
pub(crate) fn answers<R>(
    cipher: &crate::crypto::Cipher,
    lookups: &[Lookup],
    rows: Vec<R>,
) -> Result<Vec<Option<StoredEntity>>>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let keyed = rows
        .into_iter()
        .map(|r| Ok((r.try_get("lookup")?, r.try_get("owner_rank")?, r)))
        .collect::<Result<Vec<(i64, i64, R)>>>()?;
    best_rows(lookups, keyed)
        .into_iter()
        .zip(lookups)
        .map(|(best, l)| {
            best.map(|(rank, row)| {
                crate::shared::entity_from_row(cipher, &row, &l.owners[rank], l.kind)
            })
            .transpose()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers each lookup with an entity of its first owner, counting statements and the
    /// largest batch; fails every batch that asks for "bad".
    struct Fake {
        statements: AtomicUsize,
        largest: AtomicUsize,
    }

    #[async_trait]
    impl Reader for Fake {
        async fn read(&self, lookups: &[Lookup]) -> Result<Vec<Option<StoredEntity>>> {
            self.statements.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(lookups.len(), Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            if lookups.iter().any(|l| l.name == "bad") {
                return Err(Error::Invalid("bad".into()));
            }
            Ok(lookups
                .iter()
                .map(|l| {
                    (l.name != "missing").then(|| StoredEntity {
                        owner: l.owners[0].clone(),
                        kind: l.kind,
                        name: l.name.clone(),
                        body: l.name.as_bytes().to_vec(),
                        etag: String::new(),
                        modified_at: 0,
                        labels: Vec::new(),
                    })
                })
                .collect())
        }
    }

    fn lookup(name: &str) -> Lookup {
        Lookup {
            owners: vec![OwnerRef::subaccount("s")],
            kind: EntityKind::Destination,
            name: name.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_together_share_statements_and_get_their_own_answers() {
        let batcher = Arc::new(Batcher::new(Fake {
            statements: AtomicUsize::new(0),
            largest: AtomicUsize::new(0),
        }));
        // 200 reads at once, each answered by name, "missing" with nothing, "bad" with an error
        // (its batch fails; the others in it are read again one by one).
        let all_at_once = |names: Vec<String>| {
            let batcher = batcher.clone();
            async move {
                let tasks: Vec<_> = names
                    .iter()
                    .map(|n| {
                        let (b, n) = (batcher.clone(), n.clone());
                        tokio::spawn(async move { b.find(lookup(&n)).await })
                    })
                    .collect();
                for (name, task) in names.iter().zip(tasks) {
                    let got = task.await.unwrap();
                    match name.as_str() {
                        "bad" => assert!(got.is_err()),
                        "missing" => assert_eq!(got.unwrap(), None),
                        n => assert_eq!(got.unwrap().unwrap().body, n.as_bytes()),
                    }
                }
            }
        };
        let names = |bad: bool| -> Vec<String> {
            (0..200)
                .map(|i| match i % 50 {
                    7 => "missing".to_owned(),
                    13 if bad => "bad".to_owned(),
                    _ => format!("d-{i}"),
                })
                .collect()
        };
        all_at_once(names(false)).await;
        let reader = &batcher.reader;
        assert!(
            reader.largest.load(Ordering::SeqCst) > 1,
            "no read was batched"
        );
        assert!(reader.largest.load(Ordering::SeqCst) <= MAX_BATCH);
        assert!(reader.statements.load(Ordering::SeqCst) < 200);
        // With failures: how many reads share a failed batch (and are read again alone)
        // depends on how the reads happen to be batched, so only the answers are checked.
        all_at_once(names(true)).await;
        assert!(reader.largest.load(Ordering::SeqCst) <= MAX_BATCH);
        // Every leader gives its place back, just after its last answer.
        let leaders = || batcher.queue.lock().unwrap().leaders;
        for _ in 0..500 {
            if leaders() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(leaders(), 0);
        // Alone, a read still goes (and no owner: nothing to read).
        assert!(batcher.find(lookup("x")).await.unwrap().is_some());
        let none = Lookup {
            owners: vec![],
            ..lookup("x")
        };
        assert_eq!(batcher.find(none).await.unwrap(), None);
    }

    #[test]
    fn the_best_ranked_owner_wins() {
        let l = [lookup("a"), lookup("b"), lookup("c")];
        let best = best_rows(&l, [(0, 1, "a1"), (0, 0, "a0"), (2, 1, "c1"), (9, 0, "x")]);
        assert_eq!(best, [Some((0, "a0")), None, Some((1, "c1"))]);
    }

    #[test]
    fn the_statement_numbers_its_placeholders_in_argument_order() {
        let mut two = lookup("b");
        two.owners.push(OwnerRef::instance("i"));
        let l = [lookup("a"), two];
        let sql = lookup_sql(&l);
        assert_eq!(sql.matches("UNION ALL").count(), 2);
        assert!(sql.contains("CAST(1 AS BIGINT) AS lookup, CAST(1 AS BIGINT) AS owner_rank"));
        assert!(sql.ends_with("name = $12"));
        let args: Vec<[&str; 4]> = lookup_args(&l).collect();
        assert_eq!(args.len(), 3);
        assert_eq!(args[2], ["instance", "i", "destination", "b"]);
    }
}
