//! `signpost_fuzz::proxy_answer` under libFuzzer (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signpost_fuzz::proxy_answer(data));
