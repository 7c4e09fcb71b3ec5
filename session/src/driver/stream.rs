//! What the application holds of a stream: [`SessionStream`] (its end of a duplex pipe,
//! with the peer's reset surfaced as an error), and [`Io`], the byte I/O the driver can
//! carry a stream over instead.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// An application stream: read what the peer wrote, write what the peer reads.
/// `shutdown` sends FIN; a reset by the peer surfaces as `ConnectionReset`.
pub struct SessionStream {
    pub(super) id: u32,
    pub(super) pipe: DuplexStream,
    pub(super) reset: Arc<AtomicU32>,
}

pub(super) const NOT_RESET: u32 = u32::MAX;

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
