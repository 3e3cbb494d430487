//! `signpost_fuzz::proxy_config` under libFuzzer (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signpost_fuzz::proxy_config(data));
