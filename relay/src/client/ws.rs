//! A tungstenite WebSocket as a [`FrameSocket`](crate::FrameSocket).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::error::{Error, Result};
use crate::proto::MAX_FRAME;

/// Bytes tungstenite reads from the socket at a time. It zeroes that much of its buffer
/// before every read (including the one that finds nothing), so the 128 KiB default
/// costs more than the whole relay hop for small frames.
pub const READ_BUFFER: usize = 16 * 1024;

/// The WebSocket settings for relay connections: small reads, and no message larger than
/// a relay frame. They must be given when the socket is made (at the handshake): the
/// relay speaks first, so its CHALLENGE may already sit in the handshake's buffer.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}

/// A client WebSocket carrying relay frames as binary messages.
pub struct WsSocket<S> {
    inner: WebSocketStream<S>,
}

impl<S> WsSocket<S> {
    /// Wraps a connected WebSocket (made with [`ws_config`]).
    pub fn new(inner: WebSocketStream<S>) -> WsSocket<S> {
        WsSocket { inner }
    }
}

fn socket_error(e: impl std::fmt::Display) -> Error {
    Error::Socket(e.to_string())
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Bytes> for WsSocket<S> {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.inner).poll_ready(cx).map_err(socket_error)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> Result<()> {
        Pin::new(&mut self.inner).start_send(Message::Binary(frame)).map_err(socket_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(socket_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx).map_err(socket_error)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsSocket<S> {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
        loop {
            return match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(Message::Binary(b)))) => Poll::Ready(Some(Ok(b))),
                Poll::Ready(Some(Ok(Message::Text(_)))) => Poll::Ready(Some(Err(Error::NotBinary))),
                // Pings are answered by tungstenite itself.
                Poll::Ready(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
                Poll::Ready(Some(Ok(Message::Close(_)))) | Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(socket_error(e)))),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}
