//! Parties as `didmpc` processes for end-to-end tests: a mediator process, `init`,
//! `invite`, `join`, each CLI process in its own process group.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::mpyc;
use super::support::{free_port, temp_path, Process};

pub fn didmpc(home: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_didmpc"));
    c.arg("--home").arg(home).current_dir(cwd).env("RUST_LOG", "warn");
    c
}

/// `init` a party at the mediator; returns (home, DID).
pub fn party(url: &str) -> (PathBuf, String) {
    let home = temp_path("home");
    let out = didmpc(&home, &std::env::temp_dir()).args(["init", "--mediator", url]).output().unwrap();
    assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
    (home, String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

/// A running CLI process in its own process group (so MPyC dies with it when killed).
pub struct Running {
    pub child: Child,
    pub name: String,
    /// stderr, read as it comes (a chatty process must never block on a full pipe).
    stderr: Option<std::thread::JoinHandle<String>>,
    /// The same lines as they come, for tests that watch them ([`Running::stderr_lines`]).
    lines: Option<std::sync::mpsc::Receiver<String>>,
}

impl Running {
    pub fn spawn(mut cmd: Command, name: &str) -> Running {
        use std::os::unix::process::CommandExt;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().unwrap();
        let pipe = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        Running { child, name: name.to_owned(), stderr: Some(stderr), lines: Some(rx) }
    }

    /// stderr's lines as they are written, until the process closes it (callable once).
    pub fn stderr_lines(&mut self) -> std::sync::mpsc::Receiver<String> {
        self.lines.take().expect("stderr_lines is taken once")
    }

    /// Waits up to `limit`; returns (success, stdout, stderr).
    pub fn wait(mut self, limit: Duration) -> (bool, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                self.kill_group();
                let (o, e) = self.output();
                panic!("{} did not finish within {limit:?}\nstdout:\n{o}\nstderr:\n{e}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (o, e) = self.output();
        (status.success(), o, e)
    }

    pub fn output(&mut self) -> (String, String) {
        let (mut o, mut e) = (String::new(), String::new());
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut o);
        }
        if let Some(h) = self.stderr.take() {
            e = h.join().unwrap_or_default();
        }
        (o, e)
    }

    pub fn kill_group(&mut self) {
        let _ = Command::new("kill").args(["-9", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill_group();
        }
    }
}

pub struct Lab {
    pub mediator: Process,
    pub url: String,
}

pub fn lab() -> Lab {
    let db = temp_path("mediator.db");
    let m = Process::start(free_port(), &db, &db.parent().unwrap().join("mhome"));
    Lab { url: m.url.clone(), mediator: m }
}

pub fn invite(home: &Path, cwd: &Path, dids: &[String], program: &str, extra: &[&str], args: &[&str]) -> Running {
    let mut c = didmpc(home, cwd);
    c.arg("invite").args(dids).args(["--program", program, "--python"]).arg(mpyc::python()).args(extra);
    c.arg("--").args(args);
    Running::spawn(c, "host")
}

/// `join next --yes --from HOST`: the next invitation from `host`, without asking.
pub fn join(home: &Path, cwd: &Path, name: &str, host: &str) -> Running {
    join_with(home, cwd, name, host, &[])
}

/// [`join`] with extra options (e.g. `--min-threshold 0` for a two-party session).
pub fn join_with(home: &Path, cwd: &Path, name: &str, host: &str, extra: &[&str]) -> Running {
    let mut c = didmpc(home, cwd);
    c.args(["join", "next", "--yes", "--from", host, "--wait", "120", "--python"]).arg(mpyc::python()).args(extra);
    Running::spawn(c, name)
}
