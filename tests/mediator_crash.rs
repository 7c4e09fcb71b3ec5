//! Crash safety of the real `didmpc mediator serve` process: SIGKILL while messages
//! arrive and after acknowledgements; after a restart on the same database every
//! message that was accepted is delivered, and none comes back after its ack.

#[path = "support/mediator.rs"]
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use did_core::didcomm::vocab::DeliveryRequest;
use did_core::didcomm::Message as Msg;
use gateway::Agent;
use support::{free_port, temp_path, Process};

async fn contents(agent: &Agent) -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_and_repeats_nothing_after_ack() {
    let port = free_port();
    let db = temp_path("mediator.db");
    let mhome = db.parent().unwrap().join("mhome");
    let home = |n: &str| db.parent().unwrap().join(n);
    let m = Process::start(port, &db, &mhome);
    let alice = Arc::new(Agent::init(&home("alice"), &m.url).await.unwrap());
    let bob = Agent::init(&home("bob"), &m.url).await.unwrap();
    let bob_did = bob.file.party.to_string();

    // 4 senders keep sending until the SIGKILL stops them; the kill comes once 40 are in,
    // so it always lands mid-stream, whatever the machine's speed.
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for s in 0..4 {
        let (alice, to, counter) = (alice.clone(), bob_did.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..100_000 {
                let text = format!("m{s}-{i}");
                if alice.send_text(&to, &text).await.is_err() {
                    return (accepted, true);
                }
                accepted.push(text);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (accepted, false)
        }));
    }
    while counter.load(std::sync::atomic::Ordering::SeqCst) < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    m.kill9();
    let mut accepted = BTreeSet::new();
    for t in tasks {
        let (sent, stopped_by_kill) = t.await.unwrap();
        assert!(stopped_by_kill, "every sender was cut off by the kill");
        accepted.extend(sent);
    }
    assert!(accepted.len() >= 40, "messages went in before the kill ({} accepted)", accepted.len());

    // Restart on the same database and port: the DID is the same, the queue is intact.
    let m = Process::start(port, &db, &mhome);
    let got = contents(&bob).await;
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), got_set.len(), "no duplicates in one pickup");
    let lost: Vec<_> = accepted.difference(&got_set).collect();
    assert!(lost.is_empty(), "accepted but lost: {lost:?}");

    // Delivered but not acknowledged: delivered again after a crash.
    for i in 0..5 {
        alice.send_text(&bob_did, &format!("unacked-{i}")).await.unwrap();
    }
    let link = bob.link();
    let d = link.request(Msg::typed(&DeliveryRequest { limit: 10, recipient_did: None })).await.unwrap();
    assert_eq!(d.attachments.as_ref().map(Vec::len), Some(5));
    m.kill9();
    let m = Process::start(port, &db, &mhome);
    let again = contents(&bob).await;
    assert_eq!(again.len(), 5, "unacknowledged messages survive: {again:?}");

    // Acknowledged: never again, even across another SIGKILL.
    m.kill9();
    let m = Process::start(port, &db, &mhome);
    assert!(contents(&bob).await.is_empty(), "nothing comes back after its ack");
    assert!(m.terminate().success(), "SIGTERM shuts down cleanly");
}
