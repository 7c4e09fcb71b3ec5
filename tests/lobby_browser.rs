//! The casual user's path in real headless Chromium (Debian's chromium + chromedriver,
//! driven over WebDriver): `didmpc invite --browser` and `didmpc join <link> --browser`
//! serve their lobby pages; the invitee's browser has an EIP-1193 wallet (ethers' Wallet,
//! injected by this test the way a wallet extension injects its provider; didmpc never
//! serves it), and real MPyC runs between the parties.
//!
//! - Right account: the page signs in, joins, the host starts, MPyC runs, both pages show
//!   the result (the same RESULT as the command line prints).
//! - Wrong account: refused on the page with the host's reason before anything is sent;
//!   nothing joins; declining tells the host.
//! - The user rejects the signature (4001): the page says so, the host is told why,
//!   nothing joins.
//! - The host's Cancel: the waiting invitee gets `abort`.
//! - The token, Host and Origin checks: 403 without the token, from another origin (also
//!   from a real page of another origin in Chromium), and for a rebinding Host.
//!
//! Screenshots of both pages go to `$CARGO_TARGET_TMPDIR/lobby-screenshots/`.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/parties.rs"]
mod parties;
#[path = "support/mediator.rs"]
mod support;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use parties::{didmpc, lab, party, Running};
use serde_json::{json, Value};
use webdriver::{Browser, Driver};

/// One browser test at a time (two Chromiums and MPyC are plenty for two cores).
static SERIAL: Mutex<()> = Mutex::new(());

const PAGE: Duration = Duration::from_secs(30);
const RUN: Duration = Duration::from_secs(180);

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lobby-screenshots")
}

/// ethers' UMD build from the pinned test-only npm install (tests/browser/setup.sh).
fn ethers() -> String {
    static JS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JS.get_or_init(|| {
        let out = Command::new("bash").arg(mpyc::repo().join("tests/browser/setup.sh")).output().expect("bash runs");
        assert!(
            out.status.success(),
            "the test wallet library (npm ethers) could not be installed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = String::from_utf8_lossy(&out.stdout).lines().last().expect("a directory").trim().to_owned();
        std::fs::read_to_string(Path::new(&dir).join("node_modules/ethers/dist/ethers.umd.min.js")).unwrap()
    })
    .clone()
}

/// The provider a wallet extension would inject: ethers' Wallet with `key`; `mode` is
/// "sign" or "reject" (the user refuses every signature).
fn wallet(key: &str, mode: &str) -> String {
    let cfg = json!({ "key": key, "mode": mode });
    format!("{}\nconst WALLET = {cfg};\n{}", ethers(), include_str!("browser/wallet.js"))
}

/// A fresh Ethereum account key: (0x-hex private key, did:pkh).
fn account(home: &Path, name: &str) -> (String, String) {
    let path = support::temp_path(name);
    let out = didmpc(home, &std::env::temp_dir()).args(["proof", "new-key"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "new-key: {}", String::from_utf8_lossy(&out.stderr));
    let key = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    (key, String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

/// A `--json` process's events as they come.
struct Events {
    rx: Receiver<Value>,
    seen: Vec<Value>,
}

impl Events {
    fn of(r: &mut Running) -> Events {
        let lines = std::io::BufReader::new(r.child.stdout.take().unwrap()).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Events { rx, seen: Vec::new() }
    }

    /// The first event of `kind` (waiting up to `limit`).
    fn wait(&mut self, kind: &str, limit: Duration) -> Value {
        if let Some(e) = self.seen.iter().find(|e| e["event"] == kind) {
            return e.clone();
        }
        let until = Instant::now() + limit;
        loop {
            match self.rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if e["event"] == kind {
                        return e;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no {kind} event within {limit:?}: {:?}", self.seen),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the process ended without a {kind} event: {:?}", self.seen)
                }
            }
        }
    }

    /// Every event so far (and the rest, once the process ended).
    fn all(&mut self) -> &[Value] {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
        &self.seen
    }

    fn any(&mut self, kind: &str) -> bool {
        self.all().iter().any(|e| e["event"] == kind)
    }
}

/// The RESULT line among a `--json` run's `output` events.
fn result_of(events: &[Value]) -> Option<Value> {
    events
        .iter()
        .filter(|e| e["event"] == "output")
        .find_map(|e| e["line"].as_str()?.strip_prefix("RESULT ").map(str::to_owned))
        .map(|r| serde_json::from_str(&r).unwrap())
}

/// A two-party session set up for the browser: the host's process and page, the
/// invitee's home, DID and directory, and the invitation link read off the host's page.
struct Setup {
    lab: parties::Lab,
    driver: Driver,
    host: Option<Running>,
    host_did: String,
    host_events: Events,
    host_page: Browser,
    h1: PathBuf,
    d1: String,
    dir1: PathBuf,
    link: String,
}

impl Setup {
    /// Waits for the host's process to end: (success, stderr).
    fn host_ends(&mut self, limit: Duration) -> (bool, String) {
        let (ok, _, err) = self.host.take().expect("the host runs").wait(limit);
        (ok, err)
    }
}

/// `didmpc invite <invitee> --browser …` (with `extra(invitee DID)` options) and the host's
/// page open in Chromium.
fn setup(name: &str, extra: impl Fn(&str) -> Vec<String>) -> Setup {
    let lab = lab();
    let (h0, host_did) = party(&lab.url);
    let (h1, d1) = party(&lab.url);
    let dir0 = mpyc::workdir(&format!("{name}-host"), "secure_stats.py");
    let dir1 = mpyc::workdir(&format!("{name}-p1"), "secure_stats.py");
    let mut c = didmpc(&h0, &dir0);
    c.args([
        "invite",
        &d1,
        "--program",
        "secure_stats.py",
        "--json",
        "--browser",
        "--no-open",
        "--join-timeout",
        "300",
    ])
    .arg("--python")
    .arg(mpyc::python())
    .args(extra(&d1))
    .args(["--", "--seed", "11"]);
    let mut host = Running::spawn(c, "host");
    let mut host_events = Events::of(&mut host);
    let url = host_events.wait("lobby", PAGE)["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/t/"), "{url}");
    let driver = Driver::start();
    let host_page = driver.browser(None);
    host_page.goto(&url);
    host_page.wait_text("#status", "Waiting for the invitees", PAGE);
    let link = host_page.exec("return document.getElementById('link').value", vec![]).as_str().unwrap().to_owned();
    let inv = host_events.wait("invitation", PAGE);
    assert_eq!(Some(link.as_str()), inv["short_url"].as_str().or(inv["url"].as_str()), "the page shows the link");
    let qr = "const q = document.getElementById('qr'); return !q.hidden && q.complete && q.naturalWidth > 0";
    host_page.wait("the QR code", PAGE, |b| b.exec(qr, vec![]) == json!(true));
    let roster = host_page.text("#roster");
    assert!(roster.contains(&short(&host_did)) && roster.contains(&short(&d1)), "{roster}");
    Setup { lab, driver, host: Some(host), host_did, host_events, host_page, h1, d1, dir1, link }
}

/// `didmpc join <link> --browser` for the invitee; its process, events and page URL.
fn join_in_browser(s: &Setup, extra: &[&str]) -> (Running, Events, String) {
    let mut c = didmpc(&s.h1, &s.dir1);
    c.args(["join", &s.link, "--browser", "--no-open", "--json", "--min-threshold", "0", "--python"])
        .arg(mpyc::python())
        .args(extra);
    let mut r = Running::spawn(c, "invitee");
    let mut ev = Events::of(&mut r);
    let url = ev.wait("lobby", PAGE)["url"].as_str().unwrap().to_owned();
    (r, ev, url)
}

/// The session as the invitee's page shows it, before deciding.
fn shows_the_session(page: &Browser, host_did_short: &str, account: &str) {
    page.wait_text("#status", "Look at the session", PAGE);
    let facts = page.text("#facts");
    assert!(facts.contains("secure_stats.py") && facts.contains("--seed 11"), "{facts}");
    assert!(facts.contains(host_did_short), "the host, short: {facts}");
    let sha = sha256_hex(&mpyc::program("secure_stats.py"));
    assert!(facts.contains(&sha), "the digest: {facts}");
    assert!(facts.contains("Threshold") && facts.contains("Parties\n2"), "{facts}");
    let roster = page.text("#roster");
    assert!(roster.contains("you") && roster.contains("host"), "{roster}");
    let proof = page.text("#proof");
    let address = &account[account.rfind(':').unwrap() + 1..];
    assert!(proof.contains("Sign-In with Ethereum") && proof.contains(address), "the proof asked: {proof}");
    assert!(page.enabled("#sign") && !page.enabled("#join") && page.enabled("#decline"), "sign in first");
}

fn sha256_hex(p: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(p).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn short(did: &str) -> String {
    let id = did.rsplit(':').next().unwrap();
    let method = &did[..did.len() - id.len()];
    format!("{method}{}…{}", &id[..4], &id[id.len() - 4..])
}

#[test]
fn the_right_account_signs_in_the_browser_joins_and_the_pages_show_the_result() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let keys = support::temp_path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (key, acct) = account(&keys, "good.key");
    let mut s = setup("right", |d1| vec!["--require-account".into(), format!("{d1}={acct}")]);
    let s = &mut s;
    let (invitee, mut ev, url) = join_in_browser(s, &[]);
    let page = s.driver.browser(Some(&wallet(&key, "sign")));
    page.goto(&url);
    shows_the_session(&page, &short(&s.host_did), &acct);

    // Sign in: the wallet is asked for its account, then signs the exact message didmpc made.
    page.click("#sign");
    let signed = page.wait_text("#signed-in", "Verified here as the host will", PAGE);
    assert!(signed.to_lowercase().contains(&acct.to_lowercase()), "{signed}");
    let asked = page.exec("return window.__walletLog.map(x => x.method)", vec![]);
    assert_eq!(asked, json!(["eth_requestAccounts", "eth_chainId", "personal_sign"]));
    let hex = page.exec("return window.__walletLog[2].params[0]", vec![]).as_str().unwrap().to_owned();
    let bytes: Vec<u8> = (2..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let message = String::from_utf8(bytes).unwrap();
    assert!(message.contains(".didmpc wants you to sign in with your Ethereum account:"), "{message}");
    assert!(message.contains(&format!("URI: {}", s.d1)), "the message names our DID: {message}");
    assert!(!ev.any("joining"), "nothing is sent before the user says Join");
    assert!(page.enabled("#join"));
    page.screenshot(&screenshot_dir().join("join-signed-in.png"));

    // Join: the host's page shows pid 1 joined with the verified account; the host starts.
    page.click("#join");
    ev.wait("joining", PAGE);
    page.wait_text("#status", "Waiting for the host to start", PAGE);
    s.host_page.wait("the Start button", PAGE, |b| b.enabled("#start"));
    let row = s.host_page.text("#roster tbody tr:nth-child(2)");
    assert!(row.contains("joined") && row.to_lowercase().contains(&acct.to_lowercase()), "{row}");
    s.host_page.screenshot(&screenshot_dir().join("invite-everyone-joined.png"));
    s.host_page.click("#start");

    // The run: both pages end with the program's RESULT line.
    let seen = page.wait_text("#output", "RESULT ", RUN);
    page.wait_text("#outcome", "Finished as pid 1", RUN);
    s.host_page.wait_text("#outcome", "Finished as pid 0", RUN);
    page.screenshot(&screenshot_dir().join("join-finished.png"));
    s.host_page.screenshot(&screenshot_dir().join("invite-finished.png"));
    let (ok, _, err1) = invitee.wait(RUN);
    assert!(ok, "the invitee failed: {err1}");
    let (ok, err0) = s.host_ends(RUN);
    assert!(ok, "the host failed: {err0}");
    let r1 = result_of(ev.all()).expect("invitee RESULT");
    let r0 = result_of(s.host_events.all()).expect("host RESULT");
    assert_eq!(r0, r1);
    let on_page = seen.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(on_page).unwrap(), r1, "the page shows the same result");
    let (plain, _) = mpyc::plain("secure_stats.py", 2, &["--seed", "11"], false, &s.dir1);
    assert_eq!(r1, plain, "didmpc and plain TCP agree");
    let st = s.host_page.text("#roster");
    assert!(st.contains("connected"), "the host's page shows the session up: {st}");
}

#[test]
fn a_wrong_account_is_refused_on_the_page_and_nothing_joins() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let keys = support::temp_path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (_, wanted) = account(&keys, "wanted.key");
    let (other_key, other) = account(&keys, "other.key");
    let mut s = setup("wrong", |_| vec!["--require-account".into(), wanted.clone()]);
    let (invitee, mut ev, url) = join_in_browser(&s, &[]);
    let page = s.driver.browser(Some(&wallet(&other_key, "sign")));
    page.goto(&url);
    page.wait_text("#status", "Look at the session", PAGE);
    page.click("#sign");
    let notice = page.wait_text("#notice", "wrong-account", PAGE);
    assert!(notice.contains("The host would refuse this signature"), "{notice}");
    let address = &other[other.rfind(':').unwrap() + 1..];
    assert!(notice.to_lowercase().contains(&address.to_lowercase()), "names the account: {notice}");
    assert!(!page.enabled("#join"), "no Join with a refused signature");
    assert!(page.text("#signed-in").is_empty());
    page.screenshot(&screenshot_dir().join("join-wrong-account.png"));
    // Nothing reached the host: no join, no refusal, its page still waits.
    std::thread::sleep(Duration::from_secs(1));
    assert!(!s.host_events.any("joined") && !s.host_events.any("refused"), "{:?}", s.host_events.all());
    assert!(!ev.any("joining"));
    assert!(s.host_page.text("#roster tbody tr:nth-child(2)").contains("invitation delivered"));

    // The token and origin checks, against this running page.
    token_and_origin_checks(&page, &url, &s);

    // Declining tells the host, who calls the session off with the reason.
    page.click("#decline");
    page.wait_text("#status", "You did not join", PAGE);
    let (ok, _, err) = invitee.wait(PAGE);
    assert!(!ok && err.contains("declined"), "{err}");
    let (ok, err0) = s.host_ends(PAGE);
    assert!(!ok && err0.contains("declined in the lobby page"), "the host is told why: {err0}");
    s.host_page.wait_text("#outcome", "declined", PAGE);
    assert!(!s.h1.join(gateway::status::STATUS_FILE).exists(), "no session was set up for the invitee");
}

/// 403 without the token, with another origin, for a rebinding Host; and a real page of
/// another origin cannot read the API even with the token.
fn token_and_origin_checks(page: &Browser, url: &str, s: &Setup) {
    let base = url.split("/t/").next().unwrap().to_owned();
    let token = url.split("/t/").nth(1).unwrap().trim_end_matches('/').to_owned();
    let http = reqwest::blocking::Client::new();
    let status = |path: &str, headers: &[(&str, &str)]| {
        let mut r = http.get(format!("{base}{path}"));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(status("/", &[]), 403, "no token");
    assert_eq!(status("/api/state", &[]), 403, "no token header");
    assert_eq!(status("/api/state", &[("x-didmpc-token", &token)]), 200);
    assert_eq!(status("/api/state", &[("x-didmpc-token", &token), ("origin", "http://evil.example")]), 403);
    let port = base.rsplit(':').next().unwrap();
    assert_eq!(status("/api/state", &[("x-didmpc-token", &token), ("host", &format!("evil.example:{port}"))]), 403);
    let r = http
        .post(format!("{base}/api/decline"))
        .header("x-didmpc-token", &token)
        .header("origin", "http://evil.example")
        .json(&json!({"reason": "forged"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "another origin cannot decline for the user");
    // In Chromium: a page of another origin (the mediator's) fetching the lobby's API.
    let other = s.driver.browser(None);
    other.goto(&s.lab.url);
    let got = other.exec_async(
        "const done = arguments[arguments.length - 1];
         fetch(arguments[0] + '/api/state', { headers: { 'x-didmpc-token': arguments[1] } })
           .then(r => done('status ' + r.status), e => done('blocked: ' + e.name));",
        vec![json!(base), json!(token)],
    );
    assert_eq!(got, json!("blocked: TypeError"), "another origin reads nothing");
    let got = other.exec_async(
        "const done = arguments[arguments.length - 1];
         fetch(arguments[0] + '/api/decline', { method: 'POST', mode: 'no-cors', body: '{}' })
           .then(r => done('sent ' + r.type), e => done('blocked: ' + e.name));",
        vec![json!(base)],
    );
    assert!(
        got.as_str().unwrap_or_default().starts_with("sent") || got.as_str().unwrap_or_default().starts_with("blocked")
    );
    assert!(page.text("#status").contains("Look at the session"), "nothing changed on the user's page");
}

#[test]
fn rejecting_the_signature_in_the_wallet_declines_and_nothing_joins() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let keys = support::temp_path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (key, acct) = account(&keys, "mine.key");
    let mut s = setup("reject", |_| vec!["--require-account".into(), acct.clone()]);
    let (invitee, _ev, url) = join_in_browser(&s, &[]);
    let page = s.driver.browser(Some(&wallet(&key, "reject")));
    page.goto(&url);
    page.wait_text("#status", "Look at the session", PAGE);
    page.click("#sign");
    let notice = page.wait_text("#notice", "rejected", PAGE);
    assert!(notice.contains("You rejected the request in your wallet"), "{notice}");
    page.wait_text("#status", "You did not join", PAGE);
    page.wait_text("#outcome", "Not joined", PAGE);
    page.screenshot(&screenshot_dir().join("join-rejected.png"));
    let (ok, _, err) = invitee.wait(PAGE);
    assert!(!ok && err.contains("rejected the wallet's signature request"), "{err}");
    let (ok, err0) = s.host_ends(PAGE);
    assert!(!ok && err0.contains("rejected the wallet's signature request"), "the host is told why: {err0}");
    assert!(!s.host_events.any("joined"));
    let outcome = s.host_page.wait_text("#outcome", "rejected the wallet's signature request", PAGE);
    assert!(outcome.contains("declined"), "{outcome}");
    assert!(!s.h1.join(gateway::status::STATUS_FILE).exists(), "no session was set up for the invitee");
}

#[test]
fn the_hosts_cancel_aborts_the_session_for_a_waiting_invitee() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = setup("cancel", |_| Vec::new());
    // A command-line invitee (no proof asked): it joins and waits for the host's go.
    let mut c = didmpc(&s.h1, &s.dir1);
    c.args(["join", &s.link, "--yes", "--min-threshold", "0", "--python"]).arg(mpyc::python());
    let invitee = Running::spawn(c, "invitee");
    s.host_page.wait("the Start button", RUN, |b| b.enabled("#start"));
    assert!(s.host_page.text("#status").contains("Everyone joined"));
    s.host_page.screenshot(&screenshot_dir().join("invite-ready.png"));
    s.host_page.click("#cancel");
    s.host_page.wait("the confirmation", PAGE, |b| b.enabled("#cancel-yes"));
    s.host_page.click("#cancel-yes");
    let (ok, _, err) = invitee.wait(PAGE);
    assert!(!ok && err.contains("the host cancelled the session"), "the invitee gets abort: {err}");
    let (ok, err0) = s.host_ends(PAGE);
    assert!(!ok && err0.contains("cancelled"), "{err0}");
    s.host_page.wait_text("#outcome", "cancelled", PAGE);
    assert!(!s.h1.join(gateway::status::STATUS_FILE).exists(), "nothing ran");
}

#[test]
fn the_proof_page_keeps_a_wallet_signature_for_a_later_join() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let keys = support::temp_path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (key, acct) = account(&keys, "later.key");
    let mut s = setup("proof", |d1| vec!["--require-account".into(), format!("{d1}={acct}")]);
    // `proof siwe --browser`: its URL is on stderr (no --json for this command).
    let mut c = didmpc(&s.h1, &s.dir1);
    c.args(["proof", "siwe", &s.link, "--browser", "--no-open"]);
    let mut proof = Running::spawn(c, "proof siwe");
    let err = proof.stderr_lines();
    let url = err
        .iter()
        .find_map(|l| l.trim().strip_prefix("http://").map(|rest| format!("http://{rest}")))
        .expect("the page's URL on stderr");
    let page = s.driver.browser(Some(&wallet(&key, "sign")));
    page.goto(&url);
    page.wait_text("#status", "Sign in with your wallet to make your proof", PAGE);
    assert!(page.text("#decide").is_empty(), "no Join on the proof page");
    page.click("#sign");
    page.wait_text("#outcome", "Your proof is kept", PAGE);
    let rest: Vec<String> = err.iter().collect();
    let (ok, _, _) = proof.wait(PAGE);
    assert!(ok, "proof siwe failed: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("verified: account")), "{rest:?}");
    // The kept proof is what a plain `join` presents; the host admits it and starts.
    let id = s.host_events.wait("invitation", PAGE)["session"].as_str().unwrap().to_owned();
    let mut c = didmpc(&s.h1, &s.dir1);
    c.args(["join", &id, "--yes", "--min-threshold", "0", "--python"]).arg(mpyc::python());
    let invitee = Running::spawn(c, "invitee");
    s.host_page.wait("the Start button", RUN, |b| b.enabled("#start"));
    let row = s.host_page.text("#roster tbody tr:nth-child(2)");
    assert!(row.to_lowercase().contains(&acct.to_lowercase()), "{row}");
    s.host_page.click("#start");
    let (ok, out1, err1) = invitee.wait(RUN);
    assert!(ok, "the invitee failed: {err1}");
    assert!(err1.contains("presenting the proof made with `didmpc proof`"), "{err1}");
    let (ok, err0) = s.host_ends(RUN);
    assert!(ok, "{err0}");
    assert_eq!(mpyc::result_of(&out1), result_of(s.host_events.all()));
}
