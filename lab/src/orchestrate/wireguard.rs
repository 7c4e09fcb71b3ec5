//! WireGuard hub and spoke, configured by hand as a user would: Debian's `wireguard-go`
//! through `wg-quick` in every home and on the public server (the hub), which routes between
//! the spokes. Every step is recorded; the lab runs the commands and writes the files a user
//! would, and stands in for the people passing keys and addresses around.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::json;

use super::parties::{run_all, workdirs};
use super::sys::{in_ns, run, run_with_input};
use super::topo::{Topo, ECHO_PORT};
use super::transport::{Job, Kind, RunReport, Step, MPYC_PORT};

const HUB_PORT: u16 = 51820;

/// A configured overlay; brought down on drop.
pub struct Wg {
    /// The manual steps taken.
    pub steps: Vec<Step>,
    /// Overlay address of each party.
    pub addrs: Vec<Ipv4Addr>,
    /// (namespace, config file) of every interface.
    up: Vec<(String, PathBuf)>,
}

fn overlay(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, (i + 1) as u8)
}
const HUB_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 254);

struct Keys {
    private: String,
    public: String,
}

fn keys(ns: &str) -> Result<Keys> {
    let private = run(in_ns(ns, "wg").arg("genkey"))?.trim().to_owned();
    let public = run_with_input(in_ns(ns, "wg").arg("pubkey"), &format!("{private}\n"))?.trim().to_owned();
    Ok(Keys { private, public })
}

/// Sets the overlay up on `topo` (which needs a server).
pub fn setup(topo: &Topo) -> Result<Wg> {
    let server = topo.server.as_ref().context("WireGuard needs the lab's public server as its hub")?;
    let dir = topo.tmp.join("wireguard");
    std::fs::create_dir_all(&dir)?;
    // Interface names are host-wide in wireguard-go (its control socket lives in
    // /var/run/wireguard), so they carry the topology's id. At most 15 characters.
    let tag: String = topo.id.trim_start_matches("wl").trim_end_matches('-').chars().rev().take(9).collect::<String>();
    let tag: String = tag.chars().rev().collect();
    let ifname = |who: &str| format!("w{tag}{who}");
    let hub = "hub operator";
    let mut steps = vec![
        Step::new(
            hub,
            Kind::Admin,
            format!("rent a server with a public address; allow UDP {HUB_PORT} in its firewall"),
        ),
        Step::new(hub, Kind::Command, "apt-get install wireguard-tools wireguard-go"),
        Step::new(hub, Kind::Command, "wg genkey | tee hub.key | wg pubkey > hub.pub"),
        Step::new(hub, Kind::Command, "sysctl -w net.ipv4.ip_forward=1"),
    ];
    let hub_keys = keys(&server.ns)?;
    run(in_ns(&server.ns, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]))?;

    let mut party_keys = Vec::new();
    for (i, h) in topo.homes.iter().enumerate() {
        let who = format!("party {i}");
        steps.push(Step::new(&who, Kind::Command, "apt-get install wireguard-tools wireguard-go"));
        steps.push(Step::new(&who, Kind::Command, "wg genkey | tee wg.key | wg pubkey > wg.pub"));
        steps.push(Step::new(&who, Kind::Exchange, "send wg.pub to the hub operator"));
        party_keys.push(keys(&h.ns)?);
    }

    // The hub's configuration: one [Peer] per party, added as each key arrives.
    let mut hub_conf =
        format!("[Interface]\nAddress = {HUB_ADDR}/24\nListenPort = {HUB_PORT}\nPrivateKey = {}\n", hub_keys.private);
    steps.push(Step::new(hub, Kind::Edit, "write hub.conf: [Interface] address, port, private key"));
    for (i, k) in party_keys.iter().enumerate() {
        hub_conf.push_str(&format!("\n[Peer]\nPublicKey = {}\nAllowedIPs = {}/32\n", k.public, overlay(i)));
        steps.push(Step::new(hub, Kind::Edit, format!("add [Peer] party {i}: its key, AllowedIPs {}/32", overlay(i))));
    }
    let mut up = Vec::new();
    let hub_file = dir.join(format!("{}.conf", ifname("h")));
    write_private(&hub_file, &hub_conf)?;
    wg_quick_up(&server.ns, &hub_file)?;
    up.push((server.ns.clone(), hub_file));
    steps.push(Step::new(hub, Kind::Command, "wg-quick up ./hub.conf"));

    for (i, (h, k)) in topo.homes.iter().zip(&party_keys).enumerate() {
        let who = format!("party {i}");
        steps.push(Step::new(
            hub,
            Kind::Exchange,
            format!("send party {i} its address {}, the hub's key and endpoint, and every party's address", overlay(i)),
        ));
        let conf = format!(
            "[Interface]\nAddress = {}/24\nPrivateKey = {}\n\n[Peer]\nPublicKey = {}\nEndpoint = {}:{HUB_PORT}\nAllowedIPs = 10.77.0.0/24\nPersistentKeepalive = 25\n",
            overlay(i),
            k.private,
            hub_keys.public,
            server.ip
        );
        let file = dir.join(format!("{}.conf", ifname(&format!("p{i}"))));
        write_private(&file, &conf)?;
        wg_quick_up(&h.ns, &file)?;
        up.push((h.ns.clone(), file));
        steps.push(Step::new(&who, Kind::Edit, "write wg0.conf: address, private key, hub [Peer] with endpoint"));
        steps.push(Step::new(&who, Kind::Command, "wg-quick up ./wg0.conf"));
        steps.push(Step::new(
            &who,
            Kind::Command,
            format!("python PROGRAM -P 10.77.0.1:{MPYC_PORT} … -I {i} ARGS (addresses from the hub operator)"),
        ));
    }
    let wg = Wg { steps, addrs: (0..topo.homes.len()).map(overlay).collect(), up };
    // Every spoke reaches the hub before the overlay counts as up. The first packet starts
    // WireGuard's handshake; a lost initiation or response is retried after 5 s (REKEY_TIMEOUT),
    // so on a lossy profile this may take a few rounds.
    for h in &topo.homes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = topo.ping(&h.ns, SocketAddr::new(HUB_ADDR.into(), ECHO_PORT), 3);
            if r.as_ref().map(|r| r.received > 0).unwrap_or(false) {
                break;
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("WireGuard: {} cannot reach the hub over the overlay in 30 s: {r:?}", h.ns);
            }
        }
    }
    Ok(wg)
}

fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn wg_quick_up(ns: &str, conf: &std::path::Path) -> Result<()> {
    run(in_ns(ns, "wg-quick").arg("up").arg(conf).env("WG_QUICK_USERSPACE_IMPLEMENTATION", "wireguard-go"))
        .with_context(|| format!("wg-quick up {} in {ns}", conf.display()))
        .map(|_| ())
}

impl Drop for Wg {
    fn drop(&mut self) {
        for (ns, conf) in &self.up {
            let _ = Command::new("ip").args(["netns", "exec", ns, "wg-quick", "down"]).arg(conf).output();
            if let Some(name) = conf.file_stem() {
                let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", name.to_string_lossy()));
            }
        }
    }
}

/// Runs `job` over the overlay: RTT probe party 0 → party 1 (through the hub), the parties
/// dialling each other's overlay addresses.
pub fn run_job(job: &Job, wg: &Wg) -> Result<RunReport> {
    let topo = job.topo;
    let ping = topo.ping(&topo.homes[0].ns, SocketAddr::new(wg.addrs[1].into(), ECHO_PORT), job.probes)?;
    let dirs = workdirs(&job.dir, topo.homes.len(), job.program)?;
    let peers: Vec<String> = wg.addrs.iter().flat_map(|a| ["-P".to_owned(), format!("{a}:{MPYC_PORT}")]).collect();
    let cmds = topo
        .homes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut c = in_ns(&h.ns, job.python);
            c.arg(job.program).args(&peers).args(["-I", &i.to_string()]).args(job.args).current_dir(&dirs[i]);
            (format!("wireguard party {i}"), c)
        })
        .collect();
    let outcome = run_all(cmds, job.timeout)?;
    Ok(RunReport { outcome, rtt_measured_ms: ping.median_ms, path: "hub".into(), observed: json!({}) })
}
