//! Subscriptions (SaaS multitenancy): a subscriber subaccount subscribes to a provider's service
//! instance, as SAP's SaaS provisioning does when a customer subscribes to an application. The
//! subscriber then gets tenant tokens of the provider's bindings (`tokens`), and its own
//! destinations, fragments and certificates on the subscription level
//! ([`OwnerRef::subscription`]). Managed with the broker credentials; every change is audited.

use signpost_model::OwnerRef;
use signpost_store::{SubaccountRecord, SubscriptionRecord, WriteOp, WriteOutcome};
pub use signpost_wire::Subscription;

use crate::audit::Entry;
use crate::{Error, Result, Signpost};

/// The broker's rule for ids ([`crate::broker::valid_id`]): they never hold the `/` of owner ids.
fn check_id(field: &str, id: &str) -> Result<()> {
    if crate::broker::valid_id(id) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{field} {}",
            crate::broker::ID_RULE
        )))
    }
}

/// A subdomain is the first label of the tenant's token URL: a DNS label in lower case.
pub(crate) fn check_subdomain(subdomain: &str) -> Result<()> {
    let ok = (1..=63).contains(&subdomain.len())
        && subdomain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !subdomain.starts_with('-')
        && !subdomain.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "subdomain must be 1 to 63 lower-case letters, digits and '-', not starting or ending with '-'"
                .into(),
        ))
    }
}

fn view(record: SubscriptionRecord, subdomain: String) -> Subscription {
    let created_at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(record.created_at) * 1_000_000)
            .map(crate::rfc3339)
            .unwrap_or_default();
    Subscription {
        instance_id: record.instance_id,
        subaccount_id: record.subaccount_id,
        subdomain,
        created_at,
    }
}

impl Signpost {
    /// `PUT /signpost/v1/subscriptions/{instance}/{subaccount}`: subscribes `subaccount_id` (made
    /// when new) to the provider's `instance_id`, and sets its subdomain. True when the
    /// subscription is new. The instance's own subaccount cannot subscribe to it; a subdomain
    /// that another subaccount has is a conflict (tenant token URLs must name one tenant).
    pub async fn subscribe(
        &self,
        instance_id: &str,
        subaccount_id: &str,
        subdomain: &str,
    ) -> Result<(bool, Subscription)> {
        let entry = Entry::broker("subscribe", "subscription")
            .instance(instance_id)
            .subaccount(subaccount_id)
            .name(format!("{instance_id}/{subaccount_id}"));
        let result = self
            .subscribe_unaudited(instance_id, subaccount_id, subdomain)
            .await;
        let ok = match &result {
            Ok((true, _)) => 201,
            _ => 200,
        };
        let result = self.audited(entry, ok, result).await;
        if let Ok((true, _)) = &result {
            tracing::info!(
                instance = instance_id,
                subaccount = subaccount_id,
                "subscription created"
            );
        }
        result
    }

    async fn subscribe_unaudited(
        &self,
        instance_id: &str,
        subaccount_id: &str,
        subdomain: &str,
    ) -> Result<(bool, Subscription)> {
        check_id("The provider's instance id", instance_id)?;
        check_id("The subscriber's subaccount id", subaccount_id)?;
        check_subdomain(subdomain)?;
        let store = self.store();
        let instance = store.get_instance(instance_id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "The service instance '{instance_id}' does not exist"
            ))
        })?;
        if instance.subaccount_id == subaccount_id {
            return Err(Error::Conflict(format!(
                "The subaccount '{subaccount_id}' is the provider of the instance '{instance_id}'; only other subaccounts subscribe to it"
            )));
        }
        if let Some(other) = store
            .subaccounts_by_subdomain(subdomain)
            .await?
            .into_iter()
            .find(|s| s.id != subaccount_id)
        {
            return Err(Error::Conflict(format!(
                "The subdomain '{subdomain}' belongs to the subaccount '{}'",
                other.id
            )));
        }
        let mut ops = vec![WriteOp::EnsureSubaccount(SubaccountRecord {
            id: subaccount_id.to_owned(),
            subdomain: subdomain.to_owned(),
        })];
        let known = store.get_subaccount(subaccount_id).await?;
        if known.is_some_and(|s| s.subdomain != subdomain) {
            ops.push(WriteOp::SetSubdomain {
                subaccount_id: subaccount_id.to_owned(),
                subdomain: subdomain.to_owned(),
            });
        }
        ops.push(WriteOp::Subscribe(SubscriptionRecord {
            instance_id: instance_id.to_owned(),
            subaccount_id: subaccount_id.to_owned(),
            created_at: 0,
        }));
        let outcomes = self.write(ops).await?;
        // A changed subdomain changes what tokens say (`ext_attr.zdn`).
        self.inner.principals.clear();
        let created = matches!(outcomes.last(), Some(WriteOutcome::Created { .. }));
        let record = store
            .get_subscription(instance_id, subaccount_id)
            .await?
            .ok_or_else(|| Error::Internal("the subscription was not stored".into()))?;
        Ok((created, view(record, subdomain.to_owned())))
    }

    /// `DELETE /signpost/v1/subscriptions/{instance}/{subaccount}`: ends the subscription and
    /// deletes its subscription-level entities, all or nothing; the subscriber's tokens stop
    /// working at once.
    pub async fn unsubscribe(
        &self,
        instance_id: &str,
        subaccount_id: &str,
    ) -> Result<Subscription> {
        let entry = Entry::broker("unsubscribe", "subscription")
            .instance(instance_id)
            .subaccount(subaccount_id)
            .name(format!("{instance_id}/{subaccount_id}"));
        let result = async {
            check_id("The provider's instance id", instance_id)?;
            check_id("The subscriber's subaccount id", subaccount_id)?;
            let not_subscribed = || {
                Error::NotFound(format!(
                    "The subaccount '{subaccount_id}' is not subscribed to the instance '{instance_id}'"
                ))
            };
            let store = self.store();
            let record = store
                .get_subscription(instance_id, subaccount_id)
                .await?
                .ok_or_else(not_subscribed)?;
            let subdomain = store
                .get_subaccount(subaccount_id)
                .await?
                .map(|s| s.subdomain)
                .unwrap_or_default();
            self.write(vec![WriteOp::Unsubscribe {
                instance_id: instance_id.to_owned(),
                subaccount_id: subaccount_id.to_owned(),
            }])
            .await
            .map_err(|e| match e {
                signpost_store::Error::NotFound { .. } => not_subscribed(),
                other => other.into(),
            })?;
            self.inner.principals.clear();
            let owner = OwnerRef::subscription(instance_id, subaccount_id);
            self.inner
                .flows
                .forget(owner.level.as_str(), &owner.id, None)
                .await;
            Ok(view(record, subdomain))
        }
        .await;
        let result = self.audited(entry, 200, result).await;
        if result.is_ok() {
            tracing::info!(
                instance = instance_id,
                subaccount = subaccount_id,
                "subscription deleted"
            );
        }
        result
    }

    /// `GET /signpost/v1/subscriptions/{instance}`: the instance's subscriptions.
    pub async fn subscriptions(&self, instance_id: &str) -> Result<Vec<Subscription>> {
        let store = self.store();
        if store.get_instance(instance_id).await?.is_none() {
            return Err(Error::NotFound(format!(
                "The service instance '{instance_id}' does not exist"
            )));
        }
        let mut out = Vec::new();
        for record in store.list_subscriptions(instance_id).await? {
            let subdomain = store
                .get_subaccount(&record.subaccount_id)
                .await?
                .map(|s| s.subdomain)
                .unwrap_or_default();
            out.push(view(record, subdomain));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_are_dns_labels() {
        for ok in ["a", "tenant-1", "x0", &"a".repeat(63)] {
            assert!(check_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64), "ä"] {
            assert!(check_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_cannot_hold_the_owner_separator() {
        assert!(check_id("id", "inst-1.a_b").is_ok());
        for bad in ["", "a/b", "a b", &"a".repeat(201)] {
            assert!(check_id("id", bad).is_err(), "{bad}");
        }
    }
}
