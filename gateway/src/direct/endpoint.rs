//! The party's UDP endpoint: one main socket shared by all its sessions (datagrams are
//! routed by the connection id in front of each packet, `session::udp`), extra sockets a
//! hard NAT punches from, and the answers of the mediator's reflexive-address probes.
//! It is the only socket of the gateway not bound to loopback; it acts on nothing but
//! authenticated packets of sessions it routes to, and probe answers it asked for.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use rand_core::RngCore;
use relay::reflex::{self, ProbeKey, KEY_ID_LEN, TXID_LEN};
use session::driver::{Datagram, DirectIo};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Datagrams queued per session before more are dropped.
const QUEUE: usize = 1024;

type Routes = Arc<Mutex<HashMap<u32, mpsc::Sender<Datagram>>>>;
type Waiting = Arc<Mutex<HashMap<[u8; TXID_LEN], (ProbeKey, oneshot::Sender<SocketAddr>)>>>;

/// Counters of what the endpoint dropped.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Datagrams for no session of ours, or of no protocol we speak.
    pub unknown: std::sync::atomic::AtomicU64,
    /// Session datagrams dropped because the session's queue was full.
    pub full: std::sync::atomic::AtomicU64,
}

/// The endpoint.
pub struct Endpoint {
    sockets: Mutex<Vec<Arc<UdpSocket>>>,
    routes: Routes,
    waiting: Waiting,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// What was dropped.
    pub dropped: Arc<Dropped>,
}

/// A session's place at the endpoint: its connection id and the datagrams for it.
pub struct Registration {
    /// The connection id peers put in front of datagrams for this session.
    pub id: u32,
    /// Those datagrams.
    pub rx: mpsc::Receiver<Datagram>,
}

impl Endpoint {
    /// Binds the main socket on all IPv4 interfaces (port `port`, 0: any).
    pub async fn bind(port: u16) -> Result<Arc<Endpoint>> {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
            .await
            .map_err(|e| Error::State(format!("cannot bind the direct-path UDP socket: {e}")))?;
        let ep = Arc::new(Endpoint {
            sockets: Mutex::new(Vec::new()),
            routes: Arc::default(),
            waiting: Arc::default(),
            tasks: Mutex::new(Vec::new()),
            dropped: Arc::default(),
        });
        ep.add(Arc::new(sock));
        Ok(ep)
    }

    fn add(&self, sock: Arc<UdpSocket>) {
        let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        let local = sockets.len() as u16;
        sockets.push(sock.clone());
        let task = tokio::spawn(receive(sock, local, self.routes.clone(), self.waiting.clone(), self.dropped.clone()));
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(task);
    }

    fn socket(&self, local: u16) -> Option<Arc<UdpSocket>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner()).get(local as usize).cloned()
    }

    /// The main socket's port.
    pub fn port(&self) -> u16 {
        self.socket(0).and_then(|s| s.local_addr().ok()).map_or(0, |a| a.port())
    }

    /// Makes sure sockets 1..=`n` exist (a hard NAT gives each its own mapping).
    pub fn ensure_extra(&self, n: u16) -> Result<()> {
        while self.sockets.lock().unwrap_or_else(|e| e.into_inner()).len() <= n as usize {
            let std = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .map_err(|e| Error::State(format!("cannot bind a punching socket: {e}")))?;
            let sock = UdpSocket::from_std(std).map_err(|e| Error::State(e.to_string()))?;
            self.add(Arc::new(sock));
        }
        Ok(())
    }

    /// A new connection id for a session, and the datagrams that will carry it.
    pub fn register(&self) -> Registration {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.retain(|_, s| !s.is_closed());
        let id = loop {
            let id = rand_core::OsRng.next_u32();
            if id != 0 && !routes.contains_key(&id) {
                break id;
            }
        };
        routes.insert(id, tx);
        Registration { id, rx }
    }

    /// Asks the probe server at `to` from which address it sees our main socket: the
    /// answer, verified under `key`, or `None` after `wait`.
    pub async fn probe(
        &self,
        to: SocketAddr,
        key_id: &[u8; KEY_ID_LEN],
        key: &ProbeKey,
        wait: Duration,
    ) -> Option<SocketAddr> {
        let txid = reflex::txid();
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(txid, (key.clone(), tx));
        let sent = match self.socket(0) {
            Some(s) => s.send_to(&reflex::probe(key_id, key, &txid), to).await.is_ok(),
            None => false,
        };
        let got = if sent { tokio::time::timeout(wait, rx).await.ok().and_then(Result::ok) } else { None };
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&txid);
        got
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            t.abort();
        }
    }
}

impl DirectIo for Endpoint {
    fn poll_send(&self, cx: &mut Context<'_>, local: u16, to: SocketAddr, datagram: &[u8]) -> Poll<io::Result<()>> {
        match self.socket(local) {
            Some(s) => s.poll_send_to(cx, datagram, to).map_ok(|_| ()),
            None => Poll::Ready(Err(io::Error::new(io::ErrorKind::NotFound, "no such socket"))),
        }
    }
}

/// Reads one socket: session datagrams go to their session, probe answers to their waiter.
async fn receive(sock: Arc<UdpSocket>, local: u16, routes: Routes, waiting: Waiting, dropped: Arc<Dropped>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP errors (e.g. port unreachable after a probe) surface here: keep reading.
            Err(_) => continue,
        };
        let d = &buf[..n];
        if let Some((id, packet)) = session::udp::parse(d) {
            let route = routes.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned();
            match route {
                Some(tx) => {
                    let g = Datagram { local, from, packet: Bytes::copy_from_slice(packet) };
                    if tx.try_send(g).is_err() {
                        dropped.full.fetch_add(1, Relaxed);
                    }
                }
                None => {
                    dropped.unknown.fetch_add(1, Relaxed);
                }
            }
        } else if let Some(txid) = reflex::answer_txid(d) {
            let entry = waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&txid);
            if let Some((key, tx)) = entry {
                match reflex::check_answer(&key, d) {
                    Some(addr) => {
                        let _ = tx.send(addr);
                    }
                    None => {
                        // Not from the mediator: keep waiting for the real answer.
                        waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(txid, (key, tx));
                    }
                }
            }
        } else {
            dropped.unknown.fetch_add(1, Relaxed);
        }
    }
}
