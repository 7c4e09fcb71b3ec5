//! Sends off the critical path: refusals to strangers and to parties whose proof failed.
//! They go out in background tasks, at most [`IN_FLIGHT`] at a time and each bounded by
//! [`SEND_TIMEOUT`]; past that they are dropped (a refusal is a courtesy, and whoever
//! floods us with junk gets fewer of them). The session's own sends never wait for them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::agent::Agent;
use crate::core::Send;

/// Most background sends at once.
pub const IN_FLIGHT: usize = 16;
/// Longest a background send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A bounded pool of background sends for one agent.
pub struct Background {
    agent: Arc<Agent>,
    slots: Arc<Semaphore>,
}

impl Background {
    /// A pool sending as `agent`.
    pub fn new(agent: Arc<Agent>) -> Background {
        Background { agent, slots: Arc::new(Semaphore::new(IN_FLIGHT)) }
    }

    /// Sends `s` in the background, or drops it when too many are in flight.
    pub fn send(&self, s: Send) {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            tracing::debug!(to = %s.to, "a background send was dropped: too many in flight");
            return;
        };
        let agent = self.agent.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(SEND_TIMEOUT, agent.send_via(s.msg, &s.to, s.via.as_ref())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(to = %s.to, error = %e, "a background send failed"),
                Err(_) => tracing::debug!(to = %s.to, "a background send timed out"),
            }
            drop(permit);
        });
    }
}
