//! The host's side of admission as a state machine: `join`s come in, proofs are checked
//! (by the driver, asynchronously: [`HostOut::Verify`] then [`HostIn::Verdict`]), and once
//! every roster member joined the host publishes the final roster (`start`). Refusals are
//! marked as background sends so a stranger's junk never delays the session.

use std::collections::BTreeSet;

use did_core::didcomm::vocab::ProblemReport;
use did_core::didcomm::{Message, ServiceTarget};

use super::{Refusal, Send};
use crate::descriptor::Descriptor;
use crate::error::Error;
use crate::wire::{of_session, Abort, Decline, Join, Member, Start};

/// What happens while the host waits, for progress output.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The invitation was handed to the invitee's mediator.
    Reached {
        /// Invitee.
        did: String,
        /// Its endpoint.
        via: String,
    },
    /// The invitee could not be reached directly (it can still join by the link).
    Unreachable {
        /// Invitee.
        did: String,
        /// Why.
        why: String,
    },
    /// An invitee joined (its proof, if the policy asks for one, verified).
    Joined {
        /// Invitee (roster DID).
        did: String,
        /// Its pid.
        pid: usize,
        /// The identity its proof established (None: the session asks for no proof).
        identity: Option<String>,
    },
    /// A join was refused (a failed proof, or a DID off the roster); the invitee may
    /// retry until the session expires.
    Refused {
        /// Who sent the join.
        did: String,
        /// The pid it asked for, if on the roster.
        pid: Option<usize>,
        /// The problem report code sent back.
        code: String,
        /// Why.
        why: String,
    },
    /// Who is still missing.
    Waiting {
        /// Missing roster DIDs.
        missing: Vec<String>,
    },
    /// Everyone joined; the host's go ([`HostIn::Start`]) sends the final roster (only
    /// with [`HostCore::manual_start`]).
    Ready,
}

/// An input of [`HostCore::handle`].
// Short-lived values handed straight to the driver: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum HostIn<'a> {
    /// An authenticated message from the inbox.
    Message {
        /// The message.
        msg: &'a Message,
        /// Its authenticated sender.
        sender: &'a str,
    },
    /// The driver checked a join's proof.
    Verdict {
        /// The pid the join asked for.
        pid: usize,
        /// Who sent the join.
        sender: String,
        /// The join.
        join: Join,
        /// The join message's id (refusals thread under it).
        join_id: String,
        /// The identity established, or why not.
        result: Result<Option<String>, Refusal>,
    },
    /// Time passed (Unix seconds).
    Tick(u64),
    /// The host's go: send the final roster (once everyone joined; ignored before).
    Start,
    /// The host calls the session off: everyone is sent `abort` with this reason.
    Cancel(String),
}

/// What the driver does next.
// Short-lived values handed straight to the driver: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum HostOut {
    /// Send a message.
    Send(Send),
    /// Check the proof of this join (then feed [`HostIn::Verdict`]).
    Verify {
        /// The pid asked for.
        pid: usize,
        /// The sender.
        sender: String,
        /// The join.
        join: Join,
        /// Its message id.
        join_id: String,
    },
    /// Report progress.
    Progress(Progress),
    /// Everyone joined; the final roster (sent to everyone already).
    Started(Vec<Member>),
    /// The session is off (everyone reachable was told).
    Failed(Error),
}

/// The host's admission state.
pub struct HostCore {
    d: Descriptor,
    me: usize,
    members: Vec<Option<Member>>,
    verifying: BTreeSet<usize>,
    over: bool,
    manual: bool,
    ready: bool,
}

impl HostCore {
    /// Admission for `d`, hosted by `own` (its member entry: roster DID, agent, route).
    pub fn new(d: Descriptor, own: Member) -> HostCore {
        let me = d.pid_of(&own.did).unwrap_or(0);
        let mut members = vec![None; d.roster.len()];
        members[me] = Some(own);
        HostCore { d, me, members, verifying: BTreeSet::new(), over: false, manual: false, ready: false }
    }

    /// Waits for the host's go ([`HostIn::Start`]) once everyone joined, instead of
    /// starting at once ([`Progress::Ready`] says when).
    pub fn manual_start(mut self) -> HostCore {
        self.manual = true;
        self
    }

    /// The roster DIDs that have not joined yet.
    pub fn missing(&self) -> Vec<String> {
        (0..self.members.len()).filter(|&j| self.members[j].is_none()).map(|j| self.d.roster[j].clone()).collect()
    }

    /// The first progress line.
    pub fn waiting(&self) -> HostOut {
        HostOut::Progress(Progress::Waiting { missing: self.missing() })
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, input: HostIn<'_>) -> Vec<HostOut> {
        if self.over {
            return Vec::new();
        }
        match input {
            HostIn::Message { msg, sender } => self.message(msg, sender),
            HostIn::Verdict { pid, sender, join, join_id, result } => self.verdict(pid, sender, join, join_id, result),
            HostIn::Start if self.ready => self.start(),
            HostIn::Start => Vec::new(),
            HostIn::Cancel(reason) => self.fail(Error::Refused {
                who: self.d.host.clone(),
                code: "cancelled".into(),
                comment: format!("the host cancelled the session: {reason}"),
            }),
            HostIn::Tick(now) if now >= self.d.expires && self.ready => self.fail(Error::Timeout(
                "the host's go: everyone joined, but the host did not start before the session expired".into(),
            )),
            HostIn::Tick(now) if now >= self.d.expires => {
                let names: Vec<String> = (0..self.members.len())
                    .filter(|&j| self.members[j].is_none())
                    .map(|j| format!("pid {j} ({})", self.d.roster[j]))
                    .collect();
                self.fail(Error::Timeout(format!("joins: these invitees never joined: {}", names.join(", "))))
            }
            HostIn::Tick(_) => Vec::new(),
        }
    }

    fn message(&mut self, msg: &Message, sender: &str) -> Vec<HostOut> {
        let id = self.d.id.clone();
        if let Some(join) = of_session::<Join>(msg, &id) {
            return self.join(msg, sender, join);
        }
        if let Some(decline) = of_session::<Decline>(msg, &id) {
            let Some(pid) = self.member_pid(sender) else {
                tracing::warn!(from = %sender, session = %id, "a decline from someone off the roster; ignored");
                return Vec::new();
            };
            let why = format!("pid {pid} ({}) declined: {}", self.d.roster[pid], decline.reason);
            return self.fail(Error::Refused { who: sender.to_owned(), code: "declined".into(), comment: why });
        }
        Vec::new()
    }

    /// The pid of a sender who is a roster DID or the agent of a joined member.
    fn member_pid(&self, sender: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.agent == sender))
            .or_else(|| self.d.pid_of(sender))
            .filter(|&p| p != self.me)
    }

    fn join(&mut self, msg: &Message, sender: &str, join: Join) -> Vec<HostOut> {
        let claimed = join.member.clone().unwrap_or_else(|| sender.to_owned());
        let pid = self.d.pid_of(&claimed).filter(|&p| p != self.me);
        let refuse = |code: &str, why: String, pid: Option<usize>| {
            tracing::warn!(from = %sender, %why, "join refused");
            vec![
                HostOut::Send(Send::background(sender, join.route.clone(), ProblemReport::answering(msg, code, &why))),
                HostOut::Progress(Progress::Refused { did: sender.to_owned(), pid, code: code.into(), why }),
            ]
        };
        let Some(pid) = pid else {
            return refuse("e.p.req.not-invited", "you are not on this session's roster".into(), None);
        };
        if claimed != sender && !claimed.starts_with("did:pkh:") {
            return refuse("e.p.req.not-invited", format!("{sender} cannot join as {claimed}"), Some(pid));
        }
        match &self.members[pid] {
            Some(m) if m.agent == sender => return Vec::new(), // a repeated join
            Some(_) => return refuse("e.p.req.already-joined", format!("{claimed} has joined already"), Some(pid)),
            None => {}
        }
        if !self.verifying.insert(pid) {
            return Vec::new(); // one proof check per pid at a time
        }
        vec![HostOut::Verify { pid, sender: sender.to_owned(), join, join_id: msg.id.clone() }]
    }

    fn verdict(
        &mut self,
        pid: usize,
        sender: String,
        join: Join,
        join_id: String,
        result: Result<Option<String>, Refusal>,
    ) -> Vec<HostOut> {
        self.verifying.remove(&pid);
        if self.members[pid].is_some() {
            return Vec::new();
        }
        let identity = match result {
            Ok(identity) => identity,
            Err(r) => {
                let answer = super::problem(&join_id, &r.code, &r.why);
                return vec![
                    HostOut::Send(Send::background(&sender, join.route.clone(), answer)),
                    HostOut::Progress(Progress::Refused { did: sender, pid: Some(pid), code: r.code, why: r.why }),
                ];
            }
        };
        let did = self.d.roster[pid].clone();
        self.members[pid] =
            Some(Member { did: did.clone(), agent: sender, route: join.route, identity: identity.clone() });
        let mut out = vec![HostOut::Progress(Progress::Joined { did, pid, identity })];
        if self.members.iter().any(Option::is_none) {
            out.push(self.waiting());
            return out;
        }
        if self.manual {
            self.ready = true;
            out.push(HostOut::Progress(Progress::Ready));
            return out;
        }
        out.extend(self.start());
        out
    }

    /// Sends the final roster to everyone.
    fn start(&mut self) -> Vec<HostOut> {
        let members: Vec<Member> = self.members.iter().flatten().cloned().collect();
        let start = Start { session: self.d.id.clone(), members: members.clone() };
        let mut out = Vec::new();
        for m in members.iter().enumerate().filter(|(j, _)| *j != self.me).map(|(_, m)| m) {
            out.push(HostOut::Send(Send::now(&m.agent, m.route.clone(), Message::typed(&start))));
        }
        out.push(HostOut::Started(members));
        self.over = true;
        out
    }

    /// Tells everyone the session is off: joined members at their agents, the others at
    /// their roster DIDs (best effort).
    fn fail(&mut self, e: Error) -> Vec<HostOut> {
        self.over = true;
        let abort = Abort { session: self.d.id.clone(), reason: e.to_string() };
        let mut out = Vec::new();
        for (j, m) in self.members.iter().enumerate().filter(|(j, _)| *j != self.me) {
            let (to, via): (&str, Option<ServiceTarget>) = match m {
                Some(m) => (&m.agent, m.route.clone()),
                None => (&self.d.roster[j], None),
            };
            if !to.starts_with("did:pkh:") {
                out.push(HostOut::Send(Send::now(to, via, Message::typed(&abort))));
            }
        }
        out.push(HostOut::Failed(e));
        out
    }
}
