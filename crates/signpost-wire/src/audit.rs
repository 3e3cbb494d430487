//! Signpost's audit log as `GET /signpost/v1/audit` returns it (docs/API.md): one object per
//! event, names and ids only.

use serde::{Deserialize, Serialize};

/// One audit event. Absent facts are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Grows with every event recorded.
    pub id: i64,
    /// When it happened: RFC 3339 in UTC, with milliseconds.
    pub time: String,
    /// The binding's client id, `broker` for the platform, `signpost` for the server's own jobs.
    pub actor: String,
    /// The subaccount and instance of what was written (the instance only for instance-level
    /// entities, instances, bindings and tokens).
    pub subaccount: Option<String>,
    pub instance: Option<String>,
    /// `create`, `update`, `delete`, `generate`, `renew`, `rotate`, `provision`, `deprovision`,
    /// `bind`, `unbind` or `issue`.
    pub action: String,
    /// `destination`, `fragment`, `certificate`, `instance`, `binding`, `signing-key`,
    /// `saml-key` or `token`, and the name or id of that thing.
    pub entity_kind: Option<String>,
    pub entity_name: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// The HTTP status the operation ended with.
    pub status: u16,
    /// The `x-request-id` of the request that did it.
    pub request_id: Option<String>,
}
