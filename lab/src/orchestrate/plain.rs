//! Plain MPyC over TCP, the seeds' "Internet protocol" baseline: every party reachable at a
//! public address, or at its router's address through a port forward it configured by hand
//! (an nftables `dnat` on the home router). Impossible behind a CGNAT: the carrier's NAT is
//! not the party's to configure.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use didmpc_lab::scenario::Nat;
use serde_json::json;

use super::parties::{run_all, workdirs};
use super::sys::in_ns;
use super::topo::{Topo, ECHO_PORT};
use super::transport::{Job, Kind, RunReport, Step, MPYC_PORT};

/// The steps a group of `homes` takes to run one program over plain TCP.
pub fn steps(topo: &Topo) -> Vec<Step> {
    let mut v = Vec::new();
    for (i, h) in topo.homes.iter().enumerate() {
        let who = format!("party {i}");
        if h.nat != Nat::Public {
            v.push(Step::new(
                &who,
                Kind::Admin,
                format!("on the home router: forward TCP {MPYC_PORT} to this machine (nft … dnat to {})", h.ip),
            ));
            v.push(Step::new(&who, Kind::Command, "look up the router's public address"));
        }
        v.push(Step::new(&who, Kind::Exchange, format!("send {}:{MPYC_PORT} to the others, collect theirs", h.wan_ip)));
        v.push(Step::new(
            &who,
            Kind::Command,
            format!("python PROGRAM -P a0:{MPYC_PORT} … -P aN:{MPYC_PORT} -I {i} ARGS"),
        ));
    }
    v
}

/// Runs `job` over plain TCP: port forwards on, RTT probe party 0 → party 1 through party 1's
/// forward, the parties, port forwards off.
pub fn run(job: &Job) -> Result<RunReport> {
    let topo = job.topo;
    if !topo.forwardable() {
        bail!("plain TCP needs every party reachable: a party behind CGNAT cannot forward a port");
    }
    topo.port_forwards(&[MPYC_PORT], &[ECHO_PORT])?;
    let result = run_forwarded(job);
    let off = topo.port_forwards(&[], &[]);
    let report = result?;
    off?;
    Ok(report)
}

fn run_forwarded(job: &Job) -> Result<RunReport> {
    let topo = job.topo;
    let ping = topo.ping(&topo.homes[0].ns, SocketAddr::new(topo.homes[1].wan_ip.into(), ECHO_PORT), job.probes)?;
    let dirs = workdirs(&job.dir, topo.homes.len(), job.program)?;
    let peers: Vec<String> =
        topo.homes.iter().flat_map(|h| ["-P".to_owned(), format!("{}:{MPYC_PORT}", h.wan_ip)]).collect();
    let cmds = topo
        .homes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut c = in_ns(&h.ns, job.python);
            c.arg(job.program).args(&peers).args(["-I", &i.to_string()]).args(job.args).current_dir(&dirs[i]);
            (format!("plain party {i}"), c)
        })
        .collect();
    let outcome = run_all(cmds, job.timeout)?;
    Ok(RunReport { outcome, rtt_measured_ms: ping.median_ms, path: "direct".into(), observed: json!({}) })
}
