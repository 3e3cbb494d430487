//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! writes. A replica takes the Lease when it is free or its holder let it expire, renews it every
//! third of its duration, and stops leading (the process exits, to start over) when renewals
//! fail for two thirds of the duration, before another replica may take the Lease. Every write
//! is a `replace` with the Lease's `resourceVersion`: of two replicas racing for it, one write
//! wins and the other gets a 409.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

pub const LEASE_NAME: &str = "signpost-operator";

#[derive(Debug, Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, identity: String, duration: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            identity,
            duration,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        let mut logged = false;
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {
                    if !logged {
                        tracing::info!(
                            lease = LEASE_NAME,
                            "another replica leads; waiting for the Lease"
                        );
                        logged = true;
                    }
                }
                Err(e) => tracing::warn!(lease = LEASE_NAME, "cannot take the Lease: {e}"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Keeps renewing; returns when the Lease is lost (another holder, or no renewal for a whole
    /// duration).
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = LEASE_NAME, "the Lease went to another replica");
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = LEASE_NAME, "cannot renew the Lease: {e}");
                    // Stop leading before another replica may take the Lease (a whole
                    // duration after the last renewal), so that two never write at once.
                    if last_renewed.elapsed() >= self.duration * 2 / 3 {
                        return;
                    }
                }
            }
        }
    }

    /// Takes or renews the Lease; `Ok(false)` when another replica holds it.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        match self.api.get_opt(LEASE_NAME).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAME.into()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
                let held_for = spec.lease_duration_seconds.map_or(self.duration, |s| {
                    Duration::from_secs(s.max(1).unsigned_abs().into())
                });
                let expired = spec.renew_time.as_ref().is_none_or(|t| {
                    let age = now.as_millisecond().saturating_sub(t.0.as_millisecond());
                    age >= i64::try_from(held_for.as_millis()).unwrap_or(i64::MAX)
                });
                let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
                if !(mine || expired || free) {
                    return Ok(false);
                }
                if !mine {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(seconds);
                spec.renew_time = Some(MicroTime(now));
                match self
                    .api
                    .replace(LEASE_NAME, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }
}
