//! Drives the didcomm-python 0.3.2 interop oracle (`tests/interop/python/`).
//!
//! [`Oracle::start`] makes sure the pinned venv exists (by running `setup-venv.sh`
//! once per test binary), then spawns `didcomm_oracle.py`, which speaks one JSON
//! request per line on stdin and answers one JSON line on stdout. Nothing here ever
//! skips: if the venv or the oracle is unavailable the test panics and says what
//! to run. Every call has a timeout, so a wedged oracle fails the test instead of
//! hanging it.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest wait for one oracle answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for `setup-venv.sh` (a first install downloads and builds packages).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(900);
/// How much of the oracle's stderr is kept for failure messages.
const STDERR_KEEP: usize = 64;

/// The repository root (the root package's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The oracle's directory.
pub fn oracle_dir() -> PathBuf {
    repo_root().join("tests/interop/python")
}

fn how_to_fix() -> String {
    format!(
        "The Python interop oracle (PyPI didcomm 0.3.2) is required for this test; it is never skipped.\n\
         Set it up by hand and read the errors:\n    \
         cd {} && bash tests/interop/python/setup-venv.sh\n\
         It needs python3 (3.11 here) with the venv module, and PyPI access on the first run \
         (override the interpreter with DIDMPC_PYTHON, the cache with DIDMPC_CACHE_DIR).\n\
         Then check the oracle answers:\n    \
         echo '{{\"op\":\"version\"}}' | \"$(bash tests/interop/python/setup-venv.sh | tail -n1)\" \
         tests/interop/python/didcomm_oracle.py --debug\n\
         See tests/interop/python/README.md.",
        repo_root().display()
    )
}

/// Runs `setup-venv.sh` once per process; returns the venv's python.
pub fn venv_python() -> PathBuf {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PY.get_or_init(setup_venv) {
        Ok(p) => p.clone(),
        Err(e) => panic!(
            "\n==== PYTHON INTEROP ORACLE UNAVAILABLE ====\n{e}\n\n{}\n===========================================\n",
            how_to_fix()
        ),
    }
}

fn setup_venv() -> Result<PathBuf, String> {
    let script = oracle_dir().join("setup-venv.sh");
    if !script.is_file() {
        return Err(format!("{} is missing", script.display()));
    }
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(&script)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `bash {}`: {e}", script.display()))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if started.elapsed() > SETUP_TIMEOUT => {
                // Our own child: stop it, then report.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "setup-venv.sh did not finish within {SETUP_TIMEOUT:?}; its stderr:\n{}",
                    err.join().unwrap_or_default()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for setup-venv.sh: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("setup-venv.sh failed ({status}); its stderr:\n{stderr}"));
    }
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let py =
        PathBuf::from(line.ok_or_else(|| format!("setup-venv.sh printed no python path; stderr:\n{stderr}"))?.trim());
    if !py.is_file() {
        return Err(format!("setup-venv.sh printed {}, which is not a file; stderr:\n{stderr}", py.display()));
    }
    Ok(py)
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

/// One running oracle process.
pub struct Oracle {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    next_id: u64,
}

impl Oracle {
    /// Sets up the venv (once per process) and starts an oracle, checking it answers
    /// `version` with didcomm 0.3.2. Panics with instructions when anything fails.
    pub fn start() -> Oracle {
        let py = venv_python();
        let mut oracle = Oracle::spawn(&py).unwrap_or_else(|e| {
            panic!(
                "\n==== PYTHON INTEROP ORACLE DID NOT START ====\n{e}\n\n{}\n=============================================\n",
                how_to_fix()
            )
        });
        let v = oracle.ok(serde_json::json!({"op": "version"}));
        assert_eq!(v["didcomm"], "0.3.2", "the oracle runs didcomm {} instead of the pinned 0.3.2: {v}", v["didcomm"]);
        oracle
    }

    fn spawn(py: &Path) -> Result<Oracle, String> {
        let script = oracle_dir().join("didcomm_oracle.py");
        let mut child = Command::new(py)
            .arg(&script)
            .arg("--debug")
            .current_dir(repo_root())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {} {}: {e}", py.display(), script.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr_pipe = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let keep = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
                if k.len() == STDERR_KEEP {
                    k.pop_front();
                }
                k.push_back(line);
            }
        });
        Ok(Oracle { stdin: child.stdin.take(), child, lines, stderr, next_id: 1 })
    }

    fn stderr_tail(&self) -> String {
        let k = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        k.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Sends one request (a JSON object) and returns the oracle's answer, whether
    /// `ok` or not. Panics if the oracle dies, answers garbage or takes longer than
    /// [`CALL_TIMEOUT`].
    pub fn call(&mut self, mut req: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let op = req["op"].as_str().unwrap_or("?").to_owned();
        req.as_object_mut().expect("an oracle request is a JSON object").insert("id".into(), id.into());
        let line = format!("{req}\n");
        let write = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin closed"))
            .and_then(|s| s.write_all(line.as_bytes()).and_then(|_| s.flush()));
        if let Err(e) = write {
            panic!(
                "cannot send `{op}` to the Python oracle ({e}); it has probably exited. Its stderr:\n{}\n\n{}",
                self.stderr_tail(),
                how_to_fix()
            );
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(text) => {
                    let resp: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("the oracle answered `{op}` with non-JSON ({e}): {text}"));
                    // A stale answer (to a request that timed out) is skipped.
                    if resp["id"] == id {
                        return resp;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "the Python oracle did not answer `{op}` within {CALL_TIMEOUT:?}. Its stderr:\n{}",
                    self.stderr_tail()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "the Python oracle exited ({status:?}) while handling `{op}`. Its stderr:\n{}\n\n{}",
                        self.stderr_tail(),
                        how_to_fix()
                    )
                }
            }
        }
    }

    /// Like [`Oracle::call`], but panics unless the answer is `ok`.
    pub fn ok(&mut self, req: Value) -> Value {
        let what = req["op"].as_str().unwrap_or("?").to_owned();
        let resp = self.call(req);
        if resp["ok"] != true {
            panic!(
                "the Python oracle refused `{what}`: {}\ncauses: {}\nwarnings: {}\nstderr:\n{}",
                resp["error"],
                resp["causes"],
                resp["warnings"],
                self.stderr_tail()
            );
        }
        resp
    }

    /// Like [`Oracle::call`], but panics unless the answer is an error; returns the error text.
    pub fn err(&mut self, req: Value) -> String {
        let what = req["op"].as_str().unwrap_or("?").to_owned();
        let resp = self.call(req);
        assert_eq!(resp["ok"], false, "the Python oracle was expected to refuse `{what}` but answered {resp}");
        format!("{} {}", resp["error"], resp["causes"])
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        // EOF on stdin ends the oracle; give it a moment, then stop it.
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
