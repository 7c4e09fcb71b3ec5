//! `GET /relay`: the session relay's WebSocket (binary frames, see `relay.rs`). Frames
//! are forwarded without copying; a congested member loses frames, which the session
//! layer retransmits.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::relay::{joined_frame, route_of, JoinStatus, Route, MAX_FRAME, OP_DATA, OP_JOIN, OP_LEAVE, ROUTE_LEN};
use crate::server::App;

/// Frames queued towards one relay connection before new ones are dropped.
const QUEUE: usize = 1024;

/// `GET /relay`: upgrade.
pub async fn upgrade(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_FRAME).max_frame_size(MAX_FRAME).on_upgrade(move |socket| run(app, socket))
}

async fn run(app: Arc<App>, socket: WebSocket) {
    let conn = app.next_conn.fetch_add(1, Relaxed);
    let m = app.mediator.clone();
    let relay = m.relay();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let mut joined: Vec<Route> = Vec::new();
    let mut shutdown = app.shutdown.clone();
    loop {
        tokio::select! {
            inbound = stream.next() => {
                let frame = match inbound {
                    Some(Ok(Frame::Binary(b))) => b,
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                    Some(Ok(Frame::Text(_))) => {
                        let _ = sink.send(Frame::Close(Some(CloseFrame { code: 1003, reason: "the relay takes binary frames only".into() }))).await;
                        break;
                    }
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break,
                };
                match frame.first() {
                    Some(&OP_DATA) => relay.data(frame, conn),
                    Some(&OP_JOIN) => {
                        let (Some(route), Some(&slot)) = (route_of(&frame), frame.get(1 + ROUTE_LEN)) else {
                            let _ = tx.try_send(joined_frame(&[0; ROUTE_LEN], JoinStatus::Malformed));
                            continue;
                        };
                        let reserved = m.store().route_reserved(&route, did_core::didcomm::message::now()).await.unwrap_or(false);
                        if !reserved {
                            let _ = tx.try_send(joined_frame(&route, JoinStatus::UnknownRoute));
                            continue;
                        }
                        if relay.join(route, slot, conn, &tx) == JoinStatus::Ok {
                            if !joined.contains(&route) {
                                joined.push(route);
                            }
                        } else {
                            let _ = tx.try_send(joined_frame(&route, JoinStatus::BadSlot));
                        }
                    }
                    Some(&OP_LEAVE) => {
                        if let Some(route) = route_of(&frame) {
                            relay.leave(route, conn);
                            joined.retain(|r| *r != route);
                        }
                    }
                    _ => {
                        let _ = tx.try_send(joined_frame(&[0; ROUTE_LEN], JoinStatus::Malformed));
                    }
                }
            }
            Some(frame) = rx.recv() => {
                // Batch whatever else is queued into one flush.
                if sink.feed(Frame::Binary(frame)).await.is_err() {
                    break;
                }
                let mut ok = true;
                while let Ok(more) = rx.try_recv() {
                    if sink.feed(Frame::Binary(more)).await.is_err() {
                        ok = false;
                        break;
                    }
                }
                if !ok || sink.flush().await.is_err() {
                    break;
                }
            }
            _ = shutdown.changed() => {
                let _ = sink.send(Frame::Close(Some(CloseFrame { code: 1001, reason: "mediator shutting down".into() }))).await;
                break;
            }
        }
    }
    relay.drop_conn(conn, &joined);
}
