//! Bulk throughput of one stream on loopback, in one run: raw TCP; session → mediator relay →
//! session (everything real: DIDComm handshake, WebSockets, the relay, AEAD); session → direct
//! UDP path → session (the same handshake with candidates, punched and validated on loopback);
//! and TCP through a wireguard-go tunnel between two network namespaces (needs root and
//! `wireguard-go`; `WG=0` skips it). Mediator, parties and the load share the machine.
//!
//! Run: `cargo bench --bench relay_throughput` (env `BYTES`, default 2 GiB).

#[path = "../tests/support/mediator.rs"]
mod support;
#[path = "support/wireguard.rs"]
mod wireguard;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::direct::LocalDirect;
use gateway::mailbox::Mailbox;
use gateway::pairing::{self, PairSpec, Paired};
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

/// Two fresh parties on the mediator at `url` and their session `sid`, direct-capable or
/// relay-only; the `LocalDirect`s must outlive the session.
async fn pair(url: &str, sid: &[u8], direct: bool) -> (Paired, Paired, Vec<LocalDirect>) {
    let home = |n: &str| temp_path(n).parent().expect("dir").join(n);
    let alice = Arc::new(Agent::init(&home("alice"), url).await.expect("alice"));
    let bob = Arc::new(Agent::init(&home("bob"), url).await.expect("bob"));
    let (mut mb_a, mut mb_b) = (Mailbox::start(alice.clone()), Mailbox::start(bob.clone()));
    let (da, db) = if direct {
        (
            Some(LocalDirect::prepare(&alice, 256).await.expect("a")),
            Some(LocalDirect::prepare(&bob, 256).await.expect("b")),
        )
    } else {
        (None, None)
    };
    let relay_a = RelayClient::new(gateway::transport::Transport::new().expect("transport"));
    let relay_b = RelayClient::new(gateway::transport::Transport::new().expect("transport"));
    let spec_b =
        PairSpec { session_id: sid.to_vec(), roster_digest: [0; 32], peer: alice.file.party.clone(), route: None };
    let spec_a =
        PairSpec { session_id: sid.to_vec(), roster_digest: [0; 32], peer: bob.file.party.clone(), route: None };
    let responder = async {
        let init = pairing::wait_init(&mut mb_b, &spec_b.peer, &spec_b.session_id, Duration::from_secs(30))
            .await
            .expect("init");
        pairing::accept(&bob, &relay_b, &init, &spec_b, cfg(), db.as_ref()).await.expect("accept")
    };
    let initiator = pairing::connect(&alice, &mut mb_a, &relay_a, &spec_a, cfg(), Duration::from_secs(30), da.as_ref());
    let (b, a) = tokio::join!(responder, async { initiator.await.expect("connect") });
    (a, b, da.into_iter().chain(db).collect())
}

/// One stream from `a` to `b`, after its first byte has arrived.
async fn stream_rate(a: &Paired, b: &mut Paired, total: u64) -> f64 {
    let mut w = a.handle.open().await.expect("open");
    w.write_all(&[0u8]).await.expect("write");
    let mut rs = b.incoming.accept().await.expect("stream");
    rs.read_exact(&mut [0u8; 1]).await.expect("first byte");
    pump(w, rs, total).await
}

fn main() {
    if wireguard::child_main() || std::env::args().any(|a| a == "--list") {
        return;
    }
    let total: u64 = std::env::var("BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(2 << 30);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (tcp, relayed, direct) = rt.block_on(in_process(total));
    // wireguard-go gets the machine to itself: the runtime above is gone.
    drop(rt);
    let wg = if std::env::var("WG").as_deref() == Ok("0") {
        Err("skipped (WG=0)".to_owned())
    } else {
        wireguard::Tunnel::up().and_then(|t| t.throughput(total))
    };
    println!("| path | Gbit/s ({} MiB) | / raw TCP | / relay |", total >> 20);
    println!("|---|---|---|---|");
    println!("| raw loopback TCP | {tcp:.2} | 1 | {:.1} |", tcp / relayed);
    println!("| session → mediator relay → session | {relayed:.2} | {:.3} | 1 |", relayed / tcp);
    println!("| session → direct UDP path → session | {direct:.2} | {:.3} | {:.2} |", direct / tcp, direct / relayed);
    match wg {
        Ok(g) => {
            println!("| TCP through wireguard-go (2 netns, veth) | {g:.2} | {:.3} | {:.2} |", g / tcp, g / relayed);
            println!("(direct / wireguard-go: {:.2})", direct / g);
        }
        Err(e) => println!("| TCP through wireguard-go | not measured: {e} | | |"),
    }
}

async fn in_process(total: u64) -> (f64, f64, f64) {
    let mut config = mediator::Config::default();
    config.udp.listen = vec!["127.0.0.1:0".parse().expect("addr"), "127.0.0.1:0".parse().expect("addr")];
    let m = InProcess::start(config).await;

    // raw loopback TCP
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let accept = tokio::spawn(async move { l.accept().await.expect("accept").0 });
    let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let server = accept.await.expect("accept");
    let tcp = pump(client, server, total).await;

    // one session stream through the relay (a relay-only pair: no candidates offered)
    let (a, mut b, none) = pair(&m.url, b"bulk-relay", false).await;
    assert!(none.is_empty());
    let before = m.mediator.relay().stats();
    let relayed = stream_rate(&a, &mut b, total).await;
    let (st, after) = (a.handle.stats(), m.mediator.relay().stats());
    assert!(!st.direct, "{st:?}");
    println!(
        "relay: sender {} packets, {} retransmits, {} lost; relay frames forwarded {}, dropped {}",
        st.packets_sent,
        st.retransmits,
        st.lost,
        after.forwarded - before.forwarded,
        after.dropped - before.dropped
    );
    drop((a, b));

    // one session stream over the direct path, once both sides have validated it
    let (a, mut b, _keep) = pair(&m.url, b"bulk-direct", true).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while ![&a, &b].iter().all(|p| p.handle.paths().paths.iter().any(|x| x.active && x.addr.is_direct())) {
        assert!(Instant::now() < deadline, "never went direct: {:?}", a.handle.paths());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = m.mediator.relay().stats();
    let direct = stream_rate(&a, &mut b, total).await;
    let (st, after) = (a.handle.stats(), m.mediator.relay().stats());
    assert!(st.direct, "still direct at the end: {st:?}");
    println!(
        "direct: sender {} packets, {} retransmits, {} lost; relay frames forwarded meanwhile {}; switches {}",
        st.packets_sent,
        st.retransmits,
        st.lost,
        after.forwarded - before.forwarded,
        a.handle.paths().switches.len()
    );
    m.stop().await;
    (tcp, relayed, direct)
}
