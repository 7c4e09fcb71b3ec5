//! The running session's status for `didmpc status`: a JSON file in the home directory,
//! rewritten every second by the gateway that runs the session.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use session::driver::Handle;

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};

/// File name in the home directory.
pub const STATUS_FILE: &str = "status.json";

/// One peer as `didmpc status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its DID.
    pub did: String,
    /// Its MPyC pid.
    pub pid: usize,
    /// Session state: `up`, or why it ended.
    pub state: String,
    /// How the bytes travel.
    pub path: String,
    /// Smoothed round-trip time (ms), once measured.
    pub rtt_ms: Option<f64>,
    /// Application bytes sent to it.
    pub bytes_sent: u64,
    /// Application bytes received from it.
    pub bytes_received: u64,
    /// Session packets sent (retransmissions and acks included).
    #[serde(default)]
    pub packets_sent: u64,
    /// Session packets accepted.
    #[serde(default)]
    pub packets_received: u64,
    /// Packets retransmitted.
    #[serde(default)]
    pub retransmits: u64,
    /// Packets dropped: forged, replayed or of an unknown key epoch.
    #[serde(default)]
    pub dropped: u64,
    /// Packets declared lost (and resent).
    #[serde(default)]
    pub lost: u64,
    /// Every path to the peer: the relay and the direct candidates.
    #[serde(default)]
    pub paths: Vec<PathRow>,
    /// The latest changes of the path in use (at most 64).
    #[serde(default)]
    pub switches: Vec<SwitchRow>,
    /// Changes of the path in use since the session started.
    #[serde(default)]
    pub path_switches: u64,
    /// Our direct-path offer went out and the peer sent its own (false: relay only).
    #[serde(default)]
    pub punching: bool,
    /// Ports of the peer's address we sprayed (its NAT is symmetric and ours is not).
    #[serde(default)]
    pub sprayed: u64,
    /// The identity its proof established (account or credential issuer), if one was asked.
    #[serde(default)]
    pub identity: Option<String>,
}

/// One path to a peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PathRow {
    /// `relay`, or `udp ADDRESS` (with `(socket N)` for an extra punching socket).
    pub path: String,
    /// `probing`, `validated`, `failed` or `abandoned`.
    pub state: String,
    /// Whether new packets take it.
    pub active: bool,
    /// Its smoothed RTT (ms), once measured.
    pub rtt_ms: Option<f64>,
    /// Its congestion window (bytes; none: unbounded, the relay).
    pub cwnd: Option<u64>,
    /// Packets sent, received, and declared lost on it.
    pub sent: u64,
    /// See `sent`.
    pub received: u64,
    /// See `sent`.
    pub lost: u64,
}

/// A change of the path in use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SwitchRow {
    /// Seconds since the session started.
    pub at_s: f64,
    /// The path before.
    pub from: String,
    /// The path after.
    pub to: String,
    /// `upgrade`, `failed` or `rtt`.
    pub why: String,
    /// For `failed`: how long the path had been silent (ms).
    pub silent_ms: Option<f64>,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `direct (udp ADDRESS)` or `relayed (mediator)`: the path in use.
pub fn path_name(r: &session::PathReport) -> String {
    match r.paths.iter().find(|p| p.active).map(|p| p.addr) {
        Some(session::PathAddr::Udp { remote, .. }) => format!("direct (udp {remote})"),
        _ => "relayed (mediator)".into(),
    }
}

impl PeerStatus {
    /// The row for the session with pid `pid`.
    pub fn from_session(pid: usize, did: &str, h: &Handle, identity: Option<String>) -> PeerStatus {
        let s = h.stats();
        let r = h.paths();
        let state = match h.closed_now() {
            None => "up".to_owned(),
            Some(why) => why.to_string(),
        };
        PeerStatus {
            did: did.to_owned(),
            pid,
            state,
            path: path_name(&r),
            rtt_ms: s.srtt_us.map(|us| us as f64 / 1000.0),
            bytes_sent: s.bytes_written,
            bytes_received: s.bytes_read,
            packets_sent: s.packets_sent,
            packets_received: s.packets_received,
            retransmits: s.retransmits,
            dropped: s.dropped_forged + s.dropped_replayed + s.dropped_epoch,
            lost: s.lost,
            paths: r
                .paths
                .iter()
                .map(|p| PathRow {
                    path: p.addr.to_string(),
                    state: p.state.as_str().to_owned(),
                    active: p.active,
                    rtt_ms: p.srtt.map(ms),
                    cwnd: p.cwnd,
                    sent: p.sent,
                    received: p.received,
                    lost: p.lost,
                })
                .collect(),
            switches: r
                .switches
                .iter()
                .map(|w| SwitchRow {
                    at_s: w.at.as_secs_f64(),
                    from: w.from.to_string(),
                    to: w.to.to_string(),
                    why: w.why.as_str().to_owned(),
                    silent_ms: w.silent_for.map(ms),
                })
                .collect(),
            path_switches: r.switch_count,
            punching: r.punching,
            sprayed: r.sprayed,
            identity,
        }
    }
}

/// The whole status file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFile {
    /// Session id.
    pub session: String,
    /// Program name.
    pub program: String,
    /// Our pid.
    pub pid: usize,
    /// Our DID.
    pub did: String,
    /// The identity our proof established, if the session asked for one.
    #[serde(default)]
    pub identity: Option<String>,
    /// `connecting`, `running`, `finished` or `failed: …`.
    pub state: String,
    /// Unix seconds of the last update.
    pub updated: u64,
    /// The peers.
    pub peers: Vec<PeerStatus>,
}

/// The writer side, shared by the run.
#[derive(Clone)]
pub struct Status {
    path: PathBuf,
    file: Arc<Mutex<StatusFile>>,
}

impl Status {
    /// A status for session `d` as pid `me`, in `home`.
    pub fn new(home: &Path, d: &Descriptor, me: usize) -> Status {
        let file = StatusFile {
            session: d.id.clone(),
            program: d.program.name.clone(),
            pid: me,
            did: d.roster[me].clone(),
            identity: None,
            state: "starting".into(),
            updated: did_core::didcomm::message::now(),
            peers: Vec::new(),
        };
        Status { path: home.join(STATUS_FILE), file: Arc::new(Mutex::new(file)) }
    }

    /// Records the identity our proof established.
    pub fn set_identity(&self, identity: Option<String>) {
        self.lock().identity = identity;
    }

    /// Sets the state and writes the file.
    pub fn set_state(&self, state: &str) {
        let peers = {
            let mut f = self.lock();
            f.state = state.to_owned();
            f.peers.clone()
        };
        self.write_now(&peers);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusFile> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the file with these peer rows, atomically: a temporary file of this writer,
    /// renamed over the old one, all under the status lock so two writers (the periodic one
    /// and a state change) never share a temporary file. Errors are logged, not fatal.
    pub fn write_now(&self, peers: &[PeerStatus]) {
        let mut f = self.lock();
        f.peers = peers.to_vec();
        f.updated = did_core::didcomm::message::now();
        let text = serde_json::to_string_pretty(&*f).unwrap_or_default();
        let tmp = self.path.with_extension(format!("json.{}.tmp", std::process::id()));
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path)) {
            tracing::warn!(error = %e, "cannot write {}", self.path.display());
            let _ = std::fs::remove_file(&tmp);
        }
        drop(f);
    }

    /// Rewrites the file every second with fresh rows until aborted.
    pub fn spawn_writer(&self, rows: impl Fn() -> Vec<PeerStatus> + Send + 'static) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.write_now(&rows());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}

/// Reads the status file in `home`.
pub fn read(home: &Path) -> Result<StatusFile> {
    let p = home.join(STATUS_FILE);
    let text = std::fs::read_to_string(&p)
        .map_err(|_| Error::State(format!("no session has run here yet ({} not found)", p.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::State(format!("{}: {e}", p.display())))
}
