//! The one WebSocket pump, shared by both ends. A single task polls the socket both ways
//! itself (no split halves, no select, no forwarding task): frames are handed to the socket
//! while it takes them, everything handed over leaves in one flush, and incoming frames are
//! passed on as they arrive. What a frame means is the business of the [`Side`] around it
//! (the relay's connection in `server`, the gateway's connection in `client`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};

use crate::error::{Error, Result};

/// A message socket carrying relay frames, one whole binary message per item: a
/// WebSocket behind a small adapter (axum's on the mediator, tungstenite's in
/// [`crate::client::WsSocket`]), or an in-memory pair in tests. A text message should
/// surface as [`Error::NotBinary`]; pings, pongs and the like are the adapter's business.
pub trait FrameSocket: Sink<Bytes, Error = Error> + Stream<Item = Result<Bytes>> + Unpin + Send {}

impl<T> FrameSocket for T where T: Sink<Bytes, Error = Error> + Stream<Item = Result<Bytes>> + Unpin + Send {}

/// One end's logic around the pump. Every method is called from the pump's task.
pub(crate) trait Side {
    /// Why the pump stopped.
    type Exit;
    /// Start of a round (new routes, timers); `Some` stops the pump.
    fn poll_start(&mut self, cx: &mut Context<'_>) -> Option<Self::Exit>;
    /// The next frame to send, if one is ready (otherwise a wake-up is registered).
    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Option<Bytes>;
    /// A frame arrived; `Some` stops the pump.
    fn incoming(&mut self, frame: Bytes) -> Option<Self::Exit>;
    /// The socket failed (`Some`) or was closed (`None`).
    fn lost(&mut self, error: Option<Error>) -> Self::Exit;
    /// End of a round: `wrote` says whether the socket took or flushed frames in it,
    /// `unflushed` whether frames handed over still wait for a flush. `Some` stops the pump.
    fn poll_end(&mut self, cx: &mut Context<'_>, wrote: bool, unflushed: bool) -> Option<Self::Exit>;
}

/// The pump's own state between polls.
#[derive(Debug, Default)]
pub(crate) struct Pump {
    /// Frames were handed to the socket and not flushed yet.
    unflushed: bool,
}

impl Pump {
    /// Moves frames both ways until `side` or the socket stops it.
    pub(crate) fn poll<S: FrameSocket, H: Side>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut S,
        side: &mut H,
    ) -> Poll<H::Exit> {
        let mut socket = Pin::new(socket);
        loop {
            if let Some(exit) = side.poll_start(cx) {
                return Poll::Ready(exit);
            }
            let mut wrote = false;
            // Frames while the socket takes them (otherwise they wait in their queues, and
            // whoever fills those feels the back pressure).
            loop {
                match socket.as_mut().poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(side.lost(Some(e))),
                    Poll::Pending => break,
                }
                let Some(frame) = side.poll_outgoing(cx) else { break };
                if let Err(e) = socket.as_mut().start_send(frame) {
                    return Poll::Ready(side.lost(Some(e)));
                }
                self.unflushed = true;
                wrote = true;
            }
            // One flush for everything handed over; a pending one resumes when writable.
            if self.unflushed {
                match socket.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        wrote = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(side.lost(Some(e))),
                    Poll::Pending => {}
                }
            }
            let mut read = false;
            match socket.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    read = true;
                    if let Some(exit) = side.incoming(frame) {
                        return Poll::Ready(exit);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(side.lost(Some(e))),
                Poll::Ready(None) => return Poll::Ready(side.lost(None)),
                Poll::Pending => {}
            }
            if let Some(exit) = side.poll_end(cx, wrote, self.unflushed) {
                return Poll::Ready(exit);
            }
            if !(wrote || read) {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(all(test, feature = "server"))]
pub(crate) mod testing {
    //! An in-memory [`FrameSocket`] pair.

    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use futures_util::{Sink, Stream};
    use tokio::sync::mpsc;
    use tokio_util::sync::PollSender;

    use crate::error::{Error, Result};

    /// One end of an in-memory socket. Each direction holds at most `capacity` frames, so
    /// a peer that stops reading blocks the sender, as a full TCP window would.
    pub struct MemSocket {
        tx: PollSender<Result<Bytes>>,
        raw: mpsc::Sender<Result<Bytes>>,
        rx: mpsc::Receiver<Result<Bytes>>,
    }

    /// Two connected sockets.
    pub fn pair(capacity: usize) -> (MemSocket, MemSocket) {
        let (a_tx, a_rx) = mpsc::channel(capacity);
        let (b_tx, b_rx) = mpsc::channel(capacity);
        let a = MemSocket { tx: PollSender::new(a_tx.clone()), raw: a_tx, rx: b_rx };
        let b = MemSocket { tx: PollSender::new(b_tx.clone()), raw: b_tx, rx: a_rx };
        (a, b)
    }

    impl MemSocket {
        /// Delivers what an adapter reports for a text message to the other end.
        pub async fn send_text(&self) {
            let _ = self.raw.send(Err(Error::NotBinary)).await;
        }
    }

    impl Sink<Bytes> for MemSocket {
        type Error = Error;
        fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
            self.tx.poll_reserve(cx).map_err(|_| Error::Socket("peer gone".into()))
        }
        fn start_send(mut self: Pin<&mut Self>, item: Bytes) -> Result<()> {
            self.tx.send_item(Ok(item)).map_err(|_| Error::Socket("peer gone".into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
            self.tx.close();
            Poll::Ready(Ok(()))
        }
    }

    impl Stream for MemSocket {
        type Item = Result<Bytes>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
            self.rx.poll_recv(cx)
        }
    }
}
