//! MPyC through didmpc vs plain TCP on loopback, in one run, as ratios:
//! - wall time of a many-round program with small messages (`many_rounds.py`) and a
//!   few-round program with large messages (`big_messages.py`), 3 parties each: from the
//!   first MPyC launch to the last MPyC exit (didmpc) vs the same span of
//!   `mpc/run-plain.py` (plain TCP, same interpreter, same arguments);
//! - time from the last `join` to MPyC's first byte into a tunnel, 5 parties.
//!
//! Everything real: in-process mediator, parties with did:peer:2 identities, invite and
//! join over DIDComm, Noise sessions through the relay, the loopback port map, MPyC.
//!
//! Run: `cargo bench --bench mpc` (env `REPEAT`, default 3; the median is reported).

#[path = "../tests/support/mpyc.rs"]
mod mpyc;
#[path = "../tests/support/mediator.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::descriptor::MpcOptions;
use gateway::flow::{self, Local};
use gateway::invite::NewSession;
use gateway::run::Report;
use gateway::{runner, Agent};
use serde_json::Value;
use support::{temp_path, InProcess};

async fn parties(url: &str, n: usize) -> Vec<Arc<Agent>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Arc::new(Agent::init(&temp_path("home"), url).await.expect("init")));
    }
    v
}

/// One session of `program` between `agents` through didmpc; every party's report.
async fn didmpc_run(agents: &[Arc<Agent>], dir: &Path, program: &str, args: &[&str]) -> Vec<Report> {
    let python = mpyc::python();
    let path = dir.join(program);
    let local = Local {
        python: python.clone(),
        cwd: dir.to_path_buf(),
        sink: Arc::new(|l: &str| {
            if l.starts_with("RESULT") || l.contains("Error") {
                eprintln!("    {l}")
            }
        }),
        session: session::Config::default(),
        mesh_timeout: Duration::from_secs(60),
        // This bench measures the relayed path (its figures in benches/RESULTS.md).
        relay_only: true,
        events: None,
    };
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut joiners = Vec::new();
    for a in &agents[1..] {
        let (a, local, path) = (a.clone(), local.clone(), path.clone());
        let host = agents[0].file.party.to_string();
        joiners.push(tokio::spawn(async move {
            flow::join_from(a, &host, Some(&path), Duration::from_secs(60), &local).await.expect("join")
        }));
    }
    let new = NewSession {
        invitees: agents[1..].iter().map(|a| a.file.party.clone()).collect(),
        program: runner::describe(&path, &args, &python).await.expect("describe"),
        options: MpcOptions::default(),
        ttl: Duration::from_secs(120),
        peer_deadline: Duration::from_secs(30),
        proofs: Value::Null,
    };
    let mut reports = vec![flow::host(agents[0].clone(), new, &path, &local, |_| {}, &|_| {}).await.expect("host")];
    for j in joiners {
        reports.push(j.await.expect("task"));
    }
    reports
}

fn span(reports: &[Report]) -> f64 {
    let start = reports.iter().map(|r| r.launched_at).min().expect("reports");
    let end = reports.iter().map(|r| r.exited_at).max().expect("reports");
    (end - start).as_secs_f64()
}

fn join_to_first_byte(reports: &[Report]) -> f64 {
    let last_join = reports.iter().filter_map(|r| r.joined_at).max().expect("joiners");
    let first = reports.iter().filter_map(|r| r.first_dial_at).min().expect("a dial");
    first.saturating_duration_since(last_join).as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let repeat: usize = std::env::var("REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let m = InProcess::start(mediator::Config::default()).await;
    let three = parties(&m.url, 3).await;
    let five = parties(&m.url, 5).await;
    println!("| program (3 parties) | plain TCP (s) | didmpc (s) | ratio |");
    println!("|---|---|---|---|");
    for (program, args) in [("many_rounds.py", ["-n", "200"]), ("big_messages.py", ["-n", "20000"])] {
        let dir = mpyc::workdir("bench", program);
        let (mut plain, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            let (_, wall) = mpyc::plain(program, 3, &args, false, &dir);
            plain.push(wall);
            ours.push(span(&didmpc_run(&three, &dir, program, &args).await));
        }
        let (p, o) = (median(plain.clone()), median(ours.clone()));
        println!("| {program} {} | {p:.3} | {o:.3} | {:.3} |", args.join(" "), o / p);
        eprintln!("  samples plain {plain:?} didmpc {ours:?}");
    }
    let dir = mpyc::workdir("bench", "secure_stats.py");
    let mut firsts = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let reports = didmpc_run(&five, &dir, "secure_stats.py", &["--count", "2"]).await;
        firsts.push(join_to_first_byte(&reports));
        eprintln!("  5-party session in {:.2} s", t.elapsed().as_secs_f64());
    }
    println!();
    println!("| 5 parties | last join → MPyC's first byte (s) |");
    println!("|---|---|");
    println!("| median of {repeat} | {:.3} |", median(firsts.clone()));
    eprintln!("  samples {firsts:?}");
    m.stop().await;
}
