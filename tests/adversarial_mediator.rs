//! Strangers at the mediator, against the real `didmpc mediator serve` binary: each test does
//! what the attacker would and asserts what the honest parties see (specs/threat-model.md,
//! "Mediator operator and strangers at the mediator" and "DID resolution").

#[path = "support/stranger.rs"]
mod stranger;
#[path = "support/mediator.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use did_core::didcomm::{from_prior, Message};
use gateway::{Agent, Error as GwError};
use serde_json::{json, Value};
use stranger::{http_from, mediator_did, metric, post, served_web_party, sink, Stranger, ENCRYPTED, SIGNED};
use support::{free_port, temp_path, Process};

fn home() -> PathBuf {
    temp_path("home").parent().unwrap().to_path_buf()
}

/// The binary with `config` (TOML text; empty for the defaults).
fn mediator(config: &str) -> Process {
    let dir = home();
    let path = dir.join("mediator.toml");
    std::fs::write(&path, config).unwrap();
    Process::start_with(free_port(), &dir.join("mediator.db"), &dir, Some(&path))
}

fn code(v: &Value) -> &str {
    v["body"]["code"].as_str().unwrap_or("<no problem report>")
}

fn comment(v: &Value) -> &str {
    v["body"]["comment"].as_str().unwrap_or_default()
}

/// Every place a stranger can name a DID in an envelope to the mediator.
#[derive(Debug, Clone, Copy)]
enum Named {
    /// Authcrypt sender key (`skid`).
    Skid,
    /// Authcrypt inside anoncrypt (sender protection).
    ProtectedSkid,
    /// Signer of a JWS (`kid`).
    Kid,
    /// Issuer of a `from_prior` rotation, on a message from a did:key.
    FromPrior,
    /// `next` of a forward.
    ForwardNext,
    /// Recipient key of the envelope (encrypted to the did:web instead of the mediator).
    RecipientKid,
}

const NAMED: [Named; 6] =
    [Named::Skid, Named::ProtectedSkid, Named::Kid, Named::FromPrior, Named::ForwardNext, Named::RecipientKid];

/// Sends one envelope naming `target` where `how` says; returns (status, code, comment) with
/// the target's port replaced, so answers about different ports compare equal.
async fn attack(url: &str, how: Named, port: u16) -> (u16, String, String) {
    let target = format!("did:web:127.0.0.1%3A{port}:internal:admin");
    let m = mediator_did(url).await;
    let web = Stranger::web(&target);
    let ping = || Message::new("https://didcomm.org/trust-ping/2.0/ping", json!({}));
    let (ct, envelope) = match how {
        Named::Skid => (ENCRYPTED, web.authcrypt(ping(), &m, false).await),
        Named::ProtectedSkid => (ENCRYPTED, web.authcrypt(ping(), &m, true).await),
        Named::Kid => (SIGNED, web.signed(ping()).await),
        Named::FromPrior => {
            let key = Stranger::key();
            let jwt = from_prior::issue(&web.id.did, &key.id.did, &web.resolver, &web.id).await.unwrap();
            let mut msg = ping();
            msg.from_prior = Some(jwt);
            (ENCRYPTED, key.authcrypt(msg, &m, false).await)
        }
        Named::ForwardNext => (ENCRYPTED, web.forward(&m, &format!("{target}#key-2"), 16).await),
        Named::RecipientKid => (ENCRYPTED, web.anoncrypt(&ping(), &target).await),
    };
    let (status, v) = post(&reqwest::Client::new(), url, ct, envelope).await;
    let p = port.to_string();
    (status, code(&v).replace(&p, "PORT"), comment(&v).replace(&p, "PORT"))
}

/// (a) SSRF through did:web: a mediator started without the allow-private knob requests
/// nothing from a loopback "internal service", whatever part of an envelope names it, and
/// answers the same whether that port is open or closed. Control: a mediator configured to
/// fetch any did:web on private addresses does reach the sink, so the sink would notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn did_web_ssrf_reaches_nothing() {
    let (open, seen) = sink().await;
    let closed = free_port();
    let strict = mediator("");
    for how in NAMED {
        let at_open = attack(&strict.url, how, open).await;
        let at_closed = attack(&strict.url, how, closed).await;
        assert_eq!(at_open, at_closed, "{how:?}: the answer tells the open port from the closed one");
        let (status, code, comment) = &at_open;
        let want = match how {
            Named::ForwardNext => "e.p.xfer.unknown-recipient",
            Named::RecipientKid => "e.m.trust.crypto",
            _ => "e.m.did.unresolvable",
        };
        assert_eq!(code, want, "{how:?}: {at_open:?}");
        assert!((400..500).contains(status), "{how:?}: {at_open:?}");
        if want == "e.m.did.unresolvable" {
            assert!(comment.contains("fetches did:web documents only for the parties it serves"), "{comment}");
        }
        assert!(!comment.contains("hunter2"));
    }
    let metrics = reqwest::get(format!("{}/metrics", strict.url)).await.unwrap().text().await.unwrap();
    assert!(metric(&metrics, "didmpc_mediator_refused_total{reason=\"did_web_unknown\"}").unwrap() >= 8, "{metrics}");
    {
        let s = seen.lock().unwrap();
        assert_eq!((s.connections, s.requests.len()), (0, 0), "the sink was reached: {s:?}");
    }

    // The control: told to fetch any did:web and reach private addresses, the mediator does
    // reach the sink; the answer is still the same for the open and the closed port, and
    // never repeats what the sink said.
    let lax = mediator("[resolver]\nallow_private_addresses = true\nweb_senders = \"any\"\n");
    let at_open = attack(&lax.url, Named::Skid, open).await;
    let at_closed = attack(&lax.url, Named::Skid, closed).await;
    assert_eq!(at_open, at_closed);
    assert_eq!(at_open.1, "e.m.did.unresolvable");
    assert!(at_open.2.ends_with("unreachable or not a DID document"), "{at_open:?}");
    let s = seen.lock().unwrap();
    assert_eq!(s.requests, vec!["GET /internal/admin/did.json HTTP/1.1".to_owned()]);
}

/// The other side of the gate: a did:web the operator admits (`resolver.web_allow`, private
/// addresses allowed for this loopback test) is fetched once, gets mediation and is answered;
/// another did:web on the same server is refused without a fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_did_web_is_fetched_and_served() {
    let (alice, seen) = served_web_party("alice").await;
    let m = mediator(&format!("[resolver]\nallow_private_addresses = true\nweb_allow = [\"{}\"]\n", alice.did()));
    let did = mediator_did(&m.url).await;
    let http = reqwest::Client::new();
    let request = Message::new("https://didcomm.org/coordinate-mediation/3.0/mediate-request", json!({}));
    let (status, grant) = alice.ask(&http, &m.url, &did, request).await;
    assert_eq!(status, 200);
    assert_eq!(grant["type"], "https://didcomm.org/coordinate-mediation/3.0/mediate-grant", "{grant}");
    let ping = || Message::new("https://didcomm.org/trust-ping/2.0/ping", json!({}));
    let (_, pong) = alice.ask(&http, &m.url, &did, ping()).await;
    assert_eq!(pong["type"], "https://didcomm.org/trust-ping/2.0/ping-response");
    let fetched = seen.lock().unwrap().requests.clone();
    assert_eq!(fetched, vec!["GET /alice/did.json HTTP/1.1".to_owned()], "fetched once, then cached");
    // same host, not admitted
    let port = alice.did().split("%3A").nth(1).unwrap().split(':').next().unwrap().to_owned();
    let mallory = Stranger::web(&format!("did:web:127.0.0.1%3A{port}:mallory"));
    let (status, v) = mallory.ask(&http, &m.url, &did, ping()).await;
    assert_eq!((status, code(&v)), (400, "e.m.did.unresolvable"), "{v}");
    assert_eq!(seen.lock().unwrap().requests.len(), 1, "mallory's document was not fetched");
}

/// (b) The Discover Features glob: a query with a pathological pattern is answered (with
/// nothing), a trust ping right after is answered too, and oversized queries are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_features_glob_cannot_stall() {
    let m = mediator("");
    let did = mediator_did(&m.url).await;
    let me = Stranger::key();
    let http = reqwest::Client::new();
    let query = |pattern: String| {
        Message::new(
            "https://didcomm.org/discover-features/2.0/queries",
            json!({"queries": [{"feature-type": "protocol", "match": pattern}]}),
        )
    };
    // 120 stars: the recursive matcher needed ~2^n steps for this; it is answered
    let (status, answer) = me.ask(&http, &m.url, &did, query(format!("{}!", "*o".repeat(120)))).await;
    assert_eq!(status, 200);
    assert!(answer["type"].as_str().unwrap().ends_with("/disclose"), "{answer}");
    assert_eq!(answer["body"]["disclosures"], json!([]));
    let ping = Message::new("https://didcomm.org/trust-ping/2.0/ping", json!({}));
    let (status, pong) = me.ask(&http, &m.url, &did, ping).await;
    assert_eq!((status, pong["type"].as_str().unwrap()), (200, "https://didcomm.org/trust-ping/2.0/ping-response"));
    // the bounds: 256 bytes per pattern, 50 queries per message
    let (_, refused) = me.ask(&http, &m.url, &did, query("*".repeat(257))).await;
    assert_eq!(code(&refused), "e.m.msg.bad-request", "{refused}");
    let many: Vec<Value> = (0..51).map(|_| json!({"feature-type": "protocol", "match": "*"})).collect();
    let q = Message::new("https://didcomm.org/discover-features/2.0/queries", json!({ "queries": many }));
    let (_, refused) = me.ask(&http, &m.url, &did, q).await;
    assert_eq!(code(&refused), "e.m.msg.bad-request", "{refused}");
    // and the ordinary query still works
    let (_, d) = me.ask(&http, &m.url, &did, query("https://didcomm.org/messagepickup/*".into())).await;
    assert_eq!(d["body"]["disclosures"][0]["id"], "https://didcomm.org/messagepickup/3.0");
}

async fn metrics(url: &str) -> String {
    reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap()
}

fn refused(text: &str, reason: &str) -> u64 {
    metric(text, &format!("didmpc_mediator_refused_total{{reason=\"{reason}\"}}")).unwrap_or(0)
}

fn recipient_update(did: &str) -> Message {
    Message::new(
        "https://didcomm.org/coordinate-mediation/3.0/recipient-update",
        json!({"updates": [{"recipient_did": did, "action": "add"}]}),
    )
}

async fn texts(agent: &Agent) -> Vec<String> {
    let mut got = Vec::new();
    agent
        .fetch(|i| {
            if let Ok((m, _)) = i.result {
                got.push(m.body["content"].as_str().unwrap_or_default().to_owned());
            }
            Ok(())
        })
        .await
        .unwrap();
    got
}

/// (c) Per-client and per-sender quotas: the recipient limit, the short-link limit, the
/// client's queued bytes, and a stranger flooding one recipient, who is refused with a reason
/// while another sender still gets through. `/metrics` counts each refusal by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_with_reasons() {
    let m = mediator(
        "[limits]\nmax_recipients_per_client = 3\nmax_links_per_client = 2\nmax_queue_messages_per_source = 5\n\
         max_client_queue_bytes = 20000\n",
    );
    let did = mediator_did(&m.url).await;
    let (alice, bob, carol) = (
        Agent::init(&home(), &m.url).await.unwrap(),
        Agent::init(&home(), &m.url).await.unwrap(),
        Agent::init(&home(), &m.url).await.unwrap(),
    );

    // recipients: bob holds his identity and its routed alias; one more fits, the next is refused
    let ok = bob.link().request(recipient_update("did:example:second")).await.unwrap();
    assert_eq!(ok.body["updated"][0]["result"], "success", "{}", ok.body);
    let no = bob.link().request(recipient_update("did:example:third")).await.unwrap();
    assert_eq!(no.body["updated"][0]["result"], "client_error", "{}", no.body);
    assert_eq!(no.body["updated"][0]["reason"], "at most 3 recipient DIDs per client");

    // short links: two, then refused
    let inv = did_core::didcomm::oob::invitation(bob.file.party.as_str(), "didmpc.join", "join", vec![]);
    let create = || {
        Message::new(
            "https://didmpc.dev/protocols/oob-shortlink/1.0/create",
            json!({"invitation": inv.to_value(), "ttl_secs": 600}),
        )
    };
    for _ in 0..2 {
        bob.link().request(create()).await.unwrap();
    }
    match bob.link().request(create()).await {
        Err(GwError::Refused { code, comment, .. }) => {
            assert_eq!(code, "e.p.me.res.quota.links");
            assert!(comment.contains("2 unexpired short links"), "{comment}");
        }
        other => panic!("a third link: {other:?}"),
    }

    // a stranger at 127.0.0.2 floods bob: five forwards are queued, the sixth is refused
    let flood = Stranger::key();
    let from_stranger = http_from("127.0.0.2");
    for i in 0..5 {
        let env = flood.forward(&did, bob.file.party.as_str(), 100).await;
        assert_eq!(post(&from_stranger, &m.url, ENCRYPTED, env).await.0, 202, "forward {i}");
    }
    let env = flood.forward(&did, bob.file.party.as_str(), 100).await;
    let (status, v) = post(&from_stranger, &m.url, ENCRYPTED, env).await;
    assert_eq!((status, code(&v)), (429, "e.p.me.res.storage.sender-quota"), "{v}");
    assert!(comment(&v).contains("as much queued for this recipient as one sender may (5 messages"), "{v}");
    // alice (another source) still reaches bob, and bob reads her
    alice.send_text(bob.file.party.as_str(), "still here").await.unwrap();
    assert_eq!(texts(&bob).await, vec!["still here".to_owned()], "the junk is unreadable, alice's message is there");
    // once bob has picked them up, the stranger's share is free again
    let env = flood.forward(&did, bob.file.party.as_str(), 100).await;
    assert_eq!(post(&from_stranger, &m.url, ENCRYPTED, env).await.0, 202);

    // carol's queues together may hold 20,000 bytes: two 8 kB forwards fit, the third does not
    let from_elsewhere = http_from("127.0.0.3");
    for _ in 0..2 {
        let env = flood.forward(&did, carol.file.party.as_str(), 8000).await;
        assert_eq!(post(&from_elsewhere, &m.url, ENCRYPTED, env).await.0, 202);
    }
    let env = flood.forward(&did, carol.file.party.as_str(), 8000).await;
    let (status, v) = post(&from_elsewhere, &m.url, ENCRYPTED, env).await;
    assert_eq!((status, code(&v)), (429, "e.p.me.res.storage.client-quota"), "{v}");

    let text = metrics(&m.url).await;
    for reason in ["recipients", "links", "source_budget", "client_queue_bytes"] {
        assert_eq!(refused(&text, reason), 1, "{reason}: {text}");
    }
    assert_eq!(refused(&text, "grant_expired"), 0);
}

/// Sleeps until `at`.
async fn until(at: Instant) {
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

/// (c) Grant expiry: a 4 s TTL, refreshed by use; once unused for longer the client is told
/// its grant expired, forwards for its DID find nobody, and mediate-request grants afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_expire_unless_used() {
    let m = mediator("[limits]\ngrant_ttl_secs = 4\n");
    let did = mediator_did(&m.url).await;
    let alice = Agent::init(&home(), &m.url).await.unwrap();
    let t0 = Instant::now();
    let status = || did_core::didcomm::Message::typed(&did_core::didcomm::vocab::StatusRequest::default());
    // used at +2 s and +4 s: alive at +4 s only because the use at +2 s refreshed it
    until(t0 + Duration::from_secs(2)).await;
    alice.link().request(status()).await.unwrap();
    until(t0 + Duration::from_secs(4)).await;
    alice.link().request(status()).await.unwrap();
    // then unused for 5.5 s
    until(t0 + Duration::from_millis(9_500)).await;
    let stranger = Stranger::key();
    let env = stranger.forward(&did, alice.file.party.as_str(), 10).await;
    let (status_code, v) = post(&reqwest::Client::new(), &m.url, ENCRYPTED, env).await;
    assert_eq!((status_code, code(&v)), (404, "e.p.xfer.unknown-recipient"), "{v}");
    match alice.link().request(status()).await {
        Err(GwError::Refused { code, .. }) => assert_eq!(code, "e.p.req.not-granted"),
        other => panic!("expected a refusal: {other:?}"),
    }
    // the client is told why when it writes first
    let bob = Agent::init(&home(), &m.url).await.unwrap();
    until(Instant::now() + Duration::from_millis(5_500)).await;
    match bob.link().request(status()).await {
        Err(GwError::Refused { code, comment, .. }) => {
            assert_eq!(code, "e.p.req.not-granted");
            assert!(comment.contains("grant expired after 4 s without use"), "{comment}");
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    // asking again restores service
    Agent::init(&bob.home, &m.url).await.unwrap();
    bob.link().request(status()).await.unwrap();
    let text = metrics(&m.url).await;
    assert!(refused(&text, "grant_expired") >= 1, "{text}");
}

/// A self-signed certificate for 127.0.0.1 in `dir`; returns its PEM.
fn certificate(dir: &Path) -> String {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    cert.cert.pem()
}

fn https_from(ip: &str, pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// (d) Connection limits count TLS handshakes: three connections that never finish their
/// handshake use up an address's three slots, so a fourth is turned away; another address is
/// served (and its /metrics counts the refusal); once the stalled ones go, the first address
/// is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_count_against_connection_limits() {
    let dir = home();
    let pem = certificate(&dir);
    let config = format!(
        "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_handshake_timeout_secs = 300\n\
         [limits]\nmax_connections_per_ip = 3\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    std::fs::write(dir.join("mediator.toml"), config).unwrap();
    let m = Process::start_with(free_port(), &dir.join("mediator.db"), &dir, Some(&dir.join("mediator.toml")));
    let addr = m.url.trim_start_matches("https://").to_owned();
    let local = https_from("127.0.0.1", &pem);
    let other = https_from("127.0.0.4", &pem);
    // served before the attack
    let health = |c: reqwest::Client| {
        let url = format!("{}/health", m.url);
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(health(local.clone()).await.unwrap(), 200);
    // Open connections as /metrics counts them (its own included), once they settle at `want`.
    let settle = |want: u64| {
        let (other, url) = (other.clone(), format!("{}/metrics", m.url));
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let text = other.get(&url).send().await.unwrap().text().await.unwrap();
                if metric(&text, "didmpc_mediator_connections") == Some(want) {
                    return;
                }
                assert!(Instant::now() < deadline, "connections never settled at {want}: {text}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    settle(1).await;
    // three TCP connections that say nothing: their slots are taken as soon as they are accepted
    let stalled: Vec<std::net::TcpStream> = (0..3).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    settle(4).await;
    let refused_now = health(local.clone()).await;
    assert!(refused_now.is_err(), "a fourth connection from the same address was served: {refused_now:?}");
    assert_eq!(health(other.clone()).await.unwrap(), 200, "another address is served");
    let text = other.get(format!("{}/metrics", m.url)).send().await.unwrap().text().await.unwrap();
    assert!(refused(&text, "connections_per_ip") >= 1, "{text}");
    // the stalled connections go away: the address is served again
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if health(local.clone()).await.is_ok_and(|s| s == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "slots were not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes an HTTP request head and `sent` bytes of the body to a raw connection to `url`'s
/// host (the write may fail once the server has answered and closed).
fn raw_post(url: &str, content_length: usize, sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /didcomm HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/didcomm-encrypted+json\r\n\
         content-length: {content_length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&vec![b'a'; sent]);
    s
}

/// Reads one HTTP response (head and `content-length` body) from a raw connection; the server
/// may keep the connection open or reset it afterwards.
fn read_response(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return String::from_utf8_lossy(&got[..end + 4 + len]).into_owned();
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The memory budget: two requests that send 999 kB of a 1 MB body and stop hold about 2 MB of
/// a 2.5 MiB budget; a third that sends 700 kB is refused with a reason (and counted), while
/// small requests are still served; when the two go away, their memory comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_budget_bounds_what_strangers_make_it_hold() {
    let m = mediator("[limits]\nmemory_budget_bytes = 2621440\n");
    let reserved = || {
        let url = format!("{}/metrics", m.url);
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            metric(&text, "didmpc_mediator_memory_reserved_bytes").unwrap()
        }
    };
    let hogs = [raw_post(&m.url, 1_000_000, 999_000), raw_post(&m.url, 1_000_000, 999_000)];
    let deadline = Instant::now() + Duration::from_secs(20);
    while reserved().await < 1_998_000 {
        assert!(Instant::now() < deadline, "the two requests never took their memory");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = m.url.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut third = raw_post(&url, 700_000, 700_000);
        // (a guard against hanging if the budget were gone, not a timing assertion)
        third.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        read_response(&mut third)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["body"]["code"], "e.p.me.res.memory", "{body}");
    // a small request still fits
    let (status, v) = post(&reqwest::Client::new(), &m.url, ENCRYPTED, "{not json".into()).await;
    assert_eq!((status, code(&v)), (400, "e.m.msg.malformed"));
    assert_eq!(refused(&metrics(&m.url).await, "memory"), 1);
    drop(hogs);
    let deadline = Instant::now() + Duration::from_secs(20);
    while reserved().await != 0 {
        assert!(Instant::now() < deadline, "memory of closed requests was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operator has the store and the mediator's keys. The store holds no message text, and
/// what the operator makes up is not taken as a party's: an authcrypt under the mediator's
/// key that says `from: alice` is refused by bob; an anoncrypt one opens as anonymous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sees_only_ciphertext_and_cannot_speak_for_parties() {
    let dir = home();
    let m = Process::start_with(free_port(), &dir.join("mediator.db"), &dir, None);
    let did = mediator_did(&m.url).await;
    let (alice, bob) = (Agent::init(&home(), &m.url).await.unwrap(), Agent::init(&home(), &m.url).await.unwrap());
    let marker = "marker-7f3a9c-for-bob-only";
    alice.send_text(bob.file.party.as_str(), marker).await.unwrap();
    // everything the mediator wrote to disk (database, WAL, keys)
    let mut stored = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap().to_string_lossy().starts_with("mediator.db")
                || p.starts_with(dir.join("mediator.db.keys"))
            {
                stored.extend(std::fs::read(&p).unwrap());
            }
        }
    }
    assert!(stored.len() > 10_000, "the store was found ({} bytes)", stored.len());
    assert!(!stored.windows(marker.len()).any(|w| w == marker.as_bytes()), "plaintext in the mediator's files");

    // the operator's forgeries, queued for bob like any forward
    let op = did_core::Keystore::open(dir.join("mediator.db.keys")).unwrap().default_identity().unwrap();
    let claim = Message::new("https://didcomm.org/basicmessage/2.0/message", json!({"content": "from alice, honest"}))
        .from(alice.file.party.as_str())
        .to(bob.file.party.as_str());
    let resolver = did_core::Resolver::default();
    let bob_doc = did_core::DidResolver::resolve(&resolver, &bob.file.party).await.unwrap();
    let bob_key = bob_doc.methods(did_core::Relationship::KeyAgreement).next().unwrap();
    let (op_kid, op_key) = op.keys().find(|(_, k)| k.kind() == did_core::KeyKind::X25519).unwrap();
    let sender = did_core::jose::jwe::Sender { kid: op_kid, key: op_key };
    let forged = did_core::jose::jwe::encrypt(
        claim.to_json().as_bytes(),
        "application/didcomm-encrypted+json",
        did_core::jose::content::ContentEnc::A256CbcHs512,
        Some(sender),
        &[(bob_key.id.as_str(), &bob_key.key)],
    )
    .unwrap();
    let anon = Stranger::key().anoncrypt(&claim, bob.file.party.as_str()).await;
    for env in [serde_json::to_string(&forged).unwrap(), anon] {
        let fwd = did_core::didcomm::forward::forward_message(
            bob.file.party.as_str(),
            serde_json::from_str(&env).unwrap(),
            None,
        );
        let outer = Stranger::key().anoncrypt(&fwd, &did).await;
        assert_eq!(post(&reqwest::Client::new(), &m.url, ENCRYPTED, outer).await.0, 202);
    }
    let mut seen = Vec::new();
    bob.fetch(|i| {
        seen.push(
            i.result.map(|(msg, meta)| (msg.body["content"].as_str().unwrap_or_default().to_owned(), meta.sender)),
        );
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].as_ref().unwrap(), &(marker.to_owned(), Some(alice.file.party.to_string())));
    assert!(
        matches!(&seen[1], Err(did_core::Error::SenderMismatch { .. })),
        "an authcrypt under the mediator's key cannot say it is alice: {:?}",
        seen[1]
    );
    assert_eq!(seen[2].as_ref().unwrap(), &("from alice, honest".to_owned(), None), "anonymous, not alice");
}
