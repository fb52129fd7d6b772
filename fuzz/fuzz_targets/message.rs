//! `cargo +nightly fuzz run message`: see `stage7_transport::fuzz::message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stage7_transport::fuzz::message(data));
