//! # gateway
//!
//! The party's agent: the link to its mediator (Coordinate Mediation 3.0, Pickup 3.0),
//! sending and receiving DIDComm messages, pairwise Noise sessions, and the MPC session
//! flow: invite and join (`invite`, `join`, `mpc`), the signed descriptor, the mesh of
//! sessions, the loopback port map (`tunnel`), and launching MPyC (`runner`, `run`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod agent;
pub mod background;
pub mod core;
pub mod descriptor;
pub mod direct;
pub mod error;
pub mod events;
pub mod flow;
pub mod inbox;
pub mod invite;
pub mod join;
pub mod link;
pub mod mailbox;
pub mod mesh;
pub mod pairing;
pub mod peercred;
pub mod relay_client;
pub mod run;
pub mod runner;
pub mod status;
pub mod transport;
pub mod tunnel;
pub mod venv;
pub mod wire;

pub use agent::{Agent, AgentFile, Incoming};
pub use error::{Error, Result};
