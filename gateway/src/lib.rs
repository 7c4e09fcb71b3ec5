//! # gateway
//!
//! The party's agent: the link to its mediator (Coordinate Mediation 3.0, Pickup 3.0),
//! sending and receiving DIDComm messages. Later: invite/join, sessions and the MPyC
//! port map.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod agent;
pub mod error;
pub mod link;
pub mod mailbox;
pub mod pairing;
pub mod relay_client;
pub mod transport;

pub use agent::{Agent, AgentFile, Incoming};
pub use error::{Error, Result};
