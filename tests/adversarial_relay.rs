//! Attacks on the mediator's session relay, through the real `didmpc` binary.
//!
//! - Route takeover: someone who read route ids (and whole JOINs) off an unencrypted
//!   `ws://` connection tries to take the slots; they are refused with JOINED status 4
//!   (bad authentication), counted on /metrics, and the honest session keeps working.
//! - Memory fill: many reserved routes with frames held for absent members hit the per-route,
//!   per-client and total bounds (counted by reason); once the reservations expire, the held
//!   bytes are freed and the mediator's resident memory comes back under [`FILL_AFTER_MIB`]
//!   above where it started.
//! - Stall: relay connections that stop reading while a peer floods them are cut (counted
//!   as `stalled`) and resident memory stays under [`STALL_PEAK_MIB`] above where it started.
//!
//! The outcomes asserted are refusals with their reasons, counters and bounded RSS (VmRSS
//! from /proc), never timings.

#[path = "support/mediator.rs"]
mod mediator_support;
#[path = "support/relay_raw.rs"]
mod relay_raw;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use did_core::didcomm::Message;
use did_core::jose::b64e;
use gateway::mailbox::Mailbox;
use gateway::pairing::{self, PairSpec};
use gateway::relay_client::RelayClient;
use gateway::Agent;
use mediator_support::{free_port, temp_path, Process};
use relay::auth::RouteKey;
use relay::proto::{Frame, JoinStatus, RouteId};
use relay_raw::{metric, metrics, RawRelay, Tap, GUARD};
use session::Config as SessionConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Held-frame bounds of the memory-fill test (the mediator's `[relay]` settings).
const FILL_PER_ROUTE: usize = 1 << 20;
const FILL_PER_CLIENT: usize = 16 << 20;
const FILL_TOTAL: usize = 48 << 20;
/// After every reservation expired, the mediator's RSS is at most this many MiB above what it
/// was before the fill (which held [`FILL_TOTAL`] bytes at its peak).
const FILL_AFTER_MIB: u64 = 16;
/// During the fill, RSS stays within this many MiB above the start: the total held bound plus
/// room for the fillers' connections and the allocator.
const FILL_PEAK_MIB: u64 = (FILL_TOTAL >> 20) as u64 + 40;

/// Queue bound per relay connection in the stall test, and how many stalled readers there are.
const STALL_QUEUE: usize = 4 << 20;
const STALLERS: usize = 8;
/// During the flood, RSS stays within this many MiB above the start: every staller's queue
/// bound and held bound (1 MiB) plus room for sockets and the allocator. Before the relay had
/// byte bounds, each stalled reader could cost about 64 MiB.
const STALL_PEAK_MIB: u64 = (STALLERS * ((STALL_QUEUE >> 20) + 1)) as u64 + 40;

fn home(name: &str) -> std::path::PathBuf {
    temp_path(name).parent().unwrap().to_path_buf()
}

/// Starts the mediator binary with `[relay]` settings `relay_toml`, its public URL `public`
/// (or its own address).
fn start_mediator(relay_toml: &str, public: Option<&str>) -> (Process, String) {
    let port = free_port();
    let db = temp_path("mediator.db");
    let config = db.with_file_name("mediator.toml");
    std::fs::write(&config, format!("[relay]\n{relay_toml}\n")).unwrap();
    let args = public.map(|p| vec!["--public-url", p]).unwrap_or_default();
    let m = Process::start_with_args(port, &db, &home("mediator-home"), Some(&config), &args);
    let url = m.url.clone();
    (m, url)
}

/// Reserves `route` with `key` at the agent's mediator for `ttl_secs`.
async fn reserve(agent: &Agent, route: RouteId, key: &RouteKey, ttl_secs: u64) {
    let body = serde_json::json!({"route": b64e(route.0), "key": b64e(key.as_bytes()), "ttl_secs": ttl_secs});
    agent.link().request(Message::new(format!("{}/reserve", pairing::RELAY_1), body)).await.unwrap();
}

fn random_route() -> RouteId {
    RouteId(*uuid::Uuid::new_v4().as_bytes())
}

/// Answers every frame JOINed and sent before it: the relay handles one connection's frames
/// in order, so its answer to this refused JOIN comes after theirs.
async fn barrier(c: &mut RawRelay) {
    let nowhere = RouteId([0xee; 16]);
    assert_eq!(c.join_raw(nowhere, 0, [0; 32]).await, JoinStatus::UnknownRoute);
}

fn session_cfg() -> SessionConfig {
    SessionConfig { peer_deadline: Duration::from_secs(60), ..SessionConfig::default() }
}

/// Alice and Bob, a session between them through the relay, and Bob echoing every stream.
async fn honest_pair(url: &str) -> pairing::Paired {
    let alice = Arc::new(Agent::init(&home("alice"), url).await.unwrap());
    let bob = Arc::new(Agent::init(&home("bob"), url).await.unwrap());
    let (mut mb_a, mut mb_b) = (Mailbox::start(alice.clone()), Mailbox::start(bob.clone()));
    let relay_a = RelayClient::new(gateway::transport::Transport::new().unwrap());
    let relay_b = RelayClient::new(gateway::transport::Transport::new().unwrap());
    let spec_b =
        PairSpec { session_id: b"adv".to_vec(), roster_digest: [3; 32], peer: alice.file.party.clone(), route: None };
    let spec_a =
        PairSpec { session_id: b"adv".to_vec(), roster_digest: [3; 32], peer: bob.file.party.clone(), route: None };
    let responder = tokio::spawn(async move {
        let init = pairing::wait_init(&mut mb_b, &spec_b.peer, &spec_b.session_id, GUARD).await.unwrap();
        let p = pairing::accept(&bob, &relay_b, &init, &spec_b, session_cfg(), None).await.unwrap();
        (p, mb_b)
    });
    let a = pairing::connect(&alice, &mut mb_a, &relay_a, &spec_a, session_cfg(), GUARD, None).await.unwrap();
    let (mut b, mb_b) = responder.await.unwrap();
    tokio::spawn(async move {
        let _keep = (mb_a, mb_b);
        while let Some(mut s) = b.incoming.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
                s.shutdown().await.unwrap();
            });
        }
    });
    a
}

async fn echo_works(a: &pairing::Paired, round: u8) {
    let mut s = a.handle.open().await.unwrap();
    let data = vec![round; 100_000];
    s.write_all(&data).await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(GUARD, s.read_to_end(&mut back)).await.expect("echo in time").unwrap();
    assert!(back == data, "the session still carries bytes intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_ids_and_observed_joins_do_not_take_a_slot() {
    let port = free_port();
    let tap = Tap::start(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await;
    let public = format!("http://{}", tap.addr);
    let db = temp_path("mediator.db");
    let m = Process::start_with_args(port, &db, &home("mediator-home"), None, &["--public-url", &public]);
    let direct = m.url.clone();
    // The honest parties reach the mediator (DIDComm and relay) through the tap.
    let a = honest_pair(&public).await;
    echo_works(&a, 1).await;

    // What a passive observer of the ws:// relay connections saw: both JOINs, in full.
    let joins: Vec<(Bytes, RouteId, u8)> = tap
        .relay_messages()
        .into_iter()
        .filter_map(|b| match Frame::decode(&b) {
            Ok(Frame::Join { route, slot, .. }) => Some((b, route, slot)),
            _ => None,
        })
        .collect();
    let mut slots: Vec<u8> = joins.iter().map(|j| j.2).collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots, [0, 1], "the tap saw both members join");
    let route = joins[0].1;
    assert!(joins.iter().all(|j| j.1 == route));

    // Knowing the route id: no MAC, a guessed secret, the other slot's secret (not known).
    let mut x = RawRelay::connect(&direct).await;
    assert_eq!(x.join_raw(route, 0, [0; 32]).await, JoinStatus::BadAuth);
    assert_eq!(x.join_raw(route, 1, [0; 32]).await, JoinStatus::BadAuth);
    assert_eq!(x.join(&RouteKey::generate().slot_secret(1), route, 1).await, JoinStatus::BadAuth);
    // Frames it sends on the route go nowhere.
    x.send(&Frame::Data { route, payload: Bytes::from_static(b"injected") }).await;
    barrier(&mut x).await;
    // Replaying the observed JOINs, byte for byte, on connections of its own.
    for (raw, _, _) in &joins {
        let mut y = RawRelay::connect(&direct).await;
        y.send_raw(raw.clone()).await.unwrap();
        assert_eq!(y.joined(route).await, JoinStatus::BadAuth, "a JOIN is bound to its connection's challenge");
    }
    // A client of the same mediator cannot re-reserve the route with a key of its own.
    let mallory = Agent::init(&home("mallory"), &direct).await.unwrap();
    let body = serde_json::json!({"route": b64e(route.0), "key": b64e([9u8; 32]), "ttl_secs": 3600});
    let err = mallory.link().request(Message::new(format!("{}/reserve", pairing::RELAY_1), body)).await.unwrap_err();
    assert!(err.to_string().contains("route taken by another client"), "{err}");

    echo_works(&a, 2).await;
    let mm = metrics(&direct).await;
    assert_eq!(metric(&mm, "joins_total{status=\"bad_auth\"}"), 3 + joins.len() as u64);
    assert_eq!(metric(&mm, "displaced_total"), 0, "no honest member lost its slot");
    assert!(metric(&mm, "joins_total{status=\"ok\"}") >= 2);
    assert_eq!(metric(&mm, "dropped_total{reason=\"not_member\"}"), 1, "the injected frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_reconnects_displaces_its_old_connection_which_is_told() {
    let (_m, url) = start_mediator("", None);
    let owner = Agent::init(&home("owner"), &url).await.unwrap();
    let (route, key) = (random_route(), RouteKey::generate());
    reserve(&owner, route, &key, 3600).await;
    let (s0, s1) = (key.slot_secret(0), key.slot_secret(1));
    let mut old = RawRelay::connect(&url).await;
    assert_eq!(old.join(&s1, route, 1).await, JoinStatus::Ok);
    let mut init = RawRelay::connect(&url).await;
    assert_eq!(init.join(&s0, route, 1).await, JoinStatus::BadAuth, "slot 0's secret does not open slot 1");
    assert_eq!(init.join(&s0, route, 0).await, JoinStatus::Ok);
    let mut new = RawRelay::connect(&url).await;
    assert_eq!(new.join(&s1, route, 1).await, JoinStatus::Ok);
    loop {
        match old.next().await {
            Some(Frame::Displaced { route: r, slot: 1 }) if r == route => break,
            Some(_) => continue,
            None => panic!("the displaced connection was closed instead of told"),
        }
    }
    old.send(&Frame::Data { route, payload: Bytes::from_static(b"stale") }).await;
    barrier(&mut old).await;
    new.send(&Frame::Data { route, payload: Bytes::from_static(b"fresh") }).await;
    loop {
        match init.next().await {
            Some(Frame::Data { payload, .. }) => {
                assert_eq!(payload, "fresh", "the displaced connection's frames go nowhere");
                break;
            }
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
    let mm = metrics(&url).await;
    assert_eq!(metric(&mm, "displaced_total"), 1);
    assert_eq!(metric(&mm, "dropped_total{reason=\"not_member\"}"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_frames_are_bounded_and_freed_when_reservations_expire() {
    let (m, url) = start_mediator(
        &format!(
            "held_bytes_per_route = {FILL_PER_ROUTE}\nheld_bytes_per_client = {FILL_PER_CLIENT}\n\
             held_bytes_total = {FILL_TOTAL}\nsweep_secs = 1"
        ),
        None,
    );
    const CLIENTS: usize = 4;
    const ROUTES: usize = 20;
    const FRAMES: usize = 20;
    let payload = Bytes::from(vec![0x5au8; 60_000]);
    let mut agents = Vec::new();
    for i in 0..CLIENTS {
        agents.push(Agent::init(&home(&format!("filler{i}")), &url).await.unwrap());
    }
    let before = m.rss_kib();
    let mut routes = Vec::new();
    let mut peak = before;
    for agent in &agents {
        let mut c = RawRelay::connect(&url).await;
        for _ in 0..ROUTES {
            let (route, key) = (random_route(), RouteKey::generate());
            reserve(agent, route, &key, 60).await;
            assert_eq!(c.join(&key.slot_secret(0), route, 0).await, JoinStatus::Ok);
            for _ in 0..FRAMES {
                c.send(&Frame::Data { route, payload: payload.clone() }).await;
            }
            routes.push((route, key));
        }
        barrier(&mut c).await;
        peak = peak.max(m.rss_kib());
        drop(c); // slot 0 leaves; what it sent stays held for slot 1
    }
    let mm = metrics(&url).await;
    let held = metric(&mm, "held_bytes");
    assert!(held as usize <= FILL_TOTAL && held as usize > FILL_TOTAL - FILL_PER_ROUTE, "held {held}");
    for reason in ["held_route", "held_client", "held_budget"] {
        assert!(metric(&mm, &format!("dropped_total{{reason=\"{reason}\"}}")) > 0, "no drops for {reason}: {mm:?}");
    }
    let sent = (CLIENTS * ROUTES * FRAMES) as u64;
    let dropped: u64 = ["held_route", "held_client", "held_budget"]
        .iter()
        .map(|r| metric(&mm, &format!("dropped_total{{reason=\"{r}\"}}")))
        .sum();
    let held_frames = sent - dropped;
    assert_eq!(held, held_frames * relay::server::held_cost(60_000 + 17) as u64);
    peak = peak.max(m.rss_kib());
    assert!(peak <= before + FILL_PEAK_MIB * 1024, "RSS {before} KiB → peak {peak} KiB while holding {held} bytes");

    // The reservations expire (60 s); the relay frees what they held.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mm = loop {
        let mm = metrics(&url).await;
        if metric(&mm, "held_bytes") == 0 && metric(&mm, "routes") == 0 {
            break mm;
        }
        assert!(std::time::Instant::now() < deadline, "held frames never freed: {mm:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(metric(&mm, "dropped_total{reason=\"expired\"}"), held_frames);
    let (route, key) = &routes[0];
    let mut late = RawRelay::connect(&url).await;
    assert_eq!(late.join(&key.slot_secret(1), *route, 1).await, JoinStatus::UnknownRoute);
    let after = m.rss_kib();
    eprintln!("RSS: before {before} KiB, peak {peak} KiB, after expiry {after} KiB (held {held} bytes at the peak)");
    assert!(after <= before + FILL_AFTER_MIB * 1024, "RSS {before} KiB → {after} KiB after every reservation ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_that_stall_are_cut_and_memory_stays_bounded() {
    let (m, url) = start_mediator(
        &format!("queue_bytes_per_conn = {STALL_QUEUE}\nqueue_bytes_total = {}\nstall_secs = 2", 64 << 20),
        None,
    );
    let owner = Agent::init(&home("flooder"), &url).await.unwrap();
    let before = m.rss_kib();
    let mut flooder = RawRelay::connect(&url).await;
    let mut stallers = Vec::new();
    let mut routes = Vec::new();
    for _ in 0..STALLERS {
        let (route, key) = (random_route(), RouteKey::generate());
        reserve(&owner, route, &key, 3600).await;
        assert_eq!(flooder.join(&key.slot_secret(0), route, 0).await, JoinStatus::Ok);
        let mut s = RawRelay::connect_with(&url, Some(4096)).await;
        assert_eq!(s.join(&key.slot_secret(1), route, 1).await, JoinStatus::Ok);
        stallers.push(s); // from now on, never read
        routes.push(route);
    }
    let payload = Bytes::from(vec![0xa5u8; 60_000]);
    let mut peak = before;
    let mut sent = 0usize;
    // Flood every route until the relay has cut every staller. The guard is time, not bytes:
    // on loopback the relay drops what the stallers cannot take at gigabytes a second, so
    // any byte budget could run out before the 2 s stall limit is reached.
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    'flood: for round in 0.. {
        for route in &routes {
            if let Err(e) = flooder.send_raw(Frame::Data { route: *route, payload: payload.clone() }.encode()).await {
                panic!("the flooder's connection failed ({e}): {:?}", metrics(&url).await);
            }
            sent += payload.len();
        }
        if round % 16 == 0 {
            peak = peak.max(m.rss_kib());
            let mm = metrics(&url).await;
            if metric(&mm, "disconnects_total{reason=\"stalled\"}") == STALLERS as u64 {
                break 'flood;
            }
        }
        if std::time::Instant::now() > give_up {
            panic!("stalled readers were never cut; relay metrics: {:?}", metrics(&url).await);
        }
    }
    barrier(&mut flooder).await;
    peak = peak.max(m.rss_kib());
    let mm = metrics(&url).await;
    eprintln!(
        "RSS: before {before} KiB, peak {peak} KiB while flooding {} MiB at {STALLERS} stalled readers",
        sent >> 20
    );
    assert_eq!(metric(&mm, "disconnects_total{reason=\"stalled\"}"), STALLERS as u64);
    assert!(metric(&mm, "dropped_total{reason=\"congested\"}") > 0);
    assert!(metric(&mm, "queued_bytes") < (1 << 20), "the cut connections' queues were freed: {mm:?}");
    assert!(peak <= before + STALL_PEAK_MIB * 1024, "RSS {before} KiB → peak {peak} KiB");
    // The stalled readers find the end of their connection after what was already sent.
    for mut s in stallers {
        while s.next().await.is_some() {}
    }
    // The relay still serves others.
    let (route, key) = (random_route(), RouteKey::generate());
    reserve(&owner, route, &key, 3600).await;
    let (mut p, mut q) = (RawRelay::connect(&url).await, RawRelay::connect(&url).await);
    assert_eq!(p.join(&key.slot_secret(0), route, 0).await, JoinStatus::Ok);
    assert_eq!(q.join(&key.slot_secret(1), route, 1).await, JoinStatus::Ok);
    p.send(&Frame::Data { route, payload: Bytes::from_static(b"still here") }).await;
    loop {
        match q.next().await {
            Some(Frame::Data { payload, .. }) => break assert_eq!(payload, "still here"),
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
}
