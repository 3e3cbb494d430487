//! Domain types of Signpost and their validation: levels, owners, destinations, fragments,
//! certificates, names and limits. No I/O and no async; the wire format lives in `signpost-wire`.
//!
//! Every type that can hold a secret prints it redacted in `Debug`.

mod entity;
mod labels;
mod names;
mod redact;

pub use entity::{
    is_secret_property, Certificate, Destination, EntityKind, Fragment, Level, NameFilter,
    OwnerRef, Properties, ValidationError,
};
pub use labels::{
    labels_match, patch_labels, validate_label_key, validate_label_patch, validate_label_value,
    validate_labels, Label, LabelAction, LabelMatch, LabelPatch, MAX_LABEL_KEYS, MAX_LABEL_KEY_LEN,
    MAX_LABEL_VALUES, MAX_LABEL_VALUE_LEN,
};
pub use names::{validate_certificate_name, validate_entity_name, MAX_NAME_LEN};
pub use redact::{RedactedJson, RedactedObject, REDACTED};

/// Default number of entities of one kind that one owner may hold on one level (SAP's limit).
pub const DEFAULT_MAX_ENTITIES: u32 = 1000;
