//! The loopback port map: each peer appears to the local MPyC as a `127.0.0.1` port.
//!
//! Party `i` dials every peer `j > i`: for those, a listener `G_ij` on 127.0.0.1 turns
//! each accepted connection into a new stream of the session with `j`. Streams arriving
//! from a peer `j < i` are connected to MPyC's own listener `L_i`, after their first two
//! bytes (the dialler's pid, little-endian) were checked against `j`. FIN passes through
//! both ways. The session driver pumps each TCP connection itself (`Handle::open_io`,
//! `Handle::attach`): no copy task and no in-memory pipe sit between MPyC's socket and the
//! session, which matters for programs with many small rounds.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use session::driver::{Handle, Incoming, SessionStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Stream reset code: the dialler's pid bytes did not match the authenticated peer.
pub const RESET_BAD_PID: u32 = 0x10;
/// Stream reset code: a stream that this side never expects (a higher pid dialling).
pub const RESET_UNEXPECTED: u32 = 0x11;
/// Stream reset code: the local MPyC could not be reached.
pub const RESET_NO_LOCAL: u32 = 0x12;

/// First two bytes of the stream a party opens to each peer once its MPyC finished
/// (never a pid, and never the start of a TLS record).
pub const DONE_MARK: [u8; 2] = [0xff, 0xff];

/// Something the tunnels report to the supervisor.
#[derive(Debug)]
pub enum TunnelEvent {
    /// A peer's stream was refused (logged already).
    Refused {
        /// Peer pid.
        pid: usize,
        /// Why.
        why: String,
    },
    /// The peer's MPyC finished.
    Done {
        /// Peer pid.
        pid: usize,
    },
}

/// The ports the local MPyC gets.
#[derive(Debug, Clone)]
pub struct PortMap {
    /// Our pid.
    pub me: usize,
    /// `ports[j]`: the `-P 127.0.0.1:port` entry for pid `j` (ours is MPyC's own listener).
    pub ports: Vec<u16>,
}

impl PortMap {
    /// MPyC's `-P` arguments in pid order.
    pub fn mpyc_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for p in &self.ports {
            a.push("-P".to_owned());
            a.push(format!("127.0.0.1:{p}"));
        }
        a.push("-I".to_owned());
        a.push(self.me.to_string());
        a
    }
}

/// A free loopback port (for MPyC's own listener, which MPyC binds itself).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// Binds `G_ij` for every peer `j > me` (after its session is up) and returns the port
/// map. `handles[j]` is the session with `j` (None at `me`).
/// `first_dial` records when MPyC first dialled a peer.
pub async fn listen(
    me: usize,
    handles: &[Option<Handle>],
    first_dial: Arc<OnceLock<Instant>>,
    events: mpsc::UnboundedSender<TunnelEvent>,
) -> Result<PortMap> {
    let own = free_port()?;
    let mut ports = Vec::with_capacity(handles.len());
    for (j, h) in handles.iter().enumerate() {
        if j <= me {
            // Lower pids are never dialled by us; MPyC ignores their port, ours is its listener.
            ports.push(own);
            continue;
        }
        let handle = h.clone().ok_or_else(|| Error::State(format!("no session with pid {j}")))?;
        let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        ports.push(l.local_addr()?.port());
        tokio::spawn(dial_out(l, j, handle, first_dial.clone(), events.clone()));
    }
    Ok(PortMap { me, ports })
}

/// Accepts MPyC's connections to peer `j` and carries each over a new session stream.
/// When the session is gone the listener is dropped, so later dials are refused
/// (never accepted and dropped).
async fn dial_out(
    l: TcpListener,
    j: usize,
    handle: Handle,
    first_dial: Arc<OnceLock<Instant>>,
    events: mpsc::UnboundedSender<TunnelEvent>,
) {
    loop {
        let (tcp, from) = tokio::select! {
            r = l.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = handle.closed() => return,
        };
        // Only this user's processes (the local MPyC) may speak as us to peer j.
        let mine = tcp.local_addr().map(|own| crate::peercred::is_own_user(from, own)).unwrap_or(false);
        if !mine {
            tracing::warn!(pid = j, %from, "refused a local connection from another user");
            let _ = events
                .send(TunnelEvent::Refused { pid: j, why: format!("local connection from {from}: another user") });
            continue;
        }
        let _ = first_dial.set(Instant::now());
        let _ = tcp.set_nodelay(true);
        match handle.open_io(tcp).await {
            Ok(id) => tracing::debug!(pid = j, stream = id, "tunnel stream opened"),
            Err(e) => {
                let _ = events.send(TunnelEvent::Refused { pid: j, why: format!("cannot open a stream: {e}") });
                return;
            }
        }
    }
}

/// Takes the streams peer `j` opens and connects them to MPyC's listener `own`.
///
/// With `check_pid` false (MPyC `--ssl`: the pid bytes travel inside MPyC's TLS) the
/// stream is connected as is and MPyC's certificates authenticate the dialler.
pub fn serve_incoming(
    me: usize,
    j: usize,
    mut incoming: Incoming,
    handle: Handle,
    own: u16,
    check_pid: bool,
    events: mpsc::UnboundedSender<TunnelEvent>,
) {
    tokio::spawn(async move {
        while let Some(stream) = incoming.accept().await {
            let (handle, events) = (handle.clone(), events.clone());
            tokio::spawn(async move {
                if let Err(why) = dial_in(stream, me, j, own, check_pid, &handle, &events).await {
                    tracing::warn!(pid = j, "refused a stream: {why}");
                    let _ = events.send(TunnelEvent::Refused { pid: j, why });
                }
            });
        }
    });
}

async fn dial_in(
    mut stream: SessionStream,
    me: usize,
    j: usize,
    own: u16,
    check_pid: bool,
    handle: &Handle,
    events: &mpsc::UnboundedSender<TunnelEvent>,
) -> Result<(), String> {
    let mut pid = [0u8; 2];
    if let Err(e) = stream.read_exact(&mut pid).await {
        return Err(format!("stream ended before its first two bytes: {e}"));
    }
    if pid == DONE_MARK {
        let _ = events.send(TunnelEvent::Done { pid: j });
        return Ok(());
    }
    if j > me {
        handle.reset(stream.id(), RESET_UNEXPECTED);
        return Err("a peer with a higher pid dialled (MPyC's lower pid dials)".into());
    }
    // With --ssl the two bytes start MPyC's TLS handshake and are passed on as they are.
    let got = u16::from_le_bytes(pid) as usize;
    if check_pid && got != j {
        handle.reset(stream.id(), RESET_BAD_PID);
        return Err(format!("the dialler announced pid {got} but the authenticated peer is pid {j}"));
    }
    let mut tcp = None;
    for _ in 0..600 {
        match TcpStream::connect((Ipv4Addr::LOCALHOST, own)).await {
            Ok(t) => {
                tcp = Some(t);
                break;
            }
            // MPyC may not listen yet (it starts its server a moment after launch).
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let Some(mut tcp) = tcp else {
        handle.reset(stream.id(), RESET_NO_LOCAL);
        return Err(format!("the local MPyC did not listen on 127.0.0.1:{own} within 30 s"));
    };
    // Hand the peer's stream (PRSS keys among it) only to a listener of our own user: not to
    // someone who squatted MPyC's port.
    let ours = match (tcp.local_addr(), tcp.peer_addr()) {
        (Ok(me), Ok(them)) => crate::peercred::is_own_user(them, me),
        _ => false,
    };
    if !ours {
        handle.reset(stream.id(), RESET_NO_LOCAL);
        return Err(format!("127.0.0.1:{own} is held by another user, not by our MPyC"));
    }
    let _ = tcp.set_nodelay(true);
    tcp.write_all(&pid).await.map_err(|e| format!("local MPyC: {e}"))?;
    let id = stream.id();
    // The stream may have been reset meanwhile; then the connection is simply closed.
    match handle.attach(stream, tcp).await {
        Ok(()) => tracing::debug!(pid = j, stream = id, "tunnel stream connected"),
        Err(e) => tracing::debug!(pid = j, stream = id, error = %e, "tunnel stream ended before it was connected"),
    }
    Ok(())
}
