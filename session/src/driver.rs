//! The tokio driver: one task owns a [`Session`] and moves bytes between it, the
//! packet link (a relay connection) and the application's streams (duplex pipes), and
//! sleeps until the session's next deadline. No protocol logic lives here.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::PollSender;

use crate::error::{CloseReason, Error, Result};
use crate::session::{Event, Session, Stats};
use crate::stream::Read;

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

/// An application stream: read what the peer wrote, write what the peer reads.
/// `shutdown` sends FIN; a reset by the peer surfaces as `ConnectionReset`.
pub struct SessionStream {
    id: u32,
    pipe: DuplexStream,
    reset: Arc<AtomicU32>,
}

const NOT_RESET: u32 = u32::MAX;

impl SessionStream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn check_reset(&self) -> io::Result<()> {
        match self.reset.load(Ordering::Acquire) {
            NOT_RESET => Ok(()),
            code => Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("stream {} reset by the peer (code {code})", self.id),
            )),
        }
    }
}

impl AsyncRead for SessionStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.check_reset()?;
        let before = buf.filled().len();
        let r = Pin::new(&mut self.pipe).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before {
            // EOF: a FIN, unless the peer reset the stream.
            self.check_reset()?;
        }
        r
    }
}

impl AsyncWrite for SessionStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check_reset()?;
        Pin::new(&mut self.pipe).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

enum Command {
    Open(oneshot::Sender<Result<SessionStream>>),
    Reset(u32, u32),
    Close(u32, String),
}

/// Control of a running session.
#[derive(Clone)]
pub struct Handle {
    cmd: mpsc::UnboundedSender<Command>,
    closed: watch::Receiver<Option<CloseReason>>,
    stats: watch::Receiver<Stats>,
}

impl Handle {
    /// Opens a stream to the peer.
    pub async fn open(&self) -> Result<SessionStream> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Command::Open(tx)).map_err(|_| self.closed_error())?;
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
    rx: mpsc::UnboundedReceiver<SessionStream>,
}

impl Incoming {
    /// The next stream the peer opens; `None` once the session ended.
    pub async fn accept(&mut self) -> Option<SessionStream> {
        self.rx.recv().await
    }
}

struct Pipe {
    io: DuplexStream,
    reset: Arc<AtomicU32>,
    /// Bytes read from the application, not yet taken by the session.
    out: Vec<u8>,
    out_eof: bool,
    fin_passed: bool,
    /// Bytes read from the session (`inb[inb_pos..inb_len]`), not yet written to the application.
    inb: Box<[u8]>,
    inb_pos: usize,
    inb_len: usize,
    in_fin: bool,
    in_shut: bool,
}

/// Runs `session` over `link` on the current runtime.
pub fn spawn(session: Session, link: Link) -> (Handle, Incoming) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (accept_tx, accept_rx) = mpsc::unbounded_channel();
    let (closed_tx, closed_rx) = watch::channel(None);
    let (stats_tx, stats_rx) = watch::channel(Stats::default());
    let driver = Driver {
        session,
        out: PollSender::new(link.tx),
        link_rx: link.rx,
        link_gone: false,
        cmd_rx,
        accept_tx,
        closed_tx,
        stats_tx,
        pipes: HashMap::new(),
        pending: None,
        timer: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3600))),
        scratch: vec![0u8; 16 * 1024],
    };
    tokio::spawn(driver);
    (Handle { cmd: cmd_tx, closed: closed_rx, stats: stats_rx }, Incoming { rx: accept_rx })
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
    pipes: HashMap<u32, Pipe>,
    pending: Option<Bytes>,
    timer: Pin<Box<tokio::time::Sleep>>,
    scratch: Vec<u8>,
}

impl Driver {
    fn new_pipe(&mut self, id: u32) -> SessionStream {
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        let reset = Arc::new(AtomicU32::new(NOT_RESET));
        self.pipes.insert(
            id,
            Pipe {
                io: ours,
                reset: reset.clone(),
                out: Vec::new(),
                out_eof: false,
                fin_passed: false,
                inb: vec![0u8; PIPE_BYTES].into_boxed_slice(),
                inb_pos: 0,
                inb_len: 0,
                in_fin: false,
                in_shut: false,
            },
        );
        SessionStream { id, pipe: theirs, reset }
    }

    fn drop_pipe(&mut self, id: u32, code: u32) {
        if let Some(p) = self.pipes.remove(&id) {
            p.reset.store(code, Ordering::Release);
        }
    }

    /// One pass over every source of work; true if anything happened.
    fn pass(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let now = Instant::now();
        while let Poll::Ready(Some(cmd)) = self.cmd_rx.poll_recv(cx) {
            progress = true;
            match cmd {
                Command::Open(reply) => {
                    let r = self.session.open_stream().map(|id| self.new_pipe(id));
                    let _ = reply.send(r);
                }
                Command::Reset(id, code) => {
                    let _ = self.session.reset(id, code);
                    self.drop_pipe(id, code);
                }
                Command::Close(code, reason) => self.session.close(code, &reason),
            }
        }
        while !self.link_gone {
            match self.link_rx.poll_recv(cx) {
                Poll::Ready(Some(LinkEvent::Packet(p))) => self.session.handle_packet(now, &p),
                Poll::Ready(Some(LinkEvent::PathReset)) => self.session.on_path_reset(now),
                Poll::Ready(None) => self.link_gone = true,
                Poll::Pending => break,
            }
            progress = true;
        }
        while let Some(ev) = self.session.poll_event() {
            progress = true;
            match ev {
                Event::StreamOpened(id) => {
                    let s = self.new_pipe(id);
                    let _ = self.accept_tx.send(s);
                }
                Event::Reset(id, code) => self.drop_pipe(id, code),
                Event::Closed(reason) => {
                    let ids: Vec<u32> = self.pipes.keys().copied().collect();
                    for id in ids {
                        self.drop_pipe(id, 0);
                    }
                    let _ = self.closed_tx.send(Some(reason));
                }
                Event::Readable(_) | Event::Writable(_) => {}
            }
        }
        progress |= self.pump_streams(cx);
        progress |= self.transmit(cx);
        progress
    }

    /// Moves bytes between the application pipes and the session.
    fn pump_streams(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let ids: Vec<u32> = self.pipes.keys().copied().collect();
        for id in ids {
            let Some(pipe) = self.pipes.get_mut(&id) else { continue };
            // application → session
            loop {
                if !pipe.out.is_empty() {
                    match self.session.write(id, &pipe.out) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            pipe.out.drain(..n);
                            progress = true;
                            continue;
                        }
                    }
                }
                if pipe.out_eof {
                    if !pipe.fin_passed {
                        pipe.fin_passed = true;
                        let _ = self.session.finish(id);
                        progress = true;
                    }
                    break;
                }
                let mut rb = ReadBuf::new(&mut self.scratch);
                match Pin::new(&mut pipe.io).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => pipe.out_eof = true,
                    Poll::Ready(Ok(())) => {
                        // Straight into the session; keep only what it cannot take yet.
                        let data = rb.filled();
                        let taken = self.session.write(id, data).unwrap_or(0);
                        pipe.out.extend_from_slice(&data[taken..]);
                    }
                    Poll::Ready(Err(_)) => pipe.out_eof = true,
                    Poll::Pending => break,
                }
                progress = true;
            }
            // session → application
            loop {
                if pipe.inb_pos < pipe.inb_len {
                    match Pin::new(&mut pipe.io).poll_write(cx, &pipe.inb[pipe.inb_pos..pipe.inb_len]) {
                        Poll::Ready(Ok(n)) => {
                            pipe.inb_pos += n;
                            progress = true;
                            continue;
                        }
                        Poll::Ready(Err(_)) => {
                            // The application dropped its end: abandon the stream.
                            let _ = self.session.reset(id, RESET_DROPPED);
                            self.pipes.remove(&id);
                            progress = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                if pipe.in_fin {
                    if !pipe.in_shut && Pin::new(&mut pipe.io).poll_shutdown(cx).is_ready() {
                        pipe.in_shut = true;
                        progress = true;
                    }
                    break;
                }
                pipe.inb_pos = 0;
                pipe.inb_len = 0;
                match self.session.read(id, &mut pipe.inb) {
                    Ok(Read::Data(n)) => pipe.inb_len = n,
                    Ok(Read::Fin) => pipe.in_fin = true,
                    Ok(Read::WouldBlock) | Err(_) => break,
                }
                progress = true;
            }
            if self.pipes.get(&id).is_some_and(|p| p.fin_passed && p.in_shut) {
                self.pipes.remove(&id);
            }
        }
        progress
    }

    /// Hands packets to the link while it has room.
    fn transmit(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            if self.pending.is_none() {
                match self.session.poll_transmit(Instant::now()) {
                    Some(p) => self.pending = Some(Bytes::from(p)),
                    None => return progress,
                }
            }
            match self.out.poll_reserve(cx) {
                Poll::Ready(Ok(())) => {
                    if let Some(p) = self.pending.take() {
                        let _ = self.out.send_item(p);
                    }
                    progress = true;
                }
                // The link is gone: packets are dropped; the peer deadline ends the session.
                Poll::Ready(Err(_)) => {
                    self.pending = None;
                    progress = true;
                }
                Poll::Pending => return progress,
            }
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Bounded work per wakeup keeps the runtime fair; a self-wake continues it.
        let mut more = true;
        for _ in 0..64 {
            more = this.pass(cx);
            if !more {
                break;
            }
        }
        if more {
            cx.waker().wake_by_ref();
        }
        let _ = this.stats_tx.send(this.session.snapshot());
        if this.session.closed().is_some() && this.pending.is_none() {
            if this.closed_tx.borrow().is_none() {
                let _ = this.closed_tx.send(this.session.closed().cloned());
            }
            return Poll::Ready(());
        }
        match this.session.poll_timeout() {
            Some(deadline) => {
                let at = tokio::time::Instant::from_std(deadline);
                if this.timer.deadline() != at {
                    this.timer.as_mut().reset(at);
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    this.session.handle_timeout(Instant::now());
                    cx.waker().wake_by_ref();
                }
            }
            None => cx.waker().wake_by_ref(),
        }
        Poll::Pending
    }
}
