//! `cargo +nightly fuzz run amqp_delivery`: see `stage7_transport::fuzz::amqp_delivery`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stage7_transport::fuzz::amqp_delivery(data));
