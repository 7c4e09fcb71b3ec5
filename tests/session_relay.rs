//! Sessions end to end: the Noise handshake over DIDComm through the mediator, then
//! streams through the mediator's relay; a 100 MB stream and 100,000 small messages
//! cross intact while the connections are cut and the mediator is restarted.

#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/mediator.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use gateway::mailbox::Mailbox;
use gateway::pairing::{self, PairSpec};
use gateway::relay_client::RelayClient;
use gateway::Agent;
use mediator::Config;
use session::Config as SessionConfig;
use support::{temp_path, InProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn home() -> std::path::PathBuf {
    temp_path("home").parent().unwrap().to_path_buf()
}

fn session_cfg() -> SessionConfig {
    SessionConfig {
        rto_initial: Duration::from_millis(300),
        rto_min: Duration::from_millis(100),
        peer_deadline: Duration::from_secs(30),
        ..SessionConfig::default()
    }
}

struct World {
    alice: Arc<Agent>,
    bob: Arc<Agent>,
    mb_a: Mailbox,
    mb_b: Option<Mailbox>,
}

async fn world(url: &str) -> World {
    let alice = Arc::new(Agent::init(&home(), url).await.unwrap());
    let bob = Arc::new(Agent::init(&home(), url).await.unwrap());
    let mb_a = Mailbox::start(alice.clone());
    let mb_b = Mailbox::start(bob.clone());
    World { alice, bob, mb_a, mb_b: Some(mb_b) }
}

async fn pair(w: &mut World, sid: &[u8]) -> (pairing::Paired, pairing::Paired) {
    let relay_a = RelayClient::new(gateway::transport::Transport::new().unwrap());
    let relay_b = RelayClient::new(gateway::transport::Transport::new().unwrap());
    let spec_b =
        PairSpec { session_id: sid.to_vec(), roster_digest: [7; 32], peer: w.alice.file.party.clone(), route: None };
    let spec_a =
        PairSpec { session_id: sid.to_vec(), roster_digest: [7; 32], peer: w.bob.file.party.clone(), route: None };
    let bob = w.bob.clone();
    let mut mb_b = w.mb_b.take().unwrap();
    let responder = tokio::spawn(async move {
        let init =
            pairing::wait_init(&mut mb_b, &spec_b.peer, &spec_b.session_id, Duration::from_secs(30)).await.unwrap();
        let p = pairing::accept(&bob, &relay_b, &init, &spec_b, session_cfg(), None).await.unwrap();
        (p, mb_b)
    });
    let a = pairing::connect(&w.alice, &mut w.mb_a, &relay_a, &spec_a, session_cfg(), Duration::from_secs(30), None)
        .await
        .unwrap();
    let (b, mb_b) = responder.await.unwrap();
    w.mb_b = Some(mb_b);
    assert_eq!(a.handshake_hash, b.handshake_hash);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_over_didcomm_and_echo_through_the_relay() {
    let m = InProcess::start(Config::default()).await;
    let mut w = world(&m.url).await;
    let (a, mut b) = pair(&mut w, b"echo-session").await;
    tokio::spawn(async move {
        while let Some(mut s) = b.incoming.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
                s.shutdown().await.unwrap();
            });
        }
    });
    // Record everything the relay sees.
    let (tap_tx, mut tap_rx) = tokio::sync::mpsc::unbounded_channel();
    m.mediator.relay().set_tap(Some(tap_tx));
    let marker: Vec<u8> = b"PLAINTEXT-MARKER-".iter().copied().cycle().take(4096).collect();
    for round in 0..3u8 {
        let mut s = a.handle.open().await.unwrap();
        let mut data = vec![round; 200_000];
        data.extend_from_slice(&marker);
        s.write_all(&data).await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        assert!(back == data);
    }
    // the relay saw the session's bytes only as opaque frames: no plaintext anywhere
    m.mediator.relay().set_tap(None);
    let mut seen = Vec::new();
    while let Ok(f) = tap_rx.try_recv() {
        seen.extend_from_slice(&f);
    }
    assert!(seen.len() > 3 * 200_000, "the tap saw the traffic ({} bytes)", seen.len());
    for needle in [&b"PLAINTEXT-MARKER"[..], &[0u8; 32], &[1u8; 32], &[2u8; 32]] {
        assert!(!seen.windows(needle.len()).any(|w| w == needle), "relayed bytes contain plaintext {needle:?}");
    }
    assert!(m.mediator.relay().stats().forwarded > 0);
    m.stop().await;
}

fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 13) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_stream_and_many_messages_survive_cuts_and_a_mediator_restart() {
    const BIG: u64 = 100 * 1024 * 1024;
    const SMALL: u64 = 100_000;
    let db = temp_path("mediator.db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = listener.local_addr().unwrap();
    let px = proxy::Proxy::start(maddr).await;
    let mk_cfg = || {
        let mut c = Config::default();
        c.store.db = db.clone();
        c.server.public_urls = vec![format!("http://{}", px.addr)];
        c.relay.held_bytes_per_route = 4 << 20;
        c
    };
    let m = InProcess::start_on(mk_cfg(), listener).await;
    let url = format!("http://{}", px.addr);
    let mut w = world(&url).await;
    let (a, mut b) = pair(&mut w, b"resilience").await;

    // bob: stream 1 must be the 100 MB pattern, stream 2 a numbered message sequence
    let reader = tokio::spawn(async move {
        let mut big = b.incoming.accept().await.unwrap();
        let mut small = b.incoming.accept().await.unwrap();
        let big_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            let mut at = 0u64;
            loop {
                let n = big.read(&mut buf).await.unwrap();
                if n == 0 {
                    return at;
                }
                for (k, byte) in buf[..n].iter().enumerate() {
                    assert_eq!(*byte, pattern(at + k as u64), "byte {} corrupted", at + k as u64);
                }
                at += n as u64;
            }
        });
        let mut rec = [0u8; 64];
        for i in 0..SMALL {
            small.read_exact(&mut rec).await.unwrap();
            assert_eq!(u64::from_be_bytes(rec[..8].try_into().unwrap()), i, "message order");
        }
        assert_eq!(small.read(&mut rec).await.unwrap(), 0, "FIN after the last message");
        (big_task.await.unwrap(), b)
    });

    let mut big = a.handle.open().await.unwrap();
    let mut small = a.handle.open().await.unwrap();
    let writer_big = tokio::spawn(async move {
        let chunk = 1 << 20;
        let mut buf = vec![0u8; chunk];
        for c in 0..(BIG / chunk as u64) {
            for (k, byte) in buf.iter_mut().enumerate() {
                *byte = pattern(c * chunk as u64 + k as u64);
            }
            big.write_all(&buf).await.unwrap();
        }
        big.shutdown().await.unwrap();
    });
    let writer_small = tokio::spawn(async move {
        let mut rec = [0u8; 64];
        for i in 0..SMALL {
            rec[..8].copy_from_slice(&i.to_be_bytes());
            small.write_all(&rec).await.unwrap();
        }
        small.shutdown().await.unwrap();
    });

    // While data flows: cut every connection, later restart the mediator.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cut = px.cut();
    assert!(cut > 0, "connections were open");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    m.stop().await;
    let listener = tokio::net::TcpListener::bind(maddr).await.unwrap();
    let m = InProcess::start_on(mk_cfg(), listener).await;

    tokio::time::timeout(Duration::from_secs(600), async {
        writer_big.await.unwrap();
        writer_small.await.unwrap();
    })
    .await
    .expect("writers finish");
    let (got, _b) = tokio::time::timeout(Duration::from_secs(600), reader).await.expect("reader finishes").unwrap();
    assert_eq!(got, BIG);
    let stats = a.handle.stats();
    assert!(stats.retransmits > 0, "the cuts forced retransmissions: {stats:?}");
    m.stop().await;
}

/// Only the expected peer, for the expected session and roster, gets a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_wrong_sessions_are_refused() {
    let m = InProcess::start(Config::default()).await;
    let mut w = world(&m.url).await;
    let mallory = Arc::new(Agent::init(&home(), &m.url).await.unwrap());
    let mut mb_m = Mailbox::start(mallory.clone());
    let relay = RelayClient::new(gateway::transport::Transport::new().unwrap());
    // Mallory asks bob for a session bob expects with alice: bob never sees an init from alice.
    let to_bob =
        PairSpec { session_id: b"s".to_vec(), roster_digest: [7; 32], peer: w.bob.file.party.clone(), route: None };
    let mal = tokio::spawn(async move {
        pairing::connect(&mallory, &mut mb_m, &relay, &to_bob, session_cfg(), Duration::from_secs(3), None).await
    });
    let mut mb_b = w.mb_b.take().unwrap();
    let err = pairing::wait_init(&mut mb_b, &w.alice.file.party, b"s", Duration::from_secs(3)).await;
    assert!(err.is_err(), "mallory's init is not alice's");
    assert!(mal.await.unwrap().is_err(), "mallory got no session");
    // Alice asks for another session id than bob expects: bob rejects, alice is told why.
    let relay_a = RelayClient::new(gateway::transport::Transport::new().unwrap());
    let relay_b = RelayClient::new(gateway::transport::Transport::new().unwrap());
    let spec_a =
        PairSpec { session_id: b"other".to_vec(), roster_digest: [7; 32], peer: w.bob.file.party.clone(), route: None };
    let spec_b =
        PairSpec { session_id: b"s".to_vec(), roster_digest: [7; 32], peer: w.alice.file.party.clone(), route: None };
    let bob = w.bob.clone();
    let alice_did = w.alice.file.party.to_string();
    let responder = tokio::spawn(async move {
        let (init, _) = mb_b
            .recv_matching(Duration::from_secs(20), |(m, meta)| {
                m.type_.ends_with("/session/1.0/init") && meta.sender.as_deref() == Some(alice_did.as_str())
            })
            .await
            .unwrap();
        pairing::accept(&bob, &relay_b, &init, &spec_b, session_cfg(), None).await
    });
    let err = pairing::connect(&w.alice, &mut w.mb_a, &relay_a, &spec_a, session_cfg(), Duration::from_secs(20), None)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(responder.await.unwrap().is_err());
    m.stop().await;
}
