//! What a party's run reports as it goes, for a live view (the lobby page) or JSON
//! events: the steps between "joined" and "done" that the flows do not return.

use std::sync::Arc;

use crate::wire::Member;

/// One step of a party's session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// We sent our `join` (as pid `pid`) and wait for the host's final roster.
    Joining {
        /// Our pid.
        pid: usize,
    },
    /// The roster is final: who acts for each place, and what the host verified.
    Final {
        /// The members in pid order.
        members: Vec<Member>,
    },
    /// Every pairwise session is up.
    SessionsUp {
        /// How long the handshakes took, in milliseconds.
        ms: u64,
    },
    /// MPyC was launched.
    Running,
    /// The run's state changed (`finishing`, `finished`, `failed: …`).
    State(String),
}

/// Where events go (called on the flow's task: keep it quick).
pub type Events = Arc<dyn Fn(Event) + Send + Sync>;

/// Reports `e` to `events`, if any.
pub fn emit(events: &Option<Events>, e: Event) {
    if let Some(f) = events {
        f(e);
    }
}
