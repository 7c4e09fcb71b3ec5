//! The party's side of the relay: one WebSocket per relay URL carries every route
//! (session) to that relay. It waits for the relay's CHALLENGE, joins each route with a
//! MAC over it, reconnects with backoff (re-joining and telling each session to resend
//! what is unacknowledged), and re-joins a route it was displaced from.

mod conn;
mod ws;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use session::Link;
use tokio::sync::mpsc;

pub use ws::{ws_config, WsSocket, READ_BUFFER};

use crate::auth::{RouteKey, SlotSecret};
use crate::error::{Error, Result};
use crate::proto::{Frame, RouteId, NONCE_LEN};
use crate::pump::{FrameSocket, Pump};
use conn::{Conn, Exit, NewRoute};

/// How long the relay may take to send its CHALLENGE after the WebSocket opens.
pub const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A slot of a route, with the secret that proves the right to it.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The route.
    pub route: RouteId,
    /// Our slot (initiator 0, responder 1).
    pub slot: u8,
    /// The slot's secret.
    pub secret: SlotSecret,
}

impl Membership {
    /// `slot` of `route`, whose key we hold (we reserved it).
    pub fn with_key(route: RouteId, slot: u8, key: &RouteKey) -> Membership {
        Membership { route, slot, secret: key.slot_secret(slot) }
    }
}

/// How to open a WebSocket to a relay URL (the gateway's transport, with its TLS roots).
pub trait Connect: Clone + Send + Sync + 'static {
    /// The socket it opens.
    type Socket: FrameSocket + 'static;
    /// Opens a socket to `url` (made with [`ws_config`] if it is a WebSocket).
    fn connect(&self, url: &str) -> impl Future<Output = Result<Self::Socket>> + Send;
}

type Spawn = dyn Fn(String, mpsc::Receiver<NewRoute>) + Send + Sync;

/// Relay connections by URL.
#[derive(Clone)]
pub struct RelayClient {
    spawn: Arc<Spawn>,
    conns: Arc<Mutex<HashMap<String, mpsc::Sender<NewRoute>>>>,
}

impl RelayClient {
    /// A client opening its sockets with `connect`.
    pub fn new<C: Connect>(connect: C) -> RelayClient {
        let spawn = move |url: String, cmds| {
            tokio::spawn(run(connect.clone(), url, cmds));
        };
        RelayClient { spawn: Arc::new(spawn), conns: Arc::default() }
    }

    /// A session link over `member`'s slot of its route at the relay at `url`.
    pub fn link(&self, url: &str, member: Membership) -> Result<Link> {
        let cmd = {
            let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            match conns.get(url).filter(|c| !c.is_closed()) {
                Some(c) => c.clone(),
                None => {
                    let (tx, rx) = mpsc::channel(4096);
                    (self.spawn)(url.to_owned(), rx);
                    conns.insert(url.to_owned(), tx.clone());
                    tx
                }
            }
        };
        let (in_tx, in_rx) = mpsc::channel(1024);
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(1024);
        cmd.try_send(NewRoute { member, tx: in_tx, out: out_rx }).map_err(|_| Error::Overloaded(url.to_owned()))?;
        Ok(Link { tx: out_tx, rx: in_rx })
    }
}

/// The delay before reconnection attempt `attempt` (from 0): 0.5 s doubling, at most 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((500u64 << attempt.min(6)).min(30_000))
}

/// Opens a socket and reads the relay's CHALLENGE.
async fn open<C: Connect>(connect: &C, url: &str) -> Result<(C::Socket, [u8; NONCE_LEN])> {
    let fail = |reason: String| Error::Connect { url: url.to_owned(), reason };
    let mut ws = connect.connect(url).await?;
    let first = tokio::time::timeout(CHALLENGE_TIMEOUT, ws.next())
        .await
        .map_err(|_| fail("no CHALLENGE from the relay in time".into()))?;
    match first {
        Some(Ok(f)) => match Frame::decode(&f)? {
            Frame::Challenge { nonce } => Ok((ws, nonce)),
            other => Err(fail(format!("expected a CHALLENGE, got opcode {:#04x}", other.opcode()))),
        },
        Some(Err(e)) => Err(e),
        None => Err(fail("closed before its CHALLENGE".into())),
    }
}

/// Owns one relay connection: connects, joins, pumps frames, reconnects. It ends once no
/// session uses it and no new one can come.
async fn run<C: Connect>(connect: C, url: String, cmds: mpsc::Receiver<NewRoute>) {
    let mut conn = Conn::new(url, cmds);
    let mut attempt = 0u32;
    let mut ever_connected = false;
    loop {
        let (mut ws, nonce) = match open(&connect, &conn.url).await {
            Ok(x) => x,
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
        conn.connected(nonce, ever_connected);
        ever_connected = true;
        let mut pump = Pump::default();
        if let Exit::Done = std::future::poll_fn(|cx| pump.poll(cx, &mut ws, &mut conn)).await {
            let _ = ws.close().await;
            return;
        }
        conn.disconnected();
        tracing::info!(url = %conn.url, "relay connection lost; reconnecting");
    }
}
