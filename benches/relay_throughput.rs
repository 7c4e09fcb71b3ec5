//! Bulk throughput of one stream: session → mediator relay → session on loopback
//! (everything real: DIDComm handshake, WebSockets, the relay, AEAD), against raw
//! loopback TCP, in one run. Mediator, both parties and the load share the machine.
//!
//! Run: `cargo bench --bench relay_throughput` (env `BYTES`, default 2 GiB).

#[path = "../tests/support/mediator.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::mailbox::Mailbox;
use gateway::pairing::{self, PairSpec};
use gateway::relay_client::RelayClient;
use gateway::Agent;
use support::{temp_path, InProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 1 << 20;

fn cfg() -> session::Config {
    let window =
        std::env::var("WINDOW").ok().and_then(|v| v.parse().ok()).unwrap_or(session::Config::default().stream_window);
    session::Config { stream_window: window, ..session::Config::default() }
}

async fn pump<W: AsyncWriteExt + Unpin, R: AsyncReadExt + Unpin + Send + 'static>(
    mut w: W,
    mut r: R,
    total: u64,
) -> f64 {
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            let n = r.read(&mut buf).await.expect("read");
            if n == 0 {
                return got;
            }
            got += n as u64;
        }
    });
    let start = Instant::now();
    let data = vec![0xa5u8; CHUNK];
    let mut sent = 0u64;
    while sent < total {
        w.write_all(&data).await.expect("write");
        sent += CHUNK as u64;
    }
    w.shutdown().await.expect("shutdown");
    let got = reader.await.expect("reader");
    assert_eq!(got, sent);
    sent as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total: u64 = std::env::var("BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(2 << 30);
    let m = InProcess::start(mediator::Config::default()).await;
    let home = |n: &str| temp_path(n).parent().expect("dir").join(n);
    let alice = Arc::new(Agent::init(&home("alice"), &m.url).await.expect("alice"));
    let bob = Arc::new(Agent::init(&home("bob"), &m.url).await.expect("bob"));
    let (mut mb_a, mut mb_b) = (Mailbox::start(alice.clone()), Mailbox::start(bob.clone()));
    let relay_a = RelayClient::new(gateway::transport::Transport::new().expect("transport"));
    let relay_b = RelayClient::new(gateway::transport::Transport::new().expect("transport"));
    let spec_b =
        PairSpec { session_id: b"bulk".to_vec(), roster_digest: [0; 32], peer: alice.file.party.clone(), route: None };
    let spec_a =
        PairSpec { session_id: b"bulk".to_vec(), roster_digest: [0; 32], peer: bob.file.party.clone(), route: None };
    let b2 = bob.clone();
    let responder = tokio::spawn(async move {
        let init = pairing::wait_init(&mut mb_b, &spec_b.peer, &spec_b.session_id, Duration::from_secs(30))
            .await
            .expect("init");
        (pairing::accept(&b2, &relay_b, &init, &spec_b, cfg(), None).await.expect("accept"), mb_b)
    });
    let a = pairing::connect(&alice, &mut mb_a, &relay_a, &spec_a, cfg(), Duration::from_secs(30), None)
        .await
        .expect("connect");
    let (mut b, _mb_b) = responder.await.expect("responder");

    // raw loopback TCP
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let accept = tokio::spawn(async move { l.accept().await.expect("accept").0 });
    let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let server = accept.await.expect("accept");
    let tcp = pump(client, server, total).await;

    // one session stream through the relay
    let mut w = a.handle.open().await.expect("open");
    w.write_all(&[0u8]).await.expect("write");
    let mut rs = b.incoming.accept().await.expect("stream");
    rs.read_exact(&mut [0u8; 1]).await.expect("first byte");
    let relayed = pump(w, rs, total).await;
    let stats = a.handle.stats();
    println!("| path | Gbit/s ({} MiB) |", total >> 20);
    println!("|---|---|");
    println!("| raw loopback TCP | {tcp:.2} |");
    println!("| session → mediator relay → session | {relayed:.2} |");
    println!("| ratio relay / TCP | {:.3} |", relayed / tcp);
    println!(
        "(sender: {} packets, {} retransmits; relay frames forwarded {}, dropped {})",
        stats.packets_sent,
        stats.retransmits,
        m.mediator.relay().stats().forwarded,
        m.mediator.relay().stats().dropped
    );
    m.stop().await;
}
