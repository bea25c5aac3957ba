//! Arbitrary bytes through `suda_protocol::decode`: see `suda_fuzz::codec::check_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| suda_fuzz::codec::check_decode(data));
