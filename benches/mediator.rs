//! Scripted mediator load: forwards accepted and delivered per second through one
//! `didmpc mediator serve` process, and memory per idle live WebSocket connection.
//!
//! `cargo bench --bench mediator` (env: FORWARDS=20000, IDLE_CONNECTIONS=10000).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/forwards.rs"]
mod forwards;

use did_core::didcomm::vocab::{DeliveryRequest, LiveDeliveryChange, MessagesReceived};
use did_core::didcomm::Message as Msg;
use did_core::didcomm::{self, Message, PackOptions};
use did_core::{Keystore, Resolver};
use forwards::metric;
use gateway::Agent;
use serde_json::json;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` support
    }
    let forwards = env_num("FORWARDS", 20_000);
    let idle = env_num("IDLE_CONNECTIONS", 10_000);
    let dir = std::env::temp_dir().join(format!("didmpc-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("mediator.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\ndb = \"{}\"\n[limits]\nmax_connections = 30000\nmax_connections_per_ip = 30000\nrequests_per_second_per_ip = 1000000\nrequest_burst_per_ip = 1000000\nmax_queue_messages = 1000000\nmax_queue_bytes = 10000000000\nmax_queue_messages_per_source = 1000000\nmax_queue_bytes_per_source = 10000000000\n",
            dir.join("mediator.db").display()
        ),
    )
    .unwrap();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_didmpc"))
            .args(["mediator", "serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let ws_url = format!("ws://127.0.0.1:{port}/ws");
    for _ in 0..200 {
        if reqwest::get(format!("{url}/health")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alice = Agent::init(&dir.join("alice"), &url).await.unwrap();
    let bob = Agent::init(&dir.join("bob"), &url).await.unwrap();

    // Pre-pack the forwards (the sender's cost is not the mediator's).
    let ks = Keystore::open(dir.join("alice")).unwrap();
    let alice_id = Arc::new(ks.load(&alice.file.party).unwrap());
    let resolver = Arc::new(Resolver::with_http().unwrap());
    let t = Instant::now();
    let mut packers = Vec::new();
    for w in 0..2 {
        // Bob's routed DID: its service is this mediator, so each message is a Routing 2.0
        // forward anoncrypted to the mediator (his party did:key has no endpoint).
        let to = bob.file.routed.as_ref().expect("a routed DID").to_string();
        let (id, r) = (alice_id.clone(), resolver.clone());
        packers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (w..forwards).step_by(2) {
                let msg = Message::new(
                    "https://didcomm.org/basicmessage/2.0/message",
                    json!({"content": format!("message {i:06} {}", "x".repeat(120))}),
                )
                .from(id.did.as_str())
                .to(to.as_str());
                let p = didcomm::pack_encrypted(
                    &msg,
                    &to,
                    Some(id.did.as_str()),
                    None,
                    r.as_ref(),
                    id.as_ref(),
                    &PackOptions::default(),
                )
                .await
                .unwrap();
                out.push(p.message);
            }
            out
        }));
    }
    let mut packed = Vec::new();
    for p in packers {
        packed.extend(p.await.unwrap());
    }
    eprintln!(
        "pre-packed {} forwards ({} bytes each) in {:.1} s",
        packed.len(),
        packed[0].len(),
        t.elapsed().as_secs_f64()
    );

    // Blast them over 8 WebSockets; done when the mediator has queued them all.
    let before = metric(&url, "didmpc_mediator_forwards_queued_total").await;
    let t = Instant::now();
    let keep = forwards::blast(&ws_url, &packed, std::slice::from_ref(&url), before).await;
    let accept_secs = t.elapsed().as_secs_f64();
    drop(keep);

    // Bob drains the queue over one WebSocket: delivery-request 100 + messages-received.
    let link = bob.link();
    let mut ws = gateway::transport::Transport::new().unwrap().connect(&ws_url).await.unwrap();
    let t = Instant::now();
    let mut delivered = 0usize;
    let mut other = Vec::new();
    loop {
        let d = link
            .request_ws(&mut ws, Msg::typed(&DeliveryRequest { limit: 100, recipient_did: None }), &mut other)
            .await
            .unwrap();
        if d.type_.ends_with("/status") {
            break;
        }
        let ids: Vec<String> = gateway::link::deliveries(&d).unwrap().into_iter().map(|x| x.id).collect();
        delivered += ids.len();
        link.request_ws(&mut ws, Msg::typed(&MessagesReceived { message_id_list: ids }), &mut other).await.unwrap();
    }
    let deliver_secs = t.elapsed().as_secs_f64();
    assert_eq!(delivered, forwards, "every forward delivered once");

    // Idle live connections: one granted client, live mode on every socket.
    let pid = server.0.id();
    let rss0 = rss_kib(pid);
    let t = Instant::now();
    let mut conns = Vec::with_capacity(idle);
    let transport = gateway::transport::Transport::new().unwrap();
    for i in 0..idle {
        let mut c = transport.connect(&ws_url).await.unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let answer =
            link.request_ws(&mut c, Msg::typed(&LiveDeliveryChange { live_delivery: true }), &mut other).await.unwrap();
        assert_eq!(answer.body["live_delivery"], true);
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib(pid);
    let open = metric(&url, "didmpc_mediator_ws_connections").await;
    let per_conn = (rss1.saturating_sub(rss0)) as f64 / idle as f64;

    println!("| measure | value |");
    println!("|---|---|");
    println!("| forwards accepted | {forwards} in {accept_secs:.2} s = {:.0}/s |", forwards as f64 / accept_secs);
    println!(
        "| forwards delivered (pickup 100 + ack) | {forwards} in {deliver_secs:.2} s = {:.0}/s |",
        forwards as f64 / deliver_secs
    );
    println!("| idle live WebSockets | {open} open, set up in {:.1} s |", t.elapsed().as_secs_f64());
    println!("| mediator RSS | {rss0} KiB before, {rss1} KiB after = {per_conn:.1} KiB per connection |");
    for c in conns {
        drop(c);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
