//! A TCP proxy for tests: forwards to a target and can cut every connection at once
//! (an unplugged cable) while it keeps accepting new ones.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy.
pub struct Proxy {
    /// `127.0.0.1:PORT` to connect to.
    pub addr: std::net::SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Proxies connections on a new loopback port to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let c2 = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut v = c2.lock().unwrap();
                v.retain(|t| !t.is_finished());
                v.push(task);
            }
        });
        Proxy { addr, conns, accept }
    }

    /// Drops every open connection (both sides see a reset/EOF).
    pub fn cut(&self) -> usize {
        let mut v = self.conns.lock().unwrap();
        let n = v.iter().filter(|t| !t.is_finished()).count();
        for t in v.drain(..) {
            t.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
