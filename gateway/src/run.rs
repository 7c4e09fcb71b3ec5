//! Running one MPC session once the roster is final: the mesh of sessions, the loopback
//! port map, MPyC itself, and the supervision that turns a lost peer into a clear error
//! on every side instead of a hang.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session::driver::Handle;
use session::CloseReason;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::agent::Agent;
use crate::descriptor::Signed;
use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::mesh;
use crate::relay_client::RelayClient;
use crate::runner::{Launch, Sink};
use crate::status::{PeerStatus, Status};
use crate::tunnel::{self, TunnelEvent, DONE_MARK};

/// Session close code: the party's MPyC finished and every peer said so too.
pub const CLOSE_DONE: u32 = 0;
/// Session close code: the party's MPyC failed (exit status in the reason).
pub const CLOSE_FAILED: u32 = 1;

/// How to run.
pub struct RunOptions {
    /// The interpreter.
    pub python: PathBuf,
    /// The local program file (already checked against the descriptor).
    pub program: PathBuf,
    /// Working directory for MPyC.
    pub cwd: Option<PathBuf>,
    /// Where MPyC's output lines go.
    pub sink: Sink,
    /// Session tuning (the peer deadline comes from the descriptor).
    pub session: session::Config,
    /// Time allowed for all pairwise handshakes.
    pub mesh_timeout: Duration,
    /// Per pid, the identity the host verified (account or issuer), if a proof was asked.
    pub identities: Vec<Option<String>>,
}

/// How a run went.
#[derive(Debug, Clone)]
pub struct Report {
    /// Our pid.
    pub pid: usize,
    /// Time to establish all sessions.
    pub mesh: Duration,
    /// Time from the start of `run` to MPyC's launch.
    pub to_launch: Duration,
    /// Whole run.
    pub total: Duration,
    /// When MPyC was launched.
    pub launched_at: Instant,
    /// When MPyC first dialled a peer through the gateway (None: it never did, e.g. pid m-1).
    pub first_dial_at: Option<Instant>,
    /// When MPyC exited.
    pub exited_at: Instant,
    /// When this party sent `join` (invitees only).
    pub joined_at: Option<Instant>,
}

/// Runs the session `signed` as our pid: establishes sessions, launches MPyC, supervises.
pub async fn run(
    agent: Arc<Agent>,
    mailbox: &mut Mailbox,
    relay: &RelayClient,
    signed: &Signed,
    opts: RunOptions,
) -> Result<Report> {
    let t0 = Instant::now();
    let d = &signed.descriptor;
    let me = d.pid_of(agent.file.party.as_str()).ok_or_else(|| Error::State("we are not on the roster".into()))?;
    let mut cfg = opts.session.clone();
    cfg.peer_deadline = Duration::from_secs(d.peer_deadline_secs.max(1));
    let status = Status::new(&agent.home, d, me);
    status.set_identity(opts.identities.get(me).cloned().flatten());
    status.set_state("connecting");
    let peers = mesh::establish(&agent, mailbox, relay, signed, cfg, opts.mesh_timeout).await?;
    let mesh_time = t0.elapsed();
    let handles: Vec<Option<Handle>> = peers.iter().map(|p| p.as_ref().map(|p| p.handle.clone())).collect();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let first_dial = Arc::new(std::sync::OnceLock::new());
    let ports = tunnel::listen(me, &handles, first_dial.clone(), ev_tx.clone()).await?;
    let own = ports.ports[me];
    for p in peers.into_iter().flatten() {
        tunnel::serve_incoming(me, p.pid, p.incoming, p.handle.clone(), own, !d.mpyc.ssl, ev_tx.clone());
    }
    let (close_tx, mut close_rx) = mpsc::unbounded_channel();
    for (j, h) in handles.iter().enumerate() {
        if let Some(h) = h.clone() {
            let tx = close_tx.clone();
            tokio::spawn(async move {
                let _ = tx.send((j, h.closed().await));
            });
        }
    }
    let status_task = status.spawn_writer(peer_rows(d, &handles, &opts.identities));
    let launch = Launch {
        python: opts.python.clone(),
        program: opts.program.clone(),
        args: d.program.args.clone(),
        options: d.mpyc.clone(),
        cwd: opts.cwd.clone(),
    };
    let to_launch = t0.elapsed();
    let launched_at = Instant::now();
    let mut running = launch.spawn(&ports, opts.sink.clone())?;
    status.set_state("running");
    let mut done = vec![false; d.roster.len()];
    done[me] = true;
    let outcome: Result<()> = loop {
        tokio::select! {
            st = running.child.wait() => {
                let st = st?;
                break if st.success() {
                    Ok(())
                } else {
                    Err(Error::Mpc(format!("MPyC (pid {me}) exited with {st}")))
                };
            }
            Some((j, why)) = close_rx.recv() => {
                match why {
                    CloseReason::Peer(CLOSE_DONE, _) => done[j] = true,
                    why => {
                        let _ = running.child.kill().await;
                        break Err(Error::PeerLost { pid: j, did: d.roster[j].clone(), why: why.to_string() });
                    }
                }
            }
            Some(ev) = ev_rx.recv() => match ev {
                TunnelEvent::Refused { pid, why } => tracing::warn!(pid, "tunnel refused a stream: {why}"),
                TunnelEvent::Done { pid } => done[pid] = true,
            },
        }
    };
    let exited_at = Instant::now();
    running.drain().await;
    match &outcome {
        Ok(()) => {
            // Tell every peer we are done, then wait (bounded) until each says the same:
            // only then is closing safe for both sides.
            for h in handles.iter().flatten() {
                if let Ok(mut s) = h.open().await {
                    let _ = s.write_all(&DONE_MARK).await;
                    let _ = s.shutdown().await;
                }
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(d.peer_deadline_secs.max(1));
            while done.iter().any(|x| !x) {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    Some((j, _)) = close_rx.recv() => done[j] = true,
                    Some(ev) = ev_rx.recv() => if let TunnelEvent::Done { pid } = ev { done[pid] = true },
                }
            }
            flush(&handles, deadline).await;
            for h in handles.iter().flatten() {
                h.close(CLOSE_DONE, "done");
            }
            status.set_state("finished");
        }
        Err(e) => {
            for h in handles.iter().flatten() {
                h.close(CLOSE_FAILED, &format!("pid {me} failed: {e}"));
            }
            status.set_state(&format!("failed: {e}"));
        }
    }
    // Let the close records leave (through the relay links) before the process may exit:
    // a peer that gets our reason fails with it at once instead of waiting out its deadline.
    for h in handles.iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_millis(500), h.closed()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    status_task.abort();
    status.write_now(&peer_rows(d, &handles, &opts.identities)());
    outcome.map(|()| Report {
        pid: me,
        mesh: mesh_time,
        to_launch,
        total: t0.elapsed(),
        launched_at,
        first_dial_at: first_dial.get().copied(),
        exited_at,
        joined_at: None,
    })
}

/// Waits until every session has nothing unacknowledged or unsent (bounded by `deadline`).
async fn flush(handles: &[Option<Handle>], deadline: tokio::time::Instant) {
    while tokio::time::Instant::now() < deadline {
        let busy = handles.iter().flatten().any(|h| {
            let s = h.stats();
            s.unacked_bytes > 0 || s.queued > 0
        });
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn peer_rows(
    d: &crate::descriptor::Descriptor,
    handles: &[Option<Handle>],
    identities: &[Option<String>],
) -> impl Fn() -> Vec<PeerStatus> {
    let roster = d.roster.clone();
    let handles = handles.to_vec();
    let identities = identities.to_vec();
    move || {
        handles
            .iter()
            .enumerate()
            .filter_map(|(j, h)| h.as_ref().map(|h| (j, h)))
            .map(|(j, h)| PeerStatus::from_session(j, &roster[j], h, identities.get(j).cloned().flatten()))
            .collect()
    }
}
