//! `didmpc invite did:key:…` for any DID, end to end with the real binary and real MPyC:
//! parties whose identities are did:keys join by the invitation link; an invitee registered
//! at the host's mediator is reached without it; a wallet (did:pkh) place is taken by a party
//! that proves the account; and the long-running commands' output on a pipe has no colour
//! codes and no QR code.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/parties.rs"]
mod parties;
#[path = "support/stranger.rs"]
mod stranger;
#[path = "support/mediator.rs"]
mod support;

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use parties::{didmpc, invite, lab, party, Running};
use serde_json::Value;

/// The invitation link from a host started with `--json` (its first event), and the rest
/// of its stdout, collected in the background.
fn link_of(host: &mut Running) -> (String, std::thread::JoinHandle<String>) {
    let mut lines = std::io::BufReader::new(host.child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "invitation", "{first}");
    let url = first["short_url"].as_str().or(first["url"].as_str()).unwrap().to_owned();
    (url, std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n")))
}

/// The RESULT of a `--json` run: the `output` event holding it.
fn json_result(events: &str) -> Value {
    events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "output")
        .find_map(|e| e["line"].as_str().and_then(|l| l.strip_prefix("RESULT ")).map(str::to_owned))
        .map(|r| serde_json::from_str(&r).unwrap())
        .unwrap_or_else(|| panic!("no RESULT event in:\n{events}"))
}

fn join_link(home: &std::path::Path, dir: &std::path::Path, url: &str, name: &str, extra: &[&str]) -> Running {
    let mut c = didmpc(home, dir);
    c.args(["join", url, "--yes", "--python"]).arg(mpyc::python()).args(extra);
    Running::spawn(c, name)
}

fn no_terminal_decoration(what: &str, text: &str) {
    assert!(!text.contains('\u{1b}'), "{what}: escape codes on a pipe:\n{text}");
    assert!(!text.contains('█') && !text.contains('▀') && !text.contains('▄'), "{what}: a QR code on a pipe:\n{text}");
}

#[test]
fn three_did_key_parties_join_by_the_link() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| party(&lab.url)).collect();
    for (home, did) in &parties {
        assert!(did.starts_with("did:key:z6Mk"), "init keeps a did:key identity: {did}");
        let list = didmpc(home, &std::env::temp_dir()).args(["did", "list"]).output().unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        let short = format!("* did:key:{}…{}", &did[8..12], &did[did.len() - 4..]);
        assert!(list.lines().any(|l| l == short), "`did list` marks the did:key as default, short: {list}");
    }
    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("link{i}"), "secure_stats.py")).collect();
    let args = ["--seed", "5"];
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let mut host = invite(&parties[0].0, &dirs[0], &dids, "secure_stats.py", &["--json"], &args);
    let (url, rest) = link_of(&mut host);
    let joiners: Vec<Running> =
        (1..3).map(|i| join_link(&parties[i].0, &dirs[i], &url, &format!("party {i}"), &[])).collect();
    let (ok, _, err) = host.wait(Duration::from_secs(240));
    let events = rest.join().unwrap();
    assert!(ok, "host failed:\n{events}\n{err}");
    no_terminal_decoration("invite", &err);
    // Both invitees are registered at the host's mediator: reached without the link too.
    let reached: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "reached")
        .map(|e| e["did"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reached.len(), 2, "both invitees reached through the host's mediator:\n{events}");
    assert!(dids.iter().all(|d| reached.contains(d)), "{events}");
    let mut results = vec![json_result(&events)];
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        no_terminal_decoration(&name, &err);
        results.push(mpyc::result_of(&out).expect("RESULT on stdout"));
    }
    let (plain, _) = mpyc::plain("secure_stats.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain, "didmpc and plain TCP agree");
    }
}

#[test]
fn a_wallet_place_is_taken_by_the_party_that_proves_the_account() {
    let lab = lab();
    let (host_home, _) = party(&lab.url);
    let (b_home, b) = party(&lab.url);
    let (c_home, c) = party(&lab.url);
    let key = support::temp_path("wallet.key");
    let out = didmpc(&c_home, &std::env::temp_dir()).args(["proof", "new-key"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let wallet = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(wallet.starts_with("did:pkh:eip155:1:0x"), "{wallet}");
    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("pkh{i}"), "secure_stats.py")).collect();
    let args = ["--seed", "9"];
    let invitees = vec![b.clone(), wallet.clone()];
    let mut host = invite(&host_home, &dirs[0], &invitees, "secure_stats.py", &["--json"], &args);
    let (url, rest) = link_of(&mut host);
    let jb = join_link(&b_home, &dirs[1], &url, "party 1", &[]);
    // Without the wallet's key, C has no place on this roster.
    let out = didmpc(&c_home, &dirs[2]).args(["join", &url, "--yes", "--python"]).arg(mpyc::python()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not on this session's roster") && err.contains("--siwe-key"),
        "{err}"
    );
    let key_arg = key.to_string_lossy().into_owned();
    let jc = join_link(&c_home, &dirs[2], &url, "party 2 (wallet)", &["--siwe-key", &key_arg]);
    let (ok, _, err) = host.wait(Duration::from_secs(240));
    let events = rest.join().unwrap();
    assert!(ok, "host failed:\n{events}\n{err}");
    assert!(err.contains("unreachable") || err.contains("not reached"), "a wallet has no inbox: {err}");
    let joined = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "joined" && e["did"] == wallet.as_str())
        .unwrap_or_else(|| panic!("the wallet joined:\n{events}"));
    assert_eq!(joined["pid"], 2);
    assert!(joined["identity"].as_str().unwrap().to_lowercase().contains(&wallet[17..].to_lowercase()), "{joined}");
    let mut results = vec![json_result(&events)];
    for j in [jb, jc] {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        results.push(mpyc::result_of(&out).expect("RESULT"));
    }
    let (plain, _) = mpyc::plain("secure_stats.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain);
    }
    // C's status shows its place: pid 2, acting as its did:key for the wallet.
    let st = didmpc(&c_home, &dirs[2]).args(["status", "--json"]).output().unwrap();
    let st: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["pid"], 2, "{st}");
    assert!(st["identity"].as_str().unwrap_or_default().contains("account"), "{st}");
    let _ = c;
}

#[test]
fn a_did_web_host_invites_did_key_parties() {
    // The host's identity is a did:web whose document a loopback HTTP server serves; private
    // addresses are allowed explicitly (the mediator's config, the parties' environment).
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (web, served) = rt.block_on(stranger::served_web_party("org:host"));
    let config = support::temp_path("mediator.toml");
    std::fs::write(&config, format!("[resolver]\nallow_private_addresses = true\nweb_allow = [\"{}\"]\n", web.did()))
        .unwrap();
    let db = support::temp_path("mediator.db");
    let m = support::Process::start_with(support::free_port(), &db, &db.parent().unwrap().join("mh"), Some(&config));
    // The host imports the did:web keys (JWK files, mode 0600) and routes that identity.
    let host_home = support::temp_path("web-host");
    let keydir = support::temp_path("web-keys");
    std::fs::create_dir_all(&keydir).unwrap();
    let mut import = didmpc(&host_home, &std::env::temp_dir());
    import.args(["did", "import", web.did(), "--default", "--document"]);
    let doc = keydir.join("did.json");
    std::fs::write(&doc, web.id.document.as_ref().unwrap().to_value().to_string()).unwrap();
    import.arg(&doc);
    for (n, (kid, key)) in web.id.keys().enumerate() {
        let f = keydir.join(format!("k{n}.jwk"));
        std::fs::write(&f, serde_json::to_string(&did_core::Jwk::from_secret(key).with_kid(kid)).unwrap()).unwrap();
        import.arg("--jwk").arg(&f);
    }
    let out = import.output().unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    let out = didmpc(&host_home, &std::env::temp_dir())
        .env("DIDMPC_RESOLVE_PRIVATE", "1")
        .args(["init", "--mediator", &m.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), web.did(), "the did:web stays the identity");
    let parties: Vec<(PathBuf, String)> = (0..2).map(|_| party(&m.url)).collect();
    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("web{i}"), "secure_stats.py")).collect();
    let args = ["--seed", "21"];
    let dids: Vec<String> = parties.iter().map(|p| p.1.clone()).collect();
    let mut host = didmpc(&host_home, &dirs[0]);
    host.env("DIDMPC_RESOLVE_PRIVATE", "1")
        .arg("invite")
        .args(&dids)
        .args(["--program", "secure_stats.py", "--python"])
        .arg(mpyc::python())
        .arg("--")
        .args(args);
    let host = Running::spawn(host, "did:web host");
    let joiners: Vec<Running> = (0..2)
        .map(|i| {
            let mut c = didmpc(&parties[i].0, &dirs[i + 1]);
            c.env("DIDMPC_RESOLVE_PRIVATE", "1")
                .args(["join", "next", "--yes", "--from", web.did(), "--wait", "120", "--python"])
                .arg(mpyc::python());
            Running::spawn(c, &format!("party {}", i + 1))
        })
        .collect();
    let (ok, out, err) = host.wait(Duration::from_secs(240));
    assert!(ok, "host failed:\n{out}\n{err}");
    let mut results = vec![mpyc::result_of(&out).expect("host RESULT")];
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        results.push(mpyc::result_of(&out).expect("RESULT"));
    }
    let (plain, _) = mpyc::plain("secure_stats.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain);
    }
    assert!(!served.lock().unwrap().requests.is_empty(), "the did:web document was really fetched");
    drop(rt);
}
