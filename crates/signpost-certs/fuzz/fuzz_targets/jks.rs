//! The JKS reader on any bytes; what it reads must write and read back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_certs::jks::{JksEntry, Keystore};

fuzz_target!(|data: &[u8]| {
    let _ = Keystore::from_bytes(data, Some("changeit"));
    if let Ok(ks) = Keystore::from_bytes(data, None) {
        for entry in &ks.entries {
            if let JksEntry::PrivateKey(key) = entry {
                let _ = key.decrypt_key("changeit");
            }
        }
        if let Ok(bytes) = ks.to_bytes("changeit") {
            let back =
                Keystore::from_bytes(&bytes, Some("changeit")).expect("our own output reads back");
            assert_eq!(back.entries, ks.entries);
        }
    }
});
