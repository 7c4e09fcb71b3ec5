//! What an attacker (or a test) does on the mediator's relay by hand: a raw `/relay`
//! WebSocket speaking `relay::proto`, a tapping TCP proxy that records what clients send
//! (a passive observer of ws://), and the mediator's `/metrics` as numbers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use relay::auth::SlotSecret;
use relay::proto::{Frame, JoinStatus, RouteId, NONCE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long a test waits for a frame it expects before failing (a hang guard, not a
/// timing assertion).
pub const GUARD: Duration = Duration::from_secs(30);

/// A raw relay connection.
pub struct RawRelay {
    pub ws: WebSocketStream<TcpStream>,
    /// The relay's challenge on this connection.
    pub nonce: [u8; NONCE_LEN],
}

fn ws_url(base: &str) -> String {
    format!("{}/relay", base.replacen("http://", "ws://", 1))
}

impl RawRelay {
    /// Opens `/relay` of the mediator at `base` (`http://host:port`) and reads the challenge.
    pub async fn connect(base: &str) -> RawRelay {
        RawRelay::connect_with(base, None).await
    }

    /// Like [`RawRelay::connect`], with a receive buffer of `rcvbuf` bytes (a reader that
    /// stops reading then stalls the relay's writes quickly).
    pub async fn connect_with(base: &str, rcvbuf: Option<u32>) -> RawRelay {
        let url = ws_url(base);
        let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
        let sock = TcpSocket::new_v4().unwrap();
        if let Some(n) = rcvbuf {
            sock.set_recv_buffer_size(n).unwrap();
        }
        let tcp = sock.connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
        let mut r = RawRelay { ws, nonce: [0; NONCE_LEN] };
        match r.next().await {
            Some(Frame::Challenge { nonce }) => r.nonce = nonce,
            other => panic!("the relay opens with a CHALLENGE, got {other:?}"),
        }
        r
    }

    /// Sends bytes as one binary message.
    pub async fn send_raw(&mut self, b: Bytes) -> Result<(), String> {
        self.ws.send(Message::Binary(b)).await.map_err(|e| e.to_string())
    }

    /// Sends a frame.
    pub async fn send(&mut self, f: &Frame) {
        self.send_raw(f.encode()).await.unwrap();
    }

    /// The next frame (`None` when the relay closed the connection).
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            let m = tokio::time::timeout(GUARD, self.ws.next()).await.expect("a frame from the relay in time");
            match m {
                Some(Ok(Message::Binary(b))) => return Some(Frame::decode(&b).expect("the relay sends valid frames")),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(_)) | Some(Err(_)) | None => return None,
            }
        }
    }

    /// Sends JOIN and returns the relay's answer for that route (other frames are skipped).
    pub async fn join_raw(&mut self, route: RouteId, slot: u8, mac: [u8; 32]) -> JoinStatus {
        self.send(&Frame::Join { route, slot, mac }).await;
        self.joined(route).await
    }

    /// JOINs with a MAC made with `secret` over this connection's challenge.
    pub async fn join(&mut self, secret: &SlotSecret, route: RouteId, slot: u8) -> JoinStatus {
        let mac = secret.join_mac(&self.nonce, &route, slot);
        self.join_raw(route, slot, mac).await
    }

    /// Waits for the JOINED answer about `route`.
    pub async fn joined(&mut self, route: RouteId) -> JoinStatus {
        loop {
            match self.next().await {
                Some(Frame::Joined { route: r, status }) if r == route => return status,
                Some(_) => continue,
                None => panic!("the relay closed the connection instead of answering the JOIN"),
            }
        }
    }
}

/// The mediator's `/metrics`, sample name (with labels) → value.
pub async fn metrics(base: &str) -> HashMap<String, f64> {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?))))
        .collect()
}

/// One relay metric (0 when absent).
pub fn metric(m: &HashMap<String, f64>, name: &str) -> u64 {
    m.get(&format!("didmpc_mediator_relay_{name}")).copied().unwrap_or(0.0) as u64
}

/// What clients sent on each connection, in order of connection.
type Logs = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// A TCP proxy that records everything clients send through it, per connection: what a
/// passive observer of unencrypted (ws://, http://) traffic sees.
pub struct Tap {
    /// `127.0.0.1:PORT` to connect to.
    pub addr: std::net::SocketAddr,
    seen: Logs,
    accept: tokio::task::JoinHandle<()>,
}

impl Tap {
    /// Proxies connections on a new loopback port to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Logs = Arc::default();
        let seen2 = seen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let log = Arc::new(Mutex::new(Vec::new()));
                seen2.lock().unwrap().push(log.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let (mut ir, mut iw) = inbound.into_split();
                    let (mut or, mut ow) = outbound.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = ir.read(&mut buf).await {
                            log.lock().unwrap().extend_from_slice(&buf[..n]);
                            if ow.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = ow.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut or, &mut iw).await;
                        let _ = iw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Tap { addr, seen, accept }
    }

    /// The binary WebSocket messages clients sent on `/relay` connections, unmasked.
    pub fn relay_messages(&self) -> Vec<Bytes> {
        let mut out = Vec::new();
        for log in self.seen.lock().unwrap().iter() {
            let bytes = log.lock().unwrap().clone();
            if !bytes.starts_with(b"GET /relay ") {
                continue;
            }
            let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            out.extend(client_messages(&bytes[end + 4..]));
        }
        out
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Parses masked client WebSocket frames (RFC 6455 §5.2); returns binary payloads.
fn client_messages(mut b: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let opcode = b[0] & 0x0f;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize, 10),
            n @ 0..=125 => (n as usize, 2),
            _ => break,
        };
        let masked = b[1] & 0x80 != 0;
        let mask: [u8; 4] = if masked && b.len() >= at + 4 { b[at..at + 4].try_into().unwrap() } else { [0; 4] };
        if masked {
            at += 4;
        }
        if b.len() < at + len {
            break;
        }
        if opcode == 2 {
            out.push(Bytes::from(b[at..at + len].iter().enumerate().map(|(i, x)| x ^ mask[i % 4]).collect::<Vec<_>>()));
        }
        b = &b[at + len..];
    }
    out
}
