//! `didmpc-lab calibrate`: the emulator measured against its settings. Two public homes on
//! spokes of `rtt/4` each (so home to home is `rtt`); UDP probes from one to the other's echo
//! server. Then loss: both spokes lossy so that one way loses `--loss` percent, many probes,
//! the round-trip loss compared with `1 − (1 − loss)²`. Prints one JSON object; the accuracy
//! test in `lab/tests/accuracy.rs` asserts on it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use didmpc_lab::scenario::Nat;
use serde_json::json;

use super::sys::preflight;
use super::topo::{Spec, Topo, ECHO_PORT};

/// `calibrate` options.
#[derive(clap::Args)]
pub struct Args {
    /// Round trips to check, ms.
    #[arg(long, value_delimiter = ',', default_values_t = [20.0, 80.0, 150.0])]
    rtt: Vec<f64>,
    /// Probes per round trip setting.
    #[arg(long, default_value_t = 200)]
    probes: u32,
    /// One-way loss to check, percent (0: skip).
    #[arg(long, default_value_t = 1.0)]
    loss: f64,
    /// Probes for the loss check (1 ms apart).
    #[arg(long, default_value_t = 10_000)]
    loss_probes: u32,
    /// Scratch directory [default: a new one under the system's temp dir].
    #[arg(long)]
    tmp: Option<PathBuf>,
}

fn spec(rtt: f64, loss_pct: f64) -> Spec {
    let l = loss_pct / 100.0;
    Spec {
        nats: vec![Nat::Public, Nat::Public],
        home_ms: vec![rtt / 4.0, rtt / 4.0],
        server_ms: None,
        jitter_ms: 0.0,
        spoke_loss_pct: (1.0 - (1.0 - l).sqrt()) * 100.0,
        rate_mbit: None,
        queue_ms: 200.0,
        seed: 1,
    }
}

/// Runs the calibration and prints its JSON.
pub fn run(a: Args) -> Result<()> {
    preflight(&[])?;
    let bin = std::env::current_exe().context("the lab binary")?;
    let tmp = a
        .tmp
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("didmpc-lab-calibrate-{}", std::process::id())));
    let mut rtts = Vec::new();
    for &rtt in &a.rtt {
        let mut t = Topo::build(&spec(rtt, 0.0), &bin, &tmp)?;
        let target = SocketAddr::new(t.homes[1].ip.into(), ECHO_PORT);
        let r = t.ping(&t.homes[0].ns.clone(), target, a.probes)?;
        let emu = t.emulator_stats();
        eprintln!("calibrate: {rtt} ms nominal → median {:?} ms, p95 {:?} ms", r.median_ms, r.p95_ms);
        rtts.push(json!({
            "nominal_ms": rtt, "median_ms": r.median_ms, "min_ms": r.min_ms, "p95_ms": r.p95_ms,
            "sent": r.sent, "received": r.received, "emulator": emu,
        }));
    }
    let loss = if a.loss > 0.0 {
        let mut t = Topo::build(&spec(2.0, a.loss), &bin, &tmp)?;
        let target = SocketAddr::new(t.homes[1].ip.into(), ECHO_PORT);
        let out = super::sys::run(super::topo::realtime(&t.homes[0].ns, &bin, 10).args([
            "ping",
            "--target",
            &target.to_string(),
            "--count",
            &a.loss_probes.to_string(),
            "--interval-ms",
            "1",
            "--linger-ms",
            "500",
        ]))?;
        let r: serde_json::Value = serde_json::from_str(out.trim())?;
        let emu = t.emulator_stats();
        let l = a.loss / 100.0;
        let expected = 1.0 - (1.0 - l) * (1.0 - l);
        eprintln!("calibrate: {} % one way → round-trip loss {} (expected {expected:.4})", a.loss, r["loss"]);
        json!({
            "one_way_pct": a.loss, "expected_round_trip_loss": expected, "measured_round_trip_loss": r["loss"],
            "sent": r["sent"], "received": r["received"], "emulator": emu,
        })
    } else {
        serde_json::Value::Null
    };
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{}", json!({ "rtt": rtts, "loss": loss }));
    Ok(())
}
