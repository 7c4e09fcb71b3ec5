//! The tokio driver: one task owns a [`Session`] and moves bytes between it, the
//! packet link (a relay connection) and the application's streams, and sleeps until the
//! session's next deadline. No protocol logic lives here.
//!
//! A stream reaches the application as a [`SessionStream`] (a duplex pipe), or is
//! carried over an I/O object the driver pumps itself ([`Handle::open_io`],
//! [`Handle::attach`]; e.g. the tunnel's TCP connections), which spares every message a
//! copy and a task hop.
//!
//! `stream` holds what the application gets, `handle` the control of a running session,
//! `pipe` the driver's end of each stream and the pump, `run` the task itself.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::PollSender;

use crate::error::CloseReason;
use crate::path::PathReport;
use crate::session::{Session, Stats};

mod handle;
mod pipe;
mod run;
mod stream;

pub use handle::{Handle, Incoming};
pub use stream::{Io, SessionStream};

use handle::Command;
use pipe::Pipe;

/// Bytes buffered in each direction of a stream's pipe to the application.
pub const PIPE_BYTES: usize = 64 * 1024;
/// Reset code sent when the application drops a stream it had not finished.
pub const RESET_DROPPED: u32 = 1;

/// What the link delivers to the session.
#[derive(Debug)]
pub enum LinkEvent {
    /// A packet from the peer.
    Packet(Bytes),
    /// The path was re-established (reconnected): unacknowledged packets are resent.
    PathReset,
}

/// The packet link a session runs over (e.g. one route of a relay connection).
pub struct Link {
    /// Packets to the peer.
    pub tx: mpsc::Sender<Bytes>,
    /// Packets and path events from the peer.
    pub rx: mpsc::Receiver<LinkEvent>,
}

/// The party's UDP sockets, as a session's direct paths use them.
pub trait DirectIo: Send + Sync + 'static {
    /// Sends `datagram` from our socket `local` (0: the main one) to `to`.
    fn poll_send(&self, cx: &mut Context<'_>, local: u16, to: SocketAddr, datagram: &[u8]) -> Poll<io::Result<()>>;
}

/// A session packet that arrived on one of our UDP sockets.
#[derive(Debug)]
pub struct Datagram {
    /// Our socket (0: the main one).
    pub local: u16,
    /// Who sent it.
    pub from: SocketAddr,
    /// The session packet (the prefix removed).
    pub packet: Bytes,
}

/// A session's direct paths: how to send, and what arrives for it.
pub struct Direct {
    /// The sockets.
    pub io: Arc<dyn DirectIo>,
    /// The connection id the peer chose (prefixed to what we send).
    pub peer_id: u32,
    /// Datagrams routed to this session (by the connection id we chose).
    pub rx: mpsc::Receiver<Datagram>,
}

/// Runs `session` over `link` (the relay) on the current runtime, inside the caller's
/// current tracing span.
pub fn spawn(session: Session, link: Link) -> (Handle, Incoming) {
    spawn_with(session, link, None)
}

/// Runs `session` over `link` (the relay) and, when given, direct UDP paths.
pub fn spawn_with(session: Session, link: Link, direct: Option<Direct>) -> (Handle, Incoming) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (paths_tx, paths_rx) = watch::channel(session.path_report());
    let (accept_tx, accept_rx) = mpsc::unbounded_channel();
    let (closed_tx, closed_rx) = watch::channel(None);
    let (stats_tx, stats_rx) = watch::channel(Stats::default());
    let (flushed_tx, flushed_rx) = watch::channel(true);
    let driver = Driver {
        session,
        out: PollSender::new(link.tx),
        link_rx: link.rx,
        link_gone: false,
        cmd_rx,
        accept_tx,
        closed_tx,
        stats_tx,
        flushed_tx,
        pipes: HashMap::new(),
        pending: None,
        timer: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3600))),
        scratch: vec![0u8; 16 * 1024],
        direct,
        direct_gone: false,
        udp_buf: Vec::new(),
        paths_tx,
        paths_gen: u64::MAX,
        paths_at: Instant::now(),
    };
    // The driver runs in the caller's span (e.g. `session{peer=…}`), so its events name the peer.
    tokio::spawn(tracing::Instrument::instrument(driver, tracing::Span::current()));
    let handle = Handle { cmd: cmd_tx, closed: closed_rx, stats: stats_rx, flushed: flushed_rx, paths: paths_rx };
    (handle, Incoming { rx: accept_rx })
}

/// A packet taken from the session and not yet handed to its path.
enum Out {
    /// To the relay link.
    Relay(Bytes),
    /// In `udp_buf` at `HEADROOM`, `len` bytes.
    Udp { local: u16, to: SocketAddr, len: usize },
}

struct Driver {
    session: Session,
    out: PollSender<Bytes>,
    link_rx: mpsc::Receiver<LinkEvent>,
    link_gone: bool,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    accept_tx: mpsc::UnboundedSender<SessionStream>,
    closed_tx: watch::Sender<Option<CloseReason>>,
    stats_tx: watch::Sender<Stats>,
    flushed_tx: watch::Sender<bool>,
    pipes: HashMap<u32, Pipe>,
    pending: Option<Out>,
    timer: Pin<Box<tokio::time::Sleep>>,
    scratch: Vec<u8>,
    direct: Option<Direct>,
    direct_gone: bool,
    udp_buf: Vec<u8>,
    paths_tx: watch::Sender<PathReport>,
    paths_gen: u64,
    paths_at: Instant,
}

#[cfg(test)]
mod tests;
