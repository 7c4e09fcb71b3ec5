//! The client side of the mediator's session relay: one WebSocket per relay URL carries
//! every route (session) to that mediator; it reconnects with backoff, re-joins its
//! routes and tells each session to resend what is unacknowledged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use session::{Link, LinkEvent};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::error::{Error, Result};
use crate::link::backoff;
use crate::transport::Transport;

/// Route id length.
pub const ROUTE_LEN: usize = 16;
const OP_JOIN: u8 = 0x01;
const OP_DATA: u8 = 0x02;
const OP_JOINED: u8 = 0x81;
const OP_PEER: u8 = 0x83;

/// A relay route: id and our slot in it (initiator 0, responder 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId {
    /// The 16-byte route.
    pub route: [u8; ROUTE_LEN],
    /// Our slot.
    pub slot: u8,
}

enum Cmd {
    Add(RouteId, mpsc::Sender<LinkEvent>),
    Send([u8; ROUTE_LEN], Bytes),
    Remove([u8; ROUTE_LEN]),
}

/// Relay connections by URL.
#[derive(Clone)]
pub struct RelayClient {
    transport: Transport,
    conns: Arc<Mutex<HashMap<String, mpsc::Sender<Cmd>>>>,
}

impl RelayClient {
    /// A client using `transport` for its WebSockets.
    pub fn new(transport: Transport) -> RelayClient {
        RelayClient { transport, conns: Arc::default() }
    }

    /// A session link over `route` of the relay at `url`.
    pub fn link(&self, url: &str, route: RouteId) -> Result<Link> {
        let cmd = {
            let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            match conns.get(url).filter(|c| !c.is_closed()) {
                Some(c) => c.clone(),
                None => {
                    let (tx, rx) = mpsc::channel(4096);
                    tokio::spawn(run(self.transport.clone(), url.to_owned(), rx));
                    conns.insert(url.to_owned(), tx.clone());
                    tx
                }
            }
        };
        let (in_tx, in_rx) = mpsc::channel(1024);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(1024);
        cmd.try_send(Cmd::Add(route, in_tx))
            .map_err(|_| Error::Transport { uri: url.to_owned(), reason: "relay connection is overloaded".into() })?;
        // Tag the session's packets with its route.
        tokio::spawn(async move {
            while let Some(p) = out_rx.recv().await {
                if cmd.send(Cmd::Send(route.route, p)).await.is_err() {
                    return;
                }
            }
            let _ = cmd.send(Cmd::Remove(route.route)).await;
        });
        Ok(Link { tx: out_tx, rx: in_rx })
    }
}

fn frame(op: u8, route: &[u8; ROUTE_LEN], tail: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + ROUTE_LEN + tail.len());
    b.put_u8(op);
    b.put_slice(route);
    b.put_slice(tail);
    b.freeze()
}

/// Owns one relay WebSocket: connects, joins, pumps frames, reconnects.
async fn run(transport: Transport, url: String, mut cmds: mpsc::Receiver<Cmd>) {
    let mut routes: HashMap<[u8; ROUTE_LEN], (u8, mpsc::Sender<LinkEvent>)> = HashMap::new();
    let mut attempt = 0u32;
    let mut ever_connected = false;
    loop {
        let ws = match transport.connect(&url).await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::debug!(%url, error = %e, "relay connect failed");
                // Keep taking commands while disconnected, so sessions never block.
                let pause = tokio::time::sleep(backoff(attempt));
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        _ = &mut pause => break,
                        c = cmds.recv() => match c {
                            None => return,
                            Some(Cmd::Add(r, tx)) => { routes.insert(r.route, (r.slot, tx)); }
                            Some(Cmd::Remove(r)) => { routes.remove(&r); }
                            Some(Cmd::Send(..)) => {} // lost; the session retransmits
                        },
                    }
                }
                attempt += 1;
                if routes.is_empty() && cmds.is_closed() {
                    return;
                }
                continue;
            }
        };
        attempt = 0;
        let (mut sink, mut stream) = ws.into_inner().split();
        let mut ok = true;
        for (route, (slot, _)) in &routes {
            ok &= sink.feed(Frame::Binary(frame(OP_JOIN, route, &[*slot]))).await.is_ok();
        }
        ok &= sink.flush().await.is_ok();
        if ever_connected {
            for (_, tx) in routes.values() {
                let _ = tx.try_send(LinkEvent::PathReset);
            }
        }
        ever_connected = true;
        while ok {
            tokio::select! {
                c = cmds.recv() => match c {
                    None => return,
                    Some(Cmd::Add(r, tx)) => {
                        ok = sink.send(Frame::Binary(frame(OP_JOIN, &r.route, &[r.slot]))).await.is_ok();
                        routes.insert(r.route, (r.slot, tx));
                    }
                    Some(Cmd::Remove(r)) => { routes.remove(&r); }
                    Some(Cmd::Send(r, p)) => {
                        ok = sink.feed(Frame::Binary(frame(OP_DATA, &r, &p))).await.is_ok();
                        // Batch what is already queued into one flush.
                        while ok {
                            match cmds.try_recv() {
                                Ok(Cmd::Send(r, p)) => ok = sink.feed(Frame::Binary(frame(OP_DATA, &r, &p))).await.is_ok(),
                                Ok(Cmd::Add(r, tx)) => {
                                    ok = sink.feed(Frame::Binary(frame(OP_JOIN, &r.route, &[r.slot]))).await.is_ok();
                                    routes.insert(r.route, (r.slot, tx));
                                }
                                Ok(Cmd::Remove(r)) => { routes.remove(&r); }
                                Err(_) => break,
                            }
                        }
                        ok = ok && sink.flush().await.is_ok();
                    }
                },
                inbound = stream.next() => match inbound {
                    Some(Ok(Frame::Binary(b))) => deliver(&routes, b, &url),
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => ok = false,
                    Some(Ok(_)) => {}
                },
            }
        }
        tracing::info!(%url, "relay connection lost; reconnecting");
    }
}

fn deliver(routes: &HashMap<[u8; ROUTE_LEN], (u8, mpsc::Sender<LinkEvent>)>, b: Bytes, url: &str) {
    if b.len() < 1 + ROUTE_LEN {
        return;
    }
    let mut route = [0u8; ROUTE_LEN];
    route.copy_from_slice(&b[1..1 + ROUTE_LEN]);
    let Some((_, tx)) = routes.get(&route) else {
        return;
    };
    match b[0] {
        OP_DATA => {
            // A full session queue drops the packet; the sender retransmits it.
            let _ = tx.try_send(LinkEvent::Packet(b.slice(1 + ROUTE_LEN..)));
        }
        OP_PEER if b.get(1 + ROUTE_LEN) == Some(&1) => {
            let _ = tx.try_send(LinkEvent::PathReset);
        }
        OP_JOINED if b.get(1 + ROUTE_LEN) != Some(&0) => {
            tracing::warn!(%url, status = b.get(1 + ROUTE_LEN).copied().unwrap_or(255), "relay refused to join a route");
        }
        _ => {}
    }
}
