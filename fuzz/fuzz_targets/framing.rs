//! A byte stream decoded chunk by chunk frames as it does whole: see
//! `suda_fuzz::codec::check_framing`.
#![no_main]

use suda_fuzz::codec::{FramingInput, check_framing};

libfuzzer_sys::fuzz_target!(|input: FramingInput<'_>| check_framing(&input));
