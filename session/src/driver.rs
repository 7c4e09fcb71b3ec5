//! The tokio driver: one task owns a [`Session`] and moves bytes between it, the
//! packet link (a relay connection) and the application's streams, and sleeps until the
//! session's next deadline. No protocol logic lives here.
//!
//! A stream reaches the application as a [`SessionStream`] (a duplex pipe), or is
//! carried over an I/O object the driver pumps itself ([`Handle::open_io`],
//! [`Handle::attach`]; e.g. the tunnel's TCP connections), which spares every message a
//! copy and a task hop.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::PollSender;

use crate::error::{CloseReason, Error, Result};
use crate::path::{PathAddr, PathReport};
use crate::session::{Event, Session, Stats, HEADROOM};
use crate::stream::Read;
use crate::udp;

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

/// Byte I/O the driver can carry a stream over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

enum Command {
    Open(oneshot::Sender<Result<SessionStream>>),
    OpenIo(Box<dyn Io>, oneshot::Sender<Result<u32>>),
    Attach(SessionStream, Box<dyn Io>, oneshot::Sender<Result<()>>),
    Reset(u32, u32),
    Close(u32, String),
}

/// Control of a running session.
#[derive(Clone)]
pub struct Handle {
    cmd: mpsc::UnboundedSender<Command>,
    closed: watch::Receiver<Option<CloseReason>>,
    stats: watch::Receiver<Stats>,
    flushed: watch::Receiver<bool>,
    paths: watch::Receiver<PathReport>,
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
    rx: mpsc::UnboundedReceiver<SessionStream>,
}

impl Incoming {
    /// The next stream the peer opens; `None` once the session ended.
    pub async fn accept(&mut self) -> Option<SessionStream> {
        self.rx.recv().await
    }
}

struct Pipe {
    /// The driver's end of a [`SessionStream`]'s duplex, or attached I/O.
    io: Box<dyn Io>,
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

/// How often the path report is refreshed without a state change (RTTs move).
const REPORT_EVERY: Duration = Duration::from_millis(250);

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

impl Pipe {
    fn new(io: Box<dyn Io>, reset: Arc<AtomicU32>) -> Pipe {
        Pipe {
            io,
            reset,
            out: Vec::new(),
            out_eof: false,
            fin_passed: false,
            inb: vec![0u8; PIPE_BYTES].into_boxed_slice(),
            inb_pos: 0,
            inb_len: 0,
            in_fin: false,
            in_shut: false,
        }
    }

    /// Swaps the duplex of `stream` (this pipe's other end) for `io`: what the application
    /// had written and the driver not yet read is kept for the session, what the driver had
    /// written and the application not yet read goes to `io` before anything else.
    fn attach(&mut self, stream: SessionStream, io: Box<dyn Io>) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut buf = vec![0u8; PIPE_BYTES];
        // application → session: everything already in the pipe (and its EOF).
        while !self.out_eof {
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.io).poll_read(&mut cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => self.out_eof = true,
                Poll::Ready(Ok(())) => self.out.extend_from_slice(rb.filled()),
                Poll::Ready(Err(_)) => self.out_eof = true,
                Poll::Pending => break,
            }
        }
        // session → application: unread bytes first, then what was not yet in the pipe.
        let mut unread = Vec::new();
        let mut theirs = stream.pipe;
        loop {
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut theirs).poll_read(&mut cx, &mut rb) {
                Poll::Ready(Ok(())) if !rb.filled().is_empty() => unread.extend_from_slice(rb.filled()),
                _ => break,
            }
        }
        unread.extend_from_slice(&self.inb[self.inb_pos..self.inb_len]);
        self.inb_len = unread.len();
        self.inb_pos = 0;
        if unread.len() < PIPE_BYTES {
            unread.resize(PIPE_BYTES, 0);
        }
        self.inb = unread.into_boxed_slice();
        // A FIN that reached the pipe is passed on to `io` once the bytes are written.
        self.in_shut = false;
        self.io = io;
    }
}

impl Driver {
    fn new_pipe(&mut self, id: u32) -> SessionStream {
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        let reset = Arc::new(AtomicU32::new(NOT_RESET));
        self.pipes.insert(id, Pipe::new(Box::new(ours), reset.clone()));
        SessionStream { id, pipe: theirs, reset }
    }

    fn drop_pipe(&mut self, id: u32, code: u32) {
        if let Some(p) = self.pipes.remove(&id) {
            p.reset.store(code, Ordering::Release);
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Open(reply) => {
                let r = self.session.open_stream().map(|id| self.new_pipe(id));
                let _ = reply.send(r);
            }
            Command::OpenIo(io, reply) => {
                let r = self.session.open_stream().inspect(|id| {
                    self.pipes.insert(*id, Pipe::new(io, Arc::new(AtomicU32::new(NOT_RESET))));
                });
                let _ = reply.send(r);
            }
            Command::Attach(stream, io, reply) => {
                let r = match self.pipes.get_mut(&stream.id) {
                    Some(p) => {
                        p.attach(stream, io);
                        Ok(())
                    }
                    None => Err(match stream.reset.load(Ordering::Acquire) {
                        NOT_RESET => Error::UnknownStream(stream.id),
                        code => Error::StreamReset(stream.id, code),
                    }),
                };
                let _ = reply.send(r);
            }
            Command::Reset(id, code) => {
                let _ = self.session.reset(id, code);
                self.drop_pipe(id, code);
            }
            Command::Close(code, reason) => self.session.close(code, &reason),
        }
    }

    /// One pass over every source of work; true if anything happened.
    fn pass(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while let Poll::Ready(Some(cmd)) = self.cmd_rx.poll_recv(cx) {
            progress = true;
            self.command(cmd);
        }
        let now = Instant::now();
        while !self.link_gone {
            match self.link_rx.poll_recv(cx) {
                Poll::Ready(Some(LinkEvent::Packet(p))) => self.session.handle_packet(now, &p),
                Poll::Ready(Some(LinkEvent::PathReset)) => self.session.on_path_reset(now),
                Poll::Ready(None) => self.link_gone = true,
                Poll::Pending => break,
            }
            progress = true;
        }
        while let (false, Some(d)) = (self.direct_gone, self.direct.as_mut()) {
            match d.rx.poll_recv(cx) {
                Poll::Ready(Some(g)) => {
                    let path = PathAddr::Udp { local: g.local, remote: g.from };
                    self.session.handle_packet_on(now, path, &g.packet);
                }
                Poll::Ready(None) => self.direct_gone = true,
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
                    for (_, p) in self.pipes.drain() {
                        p.reset.store(0, Ordering::Release);
                    }
                    let _ = self.closed_tx.send(Some(reason));
                }
                Event::Readable(_) | Event::Writable(_) => {}
            }
        }
        progress |= self.pump_streams(cx);
        progress |= self.transmit(cx, now);
        progress
    }

    /// Moves bytes between the application pipes and the session.
    fn pump_streams(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut done = Vec::new();
        let Driver { session, pipes, scratch, .. } = self;
        'pipes: for (&id, pipe) in pipes.iter_mut() {
            // application → session
            loop {
                if !pipe.out.is_empty() {
                    match session.write(id, &pipe.out) {
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
                        let _ = session.finish(id);
                        progress = true;
                    }
                    break;
                }
                let mut rb = ReadBuf::new(scratch);
                match Pin::new(&mut pipe.io).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => pipe.out_eof = true,
                    Poll::Ready(Ok(())) => {
                        // Straight into the session; keep only what it cannot take yet.
                        let data = rb.filled();
                        let taken = session.write(id, data).unwrap_or(0);
                        pipe.out.extend_from_slice(&data[taken..]);
                    }
                    Poll::Ready(Err(_)) => {
                        // Attached I/O failed (e.g. a TCP reset): the peer must not take
                        // what it got for the whole stream, so reset it rather than FIN.
                        // (A `SessionStream`'s pipe only ever ends with EOF.)
                        let _ = session.reset(id, RESET_DROPPED);
                        done.push(id);
                        progress = true;
                        continue 'pipes;
                    }
                    Poll::Pending => break,
                }
                progress = true;
            }
            // session → application
            loop {
                if pipe.inb_pos < pipe.inb_len {
                    match Pin::new(&mut pipe.io).poll_write(cx, &pipe.inb[pipe.inb_pos..pipe.inb_len]) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            pipe.inb_pos += n;
                            progress = true;
                            continue;
                        }
                        Poll::Ready(_) => {
                            // The application dropped its end: abandon the stream.
                            let _ = session.reset(id, RESET_DROPPED);
                            done.push(id);
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
                match session.read(id, &mut pipe.inb) {
                    Ok(Read::Data(n)) => pipe.inb_len = n,
                    Ok(Read::Fin) => pipe.in_fin = true,
                    Ok(Read::WouldBlock) | Err(_) => break,
                }
                progress = true;
            }
            if pipe.fin_passed && pipe.in_shut {
                done.push(id);
            }
        }
        for id in done {
            pipes.remove(&id);
        }
        progress
    }

    /// Hands packets to their paths while they take them.
    fn transmit(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        loop {
            if self.pending.is_none() {
                let mut buf = std::mem::take(&mut self.udp_buf);
                match self.session.poll_transmit(now, &mut buf) {
                    None => {
                        self.udp_buf = buf;
                        return progress;
                    }
                    Some(t) => match t.path {
                        // The relay link takes the packet itself (no copy: the headroom
                        // stays in front of the slice).
                        PathAddr::Relay => self.pending = Some(Out::Relay(Bytes::from(buf).slice(HEADROOM..))),
                        PathAddr::Udp { local, remote } => {
                            self.udp_buf = buf;
                            self.pending = Some(Out::Udp { local, to: remote, len: t.len });
                        }
                    },
                }
            }
            match self.pending.take() {
                Some(Out::Relay(p)) => match self.out.poll_reserve(cx) {
                    Poll::Ready(Ok(())) => {
                        let _ = self.out.send_item(p);
                        progress = true;
                    }
                    // The link is gone: packets are dropped; the peer deadline ends the session.
                    Poll::Ready(Err(_)) => progress = true,
                    Poll::Pending => {
                        self.pending = Some(Out::Relay(p));
                        return progress;
                    }
                },
                Some(Out::Udp { local, to, len }) => {
                    let Some(d) = self.direct.as_ref() else {
                        progress = true;
                        continue;
                    };
                    let start = udp::write_prefix(&mut self.udp_buf, HEADROOM, d.peer_id);
                    match d.io.poll_send(cx, local, to, &self.udp_buf[start..HEADROOM + len]) {
                        // Sent, or failed (unreachable, no such socket): UDP may lose it;
                        // loss recovery resends what mattered.
                        Poll::Ready(_) => progress = true,
                        Poll::Pending => {
                            self.pending = Some(Out::Udp { local, to, len });
                            return progress;
                        }
                    }
                }
                None => return progress,
            }
        }
    }

    /// Publishes the path report when it changed, or every [`REPORT_EVERY`].
    fn report_paths(&mut self, now: Instant) {
        let gen = self.session.path_generation();
        if gen != self.paths_gen || now.saturating_duration_since(self.paths_at) >= REPORT_EVERY {
            self.paths_gen = gen;
            self.paths_at = now;
            let report = self.session.path_report();
            self.paths_tx.send_if_modified(|r| {
                *r = report;
                false
            });
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
        this.report_paths(Instant::now());
        // Nobody waits for new counters (they are read on demand): update them quietly.
        let stats = this.session.snapshot();
        let flushed = stats.unacked_bytes == 0 && stats.queued == 0;
        this.stats_tx.send_if_modified(|s| {
            *s = stats;
            false
        });
        // Waiters on `flushed` are woken only when it changes.
        this.flushed_tx.send_if_modified(|f| std::mem::replace(f, flushed) != flushed);
        if this.session.closed().is_some() && this.pending.is_none() {
            if this.closed_tx.borrow().is_none() {
                let _ = this.closed_tx.send(this.session.closed().cloned());
            }
            return Poll::Ready(());
        }
        match this.session.poll_timeout() {
            Some(deadline) => {
                // Re-arm only for an earlier deadline (or a spent timer): a later one just
                // means an early, harmless `handle_timeout`, and most packets push the
                // deadlines later, so the timer is not re-registered on each of them.
                let at = tokio::time::Instant::from_std(deadline);
                if this.timer.is_elapsed() || at < this.timer.deadline() {
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::handshake::{respond, Initiator, Params, NOISE_PARAMS};
    use crate::Config;

    fn keys() -> (crate::Keys, crate::Keys) {
        let gen = || snow::Builder::new(NOISE_PARAMS.parse().unwrap()).generate_keypair().unwrap();
        let (a, b) = (gen(), gen());
        let arr = |v: Vec<u8>| -> [u8; 32] { v.try_into().unwrap() };
        let (a_sk, a_pk, b_sk, b_pk) = (arr(a.private), arr(a.public), arr(b.private), arr(b.public));
        let d = [5u8; 32];
        let p = |l, r| Params {
            session_id: b"io",
            roster_digest: &d,
            initiator_did: "did:ex:a",
            responder_did: "did:ex:b",
            local_static: l,
            remote_static: r,
        };
        let (i, m1) = Initiator::start(&p(&a_sk, &b_pk)).unwrap();
        let (kb, m2) = respond(&p(&b_sk, &a_pk), &m1).unwrap();
        (i.finish(&m2).unwrap(), kb)
    }

    /// Two drivers joined by channels.
    fn pair() -> (Handle, Incoming, Handle, Incoming) {
        fn wire(mut rx: mpsc::Receiver<Bytes>, tx: mpsc::Sender<LinkEvent>) {
            tokio::spawn(async move {
                while let Some(p) = rx.recv().await {
                    if tx.send(LinkEvent::Packet(p)).await.is_err() {
                        return;
                    }
                }
            });
        }
        let (ka, kb) = keys();
        let (a_out, a_out_rx) = mpsc::channel(64);
        let (b_out, b_out_rx) = mpsc::channel(64);
        let (a_in_tx, a_in) = mpsc::channel(64);
        let (b_in_tx, b_in) = mpsc::channel(64);
        wire(a_out_rx, b_in_tx);
        wire(b_out_rx, a_in_tx);
        let now = Instant::now();
        let (ha, ia) = spawn(Session::new(ka, Config::default(), now), Link { tx: a_out, rx: a_in });
        let (hb, ib) = spawn(Session::new(kb, Config::default(), now), Link { tx: b_out, rx: b_in });
        (ha, ia, hb, ib)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_io_carries_bytes_and_fin_both_ways() {
        let (ha, _ia, _hb, mut ib) = pair();
        let (io, mut app) = tokio::io::duplex(1024);
        ha.open_io(io).await.unwrap();
        let mut peer = ib.accept().await.unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        app.write_all(&data).await.unwrap();
        app.shutdown().await.unwrap(); // FIN towards the peer
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
        peer.write_all(b"answer").await.unwrap();
        peer.shutdown().await.unwrap(); // FIN towards the I/O
        let mut back = Vec::new();
        app.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"answer");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attach_keeps_unread_and_unsent_bytes_in_order() {
        let (ha, _ia, hb, mut ib) = pair();
        let mut a = ha.open().await.unwrap();
        a.write_all(b"pi").await.unwrap();
        a.write_all(b"-first-part").await.unwrap();
        let mut b = ib.accept().await.unwrap();
        let mut pid = [0u8; 2];
        b.read_exact(&mut pid).await.unwrap();
        assert_eq!(&pid, b"pi");
        // Let the rest reach b's driver (13 bytes read from the session: in its pipe or
        // its buffer), unread by b, and b write something the driver may not have taken yet.
        while hb.stats().bytes_read < 13 {
            tokio::task::yield_now().await;
        }
        b.write_all(b"hello").await.unwrap();
        let (io, mut app) = tokio::io::duplex(64 * 1024);
        hb.attach(b, io).await.unwrap();
        a.write_all(b"-second").await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = Vec::new();
        app.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"-first-part-second");
        app.write_all(b" world").await.unwrap();
        app.shutdown().await.unwrap();
        let mut back = Vec::new();
        a.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello world");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attach_after_reset_fails_and_a_reset_closes_the_io() {
        let (ha, _ia, hb, mut ib) = pair();
        let a = ha.open().await.unwrap();
        let mut a2 = ha.open().await.unwrap();
        a2.write_all(b"x").await.unwrap();
        let b = ib.accept().await.unwrap();
        let mut b2 = ib.accept().await.unwrap();
        ha.reset(a.id(), 7);
        // Once the reset reached b's driver (b's reads fail), attaching fails.
        let mut b = b;
        assert!(b.read(&mut [0u8; 1]).await.is_err());
        let (io, _app) = tokio::io::duplex(1024);
        assert!(matches!(hb.attach(b, io).await, Err(Error::StreamReset(_, 7))));
        // An attached stream the peer resets drops its I/O.
        b2.read_exact(&mut [0u8; 1]).await.unwrap();
        let (io, mut app) = tokio::io::duplex(1024);
        hb.attach(b2, io).await.unwrap();
        ha.reset(a2.id(), 8);
        let mut rest = Vec::new();
        let n = app.read_to_end(&mut rest).await.unwrap();
        assert_eq!(n, 0);
    }

    /// A TCP connection that fails (reset) resets its stream: the peer sees an error, not
    /// a FIN that would pass a cut-off stream for a whole one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_io_error_resets_the_stream_instead_of_finishing_it() {
        let (ha, _ia, _hb, mut ib) = pair();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut theirs, _) = l.accept().await.unwrap();
        ha.open_io(ours).await.unwrap();
        theirs.write_all(b"partial").await.unwrap();
        let mut peer = ib.accept().await.unwrap();
        let mut got = [0u8; 7];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"partial");
        // Closing with SO_LINGER 0 sends a RST.
        theirs.set_zero_linger().unwrap();
        drop(theirs);
        let mut rest = Vec::new();
        let e = peer.read_to_end(&mut rest).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(rest.is_empty());
    }
}
