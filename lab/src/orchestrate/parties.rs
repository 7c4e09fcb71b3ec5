//! Running one MPC session's processes (one per party, each in its home) and reading what
//! MPyC printed: the program's `RESULT {json}` line and MPyC's own
//! `Stop MPyC -- elapsed time: H:MM:SS.ffffff|bytes sent: N`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use super::sys::Proc;

/// How long the others may go on after one party failed (MPyC parties whose peer is gone
/// usually wait forever).
const GRACE: Duration = Duration::from_secs(10);

/// What one session's processes did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// From starting the first process to the last exit; `None` if the run timed out.
    pub wall_s: Option<f64>,
    /// Every process exited 0.
    pub all_exited_ok: bool,
    /// Each party's RESULT (parsed), if printed.
    pub results: Vec<Option<Value>>,
    /// The longest MPyC run (sum of a party's `elapsed time`s), seconds.
    pub mpc_s: Option<f64>,
    /// Bytes each party's MPyC sent, by its own count.
    pub mpyc_bytes_sent: Vec<Option<u64>>,
    /// Each party's stderr lines (the didmpc CLI reports its phases there).
    pub stderr: Vec<Vec<String>>,
    /// Transcripts of the processes that failed (for the log).
    pub failures: Vec<String>,
}

impl Outcome {
    /// Every party printed the same RESULT as `reference`.
    pub fn matches(&self, reference: &Value) -> bool {
        self.all_exited_ok && !self.results.is_empty() && self.results.iter().all(|r| r.as_ref() == Some(reference))
    }
}

/// Starts every command at once and waits for all (killing the rest `GRACE` after one
/// failed, or everything after `timeout`).
pub fn run_all(cmds: Vec<(String, Command)>, timeout: Duration) -> Result<Outcome> {
    let t0 = Instant::now();
    let mut procs = Vec::new();
    for (what, mut cmd) in cmds {
        procs.push(Proc::spawn(&mut cmd, &what)?);
    }
    let mut deadline = t0 + timeout;
    let mut ends: Vec<Option<(std::process::ExitStatus, Instant)>> = vec![None; procs.len()];
    let mut timed_out = false;
    loop {
        for (i, p) in procs.iter_mut().enumerate() {
            if ends[i].is_none() {
                ends[i] = p.poll();
                if let Some((st, at)) = ends[i] {
                    if !st.success() {
                        deadline = deadline.min(at + GRACE);
                    }
                }
            }
        }
        if ends.iter().all(Option::is_some) {
            break;
        }
        if Instant::now() > deadline {
            timed_out = Instant::now() >= t0 + timeout;
            for (i, p) in procs.iter_mut().enumerate() {
                if ends[i].is_none() {
                    p.wait_until(Instant::now());
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let the output readers collect the last lines.
    std::thread::sleep(Duration::from_millis(50));
    let mut out = Outcome {
        all_exited_ok: ends.iter().all(|e| matches!(e, Some((st, _)) if st.success())),
        ..Outcome::default()
    };
    if !timed_out && out.all_exited_ok {
        let last = ends.iter().flatten().map(|(_, at)| *at).max().unwrap_or(t0);
        out.wall_s = Some((last - t0).as_secs_f64());
    }
    let mut mpc = Vec::new();
    for (i, p) in procs.iter().enumerate() {
        let lines = p.stdout();
        out.results.push(result_of(&lines));
        let (elapsed, bytes) = mpyc_stats(&lines);
        mpc.push(elapsed);
        out.mpyc_bytes_sent.push(bytes);
        out.stderr.push(p.stderr());
        if !matches!(ends[i], Some((st, _)) if st.success()) || out.results[i].is_none() {
            out.failures.push(p.transcript());
        }
    }
    if mpc.iter().all(Option::is_some) && !mpc.is_empty() {
        out.mpc_s = mpc.into_iter().flatten().reduce(f64::max);
    }
    Ok(out)
}

/// The last `RESULT {json}` line, parsed.
pub fn result_of(lines: &[String]) -> Option<Value> {
    lines.iter().rev().find_map(|l| l.strip_prefix("RESULT ")).and_then(|j| serde_json::from_str(j).ok())
}

/// MPyC's own run time (sum over its start/shutdown cycles) and bytes sent.
pub fn mpyc_stats(lines: &[String]) -> (Option<f64>, Option<u64>) {
    let mut total: Option<f64> = None;
    let mut bytes: Option<u64> = None;
    for l in lines {
        let Some(rest) = l.split("Stop MPyC -- elapsed time: ").nth(1) else { continue };
        let (time, tail) = rest.split_once('|').unwrap_or((rest, ""));
        if let Some(s) = hms(time.trim()) {
            *total.get_or_insert(0.0) += s;
        }
        if let Some(b) = tail.strip_prefix("bytes sent: ").and_then(|b| b.trim().parse::<u64>().ok()) {
            *bytes.get_or_insert(0) += b;
        }
    }
    (total, bytes)
}

/// `H:MM:SS[.ffffff]` in seconds.
fn hms(s: &str) -> Option<f64> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + sec.parse::<f64>().ok()?)
}

/// A working directory per party holding a copy of the program (MPyC and didmpc look for it
/// there); returns the directories.
pub fn workdirs(root: &Path, n: usize, program: &Path) -> Result<Vec<PathBuf>> {
    let name = program.file_name().context("program file name")?;
    (0..n)
        .map(|i| {
            let d = root.join(format!("p{i}"));
            std::fs::create_dir_all(&d)?;
            std::fs::copy(program, d.join(name)).with_context(|| format!("copying {}", program.display()))?;
            Ok(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mpyc_output() {
        let lines: Vec<String> = [
            "2026-12-03 09:47:27,066 Start MPyC runtime v0.11",
            "2026-12-03 09:47:27,210 Stop MPyC -- elapsed time: 0:00:01.144|bytes sent: 26072",
            "2026-12-03 09:47:28,210 Stop MPyC -- elapsed time: 0:01:00.5|bytes sent: 10",
            "RESULT {\"a\":1}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (t, b) = mpyc_stats(&lines);
        assert!((t.unwrap() - 61.644).abs() < 1e-9);
        assert_eq!(b, Some(26082));
        assert_eq!(result_of(&lines), Some(serde_json::json!({"a": 1})));
        assert_eq!(result_of(&lines[..2]), None);
        assert_eq!(hms("1:2"), None);
    }
}
