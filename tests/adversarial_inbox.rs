//! A stranger who knows a party's DID (or saw an invitation link) fills the party's inbox
//! with envelopes whose sender is a did:web on a loopback "internal service" that accepts
//! connections and never answers (threat model: "Party agents and their inbox"). Through the
//! real binary and real MPyC:
//!
//! - the party's session setup (`join next`) opens none of them with a fetch: the tarpit sees
//!   no connection at all, even with private addresses allowed (only the agent's gate stands
//!   in the way), and the computation runs and is correct;
//! - the control: a person reading the inbox (`didmpc inbox`, the gate open) does reach the
//!   tarpit — bounded (concurrent, with a timeout and a failure cache) — and still finishes.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/parties.rs"]
mod parties;
#[path = "support/stranger.rs"]
mod stranger;
#[path = "support/mediator.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use did_core::didcomm::{self, Message, PackOptions, ServiceTarget};
use parties::{didmpc, invite, lab, party, Running};
use stranger::Stranger;

/// A loopback server that accepts connections, holds them, and never answers.
fn tarpit() -> (u16, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (port, seen)
}

fn route_of(home: &Path) -> ServiceTarget {
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("agent.json")).unwrap()).unwrap();
    serde_json::from_value(file["route"].clone()).unwrap()
}

/// `n` junk invitations from `stranger` to `to` (through its route at the mediator).
async fn junk(stranger: &Stranger, to: &str, route: &ServiceTarget, n: usize) {
    let http = reqwest::Client::new();
    for i in 0..n {
        let msg = Message::typed(&gateway::wire::Invitation {
            session: format!("junk-{i}"),
            descriptor: serde_json::json!({"payload": "x", "signatures": []}),
        })
        .from(stranger.did())
        .to(to);
        let opts = PackOptions { via: Some(route.clone()), ..PackOptions::default() };
        let packed =
            didcomm::pack_encrypted(&msg, to, Some(stranger.did()), None, &stranger.resolver, &stranger.id, &opts)
                .await
                .unwrap();
        let target = packed.service.unwrap();
        let r = http.post(&target.uri).header("content-type", stranger::ENCRYPTED).body(packed.message).send().await;
        assert!(r.unwrap().status().is_success(), "the mediator queues a stranger's forward");
    }
}

#[test]
fn a_tarpit_sender_neither_stalls_session_setup_nor_is_contacted() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| party(&lab.url)).collect();
    let (port, contacted) = tarpit();
    let evil = Stranger::web(&format!("did:web:127.0.0.1%3A{port}:internal:admin"));
    let victim = &parties[1];
    let route = route_of(&victim.0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(junk(&evil, &victim.1, &route, 30));

    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("tarpit{i}"), "secure_stats.py")).collect();
    let args = ["--seed", "13"];
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host = invite(&parties[0].0, &dirs[0], &dids, "secure_stats.py", &[], &args);
    let joiners: Vec<Running> = (1..3)
        .map(|i| {
            let mut c = didmpc(&parties[i].0, &dirs[i]);
            // Private addresses allowed: only the agent's gate keeps the tarpit out.
            c.env("DIDMPC_RESOLVE_PRIVATE", "1")
                .args(["join", "next", "--yes", "--from", &parties[0].1, "--wait", "120", "--python"])
                .arg(mpyc::python());
            Running::spawn(c, &format!("party {i}"))
        })
        .collect();
    let mut results = Vec::new();
    let (ok, out, err) = host.wait(Duration::from_secs(240));
    assert!(ok, "host failed:\n{out}\n{err}");
    results.push(mpyc::result_of(&out).expect("host RESULT"));
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        if name == "party 1" {
            assert!(err.contains("dropped an unreadable message"), "the junk is dropped, logged: {err}");
        }
        results.push(mpyc::result_of(&out).expect("RESULT"));
    }
    let (plain, _) = mpyc::plain("secure_stats.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain, "the computation is correct");
    }
    assert_eq!(contacted.load(Ordering::SeqCst), 0, "session setup never contacted the stranger's server");

    // Control: a person reading the inbox lets senders' documents be fetched.
    rt.block_on(junk(&evil, &victim.1, &route, 12));
    let out =
        didmpc(&victim.0, &std::env::temp_dir()).env("DIDMPC_RESOLVE_PRIVATE", "1").arg("inbox").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().filter(|l| l.starts_with("(unreadable message")).count(), 12, "{text}");
    assert!(contacted.load(Ordering::SeqCst) >= 1, "the control reaches the tarpit (the test can fail)");
    let n = contacted.load(Ordering::SeqCst);
    assert!(n <= gateway::inbox::UNPACK_AT_ONCE, "failures are remembered: at most one batch of fetches, not {n}");
}
