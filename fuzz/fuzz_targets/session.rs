//! A real server driven by arbitrary operation sequences: see
//! `suda_fuzz::session::check_session`.
#![no_main]

use suda_fuzz::session::{SessionInput, check_session, harness};

libfuzzer_sys::fuzz_target!(
    init: {
        harness();
    },
    |input: SessionInput<'_>| check_session(&input)
);
