//! Certificates and keystores: parse and validate what users upload (PEM, DER, PKCS#12, JKS),
//! describe it (the details view), and generate certificates from Signpost's own CA. No I/O
//! beyond byte slices; must not depend on the store or the API.
//!
//! Fuzzed by the targets `certs_parse` and `jks` of `crates/signpost-fuzz` (nightly, `cargo install
//! cargo-fuzz`): `cd fuzz && cargo +nightly fuzz run certs_parse -- -max_total_time=60` from the
//! repository root (docs/RELIABILITY.md, Fuzzing).

pub mod ca;
pub mod jks;
pub mod parse;
pub mod pem;

/// The SHA-256 fingerprint of a DER certificate as upper-case hex pairs separated by colons, as
/// `openssl x509 -fingerprint -sha256` prints it: one format everywhere (details view, X.509
/// bindings, CA output).
pub fn sha256_fingerprint(der: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
