//! `signpost_fuzz::properties_import` under libFuzzer (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signpost_fuzz::properties_import(data));
