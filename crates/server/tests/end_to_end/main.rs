//! End-to-end tests: the real server on an ephemeral loopback port, driven over real sockets.

mod abuse;
mod binary;
mod chat;
mod client;
mod framing;
mod hibernation;
mod limits;
mod login;
mod metrics;
mod moderation;
mod presence;
mod reconnect;
mod resume;
mod rooms;
mod scale;
mod shutdown;
mod storage;
mod support;
mod tls;
