//! Processes and network namespaces: commands run to completion or in the background, lines
//! collected, namespaces created fresh and deleted with everything left running in them.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Proxy variables removed from everything the lab runs: nothing may try to leave.
const PROXY_VARS: [&str; 8] =
    ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"];

/// `program` inside namespace `ns` (`ip netns exec`), proxies removed.
pub fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    c
}

/// Runs `cmd` (stdin closed) and fails with its stderr unless it exits 0; its stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with `input` on stdin; fails unless it exits 0.
pub fn run_with_input(cmd: &mut Command, input: &str) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args)).map(|_| ())
}

/// A background process whose output is collected line by line (with arrival times);
/// killed on drop.
pub struct Proc {
    what: String,
    child: Child,
    stdout: Lines,
    stderr: Lines,
    exited: Option<(ExitStatus, Instant)>,
}

type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

impl Proc {
    /// Starts `cmd` with stdout/stderr collected; stdin is a pipe kept open (closing it is a
    /// signal some lab processes wait for) unless `stdin_null`.
    pub fn spawn(cmd: &mut Command, what: &str) -> Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("{what}: cannot start {cmd:?}"))?;
        let stdout = collect(child.stdout.take().context("stdout")?);
        let stderr = collect(child.stderr.take().context("stderr")?);
        Ok(Proc { what: what.into(), child, stdout, stderr, exited: None })
    }

    /// Its stdout lines so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, l)| l.clone()).collect()
    }

    /// Its stderr lines so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, l)| l.clone()).collect()
    }

    /// Closes its stdin.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits for a stdout line satisfying `pred`; fails (with the transcript) on exit or
    /// after `timeout`.
    pub fn wait_for_line(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.stdout().into_iter().find(|l| pred(l)) {
                return Ok(l);
            }
            if let Some((st, _)) = self.poll() {
                std::thread::sleep(Duration::from_millis(100));
                bail!("{} exited ({st}) before it was ready\n{}", self.what, self.transcript());
            }
            if Instant::now() > deadline {
                bail!("{} not ready after {timeout:?}\n{}", self.what, self.transcript());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its exit status and time, if it has exited (checked now).
    pub fn poll(&mut self) -> Option<(ExitStatus, Instant)> {
        if self.exited.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some((st, Instant::now()));
            }
        }
        self.exited
    }

    /// Waits until it exits (polling every few ms, so the exit time is accurate), or kills it
    /// after `deadline`; its status and exit time, `None` if killed.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<(ExitStatus, Instant)> {
        loop {
            if let Some(x) = self.poll() {
                return Some(x);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Everything it printed so far.
    pub fn transcript(&self) -> String {
        let join = |l: &Lines| {
            l.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join("\n")
        };
        format!("--- stdout of {w}\n{}\n--- stderr of {w}\n{}", join(&self.stdout), join(&self.stderr), w = self.what)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(r: impl std::io::Read + Send + 'static) -> Lines {
    let buf: Lines = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => b.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), l)),
                Err(_) => break,
            }
        }
    });
    buf
}

/// The names of the existing network namespaces.
pub fn netns_list() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let Ok(out) = out else { return vec![] };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Kills every process inside `ns` (TERM, then KILL), then deletes it. Best effort.
pub fn delete_ns(ns: &str) {
    let pids = |ns: &str| -> Vec<String> {
        match Command::new("ip").args(["netns", "pids", ns]).output() {
            Ok(o) => String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect(),
            Err(_) => vec![],
        }
    };
    let first = pids(ns);
    if !first.is_empty() {
        let _ = Command::new("kill").arg("-TERM").args(&first).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_millis(500);
        while !pids(ns).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = pids(ns);
        if left.is_empty() || Instant::now() > deadline {
            break;
        }
        let _ = Command::new("kill").arg("-KILL").args(&left).stderr(Stdio::null()).status();
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = ip(&["netns", "delete", ns]) {
        eprintln!("lab: cannot delete namespace {ns}: {e}");
    }
}

/// Fails loudly unless we are root with `ip`, `nft` and `ethtool`.
pub fn preflight(extra: &[&str]) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    if euid != Some("0") {
        bail!("the WAN lab builds network namespaces: run it as root (scripts/lab.sh does)");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for prog in ["ip", "nft", "ethtool", "sysctl"].iter().chain(extra) {
        if !std::env::split_paths(&path).any(|d| d.join(prog).is_file()) {
            bail!("`{prog}` is not installed: scripts/setup-system.sh --lab installs what the lab needs");
        }
    }
    Ok(())
}
