//! Certificates and keystores as uploaded: every format `signpost_certs::parse` detects, and the
//! JKS reader and writer.

use signpost_certs::jks::{JksEntry, Keystore};
use signpost_certs::parse::{client_identity_pem, parse, public_keys, validate_chain};

use crate::SEED_PASSWORD;

/// `parse` on any bytes, without a password and with the seed corpora's; what parses goes
/// through every view the API offers of it.
pub fn certs_parse(data: &[u8]) {
    for password in [None, Some(SEED_PASSWORD)] {
        if let Ok(store) = parse(data, password) {
            let _ = validate_chain(&store);
            let _ = public_keys(&store);
            let _ = client_identity_pem(&store);
            let _ = store.details_json(time::OffsetDateTime::UNIX_EPOCH);
        }
    }
}

/// The JKS reader on any bytes; what it reads must write and read back unchanged.
pub fn jks(data: &[u8]) {
    let _ = Keystore::from_bytes(data, Some(SEED_PASSWORD));
    if let Ok(ks) = Keystore::from_bytes(data, None) {
        for entry in &ks.entries {
            if let JksEntry::PrivateKey(key) = entry {
                let _ = key.decrypt_key(SEED_PASSWORD);
            }
        }
        if let Ok(bytes) = ks.to_bytes(SEED_PASSWORD) {
            let back = Keystore::from_bytes(&bytes, Some(SEED_PASSWORD))
                .expect("our own output reads back");
            assert_eq!(back.entries, ks.entries);
        }
    }
}
