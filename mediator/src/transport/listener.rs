//! A listener wrapper that enforces the connection limits: over a limit, the client
//! gets an HTTP 429 with a problem report instead of a silent drop. Refused connections are
//! answered by one task with a bounded backlog: a flood of them costs no task each, and past
//! the backlog they are closed at once.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

use crate::config::Limits;
use crate::limits::{ConnGuard, ConnTracker};
use crate::protocols::{codes, problem};

/// Refused connections answered at once (more wait in the backlog).
const REFUSALS_IN_FLIGHT: usize = 64;
/// Refused connections waiting for an answer (more are closed without one).
const REFUSAL_BACKLOG: usize = 64;

/// The peer address of a connection, as handlers see it.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Wraps a listener, counting connections and refusing those over the limits.
pub struct Limited<L: Listener> {
    inner: L,
    tracker: Arc<ConnTracker>,
    limits: Limits,
    refuser: mpsc::Sender<(L::Io, &'static str)>,
}

impl<L> Limited<L>
where
    L: Listener,
    L::Io: Unpin,
{
    /// Wraps `inner` (and starts the task that answers refused connections).
    pub fn new(inner: L, tracker: Arc<ConnTracker>, limits: Limits) -> Self {
        let (refuser, rx) = mpsc::channel(REFUSAL_BACKLOG);
        tokio::spawn(refuse_loop(rx));
        Limited { inner, tracker, limits, refuser }
    }
}

/// Answers refused connections, a bounded number at a time.
async fn refuse_loop<S: AsyncRead + AsyncWrite + Unpin>(mut rx: mpsc::Receiver<(S, &'static str)>) {
    let mut answering = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some((io, reason)) = rx.recv(), if answering.len() < REFUSALS_IN_FLIGHT => {
                answering.push(answer_refused(io, reason));
            }
            Some(()) = answering.next(), if !answering.is_empty() => {}
            else => return,
        }
    }
}

/// Reads the request head (so HTTP clients read the answer), then writes a 429 and closes.
async fn answer_refused<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, reason: &'static str) {
    let body = problem(None, codes::RATE, reason).to_json();
    let resp = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 5\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    let read_head = async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16 * 1024 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read_head).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), io.write_all(resp.as_bytes())).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

/// A connection holding its slot until dropped.
pub struct Tracked<S> {
    inner: S,
    _guard: ConnGuard,
}

impl<S> Tracked<S> {
    /// `inner`, holding `guard`'s slot.
    pub(crate) fn new(inner: S, guard: ConnGuard) -> Self {
        Tracked { inner, _guard: guard }
    }
}

impl<L> Listener for Limited<L>
where
    L: Listener<Addr = SocketAddr>,
    L::Io: Unpin,
{
    type Io = Tracked<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            match self.tracker.try_open(addr.ip(), &self.limits) {
                Ok(guard) => return (Tracked::new(io, guard), addr),
                Err(reason) => {
                    tracing::debug!(%addr, reason, "connection refused");
                    // A full backlog drops (closes) the connection right here.
                    let _ = self.refuser.try_send((io, reason));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl<L> Connected<IncomingStream<'_, Limited<L>>> for PeerAddr
where
    L: Listener<Addr = SocketAddr>,
    L::Io: Unpin,
{
    fn connect_info(stream: IncomingStream<'_, Limited<L>>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
