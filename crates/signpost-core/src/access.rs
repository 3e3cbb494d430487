//! Who may do what: the owner a caller's token addresses on each level (its tenant's subaccount,
//! the instance or a subscriber's subscription level), and what a subscriber's token may read
//! or change on the subscription level (`subscriber_access`, docs/MULTITENANCY.md).

use serde_json::Value;
use signpost_model::{EntityKind, Level, OwnerRef};

use crate::{Error, Principal, Result, Signpost};

impl Principal {
    /// The owner addressed by `level` for this caller: its tenant's subaccount, and the instance
    /// (for a subscriber's token, the subscription level: the instance × the subscriber).
    pub fn owner(&self, level: Level) -> OwnerRef {
        match level {
            Level::Subaccount => OwnerRef::subaccount(&self.subaccount_id),
            Level::Instance if self.provider_subaccount_id.is_some() => {
                OwnerRef::subscription(&self.instance_id, &self.subaccount_id)
            }
            Level::Instance => OwnerRef::instance(&self.instance_id),
        }
    }

    /// True for a subscriber's token (a tenant token of one of the provider's bindings).
    pub fn is_subscriber(&self) -> bool {
        self.provider_subaccount_id.is_some()
    }
}

/// Reading or changing, for [`Signpost::may`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Signpost {
    /// Whether `who` may read or change `kind`s on `level` through the configuration API. The
    /// provider's token may; a subscriber's token on its own subaccount level too. On the
    /// subscription level a subscriber's token needs every scope of the instance's
    /// `subscriber_access` (`destination` for destinations and fragments, `certificate`):
    /// `read_scopes` to read, `write_scopes` to change. None granted (the default) or one
    /// missing is a 403 that names what is needed.
    pub(crate) async fn may(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        access: Access,
    ) -> Result<()> {
        if !who.is_subscriber() || level == Level::Subaccount {
            return Ok(());
        }
        let section = match kind {
            EntityKind::Certificate => "certificate",
            EntityKind::Destination | EntityKind::Fragment => "destination",
        };
        let (list, what) = match access {
            Access::Read => ("read_scopes", "read"),
            Access::Write => ("write_scopes", "change"),
        };
        let granted: Value = self
            .store()
            .get_instance(&who.instance_id)
            .await?
            .and_then(|i| i.subscriber_access)
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let required: Vec<&str> = granted[section][list]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if required.is_empty() {
            return Err(Error::Forbidden(format!(
                "A subscriber's token may not {what} {}s on the subscription level: the instance's subscriber_access.{section}.{list} grants none",
                kind.noun()
            )));
        }
        let missing: Vec<&str> = required
            .into_iter()
            .filter(|s| !who.scopes.iter().any(|have| have == s))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "To {what} {}s on the subscription level, a subscriber's token needs the scope{} {} (subscriber_access.{section}.{list})",
            kind.noun(),
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        )))
    }
}
