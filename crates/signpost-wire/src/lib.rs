//! The SAP-compatible JSON shapes of Signpost's wire contract (API.md): destination, fragment and
//! certificate bodies, find-destination results and `authTokens`, bulk responses, the error body,
//! the Open Service Broker bodies and the instance configuration JSON, with their conversion to
//! and from `signpost-model`. Must not depend on the store or the API crate.

mod audit;
mod config;
mod entities;
mod find;
mod osb;
pub mod request_id;
mod tenancy;

pub use audit::AuditEntry;
pub use config::{ConfigError, ExistingPolicy, InstanceConfig, LevelInit};
pub use entities::{
    certificate_from_json, certificate_to_json, destination_from_json, fragment_from_json,
    properties_to_json, split_body, BodyShape, BulkDeleteItem, BulkDeleteResponse, BulkItem, Count,
    EntityError, ErrorBody, NameOnly, CERTIFICATE_PRIVATE_KEYS,
};
pub use find::{AuthToken, CertificateItem, FindResponse, HttpHeader, Owner};
pub use osb::{
    BindRequest, Catalog, OsbError, Plan, ProvisionRequest, Service, ServiceKey, UpdateRequest,
};
pub use tenancy::Subscription;
