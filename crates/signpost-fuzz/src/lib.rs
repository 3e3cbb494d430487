//! The fuzz targets of Signpost: one `pub fn <target>(data: &[u8])` per parser that takes outside
//! input, feeding the bytes to the real parser and asserting what must hold of its answer (it
//! never panics; what it accepts writes back and reads back equal). The cargo-fuzz crate in
//! `fuzz/` at the repository root calls these functions, one tiny binary per target, and
//! `tests/replay.rs` runs every committed corpus and crash reproducer through them as an ordinary
//! test. A panic (a failed assertion included) is a finding.
//!
//! Nothing depends on this crate; it depends on whichever crates own the parsers.

#![forbid(unsafe_code)]

mod certs;
mod entity;
mod jwt;
mod list;
mod properties;
mod proxy;

pub use certs::{certs_parse, jks};
pub use entity::{entity_body, instance_config};
pub use jwt::bearer_jwt;
pub use list::list_options;
pub use properties::properties_import;
pub use proxy::{proxy_answer, proxy_config, proxy_headers};

/// A fuzz target: any bytes in, a panic when something that must hold does not.
pub type Target = fn(&[u8]);

/// Every target by its name: the name of its binary in `fuzz/fuzz_targets/` and of its
/// directories under `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("certs_parse", certs_parse),
    ("jks", jks),
    ("entity_body", entity_body),
    ("instance_config", instance_config),
    ("list_options", list_options),
    ("properties_import", properties_import),
    ("proxy_headers", proxy_headers),
    ("proxy_config", proxy_config),
    ("proxy_answer", proxy_answer),
    ("bearer_jwt", bearer_jwt),
];

/// The password the seed corpora's keystores use (`fuzz/seed.sh`), so that the fuzzer gets past
/// decryption.
pub const SEED_PASSWORD: &str = "changeit";
