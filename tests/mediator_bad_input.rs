//! Bad input to the mediator: each is answered with a clear error, the process keeps
//! serving, and other parties are not affected.

#[path = "support/mediator.rs"]
mod support;

use std::time::Duration;

use did_core::didcomm::{self, forward, PackOptions};
use did_core::{Identity, Resolver};
use futures_util::{SinkExt, StreamExt};
use gateway::Agent;
use mediator::Config;
use serde_json::Value;
use support::{temp_path, InProcess};
use tokio_tungstenite::tungstenite::Message as Frame;

fn home() -> std::path::PathBuf {
    temp_path("home").parent().unwrap().to_path_buf()
}

async fn post(url: &str, ct: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/didcomm"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn code(v: &Value) -> &str {
    v["body"]["code"].as_str().unwrap_or("<no problem report>")
}

const CT: &str = "application/didcomm-encrypted+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_garbage_is_refused_clearly() {
    let mut cfg = Config::default();
    cfg.limits.max_message_bytes = 64 * 1024;
    let m = InProcess::start(cfg).await;
    let (s, v) = post(&m.url, CT, "{not json").await;
    assert_eq!((s, code(&v)), (400, "e.m.msg.malformed"), "{v}");
    assert!(v["body"]["comment"].as_str().unwrap().contains("not JSON"));
    let (s, v) = post(&m.url, "text/html", "{}").await;
    assert_eq!((s, code(&v)), (415, "e.m.msg.malformed"));
    let (s, v) = post(&m.url, CT, vec![0xffu8, 0xfe, 0x00]).await;
    assert_eq!((s, code(&v)), (400, "e.m.msg.malformed"));
    let (s, v) = post(&m.url, CT, vec![b' '; 100 * 1024]).await;
    assert_eq!((s, code(&v)), (413, "e.m.msg.too-big"));
    // an envelope for someone else
    let stranger = Identity::generate_key();
    let r = Resolver::default();
    let msg = didcomm::Message::new("https://didcomm.org/trust-ping/2.0/ping", serde_json::json!({}));
    let packed =
        didcomm::pack_encrypted(&msg, stranger.did.as_str(), None, None, &r, &stranger, &PackOptions::default())
            .await
            .unwrap();
    let (s, v) = post(&m.url, CT, packed.message).await;
    assert_eq!((s, code(&v)), (400, "e.m.trust.crypto"), "{v}");
    // an anoncrypted ping: mediator protocols need a known sender
    let packed =
        didcomm::pack_encrypted(&msg, m.mediator.did().as_str(), None, None, &r, &stranger, &PackOptions::default())
            .await
            .unwrap();
    let (s, v) = post(&m.url, CT, packed.message).await;
    assert_eq!((s, code(&v)), (401, "e.m.trust.sender-unknown"));
    // a forward for a DID nobody registered here
    let fwd = forward::forward_message(stranger.did.as_str(), serde_json::json!({"ciphertext": "x"}), None);
    let packed = didcomm::pack_encrypted(
        &fwd,
        m.mediator.did().as_str(),
        None,
        None,
        &r,
        &stranger,
        &PackOptions { forward: false, ..Default::default() },
    )
    .await
    .unwrap();
    let (s, v) = post(&m.url, CT, packed.message).await;
    assert_eq!((s, code(&v)), (404, "e.p.xfer.unknown-recipient"), "{v}");
    // an expired forward
    let mut fwd = fwd.clone();
    fwd.expires_time = Some(1);
    let packed = didcomm::pack_encrypted(
        &fwd,
        m.mediator.did().as_str(),
        None,
        None,
        &r,
        &stranger,
        &PackOptions { forward: false, ..Default::default() },
    )
    .await
    .unwrap();
    let (s, v) = post(&m.url, CT, packed.message).await;
    assert_eq!((s, code(&v)), (400, "e.m.req.time.expired"));
    // still serving
    assert_eq!(reqwest::get(format!("{}/health", m.url)).await.unwrap().status(), 200);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_garbage_keeps_the_connection_and_the_server() {
    let m = InProcess::start(Config::default()).await;
    let ws_url = format!("{}/ws", m.url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    for frame in
        [Frame::Binary(vec![0xff, 0x00, 0x12].into()), Frame::Text("garbage".into()), Frame::Text("{\"id\":1}".into())]
    {
        ws.send(frame).await.unwrap();
        let Some(Ok(Frame::Text(answer))) = ws.next().await else { panic!("expected a problem report") };
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(code(&v), "e.m.msg.malformed", "{v}");
    }
    // an oversized frame closes that connection only
    ws.send(Frame::Text("x".repeat(2 * 1024 * 1024).into())).await.ok();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the oversized connection is closed");
    // everyone else is fine
    let alice = Agent::init(&home(), &m.url).await.unwrap();
    let bob = Agent::init(&home(), &m.url).await.unwrap();
    alice.send_text(bob.file.party.as_str(), "still works").await.unwrap();
    assert_eq!(bob.fetch(|_| Ok(())).await.unwrap(), 1);
    m.stop().await;
}

/// Floods from one address hit the rate and connection limits; a party on another
/// loopback address keeps being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_are_limited_per_address() {
    let mut cfg = Config::default();
    cfg.limits.requests_per_second_per_ip = 5;
    cfg.limits.request_burst_per_ip = 5;
    cfg.limits.max_connections_per_ip = 4;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    cfg.server.public_urls = vec![format!("http://127.0.0.1:{port}")];
    cfg.store.db = temp_path("mediator.db");
    let m = InProcess::start_on(cfg, listener).await;
    let url = format!("http://127.0.0.1:{port}");
    let flooder =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let mut limited = 0;
    for _ in 0..40 {
        let r = flooder.post(format!("{url}/didcomm")).header("content-type", CT).body("{}").send().await.unwrap();
        if r.status() == 429 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(code(&v), "e.m.me.res.rate-limited");
            limited += 1;
        }
    }
    assert!(limited >= 25, "only {limited} of 40 flood requests were limited");
    // connection limit: hold 4 raw connections from 127.0.0.2, the 5th gets a 429
    drop(flooder);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        held.push(s.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let r = fresh.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert!(v["body"]["comment"].as_str().unwrap().contains("too many connections"), "{v}");
    // a party on 127.0.0.1 is unaffected
    let alice = Agent::init(&home(), &url).await.unwrap();
    let bob = Agent::init(&home(), &url).await.unwrap();
    alice.send_text(bob.file.party.as_str(), "unaffected").await.unwrap();
    assert_eq!(bob.fetch(|_| Ok(())).await.unwrap(), 1);
    drop(held);
    let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("didmpc_mediator_throttled_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    m.stop().await;
}

/// A recipient's queue is bounded; over the limit the sender gets 429 with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_refused() {
    let mut cfg = Config::default();
    cfg.limits.max_queue_messages = 3;
    let m = InProcess::start(cfg).await;
    let alice = Agent::init(&home(), &m.url).await.unwrap();
    let bob = Agent::init(&home(), &m.url).await.unwrap();
    for i in 0..3 {
        alice.send_text(bob.file.party.as_str(), &format!("{i}")).await.unwrap();
    }
    let err = alice.send_text(bob.file.party.as_str(), "one too many").await.unwrap_err();
    assert!(err.to_string().contains("e.p.me.res.storage.queue-full"), "{err}");
    assert_eq!(bob.fetch(|_| Ok(())).await.unwrap(), 3);
    alice.send_text(bob.file.party.as_str(), "room again").await.unwrap();
    m.stop().await;
}
