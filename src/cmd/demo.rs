//! `didmpc demo`: an embedded mediator and N parties on loopback run the shipped secure
//! statistics program over didmpc (invite, join, Noise sessions through the relay,
//! loopback port map, real MPyC), then print its result and timings.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gateway::descriptor::MpcOptions;
use gateway::flow::{self, Local};
use gateway::invite::NewSession;
use gateway::{runner, Agent};
use serde_json::Value;

use crate::cli::DemoArgs;

const PROGRAM: &str = include_str!("../../mpc/programs/secure_stats.py");

/// The pinned MPyC venv in the didmpc cache (created on first use, from Rust).
pub(crate) fn mpyc_venv() -> Result<PathBuf> {
    let cache = gateway::venv::cache_dir()?;
    gateway::venv::PinnedVenv::mpyc()
        .ensure(&cache, &|line| eprintln!("{line}"))
        .context("setting up MPyC (or pass --python PATH to a Python with mpyc installed)")
}

pub(super) async fn run(a: DemoArgs) -> Result<()> {
    anyhow::ensure!((2..=8).contains(&a.parties), "--parties must be between 2 and 8");
    let t0 = Instant::now();
    let work = std::env::temp_dir().join(format!("didmpc-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = demo(&a, &work, t0).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn demo(a: &DemoArgs, work: &Path, t0: Instant) -> Result<()> {
    let python = match &a.python {
        Some(p) => p.clone(),
        None => mpyc_venv()?,
    };
    let program = work.join("secure_stats.py");
    std::fs::write(&program, PROGRAM)?;

    // The embedded mediator on a loopback port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut cfg = mediator::Config::default();
    cfg.store.db = work.join("mediator.db");
    let m = mediator::Mediator::open(cfg, addr).await.context("starting the embedded mediator")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mediator::serve(listener, m, async {
        let _ = stop_rx.await;
    }));
    let url = format!("http://{addr}");
    eprintln!("mediator: {url}");

    let mut agents = Vec::new();
    for i in 0..a.parties {
        let agent = Agent::init(&work.join(format!("party{i}")), &url).await.context("setting up a party")?;
        eprintln!("party {i}: {}", agent.file.party.fmt_short());
        agents.push(Arc::new(agent));
    }
    let setup = t0.elapsed();

    let results: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let local = |pid: usize| -> Local {
        let results = results.clone();
        Local {
            python: python.clone(),
            cwd: work.to_path_buf(),
            sink: Arc::new(move |line: &str| {
                if let Some(r) = line.strip_prefix("RESULT ") {
                    results.lock().unwrap_or_else(|p| p.into_inner()).push((pid, r.to_owned()));
                } else {
                    eprintln!("[pid {pid}] {line}");
                }
            }),
            session: session::Config::default(),
            mesh_timeout: Duration::from_secs(30),
            relay_only: false,
            events: None,
        }
    };
    let args = vec!["--rounds".to_owned(), a.rounds.to_string()];
    let t_run = Instant::now();
    let mut joiners = Vec::new();
    for (i, agent) in agents.iter().enumerate().skip(1) {
        let (agent, local, program) = (agent.clone(), local(i), program.clone());
        let host = agents[0].file.party.to_string();
        joiners.push(tokio::spawn(async move {
            flow::join_from(agent, &host, Some(&program), Duration::from_secs(60), &local).await
        }));
    }
    let new = NewSession {
        invitees: agents[1..].iter().map(|a| a.file.party.clone()).collect(),
        program: runner::describe(&program, &args, &python).await?,
        options: MpcOptions::default(),
        ttl: Duration::from_secs(120),
        peer_deadline: Duration::from_secs(20),
        proofs: Value::Null,
    };
    let host = flow::host(agents[0].clone(), new, &program, &local(0), |_| {}, &|_| {}).await;
    let mut reports = vec![host.context("the host (pid 0)")?];
    for (i, j) in joiners.into_iter().enumerate() {
        reports.push(j.await?.with_context(|| format!("party {}", i + 1))?);
    }
    let wall = t_run.elapsed();
    let _ = stop_tx.send(());
    let _ = server.await;

    let results = results.lock().unwrap_or_else(|p| p.into_inner()).clone();
    anyhow::ensure!(results.len() == a.parties, "{} of {} parties printed a result", results.len(), a.parties);
    anyhow::ensure!(results.iter().all(|(_, r)| r == &results[0].1), "the parties disagree: {results:?}");
    let v: Value = serde_json::from_str(&results[0].1).context("the program's RESULT is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    let mesh = reports.iter().map(|r| r.mesh).max().unwrap_or_default();
    eprintln!(
        "{} parties agree. setup {:.2} s (mediator + identities) · invite→done {:.2} s · sessions up in ≤ {:.0} ms",
        a.parties,
        setup.as_secs_f64(),
        wall.as_secs_f64(),
        mesh.as_secs_f64() * 1000.0
    );
    Ok(())
}
