//! An invitee after its `join`: it waits for the host's `start` (the final roster), an
//! `abort`, or a refusal of its join, and checks that the roster it is given is the one it
//! accepted, with itself in its place.

use did_core::didcomm::vocab::ProblemReport;
use did_core::didcomm::Message;

use crate::descriptor::Descriptor;
use crate::error::Error;
use crate::wire::{of_session, Abort, Member, Start};

/// An input of [`JoinCore::handle`].
#[derive(Debug)]
pub enum JoinIn<'a> {
    /// An authenticated message from the inbox.
    Message {
        /// The message.
        msg: &'a Message,
        /// Its authenticated sender.
        sender: &'a str,
    },
    /// Time passed (Unix seconds).
    Tick(u64),
}

/// How waiting ended.
#[derive(Debug)]
pub enum JoinOut {
    /// The final roster, checked.
    Started(Vec<Member>),
    /// Refused, aborted or timed out.
    Failed(Error),
}

/// Waiting for `start`.
pub struct JoinCore {
    d: Descriptor,
    me: usize,
    agent: String,
    join_id: String,
    until: u64,
}

/// Extra time after the descriptor's expiry for the host's `start` to arrive.
pub const STRAGGLE_SECS: u64 = 60;

impl JoinCore {
    /// We (`agent`, pid `me`) sent join `join_id` for `d`.
    pub fn new(d: Descriptor, me: usize, agent: &str, join_id: &str) -> JoinCore {
        let until = d.expires + STRAGGLE_SECS;
        JoinCore { d, me, agent: agent.to_owned(), join_id: join_id.to_owned(), until }
    }

    /// When to give up (Unix seconds).
    pub fn until(&self) -> u64 {
        self.until
    }

    /// Feeds one input; `None` while still waiting.
    pub fn handle(&mut self, input: JoinIn<'_>) -> Option<JoinOut> {
        match input {
            JoinIn::Tick(now) if now >= self.until => {
                Some(JoinOut::Failed(Error::Timeout(format!("the start of session {} from the host", self.d.id))))
            }
            JoinIn::Tick(_) => None,
            JoinIn::Message { sender, .. } if sender != self.d.host => None,
            JoinIn::Message { msg, .. } => self.host_message(msg),
        }
    }

    fn host_message(&self, msg: &Message) -> Option<JoinOut> {
        let host = self.d.host.clone();
        if let Some(start) = of_session::<Start>(msg, &self.d.id) {
            return Some(match self.check(&start.members) {
                Ok(()) => JoinOut::Started(start.members),
                Err(why) => JoinOut::Failed(Error::Protocol(format!("the host's final roster is wrong: {why}"))),
            });
        }
        if let Some(abort) = of_session::<Abort>(msg, &self.d.id) {
            return Some(JoinOut::Failed(Error::Refused { who: host, code: "aborted".into(), comment: abort.reason }));
        }
        if msg.pthid.as_deref() == Some(self.join_id.as_str()) {
            if let Ok(p) = msg.parse::<ProblemReport>() {
                let comment = p.comment.unwrap_or_default();
                return Some(JoinOut::Failed(Error::Refused { who: host, code: p.code, comment }));
            }
        }
        None
    }

    /// The roster we accepted, in order, with us and the host as themselves.
    fn check(&self, members: &[Member]) -> Result<(), String> {
        if members.len() != self.d.roster.len() {
            return Err(format!("{} members for {} roster places", members.len(), self.d.roster.len()));
        }
        for (j, (m, did)) in members.iter().zip(&self.d.roster).enumerate() {
            if &m.did != did {
                return Err(format!("pid {j} is {} instead of {did}", m.did));
            }
            if m.agent != m.did && !m.did.starts_with("did:pkh:") {
                return Err(format!("pid {j} ({did}) would act as another DID, {}", m.agent));
            }
            did_core::Did::parse(&m.agent).map_err(|e| format!("pid {j}: {e}"))?;
        }
        if members[self.me].agent != self.agent {
            return Err(format!("our place, pid {}, is given to {}", self.me, members[self.me].agent));
        }
        let mut agents: Vec<&str> = members.iter().map(|m| m.agent.as_str()).collect();
        agents.sort_unstable();
        if agents.windows(2).any(|w| w[0] == w[1]) {
            return Err("one DID holds two places".into());
        }
        Ok(())
    }
}
