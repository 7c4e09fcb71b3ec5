//! `didmpc-lab`: the WAN lab's one binary. `run` builds the scenarios of a matrix in network
//! namespaces and runs every program over every transport; the other subcommands are the
//! pieces it starts inside the namespaces (`wanemu`, `echo`, `ping`, `http-get`), the
//! emulator's calibration (`calibrate`) and the report (`report`).

mod orchestrate;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use didmpc_lab::emu::{Emulator, Link};

#[derive(Parser)]
#[command(name = "didmpc-lab", about = "The didmpc WAN lab (needs root: network namespaces)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a matrix of the scenario file; write results.csv/.jsonl/.md/.png to --out.
    Run(orchestrate::matrix::RunArgs),
    /// Rewrite results.md and results.png from --out's results.jsonl.
    Report {
        /// The results directory.
        #[arg(long, default_value = "target/lab")]
        out: PathBuf,
    },
    /// Measure the emulator: RTT at given settings and loss, between two sites through it.
    Calibrate(orchestrate::calibrate::Args),
    /// The WAN emulator: create TUN --tun here and forward between --links until stdin closes,
    /// then print `stats {json}`.
    Wanemu {
        /// TUN device name.
        #[arg(long, default_value = "tun0")]
        tun: String,
        /// TOML file with `[[link]]` tables (name, prefix, delay_ms, jitter_ms, loss_pct,
        /// rate_mbit, queue_ms).
        #[arg(long)]
        links: PathBuf,
        /// Seed of loss and jitter draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// UDP echo server (prints `ready`).
    Echo {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// UDP pings to an echo server; prints one JSON report.
    Ping {
        /// The echo server.
        #[arg(long)]
        target: SocketAddr,
        /// Probes.
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Between probes, ms.
        #[arg(long, default_value_t = 20.0)]
        interval_ms: f64,
        /// How long to wait for stragglers after the last probe, ms.
        #[arg(long, default_value_t = 1000.0)]
        linger_ms: f64,
        /// Include every round trip.
        #[arg(long)]
        all: bool,
    },
    /// HTTP GET (plain HTTP only) and print the body: for the mediator's /metrics inside a
    /// namespace.
    HttpGet {
        /// http://host:port/path
        url: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LinksFile {
    link: Vec<Link>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => orchestrate::matrix::run(args),
        Cmd::Report { out } => orchestrate::report::write(&out),
        Cmd::Calibrate(args) => orchestrate::calibrate::run(args),
        Cmd::Wanemu { tun, links, seed } => {
            let text = std::fs::read_to_string(&links).with_context(|| format!("reading {}", links.display()))?;
            let file: LinksFile = toml::from_str(&text).with_context(|| format!("parsing {}", links.display()))?;
            let emu = Emulator::start(&tun, &file.link, seed)?;
            println!("ready {tun}");
            // Until whoever started us closes our stdin (or dies).
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            println!("stats {}", serde_json::to_string(&emu.stats())?);
            Ok(())
        }
        Cmd::Echo { listen } => Ok(didmpc_lab::probe::echo_server(listen, || println!("ready"))?),
        Cmd::Ping { target, count, interval_ms, linger_ms, all } => {
            let mut r = didmpc_lab::probe::ping(
                target,
                count,
                Duration::from_secs_f64(interval_ms.max(0.0) / 1e3),
                Duration::from_secs_f64(linger_ms.max(0.0) / 1e3),
            )?;
            if !all {
                r.rtts_ms.clear();
            }
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::HttpGet { url } => {
            print!("{}", orchestrate::http::get(&url, Duration::from_secs(10))?);
            Ok(())
        }
    }
}
