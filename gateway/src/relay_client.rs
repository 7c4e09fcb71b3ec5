//! The client side of the mediator's session relay: one WebSocket per relay URL carries
//! every route (session) to that mediator; it reconnects with backoff, re-joins its
//! routes and tells each session to resend what is unacknowledged.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Sink, SinkExt, Stream};
use session::{Link, LinkEvent};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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

/// A session joining the connection: its route, where its packets go, where they come from.
struct NewRoute {
    id: RouteId,
    tx: mpsc::Sender<LinkEvent>,
    out: mpsc::Receiver<Bytes>,
}

/// Relay connections by URL.
#[derive(Clone)]
pub struct RelayClient {
    transport: Transport,
    conns: Arc<Mutex<HashMap<String, mpsc::Sender<NewRoute>>>>,
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
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(1024);
        cmd.try_send(NewRoute { id: route, tx: in_tx, out: out_rx })
            .map_err(|_| Error::Transport { uri: url.to_owned(), reason: "relay connection is overloaded".into() })?;
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

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Routes = HashMap<[u8; ROUTE_LEN], (u8, mpsc::Sender<LinkEvent>)>;

/// Why [`Conn::poll_io`] returned.
enum Exit {
    /// The WebSocket failed or closed: reconnect.
    Lost,
    /// No session uses the connection and none can come: close it.
    Done,
}

/// The routes of one relay connection. One task polls everything itself (new routes, each
/// session's packets, the socket both ways): a packet meets no other task between the
/// session driver and the socket, in either direction.
struct Conn {
    url: String,
    cmds: mpsc::Receiver<NewRoute>,
    cmds_open: bool,
    /// Our slot and the session's inbound queue, by route.
    routes: Routes,
    /// Each session's outbound packets.
    outs: Vec<([u8; ROUTE_LEN], mpsc::Receiver<Bytes>)>,
    /// Where the next round over `outs` starts (fairness between sessions).
    next_out: usize,
    /// JOIN frames of routes added while connected, not yet sent.
    joins: Vec<Bytes>,
    /// Frames were handed to the socket and not yet flushed.
    unflushed: bool,
}

impl Conn {
    fn new(url: String, cmds: mpsc::Receiver<NewRoute>) -> Conn {
        Conn {
            url,
            cmds,
            cmds_open: true,
            routes: HashMap::new(),
            outs: Vec::new(),
            next_out: 0,
            joins: Vec::new(),
            unflushed: false,
        }
    }

    fn done(&self) -> bool {
        !self.cmds_open && self.outs.is_empty()
    }

    /// Takes new routes (their JOIN frames go out first).
    fn poll_new_routes(&mut self, cx: &mut Context<'_>) {
        while self.cmds_open {
            match self.cmds.poll_recv(cx) {
                Poll::Ready(Some(r)) => {
                    self.joins.push(frame(OP_JOIN, &r.id.route, &[r.id.slot]));
                    self.routes.insert(r.id.route, (r.id.slot, r.tx));
                    self.outs.push((r.id.route, r.out));
                }
                Poll::Ready(None) => self.cmds_open = false,
                Poll::Pending => break,
            }
        }
    }

    /// The next packet of any session (round robin) as a DATA frame; forgets sessions that
    /// ended. Returning `None`, it has polled every open queue, so each one wakes the task.
    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        let n = self.outs.len();
        let mut ended = Vec::new();
        let mut found = None;
        for k in 0..n {
            let i = (self.next_out + k) % n;
            let (route, rx) = &mut self.outs[i];
            match rx.poll_recv(cx) {
                Poll::Ready(Some(p)) => {
                    self.next_out = i + 1;
                    found = Some(frame(OP_DATA, route, &p));
                    break;
                }
                Poll::Ready(None) => ended.push(i),
                Poll::Pending => {}
            }
        }
        // Highest index first, so that `swap_remove` only ever moves an entry still kept.
        ended.sort_unstable();
        for i in ended.into_iter().rev() {
            let (route, _) = self.outs.swap_remove(i);
            self.routes.remove(&route);
        }
        found
    }

    /// Moves frames both ways until the socket fails or the connection is no longer used.
    fn poll_io(&mut self, cx: &mut Context<'_>, ws: &mut Ws) -> Poll<Exit> {
        let mut ws = Pin::new(ws);
        loop {
            let mut progress = false;
            self.poll_new_routes(cx);
            // JOINs, then session packets, while the socket takes them (otherwise packets
            // wait in their queues and the sessions feel the back pressure).
            loop {
                match ws.as_mut().poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(Exit::Lost),
                    Poll::Pending => break,
                }
                let next = if self.joins.is_empty() { self.poll_packet(cx) } else { Some(self.joins.remove(0)) };
                let Some(f) = next else { break };
                if ws.as_mut().start_send(Frame::Binary(f)).is_err() {
                    return Poll::Ready(Exit::Lost);
                }
                self.unflushed = true;
                progress = true;
            }
            // One flush for everything queued; a pending one resumes when writable.
            if self.unflushed {
                match ws.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(_)) => return Poll::Ready(Exit::Lost),
                    Poll::Pending => {}
                }
            }
            match ws.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(Frame::Binary(b)))) => {
                    deliver(&self.routes, b, &self.url);
                    progress = true;
                }
                Poll::Ready(Some(Ok(Frame::Close(_)) | Err(_))) | Poll::Ready(None) => return Poll::Ready(Exit::Lost),
                Poll::Ready(Some(Ok(_))) => progress = true,
                Poll::Pending => {}
            }
            if self.done() {
                return Poll::Ready(Exit::Done);
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// While disconnected: takes new routes and drops packets (the sessions retransmit after
    /// the reconnection) until `pause` ends. False once the connection is no longer used.
    async fn wait_disconnected(&mut self, pause: std::time::Duration) -> bool {
        let mut pause = std::pin::pin!(tokio::time::sleep(pause));
        std::future::poll_fn(|cx| {
            self.poll_new_routes(cx);
            self.joins.clear(); // every route is joined on the next connection
            while self.poll_packet(cx).is_some() {}
            if self.done() {
                return Poll::Ready(false);
            }
            pause.as_mut().poll(cx).map(|()| true)
        })
        .await
    }
}

/// Owns one relay WebSocket: connects, joins, pumps frames, reconnects. It ends once no
/// session uses it and no new one can come.
async fn run(transport: Transport, url: String, cmds: mpsc::Receiver<NewRoute>) {
    let mut conn = Conn::new(url, cmds);
    let mut attempt = 0u32;
    let mut ever_connected = false;
    loop {
        let mut ws = match transport.connect(&conn.url).await {
            Ok(ws) => small_reads(ws.into_inner()).await,
            Err(e) => {
                tracing::debug!(url = %conn.url, error = %e, "relay connect failed");
                if !conn.wait_disconnected(backoff(attempt)).await {
                    return;
                }
                attempt += 1;
                continue;
            }
        };
        attempt = 0;
        conn.joins.clear();
        conn.unflushed = false;
        let mut ok = true;
        for (route, (slot, _)) in &conn.routes {
            ok &= ws.feed(Frame::Binary(frame(OP_JOIN, route, &[*slot]))).await.is_ok();
        }
        ok &= ws.flush().await.is_ok();
        if ever_connected {
            for (_, tx) in conn.routes.values() {
                let _ = tx.try_send(LinkEvent::PathReset);
            }
        }
        ever_connected = true;
        if ok {
            if let Exit::Done = std::future::poll_fn(|cx| conn.poll_io(cx, &mut ws)).await {
                let _ = ws.close(None).await;
                return;
            }
        }
        tracing::info!(url = %conn.url, "relay connection lost; reconnecting");
    }
}

/// Bytes tungstenite reads from the socket at a time. It zeroes that much of its buffer
/// before every read (including the one that finds nothing), so the 128 KiB default costs
/// more than the whole relay hop for small frames.
const READ_BUFFER: usize = 16 * 1024;

/// The same WebSocket with a small read buffer. `Transport::connect` takes no WebSocket
/// configuration and tungstenite fixes the read size when the socket is made, so the
/// socket is re-wrapped right after the handshake; nothing is buffered yet (the relay
/// speaks only after our first JOIN).
async fn small_reads(ws: Ws) -> Ws {
    let cfg = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    WebSocketStream::from_raw_socket(ws.into_inner(), Role::Client, Some(cfg)).await
}

fn deliver(routes: &Routes, b: Bytes, url: &str) {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn conn_with(n: usize) -> (Conn, Vec<mpsc::Sender<Bytes>>) {
        let (_, cmds) = mpsc::channel(1);
        let mut conn = Conn::new("ws://test".into(), cmds);
        let mut txs = Vec::new();
        for r in 0..n {
            let (tx, out) = mpsc::channel(8);
            let (in_tx, _) = mpsc::channel(1);
            conn.routes.insert([r as u8; ROUTE_LEN], (0, in_tx));
            conn.outs.push(([r as u8; ROUTE_LEN], out));
            txs.push(tx);
        }
        (conn, txs)
    }

    /// Whatever the round-robin position and whichever sessions ended, a `None` from
    /// `poll_packet` leaves every open queue polled: a packet queued afterwards wakes the
    /// task, and the packets already queued all come out, each once, on their own route.
    #[test]
    fn poll_packet_polls_every_open_queue_and_forgets_ended_ones() {
        for n in 1..=5usize {
            for next_out in 0..=n {
                for ended in 0..(1u32 << n) {
                    let (mut conn, txs) = conn_with(n);
                    conn.next_out = next_out;
                    let mut open = Vec::new();
                    for (r, tx) in txs.into_iter().enumerate() {
                        if ended & (1 << r) == 0 {
                            tx.try_send(Bytes::from(vec![r as u8])).unwrap();
                            open.push((r, tx));
                        }
                    }
                    let count = Arc::new(Count(AtomicUsize::new(0)));
                    let waker = Waker::from(count.clone());
                    let mut cx = Context::from_waker(&waker);
                    let mut got = Vec::new();
                    while let Some(f) = conn.poll_packet(&mut cx) {
                        assert_eq!(f[0], OP_DATA);
                        assert_eq!(f[1 + ROUTE_LEN..], [f[1]], "payload on its own route");
                        got.push(f[1] as usize);
                    }
                    got.sort_unstable();
                    let want: Vec<usize> = open.iter().map(|(r, _)| *r).collect();
                    assert_eq!(got, want, "n={n} next_out={next_out} ended={ended:b}");
                    assert_eq!(conn.outs.len(), open.len());
                    assert_eq!(conn.routes.len(), open.len());
                    for (k, (_, tx)) in open.iter().enumerate() {
                        tx.try_send(Bytes::from_static(b"x")).unwrap();
                        assert_eq!(count.0.load(Ordering::SeqCst), k + 1, "n={n} next_out={next_out} ended={ended:b}");
                        assert!(conn.poll_packet(&mut cx).is_some());
                        assert!(conn.poll_packet(&mut cx).is_none());
                    }
                }
            }
        }
    }
}
