//! The suda chat server (being written).
