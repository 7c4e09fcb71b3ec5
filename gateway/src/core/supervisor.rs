//! Supervision of one run: MPyC never times out, so the gateway turns a lost or failed peer
//! into a clear error on every side, and closes the sessions only once every peer is done
//! (so nobody's last bytes are cut).
//!
//! Running: MPyC exits 0 → tell every peer we are done, wait (bounded) for theirs, wait
//! until everything sent is acknowledged, close with [`CLOSE_DONE`]. MPyC fails → close
//! with [`CLOSE_FAILED`] and the reason. A peer's session ends in any other way than its
//! own clean close → stop MPyC, close everything, fail naming the peer.

use session::CloseReason;

use crate::error::Error;

/// Session close code: the party's MPyC finished and every peer said so too.
pub const CLOSE_DONE: u32 = 0;
/// Session close code: the party's MPyC failed (exit status in the reason).
pub const CLOSE_FAILED: u32 = 1;

/// An input of [`Supervisor::handle`].
#[derive(Debug)]
pub enum SupIn {
    /// MPyC exited (`None`: success; else how it failed).
    Exited(Option<String>),
    /// The session with `pid` ended.
    Closed(usize, CloseReason),
    /// Peer `pid` said its MPyC finished (its done mark arrived).
    PeerDone(usize),
    /// Everything we sent was acknowledged (after [`SupOut::Flush`]).
    Flushed,
    /// The grace period after MPyC's exit is over.
    GraceOver,
}

/// What the driver does next.
#[derive(Debug)]
pub enum SupOut {
    /// Kill MPyC.
    Kill,
    /// Send our done mark to every peer, then feed [`SupIn::GraceOver`] after the grace period.
    SendDone,
    /// Wait until everything sent is acknowledged (bounded by the grace period), then feed
    /// [`SupIn::Flushed`].
    Flush,
    /// Close every session with this code and reason.
    CloseAll(u32, String),
    /// Record this state (`running`, `finishing`, `finished`, `failed: …`).
    State(String),
    /// The run is over.
    Finish(Result<(), Error>),
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Finishing,
    Flushing,
    Over,
}

/// The supervision state.
pub struct Supervisor {
    me: usize,
    roster: Vec<String>,
    done: Vec<bool>,
    phase: Phase,
}

impl Supervisor {
    /// Supervises pid `me` among `roster` (the members' DIDs, pid order).
    pub fn new(me: usize, roster: Vec<String>) -> Supervisor {
        let mut done = vec![false; roster.len()];
        done[me] = true;
        Supervisor { me, roster, done, phase: Phase::Running }
    }

    /// Whether the run is over.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, input: SupIn) -> Vec<SupOut> {
        match (&self.phase, input) {
            (Phase::Over, _) => Vec::new(),
            (_, SupIn::PeerDone(j)) | (Phase::Finishing | Phase::Flushing, SupIn::Closed(j, _)) => {
                self.done[j] = true;
                self.maybe_flush()
            }
            (Phase::Running, SupIn::Closed(j, CloseReason::Peer(CLOSE_DONE, _))) => {
                self.done[j] = true;
                Vec::new()
            }
            (Phase::Running, SupIn::Closed(j, why)) => {
                let e = Error::PeerLost { pid: j, did: self.roster[j].clone(), why: why.to_string() };
                let mut out = vec![SupOut::Kill];
                out.extend(self.fail(e));
                out
            }
            (Phase::Running, SupIn::Exited(None)) => {
                self.phase = Phase::Finishing;
                let mut out = vec![SupOut::State("finishing".into()), SupOut::SendDone];
                out.extend(self.maybe_flush());
                out
            }
            (Phase::Running, SupIn::Exited(Some(how))) => {
                self.fail(Error::Mpc(format!("MPyC (pid {}) exited with {how}", self.me)))
            }
            (Phase::Finishing, SupIn::GraceOver) => {
                self.phase = Phase::Flushing;
                vec![SupOut::Flush]
            }
            (Phase::Flushing, SupIn::Flushed | SupIn::GraceOver) => {
                self.phase = Phase::Over;
                vec![
                    SupOut::CloseAll(CLOSE_DONE, "done".into()),
                    SupOut::State("finished".into()),
                    SupOut::Finish(Ok(())),
                ]
            }
            _ => Vec::new(),
        }
    }

    fn maybe_flush(&mut self) -> Vec<SupOut> {
        if self.phase == Phase::Finishing && self.done.iter().all(|d| *d) {
            self.phase = Phase::Flushing;
            return vec![SupOut::Flush];
        }
        Vec::new()
    }

    fn fail(&mut self, e: Error) -> Vec<SupOut> {
        self.phase = Phase::Over;
        vec![
            SupOut::CloseAll(CLOSE_FAILED, format!("pid {} failed: {e}", self.me)),
            SupOut::State(format!("failed: {e}")),
            SupOut::Finish(Err(e)),
        ]
    }
}
