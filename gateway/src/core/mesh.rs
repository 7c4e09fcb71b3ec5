//! The mesh of pairwise sessions for one MPC session: every pair of members runs one Noise
//! session; the lower pid initiates (as MPyC's lower pid dials); all handshakes run at
//! once. `init`s from anyone off the roster, from a higher pid, or repeated, are refused or
//! ignored here, so only members ever get a handshake.

use did_core::didcomm::Message;

use super::Send;
use crate::error::Error;
use crate::wire::{Accept, Init, Reject};
use did_core::didcomm::Typed;

/// An input of [`MeshCore::handle`].
#[derive(Debug)]
pub enum MeshIn<'a> {
    /// An authenticated session-protocol message for this session (the driver filters by
    /// session id and thread).
    Message {
        /// The message.
        msg: &'a Message,
        /// Its authenticated sender.
        sender: &'a str,
    },
    /// Our `init` to `pid` left, with this message id.
    Initiated {
        /// The peer.
        pid: usize,
        /// The init's id (answers thread under it).
        init_id: String,
    },
    /// The session with `pid` is up, or could not be made.
    Done {
        /// The peer.
        pid: usize,
        /// What went wrong, if anything.
        result: Result<(), Error>,
    },
    /// The time (milliseconds on the driver's clock).
    Tick(u64),
}

/// What the driver does next.
// Short-lived values handed straight to the driver: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum MeshOut {
    /// Send our `init` to `pid` (then feed [`MeshIn::Initiated`]).
    Initiate(usize),
    /// Answer `pid`'s `init` (reserve a relay route, send `accept`; then feed [`MeshIn::Done`]).
    Respond(usize),
    /// Finish our handshake with `pid`'s answer (then feed [`MeshIn::Done`]).
    Complete(usize),
    /// Send this (a `reject`, in the background).
    Send(Send),
    /// Every session is up.
    Up,
    /// The mesh failed.
    Failed(Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Peer {
    Us,
    Idle,
    Initiated(String),
    Working,
    Up,
}

/// The mesh's state.
pub struct MeshCore {
    me: usize,
    agents: Vec<String>,
    peers: Vec<Peer>,
    deadline_ms: u64,
    over: bool,
}

impl MeshCore {
    /// The mesh between `agents` (pid order) as pid `me`, failing at `deadline_ms`.
    pub fn new(me: usize, agents: Vec<String>, deadline_ms: u64) -> MeshCore {
        let peers = (0..agents.len()).map(|j| if j == me { Peer::Us } else { Peer::Idle }).collect();
        MeshCore { me, agents, peers, deadline_ms, over: false }
    }

    /// The first actions: an `init` to every higher pid.
    pub fn start(&mut self) -> Vec<MeshOut> {
        let mut out: Vec<MeshOut> = (self.me + 1..self.agents.len()).map(MeshOut::Initiate).collect();
        out.extend(self.check_up());
        out
    }

    /// The pid whose init has this id.
    pub fn initiated(&self, thid: &str) -> Option<usize> {
        self.peers.iter().position(|p| matches!(p, Peer::Initiated(id) if id == thid))
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, input: MeshIn<'_>) -> Vec<MeshOut> {
        if self.over {
            return Vec::new();
        }
        match input {
            MeshIn::Initiated { pid, init_id } => {
                if self.peers[pid] == Peer::Idle {
                    self.peers[pid] = Peer::Initiated(init_id);
                }
                Vec::new()
            }
            MeshIn::Done { pid, result: Ok(()) } => {
                self.peers[pid] = Peer::Up;
                self.check_up()
            }
            MeshIn::Done { pid, result: Err(e) } => {
                self.over = true;
                let did = self.agents[pid].clone();
                vec![MeshOut::Failed(Error::PeerLost { pid, did, why: format!("no session: {e}") })]
            }
            MeshIn::Tick(now) if now >= self.deadline_ms => {
                self.over = true;
                let missing: Vec<String> = (0..self.peers.len())
                    .filter(|&j| !matches!(self.peers[j], Peer::Up | Peer::Us))
                    .map(|j| format!("pid {j} ({})", self.agents[j]))
                    .collect();
                vec![MeshOut::Failed(Error::Timeout(format!("sessions with {}", missing.join(", "))))]
            }
            MeshIn::Tick(_) => Vec::new(),
            MeshIn::Message { msg, sender } => self.message(msg, sender),
        }
    }

    fn message(&mut self, msg: &Message, sender: &str) -> Vec<MeshOut> {
        let pid = self.agents.iter().position(|a| a == sender);
        if msg.is::<Init>() {
            let why = match pid {
                None => "not on the roster",
                Some(j) if j == self.me => "that is us",
                Some(j) if j > self.me => "the lower pid initiates",
                Some(j) if self.peers[j] != Peer::Idle => {
                    tracing::debug!(pid = j, "a repeated session init; the first one won");
                    return Vec::new();
                }
                Some(j) => {
                    self.peers[j] = Peer::Working;
                    return vec![MeshOut::Respond(j)];
                }
            };
            tracing::warn!(from = %sender, "refused a session init: {why}");
            let mut reject = Message::typed(&Reject { reason: why.into() });
            reject.thid = Some(msg.id.clone());
            return vec![MeshOut::Send(Send::background(sender, None, reject))];
        }
        if msg.type_ == Accept::TYPE || msg.type_ == Reject::TYPE {
            let Some(j) = msg.thid.as_deref().and_then(|t| self.initiated(t)) else { return Vec::new() };
            if pid != Some(j) {
                tracing::warn!(from = %sender, "an answer to our session init from someone else; ignored");
                return Vec::new();
            }
            self.peers[j] = Peer::Working;
            return vec![MeshOut::Complete(j)];
        }
        Vec::new()
    }

    fn check_up(&mut self) -> Vec<MeshOut> {
        if self.peers.iter().all(|p| matches!(p, Peer::Up | Peer::Us)) {
            self.over = true;
            return vec![MeshOut::Up];
        }
        Vec::new()
    }
}
