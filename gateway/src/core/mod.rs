//! The sans-IO cores of the party agent: admission on the host ([`host`]), waiting for
//! the final roster on an invitee ([`joiner`]), the mesh of pairwise sessions ([`mesh`])
//! and the supervision of a run ([`supervisor`]). Each is a state machine: the driver
//! feeds it inputs (messages, results of the IO it asked for, the time) with
//! `handle(input)` and carries out the actions it returns. None of them does IO, so unit
//! tests drive every path (a decline, an off-roster init, a duplicate init, a lost peer)
//! without a mediator, a network or MPyC.
//!
//! ```text
//!   mailbox ──msg──▶ core.handle(..) ──▶ [Send, Verify, Initiate, Respond, Kill, …] ──▶ driver IO
//!        ▲                                                                    │
//!        └──────────── results (Verdict, Initiated, Up, ChildExited, …) ◀─────┘
//! ```

pub mod host;
pub mod joiner;
pub mod mesh;
pub mod supervisor;

#[cfg(test)]
mod tests;

use did_core::didcomm::vocab::ProblemReport;
use did_core::didcomm::{Message, ServiceTarget};

/// A message to send.
#[derive(Debug, Clone)]
pub struct Send {
    /// The recipient DID.
    pub to: String,
    /// Its route, when its DID publishes no endpoint.
    pub via: Option<ServiceTarget>,
    /// The message.
    pub msg: Message,
    /// Off the critical path: a refusal to someone who may be a stranger. The driver sends
    /// it in the background (bounded), never waiting for it.
    pub background: bool,
}

impl Send {
    /// A send the flow waits for.
    pub fn now(to: &str, via: Option<ServiceTarget>, msg: Message) -> Send {
        Send { to: to.to_owned(), via, msg, background: false }
    }

    /// A send in the background.
    pub fn background(to: &str, via: Option<ServiceTarget>, msg: Message) -> Send {
        Send { to: to.to_owned(), via, msg, background: true }
    }
}

/// Why something was refused: a problem report code and its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The problem code (`e.p.req.…`).
    pub code: String,
    /// Why.
    pub why: String,
}

/// A problem report threaded under message `pthid`.
pub fn problem(pthid: &str, code: &str, why: &str) -> Message {
    let mut m = Message::typed(&ProblemReport {
        code: code.to_owned(),
        comment: Some(why.to_owned()),
        args: None,
        escalate_to: None,
    });
    m.pthid = Some(pthid.to_owned());
    m
}
