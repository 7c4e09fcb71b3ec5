//! The product's main job end to end with the real binary and real MPyC: a mediator
//! process, parties that `init`, a host that `invite`s and invitees that `join`; the
//! program runs over Noise sessions through the relay and prints the same result as the
//! same program over plain TCP. Also `status`, `sessions`, and a party killed mid-run.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/parties.rs"]
mod parties;
#[path = "support/mediator.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use parties::{didmpc, invite, join, join_with, lab, party, Running};
use serde_json::Value;

#[test]
fn three_parties_two_rounds_match_plain_tcp() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| party(&lab.url)).collect();
    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("p{i}"), "secure_stats.py")).collect();
    let args = ["--rounds", "2", "--seed", "7"];
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host = invite(&parties[0].0, &dirs[0], &dids, "secure_stats.py", &[], &args);
    let joiners: Vec<Running> =
        (1..3).map(|i| join(&parties[i].0, &dirs[i], &format!("party {i}"), &parties[0].1)).collect();
    let mut results = Vec::new();
    let (ok, out, err) = host.wait(Duration::from_secs(240));
    assert!(ok, "host failed:\n{out}\n{err}");
    assert!(err.contains("_oob"), "the invitation URL is printed: {err}");
    results.push(mpyc::result_of(&out).expect("host RESULT"));
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        assert!(err.contains("joining as pid"), "{name} shows what it joins: {err}");
        results.push(mpyc::result_of(&out).expect("joiner RESULT"));
    }
    let (plain, _) = mpyc::plain("secure_stats.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain, "didmpc and plain TCP agree");
    }
    assert_eq!(plain["rounds"].as_array().map(Vec::len), Some(2), "two runtime starts");

    // `status` after the run: every peer with bytes both ways.
    let out = didmpc(&parties[0].0, &dirs[0]).args(["status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["state"], "finished", "{st}");
    let peers = st["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2);
    for p in peers {
        assert!(p["bytes_sent"].as_u64().unwrap() > 1000 && p["bytes_received"].as_u64().unwrap() > 1000, "{p}");
        // Same host: the parties' host candidates meet on loopback; the relay stays a path.
        assert!(p["path"].as_str().unwrap().starts_with("direct (udp 127.0.0.1:"), "{p}");
        let paths = p["paths"].as_array().unwrap();
        assert!(paths.iter().any(|x| x["path"] == "relay" && x["active"] == false), "{p}");
        assert!(paths.iter().any(|x| x["active"] == true && x["rtt_ms"].as_f64().is_some()), "{p}");
        assert_eq!(p["switches"][0]["why"], "upgrade", "{p}");
    }
    let table = didmpc(&parties[1].0, &dirs[1]).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("pid 1") && text.contains("finished") && text.contains("RTT"), "{text}");
    assert!(text.contains("paths: relay") && text.contains("(in use)") && text.contains("upgrade"), "{text}");
}

#[test]
fn sessions_lists_a_waiting_invitation_and_join_by_id_refuses_a_different_program() {
    let lab = lab();
    let (h0, _) = party(&lab.url);
    let (h1, d1) = party(&lab.url);
    let host_dir = mpyc::workdir("host", "secure_stats.py");
    let other_dir = mpyc::workdir("other", "secure_stats.py");
    // The invitee's copy differs by one byte.
    let p = other_dir.join("secure_stats.py");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push('\n');
    std::fs::write(&p, text).unwrap();
    let host = invite(&h0, &host_dir, std::slice::from_ref(&d1), "secure_stats.py", &["--join-timeout", "60"], &[]);
    let mut listed = String::new();
    for _ in 0..100 {
        let out = didmpc(&h1, &other_dir).arg("sessions").output().unwrap();
        listed = String::from_utf8_lossy(&out.stdout).into_owned();
        if !listed.trim().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = listed.split_whitespace().next().expect("a pending invitation").to_owned();
    assert!(listed.contains("secure_stats.py") && listed.contains("2 parties"), "{listed}");
    let out = didmpc(&h1, &other_dir)
        .args(["join", &id, "--yes", "--min-threshold", "0", "--python"])
        .arg(mpyc::python())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a different program is refused");
    assert!(err.contains("program differs") && err.contains("SHA-256"), "says what differs: {err}");
    assert!(!err.contains("Start MPyC"), "nothing ran");
    let (ok, _, herr) = host.wait(Duration::from_secs(60));
    assert!(!ok, "the host stops");
    assert!(herr.contains("declined") && herr.contains("program differs"), "the host learns why: {herr}");
}

#[test]
fn a_party_killed_mid_run_ends_everyone_with_a_clear_error() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| party(&lab.url)).collect();
    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("k{i}"), "many_rounds.py")).collect();
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host =
        invite(&parties[0].0, &dirs[0], &dids, "many_rounds.py", &["--peer-deadline", "8"], &["--steps", "100000"]);
    let j1 = join(&parties[1].0, &dirs[1], "party 1", &parties[0].1);
    let mut j2 = join(&parties[2].0, &dirs[2], "party 2", &parties[0].1);
    // Wait until MPyC runs everywhere (party 2's status says so), then kill party 2.
    let start = Instant::now();
    loop {
        let st = std::fs::read_to_string(parties[2].0.join("status.json")).unwrap_or_default();
        if st.contains("\"running\"") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "party 2 never started running");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    j2.kill_group();
    // Each survivor fails with a clear error within the deadline. Which loss it notices first
    // depends on timing: party 2's silence, or party 1 failing on it (party 1 then closes its
    // sessions or goes silent too); at least one of them names party 2.
    let mut named = Vec::new();
    for r in [host, j1] {
        let name = r.name.clone();
        let (ok, out, err) = r.wait(Duration::from_secs(60));
        assert!(!ok, "{name} must fail: {out}");
        assert!(err.contains("error: lost pid"), "{name} says which party it lost: {err}");
        assert!(killed.elapsed() < Duration::from_secs(30), "{name} ended within the deadline");
        named.push((err.contains("lost pid 2") && err.contains(&parties[2].1), err));
    }
    assert!(named.iter().any(|n| n.0), "someone names the killed party: {named:?}");
}

#[test]
fn five_parties_with_mpyc_ssl_match_plain_tcp() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..5).map(|_| party(&lab.url)).collect();
    let dirs: Vec<PathBuf> = (0..5).map(|i| mpyc::workdir(&format!("s{i}"), "secure_stats.py")).collect();
    // MPyC's own TLS inside our tunnels: every party has the CA and its own key pair.
    mpyc::certs(&dirs[0], 5);
    for d in &dirs[1..] {
        copy_dir(&dirs[0].join(".config"), &d.join(".config"));
    }
    let args = ["--seed", "11", "--count", "3"];
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host = invite(&parties[0].0, &dirs[0], &dids, "secure_stats.py", &["--ssl"], &args);
    let joiners: Vec<Running> =
        (1..5).map(|i| join(&parties[i].0, &dirs[i], &format!("party {i}"), &parties[0].1)).collect();
    let (plain, _) = mpyc::plain("secure_stats.py", 5, &args, true, &dirs[0]);
    let (ok, out, err) = host.wait(Duration::from_secs(240));
    assert!(ok, "host failed:\n{out}\n{err}");
    assert_eq!(mpyc::result_of(&out).expect("host RESULT"), plain);
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        assert_eq!(mpyc::result_of(&out).expect("RESULT"), plain, "{name}");
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_party_that_never_joins_is_named_by_the_host() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| party(&lab.url)).collect();
    let dirs: Vec<PathBuf> = (0..2).map(|i| mpyc::workdir(&format!("n{i}"), "secure_stats.py")).collect();
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host = invite(&parties[0].0, &dirs[0], &dids, "secure_stats.py", &["--join-timeout", "4"], &[]);
    let j1 = join(&parties[1].0, &dirs[1], "party 1", &parties[0].1);
    let (ok, _, err) = host.wait(Duration::from_secs(60));
    assert!(!ok, "the host gives up");
    assert!(err.contains("never joined") && err.contains(&parties[2].1), "names the missing party: {err}");
    assert!(!err.contains(&format!("pid 1 ({})", parties[1].1)), "only the missing one: {err}");
    let (ok, _, err) = j1.wait(Duration::from_secs(60));
    assert!(!ok && err.contains("never joined"), "the party that joined learns why: {err}");
}

#[test]
fn a_did_off_the_roster_is_refused_and_logged() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..2).map(|_| party(&lab.url)).collect();
    let dirs: Vec<PathBuf> = (0..2).map(|i| mpyc::workdir(&format!("x{i}"), "secure_stats.py")).collect();
    let mut host =
        invite(&parties[0].0, &dirs[0], std::slice::from_ref(&parties[1].1), "secure_stats.py", &["--json"], &[]);
    // The invitation URL tells the session id to anyone who sees it (first JSON event).
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(host.child.stdout.take().unwrap()));
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "invitation", "{first}");
    let url = first["short_url"].as_str().or(first["url"].as_str()).unwrap().to_owned();
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let refused = rt.block_on(async {
        use gateway::pairing::{self, PairSpec, SESSION_1};
        let stranger =
            std::sync::Arc::new(gateway::Agent::init(&support::temp_path("stranger"), &lab.url).await.unwrap());
        let mut mb = gateway::mailbox::Mailbox::start(stranger.clone());
        let signed = gateway::join::find(&stranger, &mut mb, &url, Duration::from_secs(5), &|_| true).await.unwrap();
        let err = gateway::join::place(&stranger, &signed, &[]).expect_err("a stranger has no place").to_string();
        assert!(err.contains("not on this session's roster"), "{err}");
        // It tries anyway: a join, and a session handshake with the host.
        let inv = match did_core::didcomm::oob::from_url(&url).unwrap() {
            did_core::didcomm::oob::OobRef::Invitation(m) => *m,
            did_core::didcomm::oob::OobRef::ShortLink(_) => {
                let text = stranger.transport().get(&url).await.unwrap();
                match did_core::didcomm::oob::from_url(&text).unwrap() {
                    did_core::didcomm::oob::OobRef::Invitation(m) => *m,
                    other => panic!("{other:?}"),
                }
            }
        };
        let jws = gateway::join::descriptor_of(&inv).unwrap();
        let d: Value =
            serde_json::from_slice(&did_core::jose::b64d(jws["payload"].as_str().unwrap(), "p").unwrap()).unwrap();
        let id = d["id"].as_str().unwrap().to_owned();
        let host_did = did_core::Did::parse(d["host"].as_str().unwrap()).unwrap();
        let join_msg = did_core::didcomm::Message::typed(&gateway::wire::Join {
            session: id.clone(),
            member: None,
            route: stranger.file.route.clone(),
            proof: None,
        });
        stranger.send(join_msg, host_did.as_str()).await.unwrap();
        let (report, _) = mb
            .recv_type("https://didcomm.org/report-problem/2.0/problem-report", Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(report.body["code"], "e.p.req.not-invited", "{}", report.body);
        let spec = PairSpec {
            session_id: id.as_bytes().to_vec(),
            roster_digest: [0; 32],
            peer: host_did.clone(),
            route: None,
        };
        let p = pairing::initiate(&stranger, &spec, None).await.unwrap();
        let init_id = p.init_id.clone();
        // Now the real invitee joins; the host meets the stranger's init when it sets up sessions.
        let j1 = join_with(&parties[1].0, &dirs[1], "party 1", &parties[0].1, &["--min-threshold", "0"]);
        let (answer, _) = mb
            .recv_matching(Duration::from_secs(60), |(m, _)| m.thid.as_deref() == Some(init_id.as_str()))
            .await
            .unwrap();
        assert_eq!(answer.type_, format!("{SESSION_1}/reject"), "{}", answer.body);
        (answer.body["reason"].as_str().unwrap_or_default().to_owned(), j1)
    });
    let (reason, j1) = refused;
    assert!(reason.contains("not on the roster"), "{reason}");
    let (ok, out, err) = j1.wait(Duration::from_secs(120));
    assert!(ok, "the real session still runs: {out}\n{err}");
    let (ok, _, herr) = host.wait(Duration::from_secs(60));
    assert!(ok, "{herr}");
    assert!(herr.contains("refused a session init") && herr.contains("not on the roster"), "logged: {herr}");
    assert!(rest.join().unwrap().contains("RESULT"), "the host's MPyC ran");
}
