//! Async client library for suda (being written).
