//! The mediator end to end on loopback: agents behind one and behind two mediators,
//! live delivery, DID rotation, short links, a did:web mediator.

#[path = "support/mediator.rs"]
mod support;

use std::time::Duration;

use did_core::didcomm::{from_prior, Message};
use did_core::{Identity, KeyRing, Keystore};
use gateway::link::{Link, MediatorInfo};
use gateway::{Agent, Incoming};
use mediator::Config;
use serde_json::json;
use support::{temp_path, InProcess};

fn home() -> std::path::PathBuf {
    temp_path("home").parent().unwrap().to_path_buf()
}

fn texts(items: Vec<Incoming>) -> Vec<(String, String)> {
    items
        .into_iter()
        .map(|i| {
            let (m, meta) = i.result.expect("a readable message");
            (meta.sender.expect("authenticated"), m.body["content"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

async fn drain(agent: &Agent) -> Vec<Incoming> {
    let mut got = Vec::new();
    agent
        .fetch(|i| {
            got.push(i);
            Ok(())
        })
        .await
        .unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_behind_one_mediator() {
    let m = InProcess::start(Config::default()).await;
    let alice = Agent::init(&home(), &m.url).await.unwrap();
    let bob = Agent::init(&home(), &m.url).await.unwrap();
    for i in 0..3 {
        alice.send_text(bob.file.party.as_str(), &format!("hello {i}")).await.unwrap();
    }
    let got = texts(drain(&bob).await);
    let a = alice.file.party.to_string();
    assert_eq!(got, vec![(a.clone(), "hello 0".into()), (a.clone(), "hello 1".into()), (a, "hello 2".into())]);
    assert!(drain(&bob).await.is_empty(), "acknowledged messages are gone");
    bob.send_text(alice.file.party.as_str(), "hi back").await.unwrap();
    assert_eq!(texts(drain(&alice).await), vec![(bob.file.party.to_string(), "hi back".into())]);
    // init again: same mediator, same identities (idempotent)
    let again = Agent::init(&alice.home, &m.url).await.unwrap();
    assert_eq!(again.file.party, alice.file.party);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_behind_two_mediators() {
    let m1 = InProcess::start(Config::default()).await;
    let m2 = InProcess::start(Config::default()).await;
    let alice = Agent::init(&home(), &m1.url).await.unwrap();
    let bob = Agent::init(&home(), &m2.url).await.unwrap();
    assert_ne!(alice.file.mediator.did, bob.file.mediator.did);
    // Identities are did:keys: across mediators, each reaches the other at its routed alias
    // (a DID that publishes the route).
    let err = alice.send_text(bob.file.party.as_str(), "no route").await.unwrap_err().to_string();
    assert!(err.contains("share the invitation link"), "{err}");
    let bob_routed = bob.file.routed.clone().unwrap();
    let target = alice.send_text(bob_routed.as_str(), "across mediators").await.unwrap();
    assert!(target.uri.starts_with(&m2.url), "delivered to bob's mediator, got {}", target.uri);
    assert_eq!(texts(drain(&bob).await), vec![(alice.file.party.to_string(), "across mediators".into())]);
    bob.send_text(alice.file.routed.as_ref().unwrap().as_str(), "and back").await.unwrap();
    assert_eq!(texts(drain(&alice).await).len(), 1);
    m1.stop().await;
    m2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_delivery_over_websocket() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let m = InProcess::start(Config::default()).await;
    let alice = Agent::init(&home(), &m.url).await.unwrap();
    let bob = Agent::init(&home(), &m.url).await.unwrap();
    alice.send_text(bob.file.party.as_str(), "queued before").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bob_home = bob.home.clone();
    let follower = tokio::spawn(async move {
        let bob = Agent::load(&bob_home).unwrap();
        bob.follow(
            move |i| {
                tx.send(i).unwrap();
                Ok(())
            },
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.unwrap().unwrap();
    assert_eq!(texts(vec![first])[0].1, "queued before");
    for i in 0..5 {
        alice.send_text(bob.file.party.as_str(), &format!("live {i}")).await.unwrap();
    }
    for i in 0..5 {
        let got = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.unwrap().unwrap();
        assert_eq!(texts(vec![got])[0].1, format!("live {i}"));
    }
    stop_tx.send(()).unwrap();
    follower.await.unwrap().unwrap();
    assert!(drain(&bob).await.is_empty(), "live deliveries were acknowledged");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn did_rotation_moves_mediation_and_queue() {
    let m = InProcess::start(Config::default()).await;
    let alice = Agent::init(&home(), &m.url).await.unwrap();
    let bob = Agent::init(&home(), &m.url).await.unwrap();
    alice.send_text(bob.file.party.as_str(), "before rotation").await.unwrap();
    // bob's control DID rotates to a new did:key, announced with from_prior
    let ks = Keystore::open(&bob.home).unwrap();
    let old = ks.load(&bob.file.client).unwrap();
    let new = Identity::generate_key();
    let mut keys = KeyRing::new();
    keys.add_identity(&old);
    keys.add_identity(&new);
    keys.add_identity(&ks.load(&bob.file.party).unwrap());
    let resolver = did_core::Resolver::default();
    let jwt = from_prior::issue(&old.did, &new.did, &resolver, &keys).await.unwrap();
    let transport = gateway::transport::Transport::new().unwrap();
    let info = MediatorInfo::discover(&m.url, &transport, &resolver).await.unwrap();
    let link = Link { mediator: &info, client: &new.did, keys: &keys, resolver: &resolver, transport: &transport };
    let mut ping = Message::new("https://didcomm.org/trust-ping/2.0/ping", json!({"response_requested": true}));
    ping.from_prior = Some(jwt);
    let pong = link.request(ping).await.unwrap();
    assert!(pong.type_.ends_with("/ping-response"));
    // the new DID now holds the grant and the queue; the old one holds nothing
    let answer = link
        .request(did_core::didcomm::Message::typed(&did_core::didcomm::vocab::DeliveryRequest {
            limit: 10,
            recipient_did: None,
        }))
        .await
        .unwrap();
    assert!(answer.type_.ends_with("/delivery"), "{}", answer.type_);
    let old_link = Link { client: &old.did, ..link };
    let err = old_link
        .update_recipients(&["did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"], true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not-granted"), "{err}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_links_and_discovery() {
    let m = InProcess::start(Config::default()).await;
    let alice = Agent::init(&home(), &m.url).await.unwrap();
    let inv = did_core::didcomm::oob::invitation(alice.file.party.as_str(), "didmpc.join", "join me", vec![]);
    let created = alice
        .link()
        .request(Message::new(
            "https://didmpc.dev/protocols/oob-shortlink/1.0/create",
            json!({"invitation": inv.to_value(), "ttl_secs": 600}),
        ))
        .await
        .unwrap();
    let url = created.body["url"].as_str().unwrap().to_owned();
    assert!(url.contains("_oobid="));
    let fetched = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let did_core::didcomm::oob::OobRef::Invitation(back) = did_core::didcomm::oob::from_url(&fetched).unwrap() else {
        panic!()
    };
    assert_eq!(back.id, inv.id);
    assert_eq!(reqwest::get(format!("{}/oob?_oobid=nope", m.url)).await.unwrap().status(), 404);
    // discover features names the mediator protocols
    let q = Message::new(
        "https://didcomm.org/discover-features/2.0/queries",
        json!({"queries": [{"feature-type": "protocol", "match": "https://didcomm.org/*"}]}),
    );
    let d = alice.link().request(q).await.unwrap();
    let ids: Vec<&str> = d.body["disclosures"].as_array().unwrap().iter().filter_map(|x| x["id"].as_str()).collect();
    for p in [
        "https://didcomm.org/routing/2.0",
        "https://didcomm.org/coordinate-mediation/3.0",
        "https://didcomm.org/messagepickup/3.0",
    ] {
        assert!(ids.contains(&p), "{p} in {ids:?}");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn did_web_mediator() {
    // The agents resolve the mediator's did:web on loopback, which the default policy forbids.
    use did_core::{Reach, ResolverPolicy};
    ResolverPolicy::set_process_default(Some(ResolverPolicy::with_reach(Reach::Loopback)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = Config::default();
    cfg.store.db = temp_path("mediator.db");
    cfg.identity.method = mediator::config::IdentityMethod::Web;
    cfg.identity.web_host = Some(format!("127.0.0.1%3A{port}"));
    let m = InProcess::start_on(cfg, listener).await;
    assert_eq!(m.mediator.did().as_str(), format!("did:web:127.0.0.1%3A{port}"));
    let alice = Agent::init(&home(), &m.url).await.unwrap();
    let bob = Agent::init(&home(), &format!("did:web:127.0.0.1%3A{port}")).await.unwrap();
    alice.send_text(bob.file.party.as_str(), "via did:web").await.unwrap();
    assert_eq!(texts(drain(&bob).await).len(), 1);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_policy_denies_strangers() {
    let admitted = Identity::generate_key();
    let mut cfg = Config::default();
    cfg.policy.admission = mediator::config::Admission::Allowlist;
    cfg.policy.allowlist = vec![admitted.did.to_string()];
    let m = InProcess::start(cfg).await;
    // a stranger (fresh home, fresh did:key) is denied
    let err = Agent::init(&home(), &m.url).await.err().expect("denied");
    assert!(err.to_string().contains("mediate-deny"), "{err}");
    // the admitted DID gets mediation
    let h = home();
    let ks = Keystore::open(&h).unwrap();
    ks.save(&admitted).unwrap();
    ks.set_default(&admitted.did).unwrap();
    let agent = Agent::init(&h, &m.url).await.unwrap();
    assert_eq!(agent.file.client, admitted.did);
    m.stop().await;
}
