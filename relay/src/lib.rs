//! # relay
//!
//! The didmpc session relay, in three parts: [`proto`] (typed frames, a pure codec with
//! hard limits, and [`auth`] for JOIN), [`server`] (the relay state and the per-connection
//! driver the mediator runs behind `GET /relay`) and [`client`] (the gateway's relay
//! connections, one task per relay URL). Both ends move frames through the one pump in
//! `pump`.
//!
//! ```text
//!  gateway (client)                       mediator (server)                         gateway (client)
//!  session ─packets─▶ RelayClient ══ws══▶ Relay::serve ─▶ Relay ─▶ Relay::serve ══ws══▶ RelayClient ─▶ session
//!   driver            one task per URL     CHALLENGE       routes: 2 slots each          JOIN(route, slot,
//!                     JOIN(route, slot,    JOIN ─▶ MAC ✓   held frames (bounded)         MAC over nonce)
//!                      MAC over nonce)     against the     queues (bounded)
//!                                          reservation's key
//!  reserve {route, key} ──DIDComm (authcrypt)──▶ mediator store     (the responder reserves;
//!  session accept {route, slot 0 secret} ──DIDComm (authcrypt)──▶ initiator   see specs/session.md)
//! ```
//!
//! A route has two slots: 0 for the session's initiator, 1 for its responder. The
//! responder reserves the route at its own mediator with a fresh [`auth::RouteKey`] and
//! gives the initiator slot 0's secret inside the encrypted session `accept`. The relay
//! sees route ids, sizes and timing, never a session's bytes in the clear, and without a
//! slot's secret nobody takes the slot.
//!
//! ```
//! use relay::auth::RouteKey;
//! use relay::proto::{Frame, RouteId};
//!
//! let key = RouteKey::generate();
//! let (route, nonce) = (RouteId([7; 16]), relay::auth::nonce());
//! let mac = key.slot_secret(0).join_mac(&nonce, &route, 0);
//! let join = Frame::Join { route, slot: 0, mac }.encode();
//! assert_eq!(join.len(), 50);
//! assert_eq!(Frame::decode(&join).unwrap(), Frame::Join { route, slot: 0, mac });
//! assert!(key.slot_secret(0).verify(&nonce, &route, 0, &mac));
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
#[cfg(feature = "client")]
pub mod client;
pub mod error;
#[cfg(feature = "server")]
pub mod mesh;
pub mod proto;
#[cfg(any(feature = "server", feature = "client", feature = "ws"))]
mod pump;
pub mod reflex;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "ws")]
pub mod ws;

pub use error::{Error, Result};
pub use proto::{Frame, JoinStatus, RouteId, MAX_FRAME};
#[cfg(any(feature = "server", feature = "client", feature = "ws"))]
pub use pump::FrameSocket;
