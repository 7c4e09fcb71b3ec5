//! Running one MPC session once the roster is final: the mesh of sessions, the loopback
//! port map, MPyC itself, and the supervision that turns a lost peer into a clear error
//! on every side instead of a hang.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session::driver::Handle;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::agent::Agent;
use crate::core::supervisor::{SupIn, SupOut, Supervisor};
use crate::descriptor::Signed;
use crate::direct::LocalDirect;
use crate::error::{Error, Result};
use crate::events::{emit, Event, Events};
use crate::mailbox::Mailbox;
use crate::mesh;
use crate::relay_client::RelayClient;
use crate::runner::{Launch, Sink};
use crate::status::{PeerStatus, Status};
use crate::tunnel::{self, TunnelEvent, DONE_MARK};
use crate::wire::Member;

pub use crate::core::supervisor::{CLOSE_DONE, CLOSE_FAILED};

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
    /// No direct paths: no UDP socket, and our addresses stay hidden from the peers.
    pub relay_only: bool,
    /// Where the run's steps are reported (sessions up, running, its states).
    pub events: Option<Events>,
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

/// Runs the session `signed` with the final roster `members` as our pid: establishes
/// sessions, launches MPyC, supervises.
pub async fn run(
    agent: Arc<Agent>,
    mailbox: &mut Mailbox,
    relay: &RelayClient,
    signed: &Signed,
    members: &[Member],
    opts: RunOptions,
) -> Result<Report> {
    let t0 = Instant::now();
    let d = &signed.descriptor;
    let me_did = agent.file.party.to_string();
    let me = members
        .iter()
        .position(|m| m.agent == me_did)
        .ok_or_else(|| Error::State("we are not on the final roster".into()))?;
    let identities: Vec<Option<String>> = members.iter().map(|m| m.identity.clone()).collect();
    let mut cfg = opts.session.clone();
    cfg.peer_deadline = Duration::from_secs(d.peer_deadline_secs.max(1));
    let status = Status::new(&agent.home, d, me);
    status.set_identity(identities[me].clone());
    status.set_state("connecting");
    let direct = if opts.relay_only {
        None
    } else {
        match LocalDirect::prepare(&agent, cfg.path.hard_sockets).await {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "no direct paths; every session stays relayed");
                None
            }
        }
    };
    let peers =
        mesh::establish(&agent, mailbox, relay, signed, members, cfg, opts.mesh_timeout, direct.as_ref()).await?;
    let mesh_time = t0.elapsed();
    emit(&opts.events, Event::SessionsUp { ms: mesh_time.as_millis() as u64 });
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
    let roster: Vec<String> = members.iter().map(|m| m.did.clone()).collect();
    let status_task = status.spawn_writer(peer_rows(&roster, &handles, &identities));
    let launch = Launch {
        python: opts.python.clone(),
        program: opts.program.clone(),
        args: d.program.args.clone(),
        options: d.mpyc.clone(),
        parties: d.roster.len(),
        cwd: opts.cwd.clone(),
    };
    let to_launch = t0.elapsed();
    let launched_at = Instant::now();
    let mut running = launch.spawn(&ports, opts.sink.clone())?;
    status.set_state("running");
    emit(&opts.events, Event::Running);
    let grace_period = Duration::from_secs(d.peer_deadline_secs.max(1));
    let mut sup = Supervisor::new(me, roster.clone());
    let (mut exited, mut exited_at) = (false, None);
    let mut grace: Option<tokio::time::Instant> = None;
    let mut flushing: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = None;
    let mut queued = VecDeque::new();
    let outcome = loop {
        let mut finished = None;
        while let Some(action) = queued.pop_front() {
            match action {
                SupOut::Kill => {
                    let _ = running.child.kill().await;
                }
                SupOut::SendDone => {
                    // Tell every peer we are done; closing is safe once each says the same.
                    for h in handles.iter().flatten() {
                        if let Ok(mut s) = h.open().await {
                            let _ = s.write_all(&DONE_MARK).await;
                            let _ = s.shutdown().await;
                        }
                    }
                    grace = Some(tokio::time::Instant::now() + grace_period);
                }
                SupOut::Flush => {
                    let all: Vec<Handle> = handles.iter().flatten().cloned().collect();
                    flushing = Some(Box::pin(async move {
                        futures_util::future::join_all(all.iter().map(Handle::flushed)).await;
                    }));
                    grace.get_or_insert_with(|| tokio::time::Instant::now() + grace_period);
                }
                SupOut::CloseAll(code, reason) => {
                    for h in handles.iter().flatten() {
                        h.close(code, &reason);
                    }
                }
                SupOut::State(st) => {
                    status.set_state(&st);
                    emit(&opts.events, Event::State(st));
                }
                SupOut::Finish(r) => finished = Some(r),
            }
        }
        if let Some(r) = finished {
            break r;
        }
        let input = tokio::select! {
            st = running.child.wait(), if !exited => {
                exited = true;
                exited_at = Some(Instant::now());
                SupIn::Exited(match st {
                    Ok(st) if st.success() => None,
                    Ok(st) => Some(st.to_string()),
                    Err(e) => Some(e.to_string()),
                })
            }
            Some((j, why)) = close_rx.recv() => SupIn::Closed(j, why),
            Some(ev) = ev_rx.recv() => match ev {
                TunnelEvent::Done { pid } => SupIn::PeerDone(pid),
                TunnelEvent::Refused { pid, why } => {
                    tracing::warn!(pid, "tunnel refused a stream: {why}");
                    continue;
                }
            },
            () = async { if let Some(f) = flushing.as_mut() { f.await } }, if flushing.is_some() => {
                flushing = None;
                SupIn::Flushed
            }
            () = async { if let Some(g) = grace { tokio::time::sleep_until(g).await } }, if grace.is_some() => {
                grace = None;
                SupIn::GraceOver
            }
        };
        queued.extend(sup.handle(input));
    };
    let exited_at = exited_at.unwrap_or_else(Instant::now);
    running.drain().await;
    // Let the close records leave (through the relay links) before the process may exit:
    // a peer that gets our reason fails with it at once instead of waiting out its deadline.
    for h in handles.iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_millis(500), h.closed()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    status_task.abort();
    status.write_now(&peer_rows(&roster, &handles, &identities)());
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

fn peer_rows(
    roster: &[String],
    handles: &[Option<Handle>],
    identities: &[Option<String>],
) -> impl Fn() -> Vec<PeerStatus> {
    let roster = roster.to_vec();
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
