//! A `didmpc` MPC session across the NAT lab: the mediator in the public namespace, every party
//! `init`ed, party 0's `invite` and the others' `join`; their `status`, the path assertions, and
//! the punching table. Used by `tests/nat_lab.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::mpyc;
use crate::nat_probe::{args, probe_all, SECOND};
use crate::netns::{output_within, Background, Lab};

/// A temp directory of this test.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("didmpc-natlab-{}", uuid::Uuid::new_v4().simple())).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn didmpc_ok(lab: &Lab, ns: &str, home: &std::path::Path, a: &[&str], timeout: Duration) -> String {
    let what = format!("didmpc {} in {ns}", a.join(" "));
    let out =
        output_within(lab.command(ns, env!("CARGO_BIN_EXE_didmpc")).arg("--home").arg(home).args(a), timeout, &what);
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Reads `home`'s inbox until a Basic Message with `text` arrives; returns it (JSON).
pub fn receive(lab: &Lab, ns: &str, home: &std::path::Path, text: &str) -> Value {
    let deadline = std::time::Instant::now() + 20 * SECOND;
    let mut got = Vec::new();
    loop {
        let out = didmpc_ok(lab, ns, home, &["inbox", "--json"], 30 * SECOND);
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("inbox --json line is not JSON ({e}): {line}"));
            if v["message"]["body"]["content"] == text {
                return v;
            }
            got.push(v);
        }
        assert!(std::time::Instant::now() < deadline, "{text:?} never arrived in {ns}; the inbox had: {got:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `didmpc mediator serve` in the public namespace, reachable (`/health`) from `from`.
pub fn start_mediator(lab: &Lab, from: &[&str]) -> (Background, String) {
    let listen = format!("{}:7080", lab.public_ip());
    let url = format!("http://{listen}");
    let db = tmp("mediator").join("mediator.db");
    // Two UDP ports answer reflexive-address probes (parties tell NAT kinds apart with them).
    let (udp1, udp2) = (format!("{}:7081", lab.public_ip()), format!("{}:7082", lab.public_ip()));
    let mut mediator = Background::spawn(
        lab.command(lab.public_ns(), env!("CARGO_BIN_EXE_didmpc"))
            .arg("--home")
            .arg(db.parent().unwrap())
            .args(["mediator", "serve", "--listen", &listen, "--udp", &udp1, "--udp", &udp2, "--db"])
            .arg(&db),
        "the mediator in public",
    );
    mediator.wait_for_line(|l| l.starts_with("listening on"), 30 * SECOND, "the mediator to listen");
    let health = format!("{url}/health");
    let probes: Vec<(&str, Vec<String>)> = from.iter().map(|ns| (*ns, args(&["http-wait", &health, "10"]))).collect();
    for (ns, a) in from.iter().zip(probe_all(lab, &probes)) {
        assert_eq!(a["status"], 200, "{health} from {ns}: {a}\n{}", mediator.transcript());
    }
    (mediator, url)
}

/// Runs `didmpc ARGS` in `ns` in the background.
pub fn didmpc_bg(
    lab: &Lab,
    ns: &str,
    home: &std::path::Path,
    cwd: &std::path::Path,
    a: &[&str],
    what: &str,
) -> Background {
    Background::spawn(
        lab.command(ns, env!("CARGO_BIN_EXE_didmpc")).arg("--home").arg(home).args(a).current_dir(cwd),
        what,
    )
}

/// Waits for a background `didmpc` to exit successfully; its RESULT line.
pub fn finished_with_result(mut p: Background, timeout: Duration, what: &str) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(st) = p.exited() {
            std::thread::sleep(Duration::from_millis(200));
            assert!(st.success(), "{what} failed ({st})\n{}", p.transcript());
            let line = p.stdout_lines().into_iter().find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned));
            let line = line.unwrap_or_else(|| panic!("{what} printed no RESULT\n{}", p.transcript()));
            return serde_json::from_str(&line).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "{what} did not finish in {timeout:?}\n{}", p.transcript());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An MPC session across the lab, started: the mediator in public, every party `init`ed
/// against it, party 0's `invite` and the others' `join` running.
pub struct MpcRun {
    pub mediator: Background,
    pub homes: Vec<PathBuf>,
    pub dirs: Vec<PathBuf>,
    pub procs: Vec<Background>,
    pub program: String,
    pub args: Vec<String>,
}

pub fn start_mpc(lab: &Lab, tag: &str, program: &str, args: &[&str]) -> MpcRun {
    let n = lab.parties().len();
    let ns: Vec<String> = (0..n).map(|i| lab.party_ns(i).to_owned()).collect();
    let nsr: Vec<&str> = ns.iter().map(String::as_str).collect();
    let (mediator, url) = start_mediator(lab, &nsr);
    let homes: Vec<PathBuf> = (0..n).map(|i| tmp(&format!("{tag}{i}"))).collect();
    let dids: Vec<String> = std::thread::scope(|s| {
        let h: Vec<_> = (0..n)
            .map(|i| {
                let (ns, home, url) = (&ns[i], &homes[i], &url);
                s.spawn(move || didmpc_ok(lab, ns, home, &["init", "--mediator", url], 60 * SECOND).trim().to_owned())
            })
            .collect();
        h.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let py = mpyc::python();
    let py = py.to_str().unwrap();
    let dirs: Vec<PathBuf> = (0..n).map(|i| mpyc::workdir(&format!("{tag}{i}"), program)).collect();
    let mut host_args: Vec<&str> = vec!["invite"];
    host_args.extend(dids[1..].iter().map(String::as_str));
    host_args.extend(["--program", program, "--python", py, "--"]);
    host_args.extend(args);
    let mut procs = vec![didmpc_bg(lab, &ns[0], &homes[0], &dirs[0], &host_args, &format!("host ({:?})", lab.site(0)))];
    for i in 1..n {
        let a = ["join", "next", "--yes", "--from", &dids[0], "--wait", "120", "--python", py];
        procs.push(didmpc_bg(lab, &ns[i], &homes[i], &dirs[i], &a, &format!("party {i} ({:?})", lab.site(i))));
    }
    MpcRun {
        mediator,
        homes,
        dirs,
        procs,
        program: program.to_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

impl MpcRun {
    /// Waits for every party; asserts each printed the plain-TCP result.
    pub fn finish(mut self, timeout: Duration) -> Self {
        let procs = std::mem::take(&mut self.procs);
        let results: Vec<Value> = procs
            .into_iter()
            .enumerate()
            .map(|(i, p)| finished_with_result(p, timeout, &format!("party {i}")))
            .collect();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (plain, _) = mpyc::plain(&self.program, results.len(), &args, false, &self.dirs[0]);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r, &plain, "party {i}: the result across NATs equals plain TCP's");
        }
        assert!(self.mediator.exited().is_none(), "the mediator is still up\n{}", self.mediator.transcript());
        self
    }

    /// Party `i`'s `didmpc status --json`.
    pub fn status(&self, lab: &Lab, i: usize) -> Value {
        let out = didmpc_ok(lab, lab.party_ns(i), &self.homes[i], &["status", "--json"], 20 * SECOND);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json of party {i}: {e}: {out}"))
    }
}

/// Party `i`'s row for peer `j` in a status.
pub fn peer_row(st: &Value, j: usize) -> Value {
    st["peers"].as_array().into_iter().flatten().find(|p| p["pid"] == j).cloned().unwrap_or(Value::Null)
}

/// Asserts the path between parties `i` and `j` as both of them report it; returns the rows.
pub fn assert_pair(run: &MpcRun, lab: &Lab, i: usize, j: usize, direct: bool) -> (Value, Value) {
    let (si, sj) = (run.status(lab, i), run.status(lab, j));
    let (ri, rj) = (peer_row(&si, j), peer_row(&sj, i));
    let (si_, sj_) = (lab.site(i), lab.site(j));
    for (row, who) in [(&ri, i), (&rj, j)] {
        let path = row["path"].as_str().unwrap_or("");
        eprintln!("{si_:?} ↔ {sj_:?}: party {who} reports {path}; paths {}", row["paths"]);
        if direct {
            assert!(path.starts_with("direct (udp "), "{si_:?} ↔ {sj_:?}: party {who} is direct: {row}");
            let switches = row["switches"].as_array().unwrap();
            assert!(switches.iter().any(|w| w["why"] == "upgrade"), "party {who} upgraded from the relay: {row}");
        } else {
            assert_eq!(path, "relayed (mediator)", "{si_:?} ↔ {sj_:?}: party {who} stays relayed: {row}");
            let paths = row["paths"].as_array().unwrap();
            assert!(
                paths.iter().skip(1).all(|p| p["state"] != "validated"),
                "no direct path was ever validated between {si_:?} and {sj_:?}: {row}"
            );
        }
        assert_eq!(row["punching"], true, "both offered candidates: {row}");
    }
    (ri, rj)
}

/// Whether a party's active path to a peer leaves from an extra punching socket (its
/// address reads `(socket N)`).
pub fn uses_extra_socket(row: &Value) -> bool {
    row["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["active"] == true && p["path"].as_str().unwrap_or("").contains("(socket "))
}

/// Polls party `i`'s status until `pred` holds for its rows of `peers`; returns the status.
pub fn wait_status(
    run: &MpcRun,
    lab: &Lab,
    i: usize,
    peers: &[usize],
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + 120 * SECOND;
    loop {
        // Until the party's gateway runs the session there is no status yet.
        let out = output_within(
            lab.command(lab.party_ns(i), env!("CARGO_BIN_EXE_didmpc"))
                .arg("--home")
                .arg(&run.homes[i])
                .args(["status", "--json"]),
            20 * SECOND,
            "status",
        );
        let st: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if peers.iter().all(|&j| pred(&peer_row(&st, j))) {
            return st;
        }
        assert!(std::time::Instant::now() < deadline, "party {i}: {what} never happened: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One NAT pair's punching outcomes over the trials.
#[derive(Default)]
pub struct PairTally {
    pub trials: u32,
    pub direct: u32,
    /// Seconds from the session's start to its first upgrade (the later of the two sides).
    pub to_direct: Vec<f64>,
    /// Ports sprayed (both sides).
    pub sprayed: Vec<u64>,
}

/// Seconds from the session's start to a peer row's first upgrade, if any.
pub fn upgraded_at(r: &Value) -> Option<f64> {
    r["switches"].as_array().into_iter().flatten().find(|w| w["why"] == "upgrade").and_then(|w| w["at_s"].as_f64())
}

/// Prints the punching table (benches/RESULTS.md) and asserts it: symmetric ↔ symmetric never
/// direct, every other pair direct in at least 90 % of the trials.
pub fn report_punching(table: &mut BTreeMap<String, PairTally>) {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).map_or("–".to_owned(), |m| format!("{m:.2}"))
    };
    println!("| NAT pair | trials | direct | success | time to direct, median (max) s | ports sprayed, median |");
    println!("|---|---|---|---|---|---|");
    for (pair, e) in table.iter_mut() {
        let max = e.to_direct.iter().copied().fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        e.sprayed.sort_unstable();
        println!(
            "| {pair} | {} | {} | {:.0} % | {} ({}) | {} |",
            e.trials,
            e.direct,
            100.0 * e.direct as f64 / e.trials as f64,
            median(&mut e.to_direct),
            max.map_or("–".to_owned(), |m| format!("{m:.2}")),
            e.sprayed[e.sprayed.len() / 2],
        );
    }
    for (pair, e) in table.iter() {
        if pair == "Symmetric ↔ Symmetric" {
            assert_eq!(e.direct, 0, "{pair}: never direct");
        } else {
            // Spraying is a birthday match (specs/session.md §8): not certain, but rare to miss.
            assert!(e.direct * 10 >= e.trials * 9, "{pair}: direct in only {} of {} trials", e.direct, e.trials);
        }
    }
}
