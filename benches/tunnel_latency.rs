//! Round-trip latency of small messages (ping-pong, one message in flight), in one run:
//! - raw loopback TCP;
//! - one session stream over an in-memory link (two drivers, channels between them);
//! - one session stream through the in-process mediator relay (DIDComm handshake,
//!   WebSockets, the relay, AEAD: everything real);
//! - the full tunnel as MPyC sees it: TCP → the gateway's loopback listener → session →
//!   relay → session → the peer gateway's dial-in → TCP echo server.
//!
//! Reports µs per round trip, the ratio to TCP, and the CPU time of this process per
//! round trip (both gateways and the mediator run here: that is what competes with MPyC
//! for the cores).
//!
//! Run: `cargo bench --bench tunnel_latency` (env `ROUNDS`, default 20000; `REPEAT`,
//! default 3, medians reported; `SIZE`,
//! default 64 bytes; `ONLY=tcp,mem,relay,tunnel` to pick paths, e.g. for `perf`;
//! `WORKERS`, default 2: tokio worker threads).

#[path = "../tests/support/mediator.rs"]
mod support;

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gateway::mailbox::Mailbox;
use gateway::pairing::{self, PairSpec};
use gateway::relay_client::RelayClient;
use gateway::{tunnel, Agent};
use session::driver::{self, Link, LinkEvent};
use session::handshake::{respond, Initiator, Params, NOISE_PARAMS};
use session::{Keys, Session};
use support::{temp_path, InProcess};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Seconds of CPU this process used so far (user + system), from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Echoes everything back until EOF.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

struct Sample {
    us: f64,
    cpu_us: f64,
}

/// `rounds` ping-pongs of `size` bytes over `s` (after a warm-up); µs and CPU µs per round trip.
async fn ping_pong<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(s: &mut S, size: usize, rounds: usize) -> Sample {
    let msg = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    for _ in 0..rounds.div_ceil(20) {
        s.write_all(&msg).await.expect("write");
        s.read_exact(&mut back).await.expect("read");
    }
    let (t, c) = (Instant::now(), cpu_secs());
    for _ in 0..rounds {
        s.write_all(&msg).await.expect("write");
        s.read_exact(&mut back).await.expect("read");
    }
    let (t, c) = (t.elapsed().as_secs_f64(), cpu_secs() - c);
    assert_eq!(back, msg);
    Sample { us: t * 1e6 / rounds as f64, cpu_us: c * 1e6 / rounds as f64 }
}

fn keys() -> (Keys, Keys) {
    let gen = || snow::Builder::new(NOISE_PARAMS.parse().expect("params")).generate_keypair().expect("keypair");
    let (a, b) = (gen(), gen());
    let arr = |v: Vec<u8>| -> [u8; 32] { v.try_into().expect("32 bytes") };
    let (a_sk, a_pk, b_sk, b_pk) = (arr(a.private), arr(a.public), arr(b.private), arr(b.public));
    let d = [0u8; 32];
    let p = |l, r| Params {
        session_id: b"lat",
        roster_digest: &d,
        initiator_did: "did:ex:a",
        responder_did: "did:ex:b",
        local_static: l,
        remote_static: r,
    };
    let (i, m1) = Initiator::start(&p(&a_sk, &b_pk)).expect("start");
    let (kb, m2) = respond(&p(&b_sk, &a_pk), &m1).expect("respond");
    (i.finish(&m2).expect("finish"), kb)
}

/// Two drivers whose links are joined by channels (one forwarding task per direction).
fn in_memory() -> (session::Handle, session::Incoming, session::Handle, session::Incoming) {
    fn wire<P: Send + 'static>(mut rx: mpsc::Receiver<P>, tx: mpsc::Sender<LinkEvent>, ev: fn(P) -> LinkEvent) {
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                if tx.send(ev(p)).await.is_err() {
                    return;
                }
            }
        });
    }
    let (ka, kb) = keys();
    let (a_out, a_out_rx) = mpsc::channel(1024);
    let (b_out, b_out_rx) = mpsc::channel(1024);
    let (a_in_tx, a_in) = mpsc::channel(1024);
    let (b_in_tx, b_in) = mpsc::channel(1024);
    wire(a_out_rx, b_in_tx, LinkEvent::Packet);
    wire(b_out_rx, a_in_tx, LinkEvent::Packet);
    let now = Instant::now();
    let cfg = session::Config::default();
    let (ha, ia) = driver::spawn(Session::new(ka, cfg.clone(), now), Link { tx: a_out, rx: a_in });
    let (hb, ib) = driver::spawn(Session::new(kb, cfg, now), Link { tx: b_out, rx: b_in });
    (ha, ia, hb, ib)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Two workers, like the mpc bench and a gateway on a 2-core machine.
    let workers: usize = std::env::var("WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("runtime");
    // On a worker, like the gateways: the main thread would add a thread to every hop.
    rt.block_on(async { tokio::spawn(run()).await.expect("bench") });
}

trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

async fn run() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let size: usize = std::env::var("SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let repeat: usize = std::env::var("REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let only = std::env::var("ONLY").unwrap_or_else(|_| "tcp,mem,relay,tunnel".into());
    let want = |p: &str| only.split(',').any(|x| x.trim() == p);
    // Every path is set up first, then measured in turn, `repeat` times (medians reported),
    // so that whatever else the machine does affects them alike.
    let mut paths: Vec<(&str, Box<dyn Duplex>)> = Vec::new();

    if want("tcp") {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            echo(s).await;
        });
        let c = TcpStream::connect(addr).await.expect("connect");
        c.set_nodelay(true).expect("nodelay");
        paths.push(("raw loopback TCP", Box::new(c)));
    }

    let mut mem = None;
    if want("mem") {
        let (ha, ia, hb, mut ib) = in_memory();
        tokio::spawn(async move {
            while let Some(s) = ib.accept().await {
                tokio::spawn(echo(s));
            }
        });
        paths.push(("session stream, in-memory link", Box::new(ha.open().await.expect("open"))));
        mem = Some((ha, ia, hb));
    }

    let m = InProcess::start(mediator::Config::default()).await;
    let mut pair = None;
    if want("relay") || want("tunnel") {
        let home = |n: &str| temp_path(n).parent().expect("dir").join(n);
        let alice = Arc::new(Agent::init(&home("alice"), &m.url).await.expect("alice"));
        let bob = Arc::new(Agent::init(&home("bob"), &m.url).await.expect("bob"));
        let (mut mb_a, mut mb_b) = (Mailbox::start(alice.clone()), Mailbox::start(bob.clone()));
        let relay_a = RelayClient::new(gateway::transport::Transport::new().expect("transport"));
        let relay_b = RelayClient::new(gateway::transport::Transport::new().expect("transport"));
        let sid = b"latency".to_vec();
        let spec_b =
            PairSpec { session_id: sid.clone(), roster_digest: [0; 32], peer: alice.file.party.clone(), route: None };
        let spec_a = PairSpec { session_id: sid, roster_digest: [0; 32], peer: bob.file.party.clone(), route: None };
        let cfg = session::Config::default();
        let (b2, cfg_b) = (bob.clone(), cfg.clone());
        let responder = tokio::spawn(async move {
            let init = pairing::wait_init(&mut mb_b, &spec_b.peer, &spec_b.session_id, Duration::from_secs(30))
                .await
                .expect("init");
            (pairing::accept(&b2, &relay_b, &init, &spec_b, cfg_b, None).await.expect("accept"), mb_b)
        });
        let a = pairing::connect(&alice, &mut mb_a, &relay_a, &spec_a, cfg, Duration::from_secs(30), None)
            .await
            .expect("connect");
        let (mut b, mb_b) = responder.await.expect("responder");

        if want("relay") {
            let mut s = a.handle.open().await.expect("open");
            s.write_all(&[0u8]).await.expect("write");
            let mut e = b.incoming.accept().await.expect("stream");
            e.read_exact(&mut [0u8; 1]).await.expect("first byte");
            tokio::spawn(echo(e));
            paths.push(("session stream via mediator relay", Box::new(s)));
        }

        if want("tunnel") {
            // Bob (pid 1) runs the "MPyC" echo server on `own`; Alice (pid 0) dials pid 1
            // through her gateway's port for it, as MPyC would.
            let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
            let own = server.local_addr().expect("addr").port();
            tokio::spawn(async move {
                while let Ok((s, _)) = server.accept().await {
                    s.set_nodelay(true).expect("nodelay");
                    tokio::spawn(echo(s));
                }
            });
            let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
            tunnel::serve_incoming(1, 0, b.incoming, b.handle.clone(), own, true, ev_tx.clone());
            let handles = [None, Some(a.handle.clone())];
            let ports = tunnel::listen(0, &handles, Arc::new(OnceLock::new()), ev_tx).await.expect("listen");
            let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, ports.ports[1])).await.expect("connect");
            c.set_nodelay(true).expect("nodelay");
            // MPyC's first two bytes: the dialler's pid (echoed back here like the rest).
            c.write_all(&0u16.to_le_bytes()).await.expect("pid");
            c.read_exact(&mut [0u8; 2]).await.expect("pid back");
            paths.push(("full tunnel (TCP → gateway → relay → gateway → TCP)", Box::new(c)));
        }
        pair = Some((a.handle, b.handle, mb_a, mb_b, relay_a));
    }

    let mut samples: Vec<Vec<Sample>> = paths.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeat {
        for (i, (_, s)) in paths.iter_mut().enumerate() {
            samples[i].push(ping_pong(s, size, rounds).await);
        }
    }
    let med = |v: &[Sample], f: fn(&Sample) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let tcp = paths.iter().position(|p| p.0 == "raw loopback TCP").map(|i| med(&samples[i], |s| s.us));
    println!(
        "| path ({size} B ping-pong, {rounds} round trips, median of {repeat}) | µs / round trip | ratio to TCP | CPU µs / round trip |"
    );
    println!("|---|---|---|---|");
    for (i, (name, _)) in paths.iter().enumerate() {
        let us = med(&samples[i], |s| s.us);
        let ratio = tcp.map_or("–".to_owned(), |t| format!("{:.2}", us / t));
        println!("| {name} | {us:.1} | {ratio} | {:.1} |", med(&samples[i], |s| s.cpu_us));
        let all: Vec<String> = samples[i].iter().map(|s| format!("{:.1}", s.us)).collect();
        eprintln!("  {name}: {}", all.join(" "));
    }
    if let Some((a, ..)) = &pair {
        let st = a.stats();
        eprintln!(
            "  (alice: {} packets sent, {} received, {} retransmits; relay forwarded {}, dropped {})",
            st.packets_sent,
            st.packets_received,
            st.retransmits,
            m.mediator.relay().stats().forwarded,
            m.mediator.relay().stats().dropped
        );
    }
    drop((paths, mem, pair));
    m.stop().await;
}
