//! Direct paths on loopback: the mediator's reflexive-address probe (answered only under a
//! key granted over the authenticated link, never with more bytes than the probe), the
//! candidates in the session handshake, sessions that go direct and carry a stream, and
//! `--relay-only` sessions that offer nothing and stay relayed.

#[path = "support/mediator.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use did_core::didcomm::Message;
use gateway::direct::endpoint::Endpoint;
use gateway::direct::{reflex, LocalDirect};
use gateway::mailbox::Mailbox;
use gateway::pairing::{self, PairSpec, Paired};
use gateway::relay_client::RelayClient;
use gateway::Agent;
use mediator::Config;
use session::{Nat, PathAddr};
use support::{temp_path, InProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn home() -> std::path::PathBuf {
    temp_path("home").parent().unwrap().to_path_buf()
}

fn with_udp() -> Config {
    let mut c = Config::default();
    c.udp.listen = vec!["127.0.0.1:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap()];
    c
}

async fn metric(m: &InProcess, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", m.url)).await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_need_a_granted_key_and_never_amplify() {
    let m = InProcess::start(with_udp()).await;
    assert_eq!(m.mediator.udp_addresses().len(), 2);
    let alice = Arc::new(Agent::init(&home(), &m.url).await.unwrap());
    let grant = reflex::grant(&alice).await.unwrap();
    assert_eq!(grant.addrs.len(), 2);
    let ep = Endpoint::bind(0).await.unwrap();
    let (seen, nat) = reflex::discover(&ep, &grant).await;
    assert_eq!(seen, Some(format!("127.0.0.1:{}", ep.port()).parse().unwrap()), "the mediator sees our socket");
    assert_eq!(nat, Nat::Easy, "no NAT on loopback: the same port towards both probe ports");
    assert_eq!(metric(&m, "didmpc_mediator_reflex_probes_total{outcome=\"answered\"}").await, 2);

    // Raw probes: a forged key, a modified probe, garbage. None is answered.
    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = grant.addrs[0];
    let forged_key = relay::reflex::ProbeKey::from_slice(&[7; 32]).unwrap();
    let forged = relay::reflex::probe(&grant.key_id, &forged_key, &relay::reflex::txid());
    raw.send_to(&forged, to).await.unwrap();
    let mut good = relay::reflex::probe(&grant.key_id, &grant.key, &relay::reflex::txid());
    good[40] ^= 1;
    raw.send_to(&good, to).await.unwrap();
    raw.send_to(b"what is my address?", to).await.unwrap();
    raw.send_to(&[0x10; 1400], to).await.unwrap();
    let mut buf = [0u8; 2048];
    let got = tokio::time::timeout(Duration::from_millis(500), raw.recv_from(&mut buf)).await;
    assert!(got.is_err(), "no answer to unauthenticated probes");
    assert_eq!(metric(&m, "didmpc_mediator_reflex_probes_total{outcome=\"bad_mac\"}").await, 1);
    assert_eq!(metric(&m, "didmpc_mediator_reflex_probes_total{outcome=\"malformed\"}").await, 3);
    // A real probe gets an answer no longer than itself.
    let tx = relay::reflex::txid();
    let probe = relay::reflex::probe(&grant.key_id, &grant.key, &tx);
    raw.send_to(&probe, to).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), raw.recv_from(&mut buf)).await.unwrap().unwrap();
    assert!(n <= probe.len(), "answer {n} bytes, probe {}", probe.len());
    assert_eq!(relay::reflex::check_answer(&grant.key, &buf[..n]), Some(raw.local_addr().unwrap()));
    // Answers per key are rate-limited: a flood gets at most a burst.
    for _ in 0..200 {
        raw.send_to(&relay::reflex::probe(&grant.key_id, &grant.key, &relay::reflex::txid()), to).await.unwrap();
    }
    let mut answers = 0;
    while tokio::time::timeout(Duration::from_millis(300), raw.recv_from(&mut buf)).await.is_ok() {
        answers += 1;
    }
    assert!(answers <= 20, "{answers} answers to a flood of 200 probes");
    assert!(metric(&m, "didmpc_mediator_reflex_probes_total{outcome=\"rate_limited\"}").await >= 180);

    // A mediator without UDP refuses the grant with a problem report.
    let plain = InProcess::start(Config::default()).await;
    let bob = Arc::new(Agent::init(&home(), &plain.url).await.unwrap());
    let err = bob
        .link()
        .request(Message::new(format!("{}/request", relay::reflex::PROTOCOL), serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("answers no UDP probes"), "{err}");
    assert!(reflex::grant(&bob).await.is_err());
    plain.stop().await;
    m.stop().await;
}

struct Pair {
    a: Paired,
    b: Paired,
}

async fn pair(url: &str, sid: &[u8], direct: bool) -> (Pair, Vec<LocalDirect>) {
    let alice = Arc::new(Agent::init(&home(), url).await.unwrap());
    let bob = Arc::new(Agent::init(&home(), url).await.unwrap());
    let mut mb_a = Mailbox::start(alice.clone());
    let mut mb_b = Mailbox::start(bob.clone());
    let (da, db) = if direct {
        (Some(LocalDirect::prepare(&alice, 256).await.unwrap()), Some(LocalDirect::prepare(&bob, 256).await.unwrap()))
    } else {
        (None, None)
    };
    let relay_a = RelayClient::new(gateway::transport::Transport::new().unwrap());
    let relay_b = RelayClient::new(gateway::transport::Transport::new().unwrap());
    let spec_b =
        PairSpec { session_id: sid.to_vec(), roster_digest: [7; 32], peer: alice.file.party.clone(), route: None };
    let spec_a =
        PairSpec { session_id: sid.to_vec(), roster_digest: [7; 32], peer: bob.file.party.clone(), route: None };
    let cfg = session::Config { peer_deadline: Duration::from_secs(30), ..session::Config::default() };
    let (cfg_b, bob2) = (cfg.clone(), bob.clone());
    let responder = async {
        let init =
            pairing::wait_init(&mut mb_b, &spec_b.peer, &spec_b.session_id, Duration::from_secs(30)).await.unwrap();
        if direct {
            assert!(init.body["direct"]["id"].is_u64(), "the init offers candidates: {}", init.body);
        } else {
            assert!(init.body.get("direct").is_none(), "relay only: no candidates in {}", init.body);
        }
        pairing::accept(&bob2, &relay_b, &init, &spec_b, cfg_b, db.as_ref()).await.unwrap()
    };
    let initiator = pairing::connect(&alice, &mut mb_a, &relay_a, &spec_a, cfg, Duration::from_secs(30), da.as_ref());
    let (b, a) = tokio::join!(responder, async { initiator.await.unwrap() });
    (Pair { a, b }, da.into_iter().chain(db).collect())
}

async fn wait_direct(p: &Paired) -> session::PathReport {
    for _ in 0..200 {
        let r = p.handle.paths();
        if r.paths.iter().any(|x| x.active && x.addr.is_direct()) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never went direct: {:?}", p.handle.paths());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_go_direct_and_relay_only_stays_relayed() {
    let m = InProcess::start(with_udp()).await;
    let (mut p, _keep) = pair(&m.url, b"direct-1", true).await;
    let before = m.mediator.relay().stats().forwarded;
    // Both sides validate a direct path (an authenticated challenge answered on it).
    let ra = wait_direct(&p.a).await;
    let rb = wait_direct(&p.b).await;
    for r in [&ra, &rb] {
        let active = r.paths.iter().find(|x| x.active).unwrap();
        assert!(matches!(active.addr, PathAddr::Udp { remote, .. } if remote.ip().is_loopback()), "{r:?}");
        assert_eq!(r.switches.last().unwrap().to, active.addr);
    }
    // A stream both ways over it.
    tokio::spawn(async move {
        let mut s = p.b.incoming.accept().await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let mut s = p.a.handle.open().await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(&mut s);
    let (_, back) = tokio::join!(
        async {
            wr.write_all(&data).await.unwrap();
            wr.shutdown().await.unwrap();
        },
        async {
            let mut back = Vec::new();
            rd.read_to_end(&mut back).await.unwrap();
            back
        }
    );
    assert!(back == data, "the echo is identical");
    let after = m.mediator.relay().stats().forwarded;
    assert!(after - before < 200, "the bulk did not cross the relay ({} frames)", after - before);
    let st = p.a.handle.stats();
    assert!(st.direct && st.packets_sent > 2500, "{st:?}");

    // Relay only: no offer in the handshake, no UDP, everything through the relay.
    let (q, none) = pair(&m.url, b"relay-only", false).await;
    assert!(none.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = q.a.handle.paths();
    assert_eq!(r.paths.len(), 1, "{r:?}");
    assert!(!r.punching && !q.a.handle.stats().direct);
    m.stop().await;
}
