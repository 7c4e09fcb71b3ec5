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
    /// The identity its proof established (account or credential issuer), if one was asked.
    #[serde(default)]
    pub identity: Option<String>,
}

impl PeerStatus {
    /// The row for the session with pid `pid`.
    pub fn from_session(pid: usize, did: &str, h: &Handle, identity: Option<String>) -> PeerStatus {
        let s = h.stats();
        let state = match h.closed_now() {
            None => "up".to_owned(),
            Some(why) => why.to_string(),
        };
        PeerStatus {
            did: did.to_owned(),
            pid,
            state,
            path: "relayed (mediator)".into(),
            rtt_ms: s.srtt_us.map(|us| us as f64 / 1000.0),
            bytes_sent: s.bytes_written,
            bytes_received: s.bytes_read,
            packets_sent: s.packets_sent,
            packets_received: s.packets_received,
            retransmits: s.retransmits,
            dropped: s.dropped_forged + s.dropped_replayed + s.dropped_epoch,
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
