//! # session
//!
//! didmpc sessions: a Noise KK handshake whose two messages travel as DIDComm messages,
//! then a data plane of encrypted packets (explicit nonces, key epochs, replay window)
//! that carries multiplexed, flow-controlled, reliable byte streams through an untrusted
//! relay. The core is sans-IO ([`Session`]); [`driver`] runs it on tokio.
//!
//! ```text
//!  app streams ──write──▶ Session ──poll_transmit──▶ packets ──▶ relay ──▶ peer
//!  app streams ◀──read─── Session ◀──handle_packet── packets ◀── relay ◀── peer
//!                            ▲ handle_timeout / poll_timeout (time is an argument)
//! ```
//! See `specs/session.md`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cc;
pub mod crypto;
pub mod driver;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod path;
mod recovery;
pub mod session;
pub mod stream;
pub mod udp;

pub use driver::{Handle, Incoming, Link, LinkEvent, SessionStream};
pub use error::{CloseReason, Error, Result};
pub use handshake::{Initiator, Keys, Params, Role};
pub use path::{Nat, Offer, PathAddr, PathConfig, PathReport};
pub use session::{Config, Event, Session, Stats, Transmit, HEADROOM};
pub use stream::Read;
