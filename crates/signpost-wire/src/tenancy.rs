//! SaaS multitenancy as `/signpost/v1/subscriptions` shows it (docs/MULTITENANCY.md): a
//! subscriber subaccount subscribed to a provider's service instance.

use serde::{Deserialize, Serialize};

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    /// The provider's service instance.
    pub instance_id: String,
    /// The subscriber subaccount: the tenant (`zid`) of its tokens.
    pub subaccount_id: String,
    /// The subscriber's subdomain (`ext_attr.zdn`): its tenant token URL is
    /// `<scheme>://<subdomain>.<uaadomain>/oauth/token`.
    pub subdomain: String,
    /// When it subscribed: RFC 3339 in UTC.
    pub created_at: String,
}
