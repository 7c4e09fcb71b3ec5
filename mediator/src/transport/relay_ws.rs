//! `GET /relay`: the session relay's WebSocket (binary frames, see `relay.rs`). Frames
//! are forwarded without copying; a congested member loses frames, which the session
//! layer retransmits.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{Sink, Stream};
use tokio::sync::mpsc;

use crate::relay::{
    joined_frame, route_of, JoinStatus, Outbound, Relay, Route, MAX_FRAME, OP_DATA, OP_JOIN, OP_LEAVE, ROUTE_LEN,
};
use crate::server::App;

/// Frames queued towards one relay connection before new ones are dropped.
const QUEUE: usize = 1024;
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

/// What [`RelayConn::poll_io`] cannot finish by itself.
enum Event {
    /// A JOIN frame (the reservation lookup is asynchronous).
    Join(Bytes),
    /// A text frame: the connection is closed with 1003.
    Text,
    /// The client went away or the socket failed.
    Lost,
}

/// One relay connection. Its task polls the socket both ways itself (no split halves, no
/// select): frames from the other member of a route are written as soon as the task runs,
/// and whatever is queued leaves in one flush.
struct RelayConn {
    socket: WebSocket,
    /// Frames for this connection (from the other members of its routes, and answers).
    rx: mpsc::Receiver<Bytes>,
    unflushed: bool,
    conn: u64,
    joined: Vec<Route>,
}

impl RelayConn {
    fn poll_io(&mut self, cx: &mut Context<'_>, relay: &Relay, tx: &Outbound) -> Poll<Event> {
        let mut socket = Pin::new(&mut self.socket);
        loop {
            let mut progress = false;
            loop {
                match socket.as_mut().poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Lost),
                    Poll::Pending => break,
                }
                let Poll::Ready(Some(f)) = self.rx.poll_recv(cx) else { break };
                if socket.as_mut().start_send(Frame::Binary(f)).is_err() {
                    return Poll::Ready(Event::Lost);
                }
                self.unflushed = true;
                progress = true;
            }
            // One flush for everything queued; a pending one resumes when writable.
            if self.unflushed {
                match socket.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Lost),
                    Poll::Pending => {}
                }
            }
            match socket.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(Frame::Binary(frame)))) => {
                    progress = true;
                    match frame.first() {
                        Some(&OP_DATA) => relay.data(frame, self.conn),
                        Some(&OP_JOIN) => return Poll::Ready(Event::Join(frame)),
                        Some(&OP_LEAVE) => {
                            if let Some(route) = route_of(&frame) {
                                relay.leave(route, self.conn);
                                self.joined.retain(|r| *r != route);
                            }
                        }
                        _ => {
                            let _ = tx.try_send(joined_frame(&[0; ROUTE_LEN], JoinStatus::Malformed));
                        }
                    }
                }
                Poll::Ready(Some(Ok(Frame::Ping(_) | Frame::Pong(_)))) => progress = true,
                Poll::Ready(Some(Ok(Frame::Text(_)))) => return Poll::Ready(Event::Text),
                Poll::Ready(Some(Ok(Frame::Close(_)) | Err(_))) | Poll::Ready(None) => return Poll::Ready(Event::Lost),
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

async fn run(app: Arc<App>, socket: WebSocket) {
    let m = app.mediator.clone();
    let relay = m.relay();
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let mut c =
        RelayConn { socket, rx, unflushed: false, conn: app.next_conn.fetch_add(1, Relaxed), joined: Vec::new() };
    let mut shutdown = app.shutdown.clone();
    let mut down = std::pin::pin!(shutdown.changed());
    loop {
        let ev = std::future::poll_fn(|cx| match down.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => c.poll_io(cx, relay, &tx).map(Some),
        })
        .await;
        match ev {
            Some(Event::Join(frame)) => {
                let (Some(route), Some(&slot)) = (route_of(&frame), frame.get(1 + ROUTE_LEN)) else {
                    let _ = tx.try_send(joined_frame(&[0; ROUTE_LEN], JoinStatus::Malformed));
                    continue;
                };
                let reserved =
                    m.store().route_reserved(&route, did_core::didcomm::message::now()).await.unwrap_or(false);
                if !reserved {
                    let _ = tx.try_send(joined_frame(&route, JoinStatus::UnknownRoute));
                    continue;
                }
                if relay.join(route, slot, c.conn, &tx) == JoinStatus::Ok {
                    if !c.joined.contains(&route) {
                        c.joined.push(route);
                    }
                } else {
                    let _ = tx.try_send(joined_frame(&route, JoinStatus::BadSlot));
                }
            }
            Some(Event::Text) => {
                let close = CloseFrame { code: 1003, reason: "the relay takes binary frames only".into() };
                let _ = c.socket.send(Frame::Close(Some(close))).await;
                break;
            }
            Some(Event::Lost) => break,
            None => {
                let close = CloseFrame { code: 1001, reason: "mediator shutting down".into() };
                let _ = c.socket.send(Frame::Close(Some(close))).await;
                break;
            }
        }
    }
    relay.drop_conn(c.conn, &c.joined);
}
