//! What every transport shares: the job (one program on one topology), the report of a run,
//! and the manual steps a user would take to set the transport up, which the lab performs
//! (or, for what happens between people, stands in for) and counts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::parties::Outcome;
use super::topo::Topo;

/// MPyC's port (its default base port) on every party, for the transports that dial
/// addresses (plain TCP, WireGuard).
pub const MPYC_PORT: u16 = 11365;

/// One program to run on one topology.
pub struct Job<'a> {
    /// The topology.
    pub topo: &'a Topo,
    /// The program file.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [String],
    /// The interpreter with MPyC.
    pub python: &'a Path,
    /// Longest run.
    pub timeout: Duration,
    /// Probes for the RTT measurement.
    pub probes: u32,
    /// A fresh directory for this run.
    pub dir: PathBuf,
}

/// What a transport's run produced.
pub struct RunReport {
    /// The processes' outcome.
    pub outcome: Outcome,
    /// Round trip between party 0 and party 1 over the path this transport uses, measured
    /// by UDP probes right before the run.
    pub rtt_measured_ms: Option<f64>,
    /// `direct`, `hub`, `relayed` (didmpc: from `didmpc status --json`).
    pub path: String,
    /// What the transport exposes about the run (didmpc: status and mediator metrics).
    pub observed: Value,
}

/// What kind of effort a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Typing a command.
    Command,
    /// Writing or editing a configuration file.
    Edit,
    /// Sending something to another person (key, address, DID) or receiving it.
    Exchange,
    /// Administration outside the machine: a router's port forward, renting a server,
    /// opening a firewall.
    Admin,
}

/// One manual step.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Step {
    /// Who takes it: `party 0`, `hub operator`, …
    pub who: String,
    /// Its kind.
    pub kind: Kind,
    /// What it is (the command, the file, the message).
    pub what: String,
}

impl Step {
    /// A step.
    pub fn new(who: impl Into<String>, kind: Kind, what: impl Into<String>) -> Step {
        Step { who: who.into(), kind, what: what.into() }
    }
}

/// Counts by kind: (command, edit, exchange, admin, total).
pub fn count(steps: &[Step]) -> (usize, usize, usize, usize, usize) {
    let n = |k: Kind| steps.iter().filter(|s| s.kind == k).count();
    (n(Kind::Command), n(Kind::Edit), n(Kind::Exchange), n(Kind::Admin), steps.len())
}
