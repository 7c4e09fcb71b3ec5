//! What the page shows: one plain state changed by pure functions (sans-IO), sent whole
//! as JSON on every change (`GET /api/state`, `GET /api/events`). The page only renders
//! it; what the user may do next ([`Can`]) is decided here, not in the page.

use did_core::Did;
use gateway::descriptor::Descriptor;
use serde::Serialize;

/// Most progress lines and program output lines kept (the oldest are dropped).
pub const MAX_LINES: usize = 400;

/// Whose page this is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An invitee deciding whether to join (`didmpc join --browser`).
    Join,
    /// The host (`didmpc invite --browser`).
    Host,
    /// An invitee making its proof only (`didmpc proof siwe --browser`).
    Proof,
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Finding and checking the invitation (or publishing it, for the host).
    Loading,
    /// The invitee looks at the session: sign in, join or decline.
    Review,
    /// The invitee said yes: the program is checked and the join sent.
    Checking,
    /// The join is sent; waiting for the host's final roster.
    Joined,
    /// The host waits for the invitees.
    Waiting,
    /// Everyone joined; the host may start.
    Ready,
    /// The roster is final; the pairwise sessions are being set up.
    Connecting,
    /// MPyC runs.
    Running,
    /// MPyC finished here; waiting for the others to finish.
    Finishing,
    /// The run is over and went well.
    Done,
    /// Something failed (the outcome says what).
    Failed,
    /// The invitee declined.
    Declined,
    /// The proof is kept for `didmpc join` (proof pages).
    Kept,
}

/// A roster place's state.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RowState {
    /// The host's own place.
    Host,
    /// Invited; nothing heard yet.
    Invited,
    /// The invitation reached its mediator.
    Reached,
    /// Not reachable directly (joins by the link).
    Unreachable,
    /// Joined (its proof verified, if one was asked).
    Joined,
    /// Its last join was refused (it may retry).
    Refused,
    /// Our session with it is up.
    Up,
}

/// The session, as signed by the host.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// Host DID.
    pub host: String,
    /// Its short form.
    pub host_short: String,
    /// Program file name.
    pub program: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Program arguments.
    pub args: Vec<String>,
    /// Number of parties.
    pub parties: usize,
    /// The MPyC threshold that will run.
    pub threshold: u32,
    /// MPyC's `--ssl`.
    pub ssl: bool,
    /// MPyC version of the host.
    pub mpyc: String,
    /// Joining closes at (Unix seconds).
    pub expires: u64,
    /// Our pid, when known.
    pub pid: Option<usize>,
}

/// One roster place.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Its pid.
    pub pid: usize,
    /// The roster DID.
    pub did: String,
    /// Its short form.
    pub short: String,
    /// Our own place.
    pub you: bool,
    /// The host's place.
    pub host: bool,
    /// State.
    pub state: RowState,
    /// A detail (where it was reached, why it was refused).
    pub detail: Option<String>,
    /// The identity the host verified for it.
    pub identity: Option<String>,
    /// The DID acting for it, when not the roster DID (a wallet's place), short.
    pub agent: Option<String>,
}

/// The proof the session asks of us.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ProofAsk {
    /// In words (None: no proof asked).
    pub text: Option<String>,
    /// Sign-In with Ethereum can satisfy it (the page's wallet button).
    pub siwe: bool,
    /// The accounts admitted (CAIP-10; empty: any account, or none asked).
    pub accounts: Vec<String>,
    /// What the page cannot do (a credential to present with `--credential`).
    pub note: Option<String>,
}

/// How loud a line is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Information.
    Info,
    /// Something went well.
    Ok,
    /// Something went wrong.
    Error,
}

/// A line for the user.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Line {
    /// How loud.
    pub level: Level,
    /// The text.
    pub text: String,
}

/// The invitation to share (host pages).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvitationView {
    /// The link to share (the short one when the mediator gave one).
    pub link: String,
    /// Whether `qr.svg` has its QR code.
    pub qr: bool,
}

/// What the user may do now (the page enables exactly these controls).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Can {
    /// Sign in with the wallet.
    pub sign: bool,
    /// Join.
    pub join: bool,
    /// Decline.
    pub decline: bool,
    /// Start the run (host).
    pub start: bool,
    /// Cancel the session (host).
    pub cancel: bool,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct View {
    /// Bumped on every change.
    pub version: u64,
    /// Whose page.
    pub role: Role,
    /// Where things stand.
    pub phase: Phase,
    /// The session (None while loading).
    pub session: Option<SessionView>,
    /// The roster places.
    pub roster: Vec<Row>,
    /// The proof asked of us.
    pub proof: ProofAsk,
    /// The identity our signature proves, verified here as the host will.
    pub signed_in: Option<String>,
    /// The invitation (host).
    pub invitation: Option<InvitationView>,
    /// The latest notice (e.g. why a signature would be refused).
    pub notice: Option<Line>,
    /// Progress lines, oldest first.
    pub log: Vec<Line>,
    /// The program's output lines.
    pub output: Vec<String>,
    /// How it ended.
    pub outcome: Option<Line>,
    /// What the user may do now.
    pub can: Can,
}

pub(crate) fn short(did: &str) -> String {
    Did::parse(did).map(|d| d.fmt_short()).unwrap_or_else(|_| did.to_owned())
}

fn push_bounded<T>(v: &mut Vec<T>, x: T) {
    if v.len() >= MAX_LINES {
        v.remove(0);
    }
    v.push(x);
}

impl View {
    /// An empty page for `role`.
    pub fn new(role: Role) -> View {
        View {
            version: 0,
            role,
            phase: Phase::Loading,
            session: None,
            roster: Vec::new(),
            proof: ProofAsk::default(),
            signed_in: None,
            invitation: None,
            notice: None,
            log: Vec::new(),
            output: Vec::new(),
            outcome: None,
            can: Can::default(),
        }
    }

    /// True once the session has ended (well or not): nothing changes after that.
    pub fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed | Phase::Declined | Phase::Kept)
    }

    /// Adds a progress line.
    pub fn log(&mut self, level: Level, text: impl Into<String>) {
        push_bounded(&mut self.log, Line { level, text: text.into() });
    }

    /// Sets the notice.
    pub fn notice(&mut self, level: Level, text: impl Into<String>) {
        self.notice = Some(Line { level, text: text.into() });
    }

    /// Shows the session `d` (we are pid `me`, if known) and the proof it asks of us.
    pub fn session(&mut self, d: &Descriptor, me: Option<usize>, proof: ProofAsk) {
        let m = d.roster.len();
        self.session = Some(SessionView {
            id: d.id.clone(),
            host: d.host.clone(),
            host_short: short(&d.host),
            program: d.program.name.clone(),
            sha256: d.program.sha256.clone(),
            args: d.program.args.clone(),
            parties: m,
            threshold: d.mpyc.threshold_for(m),
            ssl: d.mpyc.ssl,
            mpyc: d.program.mpyc.clone(),
            expires: d.expires,
            pid: me,
        });
        self.roster = d
            .roster
            .iter()
            .enumerate()
            .map(|(pid, did)| Row {
                pid,
                did: did.clone(),
                short: short(did),
                you: Some(pid) == me,
                host: *did == d.host,
                state: if *did == d.host { RowState::Host } else { RowState::Invited },
                detail: None,
                identity: None,
                agent: None,
            })
            .collect();
        self.proof = proof;
        self.phase = match self.role {
            Role::Host => Phase::Waiting,
            Role::Join | Role::Proof => Phase::Review,
        };
    }

    /// The host's invitation link (and whether its QR code could be drawn).
    pub fn invitation(&mut self, link: &str, qr: bool) {
        self.invitation = Some(InvitationView { link: link.to_owned(), qr });
    }

    /// Our signature verified: it proves `identity`.
    pub fn signed_in(&mut self, identity: &str) {
        self.signed_in = Some(identity.to_owned());
        self.notice = None;
        self.log(Level::Ok, format!("signature verified: {identity}"));
    }

    /// The invitee said yes.
    pub fn joining(&mut self) {
        self.phase = Phase::Checking;
        self.notice = None;
        self.log(Level::Info, "joining: checking the program here and sending the join");
    }

    /// The invitee said no.
    pub fn declined(&mut self, reason: &str) {
        self.phase = Phase::Declined;
        self.outcome = Some(Line { level: Level::Error, text: format!("Not joined: {reason}. The host was told.") });
        self.log(Level::Error, format!("declined: {reason}"));
    }

    pub(crate) fn row(&mut self, did: &str) -> Option<&mut Row> {
        self.roster.iter_mut().find(|r| r.did == did)
    }

    /// A line of the program's output.
    pub fn output(&mut self, line: &str) {
        push_bounded(&mut self.output, line.to_owned());
    }

    /// The end: `Ok(summary)` or `Err(error)`.
    pub fn finish(&mut self, result: Result<String, String>) {
        let (phase, level, text) = match result {
            Ok(t) => (if self.role == Role::Proof { Phase::Kept } else { Phase::Done }, Level::Ok, t),
            Err(e) => (Phase::Failed, Level::Error, e),
        };
        if self.phase != Phase::Declined {
            self.phase = phase;
            self.log(level, text.clone());
            self.outcome = Some(Line { level, text });
        }
    }

    /// Recomputes what the user may do (after every change).
    pub fn settle(&mut self) {
        let review = self.phase == Phase::Review;
        let needs_signature = self.proof.siwe && self.signed_in.is_none();
        let blocked = self.proof.note.is_some() && !self.proof.siwe;
        self.can = Can {
            sign: review && self.proof.siwe && self.role != Role::Host,
            join: review && self.role == Role::Join && !needs_signature && !blocked,
            decline: review && self.role == Role::Join,
            start: self.role == Role::Host && self.phase == Phase::Ready,
            cancel: self.role == Role::Host && matches!(self.phase, Phase::Loading | Phase::Waiting | Phase::Ready),
        };
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
