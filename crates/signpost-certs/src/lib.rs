//! Certificates and keystores: parse and validate what users upload (PEM, DER, PKCS#12, JKS),
//! describe it (the details view), and generate certificates from Signpost's own CA. No I/O
//! beyond byte slices; must not depend on the store or the API.

pub mod ca;
pub mod jks;
pub mod parse;
