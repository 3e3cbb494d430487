//! Domain types of Signpost and their validation: levels, owners, destinations, fragments,
//! certificates, names and limits. No I/O and no async; the wire format lives in `signpost-wire`.
//!
//! Every type that can hold a secret prints it redacted in `Debug`.

mod entity;
mod names;
mod redact;

pub use entity::{
    is_secret_property, Certificate, Destination, EntityKind, Fragment, Level, NameFilter,
    OwnerRef, Properties, ValidationError,
};
pub use names::{validate_certificate_name, validate_entity_name, MAX_NAME_LEN};
pub use redact::{RedactedJson, RedactedObject, REDACTED};

/// Default number of entities of one kind that one owner may hold on one level (SAP's limit).
pub const DEFAULT_MAX_ENTITIES: u32 = 1000;
