//! A mediator cluster (`specs/mediator.md`, "Cluster"): real `didmpc mediator serve`
//! instances on a real `redis-server`, sharing one identity, behind a real HAProxy, all
//! started here. A message accepted by one instance is picked up through another; a
//! recipient live on one instance gets what another accepted, pushed; SIGKILL of an instance
//! loses no accepted message and repeats none after its acknowledgement; relay members
//! connected to different instances are joined by one hop between them, not through Redis;
//! a 3-party MPyC run through the cluster survives SIGKILL of the instance carrying the most
//! routes, with the result of plain TCP.

#[path = "support/mediator.rs"]
mod support;

#[path = "support/cluster.rs"]
mod cluster;

#[path = "support/relay_raw.rs"]
mod relay_raw;

#[path = "support/mpyc.rs"]
mod mpyc;

#[path = "support/parties.rs"]
mod parties;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use cluster::{pin, Cluster};
use did_core::didcomm::vocab::DeliveryRequest;
use did_core::didcomm::Message as Msg;
use did_core::jose::b64e;
use gateway::Agent;
use relay::auth::RouteKey;
use relay::proto::{Frame, JoinStatus, RouteId};
use relay_raw::RawRelay;
use support::temp_path;

/// The contents of everything queued for `agent`, acknowledged as it goes.
async fn drain(agent: &Agent) -> Vec<String> {
    let mut got = Vec::new();
    agent
        .fetch(|i| {
            let (m, _) = i.result.expect("readable");
            got.push(m.body["content"].as_str().unwrap().to_owned());
            Ok(())
        })
        .await
        .unwrap();
    got
}

/// Two agents registered through the load balancer.
async fn parties(c: &Cluster) -> (Agent, Agent) {
    let dir = temp_path("parties");
    let alice = Agent::init(&dir.with_file_name("alice"), &c.lb.url).await.unwrap();
    let bob = Agent::init(&dir.with_file_name("bob"), &c.lb.url).await.unwrap();
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_accepted_by_one_instance_is_picked_up_through_another() {
    let c = Cluster::start(2).await;
    let (mut alice, mut bob) = parties(&c).await;
    let bob_did = bob.file.party.to_string();
    assert!(bob.file.mediator.http.as_deref().unwrap().starts_with(&c.lb.url), "the public URL is the balancer's");
    let outside = reqwest::get(format!("{}/cluster/link", c.lb.url)).await.unwrap().status();
    assert_eq!(outside.as_u16(), 403, "instance links are not reachable through the balancer");

    // Pinned: alice sends through instance 0 only, bob picks up through instance 1 only.
    pin(&mut alice, &c.lb.url, &c.url(0));
    pin(&mut bob, &c.lb.url, &c.url(1));
    let before = c.metric(1, "didmpc_mediator_received_total{transport=\"http\"}").await;
    let sent: Vec<String> = (0..10).map(|i| format!("pinned-{i}")).collect();
    for t in &sent {
        alice.send_text(&bob_did, t).await.unwrap();
    }
    assert_eq!(
        c.metric(1, "didmpc_mediator_received_total{transport=\"http\"}").await,
        before,
        "instance 1 received none of the sends"
    );
    assert_eq!(drain(&bob).await, sent, "instance 1 hands out what instance 0 accepted, in order");
    assert!(drain(&bob).await.is_empty(), "acknowledged through instance 1: gone");

    // Through the balancer: the requests are spread over both instances, and everything
    // comes out once, whichever instance each pickup request lands on.
    pin(&mut alice, &c.url(0), &c.lb.url);
    pin(&mut bob, &c.url(1), &c.lb.url);
    let http = "didmpc_mediator_received_total{transport=\"http\"}";
    let (r0, r1) = (c.metric(0, http).await, c.metric(1, http).await);
    let sent: Vec<String> = (0..20).map(|i| format!("balanced-{i}")).collect();
    for t in &sent {
        alice.send_text(&bob_did, t).await.unwrap();
    }
    let (d0, d1) = (c.metric(0, http).await - r0, c.metric(1, http).await - r1);
    assert!(d0 >= 5 && d1 >= 5, "round robin spreads the sends ({d0} and {d1})");
    let delivered = "didmpc_mediator_delivered_total";
    let (p0, p1) = (c.metric(0, delivered).await, c.metric(1, delivered).await);
    let mut got = Vec::new();
    for _ in 0..100 {
        if got.len() >= sent.len() {
            break;
        }
        // Small batches (each a delivery request and an acknowledgement), so the pickup's
        // requests land on both instances too.
        for (m, _) in bob.take_matching(3, |_| true).await.unwrap() {
            got.push(m.body["content"].as_str().unwrap().to_owned());
        }
    }
    let (e0, e1) = (c.metric(0, delivered).await - p0, c.metric(1, delivered).await - p1);
    assert_eq!(e0 + e1, sent.len() as u64, "each handed out once over both instances ({e0} and {e1})");
    assert_eq!(got, sent, "each message once, in order");
    assert!(drain(&bob).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_delivery_reaches_a_recipient_connected_to_another_instance() {
    let c = Cluster::start(2).await;
    let (mut alice, mut bob) = parties(&c).await;
    let bob_did = bob.file.party.to_string();
    pin(&mut alice, &c.lb.url, &c.url(0));
    pin(&mut bob, &c.lb.url, &c.url(1));
    let bob = Arc::new(bob);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let bob = bob.clone();
        tokio::spawn(async move {
            bob.follow(
                move |i| {
                    let (m, _) = i.result.expect("readable");
                    let _ = tx.send(m.body["content"].as_str().unwrap().to_owned());
                    Ok(())
                },
                async move {
                    let _ = stop_rx.await;
                },
            )
            .await
        })
    };
    // Once a first message came through, bob's connection to instance 1 is live.
    alice.send_text(&bob_did, "warm-up").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("the first message arrives");
    assert_eq!(first.as_deref(), Some("warm-up"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let live_before = c.metric(1, "didmpc_mediator_delivered_live_total").await;
    let sent: Vec<String> = (0..5).map(|i| format!("live-{i}")).collect();
    for t in &sent {
        alice.send_text(&bob_did, t).await.unwrap();
    }
    let mut got = BTreeSet::new();
    while got.len() < sent.len() {
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        let text = next.expect("pushed promptly across instances").expect("follower running");
        if text != "warm-up" {
            got.insert(text);
        }
    }
    assert_eq!(got, sent.iter().cloned().collect::<BTreeSet<_>>());
    let pushed = c.metric(1, "didmpc_mediator_delivered_live_total").await - live_before;
    assert!(pushed >= sent.len() as u64, "instance 1 pushed them live ({pushed})");
    assert_eq!(c.metric(0, "didmpc_mediator_delivered_live_total").await, 0, "instance 0 has nobody live");
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), follower).await.unwrap().unwrap().unwrap();
    assert!(drain(&bob).await.is_empty(), "what was pushed was acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_instance_loses_nothing_and_repeats_nothing_after_ack() {
    let mut c = Cluster::start(3).await;
    let (alice, mut bob) = parties(&c).await;
    let bob_did = bob.file.party.to_string();
    let alice = Arc::new(alice);
    let mut accepted = BTreeSet::new();
    for i in 0..30 {
        let t = format!("queued-{i}");
        alice.send_text(&bob_did, &t).await.unwrap();
        accepted.insert(t);
    }
    // Through the instance about to die: 10 taken and acknowledged, 10 more handed out but
    // never acknowledged.
    pin(&mut bob, &c.lb.url, &c.url(2));
    let acked: BTreeSet<String> = bob
        .take_matching(10, |_| true)
        .await
        .unwrap()
        .into_iter()
        .map(|(m, _)| m.body["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(acked.len(), 10);
    let d = bob.link().request(Msg::typed(&DeliveryRequest { limit: 10, recipient_did: None })).await.unwrap();
    assert_eq!(d.attachments.as_ref().map(Vec::len), Some(10), "handed out, not acknowledged");

    // Senders through the balancer keep going while instance 2 is killed under them.
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for s in 0..3 {
        let (alice, to, counter) = (alice.clone(), bob_did.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut tried) = (Vec::new(), Vec::new());
            for i in 0..40 {
                let t = format!("during-{s}-{i}");
                tried.push(t.clone());
                if alice.send_text(&to, &t).await.is_ok() {
                    ok.push(t);
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (ok, tried)
        }));
    }
    while counter.load(std::sync::atomic::Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.kill9(2);
    let mut attempted = accepted.clone();
    for t in tasks {
        let (ok, tried) = t.await.unwrap();
        accepted.extend(ok);
        attempted.extend(tried);
    }
    assert!(accepted.len() >= 30 + 100, "the balancer sends around the dead instance ({} accepted)", accepted.len());

    // Pickup through the balancer, which now reaches instances 0 and 1 only.
    pin(&mut bob, &c.url(2), &c.lb.url);
    let got = drain(&bob).await;
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), got_set.len(), "nothing twice");
    let again: Vec<_> = got_set.intersection(&acked).collect();
    assert!(again.is_empty(), "acknowledged before the kill, yet delivered again: {again:?}");
    let lost: Vec<_> = accepted.difference(&acked).filter(|t| !got_set.contains(*t)).collect();
    assert!(lost.is_empty(), "accepted but lost: {lost:?}");
    assert!(got_set.is_subset(&attempted), "nothing made up");
    assert!(drain(&bob).await.is_empty(), "nothing comes back after its ack");
}

/// Bytes Redis has read from its clients so far (`INFO stats`, over a plain RESP connection).
fn redis_input_bytes(url: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    while !text.contains("total_net_output_bytes") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "redis answers INFO");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let line = text.lines().find(|l| l.starts_with("total_net_input_bytes:")).expect("total_net_input_bytes");
    line.split(':').nth(1).unwrap().trim().parse().unwrap()
}

/// The next DATA payload of `route` on `c` (other frames are skipped).
async fn data(c: &mut RawRelay, route: RouteId) -> Bytes {
    loop {
        match c.next().await {
            Some(Frame::Data { route: r, payload }) if r == route => return payload,
            Some(_) => continue,
            None => panic!("the relay closed the connection"),
        }
    }
}

/// Waits for PEER up on `route`.
async fn peer_up(c: &mut RawRelay, route: RouteId) {
    loop {
        match c.next().await {
            Some(Frame::Peer { route: r, up: true }) if r == route => return,
            Some(_) => continue,
            None => panic!("the relay closed the connection"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_members_on_different_instances_are_joined_in_one_hop() {
    let c = Cluster::start(2).await;
    let (alice, _bob) = parties(&c).await;
    let route = RouteId(*uuid::Uuid::new_v4().as_bytes());
    let key = RouteKey::generate();
    let body = serde_json::json!({"route": b64e(route.0), "key": b64e(key.as_bytes()), "ttl_secs": 600});
    let reserve = Msg::new(format!("{}/reserve", gateway::pairing::RELAY_1), body);
    alice.link().request(reserve).await.unwrap();

    // Slot 0 on instance 0, slot 1 on instance 1: the reservation (made through the balancer)
    // is known to both, and the second JOIN links the instances.
    let mut m0 = RawRelay::connect(&c.url(0)).await;
    let mut m1 = RawRelay::connect(&c.url(1)).await;
    assert_eq!(m0.join(&key.slot_secret(0), route, 0).await, JoinStatus::Ok);
    assert_eq!(m1.join(&key.slot_secret(1), route, 1).await, JoinStatus::Ok);
    peer_up(&mut m0, route).await;
    let links = |i| c.metric(i, "didmpc_mediator_relay_links");
    assert_eq!((links(0).await, links(1).await), (1, 1), "one link between the instances");

    let redis_before = redis_input_bytes(&c.redis.url);
    let mut sent = 0usize;
    for i in 0..64u8 {
        let payload = Bytes::from(vec![i; 16 * 1024]);
        m0.send(&Frame::Data { route, payload: payload.clone() }).await;
        assert_eq!(data(&mut m1, route).await, payload, "instance 0 -> instance 1");
        let back = Bytes::from(vec![!i; 16 * 1024]);
        m1.send(&Frame::Data { route, payload: back.clone() }).await;
        assert_eq!(data(&mut m0, route).await, back, "instance 1 -> instance 0");
        sent += 2 * 16 * 1024;
    }
    let redis_read = redis_input_bytes(&c.redis.url) - redis_before;
    assert!(redis_read < (sent / 8) as u64, "relay bytes do not pass through Redis ({redis_read} of {sent} bytes)");
    let forwarded = |i| c.metric(i, "didmpc_mediator_relay_forwarded_total");
    assert!(forwarded(0).await >= 64 && forwarded(1).await >= 64, "each instance forwarded its share");
}

#[test]
fn mpyc_survives_the_busiest_instance_killed_mid_run() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = rt.block_on(Cluster::start(3));
    let parties: Vec<(std::path::PathBuf, String)> = (0..3).map(|_| parties::party(&c.lb.url)).collect();
    let dirs: Vec<std::path::PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("cl{i}"), "many_rounds.py")).collect();
    let args = ["--steps", "1500"];
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    // Every party --relay-only: the run's bytes must cross the instances (loopback parties would
    // otherwise go direct and leave the relay idle).
    let mut host = parties::invite(&parties[0].0, &dirs[0], &dids, "many_rounds.py", &["--relay-only"], &args);
    let joiners: Vec<parties::Running> = (1..3)
        .map(|i| parties::join_with(&parties[i].0, &dirs[i], &format!("party {i}"), &parties[0].1, &["--relay-only"]))
        .collect();

    // Mid-run: the relay has forwarded a good share of the run's frames.
    let forwarded =
        |c: &Cluster| rt.block_on(async { c.metric(0, F).await + c.metric(1, F).await + c.metric(2, F).await });
    const F: &str = "didmpc_mediator_relay_forwarded_total";
    let start = std::time::Instant::now();
    while forwarded(&c) < 3000 {
        assert!(host.child.try_wait().unwrap().is_none(), "the run ended before the kill");
        assert!(start.elapsed() < Duration::from_secs(180), "the run never got going");
        std::thread::sleep(Duration::from_millis(100));
    }
    let load: Vec<(u64, u64)> = (0..3)
        .map(|i| {
            rt.block_on(async {
                (
                    c.metric(i, "didmpc_mediator_relay_routes").await,
                    c.metric(i, "didmpc_mediator_relay_connections").await,
                )
            })
        })
        .collect();
    let busiest = (0..3).max_by_key(|&i| load[i]).unwrap();
    assert!(load[busiest].0 > 0, "routes are on the instances: {load:?}");
    assert!(host.child.try_wait().unwrap().is_none(), "still running at the kill");
    c.kill9(busiest);
    eprintln!("killed instance {busiest} (routes, connections: {load:?}) mid-run");

    let mut results = Vec::new();
    let (ok, out, err) = host.wait(Duration::from_secs(300));
    assert!(ok, "host failed:\n{out}\n{err}");
    results.push(mpyc::result_of(&out).expect("host RESULT"));
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        results.push(mpyc::result_of(&out).expect("joiner RESULT"));
    }
    let (plain, _) = mpyc::plain("many_rounds.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain, "didmpc through a cluster that lost an instance and plain TCP agree");
    }
    let survivors: u64 = (0..3).filter(|&i| i != busiest).map(|i| rt.block_on(c.metric(i, F))).sum();
    assert!(survivors > 0, "the surviving instances carried the rest of the run");
}

#[test]
fn a_bad_or_unreachable_store_is_a_clear_error() {
    let home = temp_path("home");
    let run = |store: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_didmpc"))
            .arg("--home")
            .arg(&home)
            .args(["mediator", "serve", "--listen", "127.0.0.1:0", "--store", store])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{store}: refused");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{store}: no panic: {err}");
        err
    };
    assert!(run("postgres://db/0").contains("is not a redis:// URL"));
    let closed = support::free_port();
    let err = run(&format!("redis://127.0.0.1:{closed}/0"));
    assert!(err.contains("redis"), "names what failed: {err}");
}
