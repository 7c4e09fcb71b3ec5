//! # mediator
//!
//! A DIDComm v2 mediator for didmpc: parties behind NATs keep one outbound connection
//! to it; it queues what it cannot read until they pick it up.
//!
//! ```text
//!  sender ──POST /didcomm or /ws──▶ router ──forward──▶ store (SQLite, group commit)
//!                                     │                     │
//!                                     │ mediate/recipient   └─live─▶ client's WebSocket
//!                                     ▼ pickup, ping, …
//!                                   answers (authcrypt, return route)
//! ```
//!
//! Protocols: Routing 2.0, Coordinate Mediation 2.0 and 3.0, Message Pickup 3.0 with
//! live delivery, Trust Ping 2.0, Discover Features 2.0, Problem Report 2.0, OOB 2.0
//! short links, DID rotation through `from_prior`. See `specs/mediator.md`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod error;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod protocols;
pub mod quota;
pub mod resolution;
pub mod router;
pub mod server;
pub mod state;
pub mod store;
pub mod transport;

pub use config::Config;
pub use error::{Error, Result};
pub use router::{Channel, Outcome};
pub use server::serve;
pub use state::Mediator;

/// Truncates untrusted text for messages.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= 120 {
        return s.to_owned();
    }
    let mut end = 120;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
