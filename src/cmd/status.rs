//! `didmpc status`: the running (or last) MPC session, per peer.

use std::path::Path;

use anyhow::{bail, Result};
use gateway::status;

use super::output::short;
use crate::home;

pub(super) fn status(home_flag: Option<&Path>, as_json: bool) -> Result<()> {
    let st = status::read(&home::dir(home_flag)?)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    let age = did_core::didcomm::message::now().saturating_sub(st.updated);
    let stale = if age > 5 && (st.state == "running" || st.state == "connecting") {
        " (stale: the gateway is not running any more)"
    } else {
        ""
    };
    println!("session {} · {} · pid {} · {}{stale} (updated {age} s ago)", st.session, st.program, st.pid, st.state);
    let mut rows =
        vec![["PID", "DID", "STATE", "PATH", "RTT", "SENT", "RECEIVED", "RETRANSMITS"].map(str::to_owned).to_vec()];
    for p in &st.peers {
        rows.push(vec![
            p.pid.to_string(),
            short(&p.did),
            p.state.clone(),
            p.path.clone(),
            p.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "-".into()),
            bytes(p.bytes_sent),
            bytes(p.bytes_received),
            p.retransmits.to_string(),
        ]);
    }
    print!("{}", table(&rows, &[false, false, false, false, true, true, true, true]));
    for p in st.peers.iter().filter(|p| p.paths.len() > 1) {
        println!("pid {} paths: {}", p.pid, paths_line(p));
        for w in &p.switches {
            let silent = w.silent_ms.map(|s| format!(" after {s:.0} ms of silence")).unwrap_or_default();
            println!("  {:>8.1} s  {} → {} ({}{silent})", w.at_s, w.from, w.to, w.why);
        }
    }
    if let Some(id) = &st.identity {
        println!("you (pid {}) verified: {id}", st.pid);
    }
    for p in st.peers.iter().filter(|p| p.identity.is_some()) {
        println!("pid {} verified: {}", p.pid, p.identity.as_deref().unwrap_or_default());
    }
    if st.state.starts_with("failed") {
        bail!("the session failed");
    }
    Ok(())
}

/// `relay 81.2 ms · udp 203.0.113.12:40000 40.6 ms (in use) · …`, with the switch count.
fn paths_line(p: &status::PeerStatus) -> String {
    let mut parts: Vec<String> = p
        .paths
        .iter()
        .filter(|r| r.state != "abandoned")
        .map(|r| {
            let rtt = r.rtt_ms.map(|x| format!(" {x:.1} ms")).unwrap_or_default();
            let tag = match (r.active, r.state.as_str()) {
                (true, _) => " (in use)".to_owned(),
                (false, "validated") => String::new(),
                (false, other) => format!(" ({other})"),
            };
            format!("{}{rtt}{tag}", r.path)
        })
        .collect();
    parts.push(format!("{} switch{}", p.path_switches, if p.path_switches == 1 { "" } else { "es" }));
    parts.join(" · ")
}

/// Rows as aligned columns as wide as their widest cell (nothing is cut);
/// `right[i]` aligns column i to the right.
fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let pad = " ".repeat(width[c] - s.chars().count());
                if right.get(c).copied().unwrap_or(false) {
                    format!("{pad}{s}")
                } else {
                    format!("{s}{pad}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_not_cut() {
        let long = "failed: lost pid 2 (did:key:z6Mk…ab12): the peer was silent for 30 s".to_owned();
        let rows = vec![vec!["STATE".to_owned(), "RTT".into()], vec![long.clone(), "1.0 ms".into()]];
        let t = table(&rows, &[false, true]);
        assert!(t.contains(&long), "{t}");
        let lines: Vec<&str> = t.lines().collect();
        let width = |l: &str| l.chars().count();
        assert_eq!(width(lines[0]), width(lines[1]), "right-aligned columns end together:\n{t}");
    }
}
