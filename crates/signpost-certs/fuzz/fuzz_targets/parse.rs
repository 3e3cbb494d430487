//! `parse` on any bytes, without a password and with the one the seed corpus uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost_certs::parse::{client_identity_pem, parse, public_keys, validate_chain};

fuzz_target!(|data: &[u8]| {
    for password in [None, Some("changeit")] {
        if let Ok(store) = parse(data, password) {
            let _ = validate_chain(&store);
            let _ = public_keys(&store);
            let _ = client_identity_pem(&store);
            let _ = store.details_json(time::OffsetDateTime::UNIX_EPOCH);
        }
    }
});
