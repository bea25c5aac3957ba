//! Test helpers for suda.
//!
//! [`FaultProxy`] sits between a client and a server on loopback and breaks the link on command:
//! it cuts connections (all at once, or after an exact number of bytes, so a cut can land in the
//! middle of a packet), delays and throttles traffic, pauses it without closing anything, and
//! counts what it forwarded. It knows nothing about the suda protocol: it moves bytes.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) {
//! use suda_testkit::{Direction, FaultProxy};
//!
//! let proxy = FaultProxy::start(server);
//! // Connect the client under test to `proxy.addr()` instead of `server`, then:
//! proxy.cut_after_bytes(Direction::ServerToClient, 7); // the next packet down arrives cut short
//! proxy.wait_until(|stats| stats.cuts >= 1).await;
//! proxy.wait_until(|stats| stats.accepted >= 2).await; // the client came back
//! # }
//! ```
//!
//! Modules (private; what they export is re-exported here):
//! - `proxy`: [`FaultProxy`], the handle tests hold: it owns the listener, every forwarding
//!   task, and the controls.
//! - `faults`: the settings the controls change ([`Direction`], [`CutStyle`]), the cut-after
//!   budgets, and the counters ([`ProxyStats`]), shared by the handle and the tasks.
//! - `link`: forwarding one proxied connection, both directions, applying the faults.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod faults;
mod link;
mod proxy;

pub use faults::{CutStyle, Direction, ProxyStats};
pub use proxy::FaultProxy;
