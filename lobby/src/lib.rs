//! # lobby
//!
//! The casual user's way in: a small page served by the local `didmpc` process on
//! 127.0.0.1 (random port, secret token in the URL), opened in the user's own browser.
//! An invitee sees the host, the roster, the program with its arguments, threshold and
//! digest, and the proof the session asks for; signs in with the wallet already in the
//! browser (EIP-1193 `personal_sign` of the exact EIP-4361 message didmpc makes, checked
//! here as the host will check it); joins or declines; then follows the run live. The
//! host sees the invitation link and its QR code, each invitee's state, and starts or
//! cancels. See `specs/lobby.md`.
//!
//! ```text
//!  browser ──GET /t/<token>/ ─────────────▶ server ──guard (Host, Origin, token)──▶ assets
//!     │  ──POST /api/… (x-didmpc-token)──▶   │ ──api::parse──▶ Actions (JoinPage | HostPage)
//!     │  ◀── GET /api/events (SSE: View) ──  │                      │ decision / Start, Cancel
//!     │                                      hub (View) ◀── flow: progress, events, output
//!  wallet (window.ethereum): eth_requestAccounts, personal_sign
//! ```
//!
//! Modules: [`guard`] (who may ask: sans-IO), [`api`] (the commands), [`view`] and
//! [`progress`] (what the page shows: sans-IO), [`hub`] (the shared view), [`server`]
//! (axum, loopback only), [`joiner`] and [`host`] (the flows' side), [`qr`], [`browser`],
//! [`assets`].
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod assets;
pub mod browser;
pub mod error;
pub mod guard;
pub mod host;
pub mod hub;
pub mod joiner;
pub mod progress;
pub mod qr;
pub mod server;
pub mod view;

use std::sync::Arc;

pub use error::{Error, Result};
pub use host::HostPage;
pub use hub::Hub;
pub use joiner::{Decision, JoinPage, Mode};
pub use server::Lobby;
pub use view::Role;

/// The run's steps (joined, roster final, sessions up, running, …), shown on the page.
pub fn events(hub: &Arc<Hub>) -> gateway::events::Events {
    let hub = hub.clone();
    Arc::new(move |e| hub.update(|v| v.event(&e)))
}

/// `inner`, and the page too: each line of the program's output.
pub fn tee(hub: &Arc<Hub>, inner: gateway::runner::Sink) -> gateway::runner::Sink {
    let hub = hub.clone();
    Arc::new(move |line: &str| {
        inner(line);
        hub.update(|v| v.output(line));
    })
}
