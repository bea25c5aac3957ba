//! Coverage-guided fuzz targets for suda, built and run with `cargo fuzz` (see `README.md`).
//!
//! The targets in `fuzz_targets/` are one-liners; what they check lives here, so it can be read
//! in one place and replayed by `cargo test` without libFuzzer:
//! - [`codec`]: the `decode` target (arbitrary bytes through `suda_protocol::decode`) and the
//!   `framing` target (a stream fed in arbitrary chunks frames exactly as the whole stream does).
//! - `session` (feature `session`, on by default): the `session` target, a real server driven over
//!   TCP by arbitrary operation sequences and checked against a model of the protocol's session
//!   rules.
//!
//! The seed corpus under `corpus/` is written by `cargo test -- --ignored write_seed_corpus`.

pub mod codec;
#[cfg(feature = "session")]
pub mod session;

#[cfg(all(test, feature = "session"))]
mod seeds;
