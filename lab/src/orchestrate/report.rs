//! `results.md` (the table, a summary, the manual steps, the emulator's counters) and
//! `results.png` (per program and party count: wall time against RTT, one line per
//! transport) from a results directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

use super::matrix::{Row, COLUMNS};
use super::transport::{count, Step};

/// Reads `dir/results.jsonl` (and the side files) and writes `results.md` and `results.png`.
pub fn write(dir: &Path) -> Result<()> {
    let text = std::fs::read_to_string(dir.join("results.jsonl")).context("reading results.jsonl")?;
    let rows: Vec<Row> =
        text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
    let meta: Value = read_json(&dir.join("meta.json")).unwrap_or(Value::Null);
    let steps: BTreeMap<String, BTreeMap<usize, Vec<Step>>> =
        read_json(&dir.join("steps.json")).and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let topologies: Vec<Value> = std::fs::read_to_string(dir.join("topologies.jsonl"))
        .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default();
    std::fs::write(dir.join("results.md"), markdown(&rows, &meta, &steps, &topologies))?;
    plot(&rows, &dir.join("results.png"))?;
    Ok(())
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn num(v: Option<f64>, p: usize) -> String {
    v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "–".into())
}

/// The markdown report.
pub fn markdown(
    rows: &[Row],
    meta: &Value,
    steps: &BTreeMap<String, BTreeMap<usize, Vec<Step>>>,
    topologies: &[Value],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# WAN lab results\n");
    let _ = writeln!(
        s,
        "Matrix `{}`: {} runs in {:.1} min on {} CPUs{}.\n",
        meta["matrix"].as_str().unwrap_or("?"),
        rows.len(),
        meta["elapsed_s"].as_f64().unwrap_or(0.0) / 60.0,
        meta["cpus"],
        match meta["command"].as_str() {
            Some(c) if !c.is_empty() => format!(" (`{c}`)"),
            _ => String::new(),
        }
    );
    let ok = rows.iter().filter(|r| r.ok).count();
    let _ = writeln!(s, "{ok} of {} rows ok (every party's result equals the plain-TCP reference).\n", rows.len());
    let _ = writeln!(
        s,
        "rtt_ms: nominal round trip between two homes. rtt_measured_ms: UDP probes between party 0 and party 1 over \
         the transport's own path (plain: direct through the port forward; wireguard: through the hub; didmpc \
         and didmpc-direct: the two legs to the mediator). wall_s: all parties' commands started → last exit (didmpc includes \
         invite, join and the session handshakes). mpc_s: MPyC's own elapsed time. ratio_vs_plain: wall_s over \
         plain's on the same scenario and program.\n"
    );
    let _ = writeln!(s, "| {} |", COLUMNS.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(COLUMNS.len()));
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.transport,
            r.path,
            r.nat,
            r.parties,
            r.program,
            r.rtt_ms,
            num(r.rtt_measured_ms, 1),
            r.loss_pct,
            num(r.wall_s, 2),
            num(r.mpc_s, 2),
            num(r.ratio_vs_plain, 2),
            if r.ok { "ok" } else { "**no**" }
        );
    }

    // Summary: didmpc and WireGuard over plain, by program and profile (medians over NAT types
    // and party counts), in program order and by RTT.
    type Key = (usize, u64, u64, u64, String);
    let programs: Vec<&str> = rows.iter().map(|r| r.program.as_str()).fold(Vec::new(), |mut v, p| {
        if !v.contains(&p) {
            v.push(p);
        }
        v
    });
    let mut groups: BTreeMap<(Key, String), Vec<f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.transport != "plain") {
        if let Some(x) = r.ratio_vs_plain {
            let lossy = if r.loss_pct > 0.0 { format!(" + {} % loss", r.loss_pct) } else { String::new() };
            let server = match r.server_ms {
                Some(s) if (s - r.rtt_ms / 4.0).abs() > 1e-9 => format!(", server {s} ms from the core"),
                _ => String::new(),
            };
            let p = programs.iter().position(|p| *p == r.program).unwrap_or(0);
            let key = (
                p,
                (r.rtt_ms * 1000.0) as u64,
                (r.loss_pct * 1000.0) as u64,
                r.server_ms.map(|s| (s * 1000.0) as u64).unwrap_or(0),
                format!("{} · {} ms{lossy}{server}", r.program, r.rtt_ms),
            );
            groups.entry((key, r.transport.clone())).or_default().push(x);
        }
    }
    if !groups.is_empty() {
        let transports: BTreeSet<&String> = groups.keys().map(|(_, t)| t).collect();
        let _ = writeln!(s, "\n## Wall time over plain TCP (median over NAT types and party counts)\n");
        let _ = writeln!(
            s,
            "| program · RTT | {} |",
            transports.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" | ")
        );
        let _ = writeln!(s, "|---|{}", "---|".repeat(transports.len()));
        let keys: BTreeSet<&Key> = groups.keys().map(|(k, _)| k).collect();
        for k in keys {
            let cells: Vec<String> = transports
                .iter()
                .map(|t| {
                    groups.get(&(k.clone(), (*t).clone())).map(|v| format!("{:.2}×", median(v))).unwrap_or("–".into())
                })
                .collect();
            let _ = writeln!(s, "| {} | {} |", k.4, cells.join(" | "));
        }
    }

    observed(&mut s, rows);

    if !steps.is_empty() {
        let _ = writeln!(s, "\n## Manual steps to run one program (E³ usability)\n");
        let _ = writeln!(
            s,
            "First run with a new group, as the lab performs them. Installing Python and MPyC, common to all \
             three, is not counted; a public server is (the mediator, the WireGuard hub).\n"
        );
        let _ = writeln!(s, "| transport | parties | commands | file edits | exchanges | admin | total |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for (t, by_n) in steps {
            for (n, st) in by_n {
                let (c, e, x, a, total) = count(st);
                let _ = writeln!(s, "| {t} | {n} | {c} | {e} | {x} | {a} | **{total}** |");
            }
        }
        let _ = writeln!(s, "\nThe steps themselves (smallest party count):\n");
        for (t, by_n) in steps {
            if let Some((n, st)) = by_n.iter().next() {
                let _ = writeln!(s, "- **{t}**, {n} parties:");
                for x in st {
                    let _ = writeln!(s, "  - {} ({:?}): {}", x.who, x.kind, x.what);
                }
            }
        }
    }

    if !topologies.is_empty() {
        let _ = writeln!(s, "\n## Emulator counters per scenario\n");
        let _ = writeln!(
            s,
            "| nat | profile | parties | setup (s) | packets | lost | queue drops | late > 1 ms | max late (µs) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for t in topologies {
            let e = &t["emulator"];
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
                t["nat"].as_str().unwrap_or(""),
                t["profile"].as_str().unwrap_or(""),
                t["parties"],
                t["setup_s"].as_f64().unwrap_or(0.0),
                e["model"]["delivered"],
                e["model"]["lost"],
                e["model"]["queue_drops"],
                e["lateness"]["over_1ms"],
                e["lateness"]["max_us"]
            );
        }
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.ok).collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\n## Rows that are not ok\n");
        for r in failed {
            let _ = writeln!(
                s,
                "- {} {} {}p {} {} ms: {}",
                r.transport,
                r.nat,
                r.parties,
                r.program,
                r.rtt_ms,
                r.note.lines().next().unwrap_or("")
            );
        }
    }
    s
}

/// What didmpc itself reported for its rows: `didmpc status --json` (per-peer path, smoothed
/// RTT, bytes), the CLI's phase line, and the mediator's `/metrics` over the run.
fn observed(s: &mut String, rows: &[Row]) {
    let mine: Vec<&Row> = rows.iter().filter(|r| r.transport.starts_with("didmpc") && r.observed.is_object()).collect();
    if mine.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## What didmpc reported (`didmpc status --json`, the CLI, the mediator's `/metrics`)\n");
    let _ = writeln!(
        s,
        "Session RTT: the sessions' smoothed RTT at the end of the run (median over every party's peers). Set-up: \
         the host's `sessions up in … · MPyC started after …`. Bytes: application bytes sent by all parties. \
         Mediator: messages received over WebSocket during the run (DIDComm control plane).\n"
    );
    let _ = writeln!(s, "| transport | nat | parties | program | rtt_ms | path | session RTT (ms) | set-up (host) | bytes | mediator ws msgs |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for r in mine {
        let o = &r.observed;
        let peers: Vec<&Value> = o["status"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|st| st["peers"].as_array().into_iter().flatten())
            .collect();
        let rtts: Vec<f64> = peers.iter().filter_map(|p| p["rtt_ms"].as_f64()).collect();
        let bytes: u64 = peers.iter().filter_map(|p| p["bytes_sent"].as_u64()).sum();
        let phase = o["phases"][0]
            .as_str()
            .and_then(|l| l.split_once("sessions up in "))
            .map(|(_, rest)| rest.split(" · total").next().unwrap_or(rest).replace(" · MPyC started after ", " / "))
            .unwrap_or_else(|| "–".into());
        let ws = o["mediator_metrics_delta"]["didmpc_mediator_received_total{transport=\"ws\"}"].as_f64();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.transport,
            r.nat,
            r.parties,
            r.program,
            r.rtt_ms,
            r.path,
            if rtts.is_empty() { "–".into() } else { format!("{:.1}", median(&rtts)) },
            phase,
            bytes,
            ws.map(|v| format!("{v}")).unwrap_or_else(|| "–".into())
        );
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Font files tried, in order: the text needs one TTF and nothing else (no fontconfig).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let (path, bytes) = FONTS
            .iter()
            .find_map(|p| std::fs::read(p).ok().map(|b| (*p, b)))
            .ok_or_else(|| format!("no font for the plot: install fonts-dejavu-core (tried {})", FONTS.join(", ")))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{path} is not a usable font"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

fn color(transport: &str) -> RGBColor {
    match transport {
        "plain" => RGBColor(0x33, 0x33, 0x33),
        "wireguard" => RGBColor(0x1f, 0x77, 0xb4),
        "didmpc" => RGBColor(0xd6, 0x27, 0x28),
        "didmpc-direct" => RGBColor(0xff, 0x7f, 0x0e),
        _ => RGBColor(0x2c, 0xa0, 0x2c),
    }
}

/// One panel per (party count, program); x = RTT, y = wall time (median over NAT types);
/// lines join the loss-free profiles, triangles mark lossy ones. Only rows whose server sits as
/// far from the homes as they are from each other (the default geometry) are drawn.
pub fn plot(rows: &[Row], path: &Path) -> Result<()> {
    register_font()?;
    let rows: Vec<Row> =
        rows.iter().filter(|r| r.server_ms.is_none_or(|s| (s - r.rtt_ms / 4.0).abs() < 1e-9)).cloned().collect();
    let rows = &rows[..];
    let programs: Vec<String> = rows.iter().map(|r| r.program.clone()).fold(Vec::new(), |mut v, p| {
        if !v.contains(&p) {
            v.push(p);
        }
        v
    });
    let parties: BTreeSet<usize> = rows.iter().map(|r| r.parties).collect();
    let parties: Vec<usize> = parties.into_iter().collect();
    let (cols, nrows) = (programs.len().max(1), parties.len().max(1));
    let size = (520 * cols as u32, 380 * nrows as u32 + 40);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.draw(&Text::new(
        "WAN lab: MPyC wall time vs RTT between homes; server (mediator, WireGuard hub) as far as a home; \
         median over NAT types; triangles: 1 % loss",
        (10, 10),
        ("sans-serif", 20).into_font(),
    ))?;
    let panels = body.split_evenly((nrows, cols));
    for (pi, n) in parties.iter().enumerate() {
        for (ci, prog) in programs.iter().enumerate() {
            let area = &panels[pi * cols + ci];
            let mine: Vec<&Row> = rows.iter().filter(|r| &r.program == prog && r.parties == *n).collect();
            let x_max = mine.iter().map(|r| r.rtt_ms).fold(0.0, f64::max).max(10.0) * 1.1;
            let y_max = mine.iter().filter_map(|r| r.wall_s).fold(0.0, f64::max).max(1.0) * 1.15;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{prog}, {n} parties"), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
            chart
                .configure_mesh()
                .x_desc("RTT between homes (ms)")
                .y_desc("wall time (s)")
                .label_style(("sans-serif", 13))
                .draw()?;
            let transports: Vec<String> = mine.iter().map(|r| r.transport.clone()).fold(Vec::new(), |mut v, t| {
                if !v.contains(&t) {
                    v.push(t);
                }
                v
            });
            for t in &transports {
                let c = color(t);
                let series = |lossy: bool| -> Vec<(f64, f64)> {
                    let mut by_rtt: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
                    for r in mine.iter().filter(|r| &r.transport == t && (r.loss_pct > 0.0) == lossy && r.ok) {
                        if let Some(w) = r.wall_s {
                            by_rtt.entry((r.rtt_ms * 1000.0) as u64).or_default().push(w);
                        }
                    }
                    by_rtt.into_iter().map(|(k, v)| (k as f64 / 1000.0, median(&v))).collect()
                };
                let line = series(false);
                chart
                    .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))?
                    .label(t.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
                chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
                chart.draw_series(series(true).into_iter().map(|p| TriangleMarker::new(p, 6, c.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()?;
        }
    }
    root.present().context("writing the PNG")?;
    Ok(())
}
