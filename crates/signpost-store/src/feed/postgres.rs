//! The change feed on PostgreSQL: `pg_notify` inside each write transaction, one listening
//! connection per process, and the heartbeat that proves the feed works (see `feed`).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{PgConnection, PgPool};

use super::{Change, Feed};
use crate::Result;

/// Publishes changes from inside a transaction (delivered when it commits).
pub(crate) async fn publish(conn: &mut PgConnection, changes: &[Change]) -> Result<()> {
    for note in super::payloads(changes) {
        notify(conn, &note).await?;
    }
    Ok(())
}

pub(crate) async fn notify(conn: &mut PgConnection, payload: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(super::CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Receives the change feed on a dedicated connection and hands it to the process's caches.
/// `beat` is this process's own heartbeat payload: its arrival proves the feed works.
pub(crate) async fn listen(pool: PgPool, feed: Arc<Feed>, beat: String) {
    let mut reported = false;
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(super::CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                if !reported {
                    // CockroachDB and YugabyteDB have no LISTEN: the caches stay off there.
                    tracing::warn!(error = %e, "cannot listen for changes: in-process caches stay off");
                    reported = true;
                }
                feed.down("cannot listen");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let payload = n.payload();
                    if payload == beat {
                        feed.beat();
                    } else if !payload.starts_with("ping:") {
                        for change in super::parse_payload(payload) {
                            feed.publish(change);
                        }
                    }
                }
                // The connection was lost; the next call reconnects and listens again.
                Ok(None) => feed.down("listener connection lost"),
                Err(e) => {
                    tracing::debug!(error = %e, "change listener failed");
                    feed.down("listener failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}

/// Sends this process's heartbeat through the database and counts the feed down when it stops
/// coming back. The heartbeat has a connection of its own, so that a busy pool cannot delay it
/// into a false alarm.
pub(crate) async fn heartbeat(opts: PgConnectOptions, feed: Arc<Feed>, beat: String) {
    let (ticks, mut due) = tokio::sync::watch::channel(0u64);
    // Ends when `ticks` goes with this task (a slow send skips the ticks it missed).
    tokio::spawn(async move {
        let mut conn: Option<PgConnection> = None;
        while due.changed().await.is_ok() {
            if conn.is_none() {
                let connect = <PgConnection as sqlx::Connection>::connect_with(&opts);
                conn = tokio::time::timeout(super::STALE_AFTER, connect)
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            if let Some(c) = conn.as_mut() {
                let send = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::CHANNEL)
                    .bind(&beat)
                    .execute(c);
                if !matches!(
                    tokio::time::timeout(super::STALE_AFTER, send).await,
                    Ok(Ok(_))
                ) {
                    tracing::debug!("heartbeat not sent; reconnecting");
                    conn = None;
                }
            }
        }
    });
    let mut tick = tokio::time::interval(super::HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        feed.check_staleness();
        n += 1;
        let _ = ticks.send(n);
    }
}
