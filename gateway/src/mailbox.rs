//! A party's mailbox: follows its inbox at the mediator live and hands messages to
//! whoever waits for them (by thread, by type), keeping the rest for later.

use std::sync::Arc;
use std::time::Duration;

use did_core::didcomm::{Message, UnpackMetadata};
use tokio::sync::{mpsc, oneshot};

use crate::agent::Agent;
use crate::error::{Error, Result};

/// An authenticated message from the inbox.
pub type Received = (Message, UnpackMetadata);

/// Messages arriving for one agent.
pub struct Mailbox {
    rx: mpsc::UnboundedReceiver<Received>,
    backlog: Vec<Received>,
    _stop: oneshot::Sender<()>,
}

impl Mailbox {
    /// Starts following `agent`'s inbox (live, reconnecting) in the background.
    pub fn start(agent: Arc<Agent>) -> Mailbox {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut drops = DropLog::default();
            let handler = move |inc: crate::agent::Incoming| -> Result<()> {
                match inc.result {
                    Ok(m) => {
                        let _ = tx.send(m);
                    }
                    Err(e) => drops.record(&inc.id, &e),
                }
                Ok(())
            };
            let stop = async {
                let _ = stop_rx.await;
            };
            if let Err(e) = agent.follow(handler, stop).await {
                tracing::error!(error = %e, "mailbox stopped");
            }
        });
        Mailbox { rx, backlog: Vec::new(), _stop: stop_tx }
    }

    /// The first message (queued or arriving) for which `want` holds, within `timeout`.
    pub async fn recv_matching(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&Received) -> bool,
    ) -> Result<Received> {
        if let Some(i) = self.backlog.iter().position(&mut want) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Err(Error::Timeout("the expected message".into())),
                Ok(None) => return Err(Error::State("the mailbox stopped".into())),
                Ok(Some(m)) if want(&m) => return Ok(m),
                Ok(Some(m)) => {
                    if self.backlog.len() >= 10_000 {
                        self.backlog.remove(0);
                    }
                    self.backlog.push(m);
                }
            }
        }
    }

    /// The next message of type `type_`.
    pub async fn recv_type(&mut self, type_: &str, timeout: Duration) -> Result<Received> {
        self.recv_matching(timeout, |(m, _)| m.type_ == type_).await
    }
}

/// How often, at most, a summary of dropped messages is logged.
const DROP_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Logs unreadable messages without letting a stranger flood the terminal: the first one
/// is a warning, later ones are counted and summed up at most every [`DROP_SUMMARY_EVERY`]
/// (each one still at debug level).
#[derive(Default)]
struct DropLog {
    since_summary: u64,
    last_summary: Option<std::time::Instant>,
}

impl DropLog {
    fn record(&mut self, id: &str, error: &dyn std::fmt::Display) {
        tracing::debug!(id, error = %error, "dropped an unreadable message");
        let now = std::time::Instant::now();
        match self.last_summary {
            None => {
                tracing::warn!(id, error = %error, "dropped an unreadable message (later ones are counted)");
                self.last_summary = Some(now);
            }
            Some(last) => {
                self.since_summary += 1;
                if now.duration_since(last) >= DROP_SUMMARY_EVERY {
                    tracing::warn!(count = self.since_summary, last_error = %error, "dropped unreadable messages");
                    self.since_summary = 0;
                    self.last_summary = Some(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_summed_up_not_logged_one_by_one() {
        let mut log = DropLog::default();
        let e = "junk";
        log.record("a", &e);
        for _ in 0..1000 {
            log.record("b", &e);
        }
        assert_eq!(log.since_summary, 1000, "within the interval, drops are only counted");
        log.last_summary = Some(std::time::Instant::now() - DROP_SUMMARY_EVERY);
        log.record("c", &e);
        assert_eq!(log.since_summary, 0, "a summary resets the count");
    }
}
