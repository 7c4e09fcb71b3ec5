//! The application's control of a running session ([`Handle`]) and the streams the peer
//! opens ([`Incoming`]); both talk to the driver task through channels.

use tokio::sync::{mpsc, oneshot, watch};

use super::stream::{Io, SessionStream};
use crate::error::{CloseReason, Error, Result};
use crate::path::PathReport;
use crate::session::Stats;

pub(super) enum Command {
    Open(oneshot::Sender<Result<SessionStream>>),
    OpenIo(Box<dyn Io>, oneshot::Sender<Result<u32>>),
    Attach(SessionStream, Box<dyn Io>, oneshot::Sender<Result<()>>),
    Reset(u32, u32),
    Close(u32, String),
}

/// Control of a running session.
#[derive(Clone)]
pub struct Handle {
    pub(super) cmd: mpsc::UnboundedSender<Command>,
    pub(super) closed: watch::Receiver<Option<CloseReason>>,
    pub(super) stats: watch::Receiver<Stats>,
    pub(super) flushed: watch::Receiver<bool>,
    pub(super) paths: watch::Receiver<PathReport>,
}

impl Handle {
    /// The session's paths, their RTTs and the switches (refreshed on every change and at
    /// least every 250 ms while packets flow).
    pub fn paths(&self) -> PathReport {
        self.paths.borrow().clone()
    }

    /// Opens a stream to the peer.
    pub async fn open(&self) -> Result<SessionStream> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Command::Open(tx)).map_err(|_| self.closed_error())?;
        rx.await.map_err(|_| self.closed_error())?
    }

    /// Opens a stream to the peer and carries it over `io`: the driver writes what the
    /// peer sends into `io` and sends what it reads from `io`, with FIN both ways (EOF on
    /// `io` finishes the stream; the peer's FIN shuts `io` down for writing). `io` is
    /// dropped when both directions are done or the stream is reset. Returns the stream id.
    pub async fn open_io(&self, io: impl Io) -> Result<u32> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Command::OpenIo(Box::new(io), tx)).map_err(|_| self.closed_error())?;
        rx.await.map_err(|_| self.closed_error())?
    }

    /// Carries `stream` over `io` from now on, as [`Handle::open_io`] does: bytes the
    /// stream had received and the application not yet read go to `io` first, bytes the
    /// application had written still go to the peer.
    pub async fn attach(&self, stream: SessionStream, io: impl Io) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Command::Attach(stream, Box::new(io), tx)).map_err(|_| self.closed_error())?;
        rx.await.map_err(|_| self.closed_error())?
    }

    /// Resets a stream (both directions) with an application code.
    pub fn reset(&self, id: u32, code: u32) {
        let _ = self.cmd.send(Command::Reset(id, code));
    }

    /// Closes the session (the peer is told).
    pub fn close(&self, code: u32, reason: &str) {
        let _ = self.cmd.send(Command::Close(code, reason.to_owned()));
    }

    /// Waits until the session ends and says why.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.closed.clone();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone().unwrap_or(CloseReason::Local);
            }
        }
    }

    /// Why the session ended, if it has.
    pub fn closed_now(&self) -> Option<CloseReason> {
        self.closed.borrow().clone()
    }

    /// Waits until everything written so far was sent and acknowledged by the peer (or the
    /// session ended).
    pub async fn flushed(&self) {
        let mut rx = self.flushed.clone();
        let mut closed = self.closed.clone();
        loop {
            if *rx.borrow_and_update() || closed.borrow_and_update().is_some() {
                return;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                r = closed.changed() => if r.is_err() { return },
            }
        }
    }

    /// The latest counters.
    pub fn stats(&self) -> Stats {
        self.stats.borrow().clone()
    }

    fn closed_error(&self) -> Error {
        Error::Closed(self.closed.borrow().clone().unwrap_or(CloseReason::Local))
    }
}

/// Streams the peer opened.
pub struct Incoming {
    pub(super) rx: mpsc::UnboundedReceiver<SessionStream>,
}

impl Incoming {
    /// The next stream the peer opens; `None` once the session ended.
    pub async fn accept(&mut self) -> Option<SessionStream> {
        self.rx.recv().await
    }
}
