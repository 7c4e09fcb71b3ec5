//! A hostile host, through the real binary and real MPyC (threat model: "Host").
//!
//! - It smuggles MPyC runtime options into the program arguments (`-T 0`, `--no-prss`,
//!   `-M`, `-I`, `-P`, `--ssl`): every joiner's MPyC still runs with the threshold the
//!   descriptor says and the port map its gateway built; the options only reach the program.
//! - It asks for threshold 0 (no input privacy): joiners refuse by default, the host learns why.
//! - It signs a crafted descriptor (a digest of multibyte characters): `join` refuses it
//!   with a clear error, no panic.
//! - It invites a stranger: `join next` takes invitations only from hosts the joiner knows.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/parties.rs"]
mod parties;
#[path = "support/mediator.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use parties::{didmpc, invite, join, lab, party, Running};
use serde_json::Value;

fn workdir(tag: &str) -> PathBuf {
    let d = support::temp_path(tag);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(mpyc::repo().join("tests/programs/show_options.py"), d.join("show_options.py")).unwrap();
    d
}

fn result(name: &str, out: &str) -> Value {
    mpyc::result_of(out).unwrap_or_else(|| panic!("{name} printed no RESULT:\n{out}"))
}

#[test]
fn smuggled_mpyc_options_only_reach_the_program() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| party(&lab.url)).collect();
    let dirs: Vec<PathBuf> = (0..3).map(|i| workdir(&format!("smuggle{i}"))).collect();
    let smuggled = ["-T", "0", "--no-prss", "-M", "1", "-I", "0", "-P", "203.0.113.9:9", "--ssl", "-K", "1"];
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host = invite(&parties[0].0, &dirs[0], &dids, "show_options.py", &[], &smuggled);
    let joiners: Vec<Running> =
        (1..3).map(|i| join(&parties[i].0, &dirs[i], &format!("party {i}"), &parties[0].1)).collect();
    let mut results = Vec::new();
    let (ok, out, err) = host.wait(Duration::from_secs(180));
    assert!(ok, "host failed:\n{out}\n{err}");
    results.push(result("host", &out));
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        assert!(err.contains("threshold 1"), "{name} was shown the threshold that runs: {err}");
        results.push(result(&name, &out));
    }
    for r in &results {
        assert_eq!(r["threshold"], 1, "MPyC runs with the descriptor's threshold: {r}");
        assert_eq!(r["parties"], 3, "and the gateway's port map: {r}");
        assert_eq!(r["ssl"], false, "{r}");
        assert_eq!(r["no_prss"], false, "{r}");
        assert_eq!(r["sum"], 6, "the computation is right: {r}");
        let argv: Vec<&str> = r["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(argv, smuggled, "the program sees the host's arguments, MPyC does not: {r}");
    }
}

#[test]
fn threshold_zero_is_refused_by_joiners_unless_they_accept_it() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| party(&lab.url)).collect();
    let dirs: Vec<PathBuf> = (0..3).map(|i| workdir(&format!("t0-{i}"))).collect();
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host =
        invite(&parties[0].0, &dirs[0], &dids, "show_options.py", &["--threshold", "0", "--join-timeout", "60"], &[]);
    let j1 = join(&parties[1].0, &dirs[1], "party 1", &parties[0].1);
    let (ok, out, err) = j1.wait(Duration::from_secs(60));
    assert!(!ok, "party 1 must refuse: {out}");
    assert!(err.contains("threshold 0 is below") && err.contains("no input privacy"), "{err}");
    assert!(!out.contains("RESULT") && !err.contains("Start MPyC"), "nothing ran: {out}{err}");
    let (ok, _, herr) = host.wait(Duration::from_secs(60));
    assert!(!ok, "the host stops");
    assert!(herr.contains("declined") && herr.contains("threshold 0"), "the host learns why: {herr}");
}

#[test]
fn a_crafted_descriptor_is_refused_clearly() {
    let lab = lab();
    let (victim_home, victim) = party(&lab.url);
    let dir = workdir("crafted");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = rt.block_on(async {
        use gateway::descriptor::{Descriptor, MpcOptions, Program, VERSION};
        let host = gateway::Agent::init(&support::temp_path("evil-host"), &lab.url).await.unwrap();
        let me = host.file.party.to_string();
        let now = did_core::didcomm::message::now();
        let d = Descriptor {
            v: VERSION,
            id: "Y3JhZnRlZC1zZXNzaW9uLTE".into(),
            host: me.clone(),
            host_route: host.file.route.clone(),
            roster: vec![me.clone(), victim.clone()],
            // 64 bytes, but multibyte characters: byte 11 is inside one.
            program: Program {
                name: "show_options.py".into(),
                sha256: "é".repeat(32),
                args: vec![],
                mpyc: "0.11".into(),
            },
            mpyc: MpcOptions::default(),
            proofs: Value::Null,
            created: now,
            expires: now + 600,
            peer_deadline_secs: 30,
        };
        let signed = d.sign(&host).await.unwrap();
        let inv = did_core::didcomm::oob::invitation(
            &me,
            gateway::wire::GOAL_CODE,
            "crafted",
            vec![did_core::didcomm::Attachment::json(signed.jws.clone())],
        );
        did_core::didcomm::oob::to_url(&inv, &lab.url)
    });
    let out = didmpc(&victim_home, &dir)
        .args(["join", &url, "--yes", "--min-threshold", "0", "--python"])
        .arg(mpyc::python())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(err.contains("program digest is not SHA-256 hex"), "says why: {err}");
    assert!(!err.contains("panicked"), "no panic: {err}");
}

#[test]
fn join_next_takes_invitations_only_from_known_hosts() {
    let lab = lab();
    let (stranger_home, _stranger) = party(&lab.url);
    let (victim_home, victim) = party(&lab.url);
    let dir = workdir("unknown-host");
    let host =
        invite(&stranger_home, &dir, std::slice::from_ref(&victim), "show_options.py", &["--join-timeout", "30"], &[]);
    let out = didmpc(&victim_home, &dir)
        .args(["join", "next", "--yes", "--min-threshold", "0", "--wait", "8", "--python"])
        .arg(mpyc::python())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nothing from an unknown host is taken without asking: {err}");
    assert!(err.contains("waiting up to 8 s for an invitation"), "says what it waits for: {err}");
    assert!(!err.contains("joining as pid"), "{err}");
    // The invitation was kept: the user can still look at it and choose it.
    let listed = didmpc(&victim_home, &dir).arg("sessions").output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("show_options.py"), "kept for `sessions`: {listed}");
    let (ok, _, herr) = host.wait(Duration::from_secs(60));
    assert!(!ok && herr.contains("never joined"), "{herr}");
}
