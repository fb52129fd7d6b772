//! `cargo +nightly fuzz run http_endpoint`: see `stage7_transport::fuzz::http_endpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stage7_transport::fuzz::http_endpoint(data));
