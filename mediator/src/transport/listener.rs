//! A listener wrapper that enforces the connection limits: over a limit, the client
//! gets an HTTP 429 with a problem report instead of a silent drop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::config::Limits;
use crate::limits::{ConnGuard, ConnTracker};
use crate::protocols::{codes, problem};

/// The peer address of a connection, as handlers see it.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Wraps a listener, counting connections and refusing those over the limits.
pub struct Limited<L> {
    inner: L,
    tracker: Arc<ConnTracker>,
    limits: Limits,
}

impl<L> Limited<L> {
    /// Wraps `inner`.
    pub fn new(inner: L, tracker: Arc<ConnTracker>, limits: Limits) -> Self {
        Limited { inner, tracker, limits }
    }
}

/// A connection holding its slot until dropped.
pub struct Tracked<S> {
    inner: S,
    _guard: ConnGuard,
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
            let (mut io, addr) = self.inner.accept().await;
            match self.tracker.try_open(addr.ip(), &self.limits) {
                Ok(guard) => return (Tracked { inner: io, _guard: guard }, addr),
                Err(reason) => {
                    tracing::debug!(%addr, reason, "connection refused");
                    let body = problem(None, codes::RATE, reason).to_json();
                    let resp = format!(
                        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 5\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    tokio::spawn(async move {
                        // Let the client send its request first, so HTTP clients read the answer.
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
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read_head).await;
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), io.write_all(resp.as_bytes()))
                            .await;
                        let _ = io.shutdown().await;
                    });
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
