//! How the flows' progress changes the page's [`View`]: the host's admission steps and
//! a party's run steps (sans-IO, like the view itself).

use gateway::events::Event;
use gateway::invite::Progress;

use crate::view::{short, Level, Phase, RowState, View};

impl View {
    /// A step of the host's admission.
    pub fn host_progress(&mut self, p: &Progress) {
        match p {
            Progress::Reached { did, via } => {
                if let Some(r) = self.row(did) {
                    if r.state == RowState::Invited {
                        r.state = RowState::Reached;
                    }
                    r.detail = Some(format!("invitation delivered via {via}"));
                }
                self.log(Level::Info, format!("reached {}", short(did)));
            }
            Progress::Unreachable { did, why } => {
                if let Some(r) = self.row(did) {
                    if r.state == RowState::Invited {
                        r.state = RowState::Unreachable;
                    }
                    r.detail = Some(why.clone());
                }
                self.log(Level::Info, format!("not reached {}: {why}", short(did)));
            }
            Progress::Joined { did, pid, identity } => {
                if let Some(r) = self.roster.get_mut(*pid) {
                    r.state = RowState::Joined;
                    r.identity = identity.clone();
                    r.detail = None;
                }
                let verified = identity.as_ref().map(|i| format!(", verified {i}")).unwrap_or_default();
                self.log(Level::Ok, format!("joined: pid {pid} {}{verified}", short(did)));
            }
            Progress::Refused { did, pid, code, why } => {
                if let Some(r) = pid.and_then(|p| self.roster.get_mut(p)) {
                    if r.state != RowState::Joined {
                        r.state = RowState::Refused;
                        r.detail = Some(format!("{code}: {why}"));
                    }
                }
                let at = pid.map(|p| format!(" (pid {p})")).unwrap_or_else(|| " (not on the roster)".into());
                self.log(Level::Error, format!("refused {}{at}: {code}: {why}", short(did)));
            }
            Progress::Waiting { missing } => {
                if !missing.is_empty() {
                    let names: Vec<String> = missing.iter().map(|d| short(d)).collect();
                    self.log(Level::Info, format!("waiting for {}: {}", names.len(), names.join(", ")));
                }
            }
            Progress::Ready => {
                self.phase = Phase::Ready;
                self.log(Level::Ok, "everyone joined: start the run when you are ready");
            }
        }
    }

    /// A step of our run.
    pub fn event(&mut self, e: &Event) {
        match e {
            Event::Joining { pid } => {
                self.phase = Phase::Joined;
                if let Some(s) = self.session.as_mut() {
                    s.pid = Some(*pid);
                }
                self.log(Level::Info, format!("joined as pid {pid}; waiting for the host to start"));
            }
            Event::Final { members } => {
                self.phase = Phase::Connecting;
                for (r, m) in self.roster.iter_mut().zip(members) {
                    if r.state != RowState::Host {
                        r.state = RowState::Joined;
                    }
                    r.identity = m.identity.clone();
                    r.agent = (m.agent != m.did).then(|| short(&m.agent));
                }
                self.log(Level::Ok, "the roster is final: everyone joined");
            }
            Event::SessionsUp { ms } => {
                let me = self.session.as_ref().and_then(|s| s.pid);
                for r in self.roster.iter_mut().filter(|r| Some(r.pid) != me) {
                    r.state = RowState::Up;
                }
                self.log(Level::Ok, format!("sessions up with every party in {ms} ms"));
            }
            Event::Running => {
                self.phase = Phase::Running;
                self.log(Level::Info, "MPyC is running");
            }
            Event::State(s) if s == "finishing" => {
                self.phase = Phase::Finishing;
                self.log(Level::Info, "MPyC finished here; waiting for the others");
            }
            Event::State(s) => self.log(Level::Info, format!("run: {s}")),
            _ => {}
        }
    }
}
