//! A DIDComm client nobody here wrote drives our mediator: the reference Python
//! implementation (PyPI didcomm 0.3.2, with httpx and websockets) runs
//! `tests/interop/python/mediator_client.py` against a mediator started in-process on
//! 127.0.0.1:0 with a temporary database.
//!
//! The script prints one JSON line per step (`{"step", "ok", "detail"}`); this test
//! requires exit status 0 and exactly the steps in [`STEPS`], in order, each `ok:true`,
//! so a step that is skipped, renamed or added silently fails here. It never skips:
//! without the venv it fails and says how to set it up (see `support/python.rs`).

#[path = "support/python.rs"]
mod python;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use mediator::{Config, Mediator};
use serde_json::Value;

/// Longest run of the Python scenario.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

/// Every step the scenario must print, in order.
const STEPS: &[&str] = &[
    "health",
    "invitation",
    "identities",
    "http.discover-features",
    "http.trust-ping",
    "http.cm2.mediate-request",
    "http.cm2.keylist-update",
    "http.cm2.keylist-query",
    "http.cm3.mediate-request",
    "http.cm3.recipient-update",
    "http.cm3.recipient-query",
    "bob.send-3-via-forward",
    "http.pickup.status-request",
    "http.pickup.status-request.recipient_did",
    "http.pickup.delivery-request",
    "http.pickup.messages-received",
    "http.pickup.live-delivery-change.refused",
    "routing.did-as-endpoint",
    "negative.forward-unregistered-did",
    "negative.keylist-update-before-mediate-request",
    "ws.discover-features",
    "ws.trust-ping.protected-sender",
    "ws.signed.status-request",
    "ws.cm2.mediate-request+keylist",
    "ws.cm3.mediate-request+recipient",
    "ws.pickup.status-request",
    "ws.pickup.delivery-request",
    "ws.pickup.messages-received",
    "ws.pickup.delivery-request.empty",
    "ws.pickup.live-delivery-change",
    "ws.pickup.live-delivery",
    "ws.pickup.live-messages-received",
    "ws.pickup.final-status",
    "ws.reconnect.live-mode-off",
];

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("didmpc-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the Python scenario did.
struct Run {
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `py script base_url` with a deadline; kills it (our own child) on timeout.
fn run_scenario(py: &Path, script: &Path, base_url: &str) -> Run {
    let started = Instant::now();
    let mut child = Command::new(py)
        .arg(script)
        .arg(base_url)
        .current_dir(python::repo_root())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} {}: {e}", py.display(), script.display()));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if started.elapsed() > SCENARIO_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for the Python scenario: {e}"),
        }
    };
    Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn python_didcomm_client_drives_the_mediator() {
    // Fails loudly (never skips) when the venv cannot be set up.
    let py = python::venv_python();
    let script = python::oracle_dir().join("mediator_client.py");
    assert!(script.is_file(), "{} is missing", script.display());

    let tmp = TempDir::new("interop-mediator");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    let (base_url, stop, server) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let mut cfg = Config::default();
        cfg.store.db = tmp.path().join("mediator.db");
        cfg.server.listen = addr;
        cfg.server.shutdown_grace_secs = 1;
        let m = Mediator::open(cfg, addr).await.expect("the mediator opens its temporary store");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(mediator::serve(listener, m, async move {
            let _ = stopped.await;
        }));
        (format!("http://{addr}"), stop, server)
    });

    let run = run_scenario(&py, &script, &base_url);

    let _ = stop.send(());
    let served = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await });
    match served {
        Ok(Ok(Ok(()))) => {}
        other => panic!("the mediator did not shut down cleanly: {other:?}"),
    }

    let mut steps: Vec<(String, bool, Value)> = Vec::new();
    for line in run.stdout.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("the scenario printed a non-JSON line ({e}): {line}"));
        let name = v["step"].as_str().unwrap_or_else(|| panic!("a line without `step`: {line}"));
        steps.push((name.to_owned(), v["ok"] == true, v["detail"].clone()));
    }
    for (name, ok, detail) in &steps {
        eprintln!("{} {name}: {detail}", if *ok { "ok  " } else { "FAIL" });
    }
    eprintln!("python scenario: {} steps in {:.2?} against {base_url}", steps.len(), run.elapsed);

    let context = || {
        format!("\n--- scenario stdout ---\n{}\n--- scenario stderr (tail) ---\n{}", run.stdout, tail(&run.stderr, 60))
    };
    let Some(status) = run.status else {
        panic!("the Python scenario did not finish within {SCENARIO_TIMEOUT:?}{}", context());
    };
    if let Some((name, _, detail)) = steps.iter().find(|(_, ok, _)| !ok) {
        panic!("step `{name}` failed: {detail}{}", context());
    }
    assert!(status.success(), "the Python scenario exited with {status}{}", context());
    let printed: Vec<&str> = steps.iter().map(|(n, _, _)| n.as_str()).collect();
    for want in STEPS {
        assert!(printed.contains(want), "step `{want}` was never reported{}", context());
    }
    assert_eq!(printed, STEPS, "the scenario's steps differ from the list in this test{}", context());
}
