//! `GET /relay`: the session relay's WebSocket. The relay itself (frames, JOIN
//! authentication, bounds, the connection pump) is the `relay` crate's server; this is the
//! axum glue: the upgrade, an adapter from axum's WebSocket to relay frames, and the
//! reservation lookup in the store.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{Sink, Stream};
use relay::auth::RouteKey;
use relay::server::Reservation;
use relay::{RouteId, MAX_FRAME};

use crate::server::App;
use crate::store::Store;

/// Bytes tungstenite reads from the socket at a time. It zeroes that much of its buffer
/// before every read (including the one that finds nothing), so the 128 KiB default
/// costs more than the whole relay hop for small frames.
pub const READ_BUFFER: usize = 16 * 1024;

/// `GET /relay`: upgrade.
pub async fn upgrade(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| run(app, socket))
}

async fn run(app: Arc<App>, socket: WebSocket) {
    let mut socket = Binary(socket);
    let mut shutdown = app.shutdown.clone();
    let store = Reservations(app.mediator.store().clone());
    let exit = app
        .mediator
        .relay()
        .serve(&mut socket, &store, async move {
            let _ = shutdown.wait_for(|down| *down).await;
        })
        .await;
    if let Some((code, reason)) = exit.close_frame() {
        let _ = socket.0.send(Frame::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    }
}

/// Route reservations, from the store.
struct Reservations(Arc<dyn Store>);

impl relay::server::Reservations for Reservations {
    async fn reservation(&self, route: RouteId) -> relay::Result<Option<Reservation>> {
        let now = did_core::didcomm::message::now();
        let found =
            self.0.route_reservation(&route.0, now).await.map_err(|e| relay::Error::Reservations(e.to_string()))?;
        Ok(found.and_then(|r| {
            let key = RouteKey::from_slice(&r.key)?;
            Some(Reservation { owner: r.client.into(), key, expires_at: r.expires_at })
        }))
    }
}

/// axum's WebSocket as a socket of relay frames: binary messages are frames, a text
/// message is an error, pings and pongs are answered by tungstenite.
struct Binary(WebSocket);

fn socket_error(e: axum::Error) -> relay::Error {
    relay::Error::Socket(e.to_string())
}

impl Sink<Bytes> for Binary {
    type Error = relay::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<relay::Result<()>> {
        Pin::new(&mut self.0).poll_ready(cx).map_err(socket_error)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> relay::Result<()> {
        Pin::new(&mut self.0).start_send(Frame::Binary(frame)).map_err(socket_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<relay::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(socket_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<relay::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx).map_err(socket_error)
    }
}

impl Stream for Binary {
    type Item = relay::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<relay::Result<Bytes>>> {
        loop {
            return match Pin::new(&mut self.0).poll_next(cx) {
                Poll::Ready(Some(Ok(Frame::Binary(b)))) => Poll::Ready(Some(Ok(b))),
                Poll::Ready(Some(Ok(Frame::Text(_)))) => Poll::Ready(Some(Err(relay::Error::NotBinary))),
                Poll::Ready(Some(Ok(Frame::Ping(_) | Frame::Pong(_)))) => continue,
                Poll::Ready(Some(Ok(Frame::Close(_)))) | Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(socket_error(e)))),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}
