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
            let handler = move |inc: crate::agent::Incoming| -> Result<()> {
                match inc.result {
                    Ok(m) => {
                        let _ = tx.send(m);
                    }
                    Err(e) => {
                        tracing::warn!(id = %inc.id, error = %e, "dropped an unreadable message")
                    }
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
