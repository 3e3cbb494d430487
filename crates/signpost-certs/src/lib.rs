//! Certificates and keystores: parse and validate what users upload (PEM, DER, PKCS#12, JKS),
//! describe it (the details view), and generate certificates from Signpost's own CA. No I/O
//! beyond byte slices; must not depend on the store or the API.
//!
//! Fuzzing (nightly, `cargo install cargo-fuzz`): `cd crates/signpost-certs/fuzz && ./seed.sh &&
//! cargo +nightly fuzz run parse corpus/parse -- -max_total_time=60` (likewise `jks corpus/jks`).

pub mod ca;
pub mod jks;
pub mod parse;
