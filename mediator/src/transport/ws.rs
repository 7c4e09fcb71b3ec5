//! WebSocket transport: one DIDComm message per frame, answers and live deliveries on
//! the same socket. One task per connection, small buffers, so idle sockets stay cheap.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::listener::PeerAddr;
use crate::live::OutFrame;
use crate::metrics::Metrics;
use crate::protocols::codes;
use crate::quota::Refusal;
use crate::router::{Channel, Outcome};
use crate::server::App;

/// Frames waiting to be written to one connection.
const OUTBOUND_QUEUE: usize = 64;

/// `GET /ws`: upgrade.
pub async fn upgrade(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = app.mediator.config.limits.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| run(app, socket, peer))
}

async fn run(app: Arc<App>, socket: WebSocket, peer: PeerAddr) {
    let conn = app.next_conn.fetch_add(1, Relaxed);
    let m = &app.mediator;
    m.metrics.ws_open.fetch_add(1, Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<OutFrame>(OUTBOUND_QUEUE);
    let mut shutdown = app.shutdown.clone();
    loop {
        tokio::select! {
            inbound = stream.next() => {
                let text = match inbound {
                    Some(Ok(Frame::Text(t))) => t.to_string(),
                    Some(Ok(Frame::Binary(b))) => match String::from_utf8(b.to_vec()) {
                        Ok(t) => t,
                        Err(_) => {
                            let o = Outcome::plain_problem(400, codes::MALFORMED, "binary frame is not UTF-8 DIDComm JSON");
                            if send(&mut sink, o).await.is_err() { break }
                            continue;
                        }
                    },
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                    Some(Ok(Frame::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::debug!(%conn, error = %e, "websocket read error");
                        break;
                    }
                };
                if !app.rate.allow(peer.0.ip()) {
                    Metrics::inc(&m.metrics.throttled);
                    m.metrics.refused.inc(Refusal::Rate);
                    let o = Outcome::plain_problem(429, codes::RATE, "too many messages from your address; slow down");
                    if send(&mut sink, o).await.is_err() { break }
                    continue;
                }
                // The message is held against the memory budget while it is handled.
                let Some(held) = m.memory.try_reserve(text.len()) else {
                    m.metrics.refused.inc(Refusal::Memory);
                    let o = Outcome::plain_problem(503, codes::MEMORY, "the mediator is short of memory right now; retry shortly");
                    if send(&mut sink, o).await.is_err() { break }
                    continue;
                };
                let outcome = m.handle_from(&text, Channel::Ws { conn, tx: &tx }, Some(peer.0.ip())).await;
                drop((text, held));
                if send(&mut sink, outcome).await.is_err() {
                    break;
                }
            }
            Some(frame) = rx.recv() => {
                let OutFrame { text, held } = frame;
                let sent = sink.send(Frame::Text(text.into())).await;
                drop(held);
                if sent.is_err() {
                    break;
                }
            }
            _ = shutdown.changed() => {
                let close = CloseFrame { code: 1001, reason: "mediator shutting down".into() };
                let _ = sink.send(Frame::Close(Some(close))).await;
                break;
            }
        }
    }
    m.drop_live(conn).await;
    m.metrics.ws_open.fetch_sub(1, Relaxed);
}

/// Sends an answer; what it holds against the memory budget is given back once it is written.
async fn send(sink: &mut futures_util::stream::SplitSink<WebSocket, Frame>, o: Outcome) -> Result<(), axum::Error> {
    match o.body {
        Some(body) => {
            let sent = sink.send(Frame::Text(body.into())).await;
            drop(o.held);
            sent
        }
        None => Ok(()),
    }
}
