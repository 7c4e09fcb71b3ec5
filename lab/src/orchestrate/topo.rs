//! The lab's network: a core namespace running the WAN emulator, one spoke per site, homes
//! behind NATs, and the public server.
//!
//! ```text
//!  core (ip_forward, tun0 = wanemu)                   spoke k: core s<k> 198.18.k.1/24
//!   ├─ s1 ── wan [router r0: NAT] lan ── eth0 [party p0 192.168.1.2]      site  198.18.k.2/24
//!   ├─ s2 ── wan [carrier c1: NAT] lan ── wan [router r1: NAT] lan ── eth0 [party p1]   (CGNAT)
//!   ├─ s3 ── eth0 [party p2 198.18.3.2]                                   (public)
//!   └─ s200 ── eth0 [server: mediator, WireGuard hub, 198.18.200.2]
//! ```
//!
//! In the core, `ip rule iif s<k> lookup 100` sends everything arriving from a spoke to tun0;
//! what the emulator writes back is routed by the main table to its spoke. Routers forward,
//! masquerade on `wan` (`random` for symmetric NAT) and drop unsolicited inbound unless a port
//! forward (`dnat`) was configured. Offloads are off on every lab veth. Namespaces are named
//! `wl<pid>x<n>-…`, fresh per topology, and deleted (with all they run) on drop; leftovers of
//! dead lab processes are swept first.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use didmpc_lab::emu::Link;
use didmpc_lab::probe::PingReport;
use didmpc_lab::scenario::Nat;

use super::sys::{delete_ns, in_ns, ip, netns_list, run, run_with_input, Proc};

/// UDP port of the echo servers (and of its port forward).
pub const ECHO_PORT: u16 = 9999;
/// Spoke number of the server.
const SERVER_SPOKE: u8 = 200;
const HOME_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const HOME_PARTY: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
const CARRIER_LAN: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
const SUBSCRIBER_WAN: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

/// What to build.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The NAT of each home (one home per party).
    pub nats: Vec<Nat>,
    /// One-way delay of each home's spoke, ms.
    pub home_ms: Vec<f64>,
    /// One-way delay of the server's spoke, ms; `None`: no server.
    pub server_ms: Option<f64>,
    /// Jitter per crossing, ms.
    pub jitter_ms: f64,
    /// Loss per spoke crossing, percent.
    pub spoke_loss_pct: f64,
    /// Rate per spoke, Mbit/s.
    pub rate_mbit: Option<f64>,
    /// Serialiser backlog limit, ms.
    pub queue_ms: f64,
    /// Seed of the emulator's draws.
    pub seed: u64,
}

/// A party's home.
#[derive(Clone, Debug)]
pub struct Home {
    /// Its NAT.
    pub nat: Nat,
    /// The party's namespace.
    pub ns: String,
    /// The party's own address.
    pub ip: Ipv4Addr,
    /// The address the Internet sees (the outermost router's, or its own if public).
    pub wan_ip: Ipv4Addr,
    /// The home router the party controls (it can add a port forward there), if any.
    pub router: Option<String>,
}

/// The public server.
#[derive(Clone, Debug)]
pub struct Server {
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// A built topology; deleted on drop.
pub struct Topo {
    /// Namespace name prefix (unique per topology).
    pub id: String,
    namespaces: Vec<String>,
    core: String,
    /// The homes, by party index.
    pub homes: Vec<Home>,
    /// The server, if the spec asked for one.
    pub server: Option<Server>,
    /// Scratch directory of this topology.
    pub tmp: PathBuf,
    lab_bin: PathBuf,
    emulator: Option<Proc>,
    echoes: Vec<Proc>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Topo {
    /// Builds the namespaces, starts the emulator (real-time priority when `chrt` works) and
    /// an echo server in every party's and the server's namespace.
    pub fn build(spec: &Spec, lab_bin: &Path, tmp_root: &Path) -> Result<Topo> {
        sweep_leftovers();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("wl{}x{n}-", std::process::id());
        let tmp = tmp_root.join(format!("topo{n}"));
        std::fs::create_dir_all(&tmp)?;
        let mut t = Topo {
            core: format!("{id}core"),
            id,
            namespaces: vec![],
            homes: vec![],
            server: None,
            tmp,
            lab_bin: lab_bin.to_path_buf(),
            emulator: None,
            echoes: vec![],
        };
        t.add_ns(&t.core.clone())?;
        let core = t.core.clone();
        sysctl(&core, "net.ipv4.ip_forward=1")?;
        sysctl(&core, "net.ipv4.conf.all.rp_filter=0")?;
        sysctl(&core, "net.ipv4.conf.default.rp_filter=0")?;

        // The emulator's links: one per site.
        let link = |name: String, k: u8, delay: f64| Link {
            name,
            prefix: format!("198.18.{k}.0/24"),
            delay_ms: delay,
            jitter_ms: spec.jitter_ms,
            loss_pct: spec.spoke_loss_pct,
            rate_mbit: spec.rate_mbit,
            queue_ms: spec.queue_ms,
        };
        let mut links: Vec<Link> =
            spec.home_ms.iter().enumerate().map(|(i, &d)| link(format!("home{i}"), spoke_no(i), d)).collect();
        if let Some(d) = spec.server_ms {
            links.push(link("server".into(), SERVER_SPOKE, d));
        }
        let links_file = t.tmp.join("links.toml");
        let mut toml_text = String::new();
        for l in &links {
            toml_text.push_str(&format!("[[link]]\n{}\n", toml::to_string(l).context("links")?.trim_end()));
        }
        std::fs::write(&links_file, toml_text)?;
        t.start_emulator(&links_file, spec.seed)?;
        sysctl(&core, "net.ipv4.conf.tun0.rp_filter=0")?;
        ip(&["-n", &core, "route", "add", "default", "dev", "tun0", "table", "100"])?;

        for (i, &nat) in spec.nats.iter().enumerate() {
            let home = t.add_home(i, nat)?;
            t.homes.push(home);
        }
        if spec.server_ms.is_some() {
            let ns = format!("{}srv", t.id);
            t.add_ns(&ns)?;
            let ip_addr = t.spoke(SERVER_SPOKE, &ns, "eth0")?;
            t.server = Some(Server { ns, ip: ip_addr });
        }
        let mut echo_ns: Vec<String> = t.homes.iter().map(|h| h.ns.clone()).collect();
        echo_ns.extend(t.server.iter().map(|s| s.ns.clone()));
        for ns in echo_ns {
            let mut p = Proc::spawn(
                realtime(&ns, &t.lab_bin, 10).args(["echo", "--listen", &format!("0.0.0.0:{ECHO_PORT}")]),
                &format!("echo server in {ns}"),
            )?;
            p.wait_for_line(|l| l == "ready", Duration::from_secs(10))?;
            t.echoes.push(p);
        }
        Ok(t)
    }

    fn start_emulator(&mut self, links: &Path, seed: u64) -> Result<()> {
        let mut cmd = realtime(&self.core, &self.lab_bin, 20);
        cmd.args(["wanemu", "--tun", "tun0", "--seed", &seed.to_string(), "--links"]).arg(links);
        let mut p = Proc::spawn(&mut cmd, "the WAN emulator")?;
        p.wait_for_line(|l| l.starts_with("ready"), Duration::from_secs(10))?;
        self.emulator = Some(p);
        Ok(())
    }

    /// Stops the emulator and returns its final counters (JSON), if it is running.
    pub fn emulator_stats(&mut self) -> Option<serde_json::Value> {
        let mut p = self.emulator.take()?;
        p.close_stdin();
        let line = p.wait_for_line(|l| l.starts_with("stats "), Duration::from_secs(5)).ok()?;
        serde_json::from_str(line.strip_prefix("stats ")?).ok()
    }

    fn add_ns(&mut self, name: &str) -> Result<()> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        // Keep IPv6 chatter (router solicitations, MLD) out of the lab's links.
        sysctl(name, "net.ipv6.conf.all.disable_ipv6=1")?;
        sysctl(name, "net.ipv6.conf.default.disable_ipv6=1")
    }

    /// Spoke `k` from the core to `site_if` in `site_ns`; the site's address.
    fn spoke(&mut self, k: u8, site_ns: &str, site_if: &str) -> Result<Ipv4Addr> {
        let core_if = format!("s{k}");
        let (core_ip, site_ip) = (Ipv4Addr::new(198, 18, k, 1), Ipv4Addr::new(198, 18, k, 2));
        self.veth(&self.core.clone(), &core_if, site_ns, site_if)?;
        ip(&["-n", &self.core, "addr", "add", &format!("{core_ip}/24"), "dev", &core_if])?;
        ip(&["-n", site_ns, "addr", "add", &format!("{site_ip}/24"), "dev", site_if])?;
        ip(&["-n", site_ns, "route", "add", "default", "via", &core_ip.to_string()])?;
        ip(&["-n", &self.core, "rule", "add", "iif", &core_if, "lookup", "100", "pref", "100"])?;
        Ok(site_ip)
    }

    /// A veth pair between two lab namespaces, up, offloads off on both ends.
    fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> Result<()> {
        ip(&["-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b])?;
        for (ns, dev) in [(a, a_if), (b, b_if)] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            run(in_ns(ns, "ethtool").args(["-K", dev, "tx", "off", "gso", "off", "tso", "off", "gro", "off"]))
                .with_context(|| format!("turning offloads off on {dev} in {ns}"))?;
        }
        Ok(())
    }

    fn add_home(&mut self, i: usize, nat: Nat) -> Result<Home> {
        let party = format!("{}p{i}", self.id);
        self.add_ns(&party)?;
        let k = spoke_no(i);
        match nat {
            Nat::Public => {
                let a = self.spoke(k, &party, "eth0")?;
                Ok(Home { nat, ns: party, ip: a, wan_ip: a, router: None })
            }
            Nat::PortRestricted | Nat::Symmetric | Nat::Cgnat => {
                let router = format!("{}r{i}", self.id);
                self.add_ns(&router)?;
                let wan_ip = if nat == Nat::Cgnat {
                    let carrier = format!("{}c{i}", self.id);
                    self.add_ns(&carrier)?;
                    let a = self.spoke(k, &carrier, "wan")?;
                    self.veth(&router, "wan", &carrier, "lan")?;
                    ip(&["-n", &carrier, "addr", "add", &format!("{CARRIER_LAN}/10"), "dev", "lan"])?;
                    ip(&["-n", &router, "addr", "add", &format!("{SUBSCRIBER_WAN}/10"), "dev", "wan"])?;
                    ip(&["-n", &router, "route", "add", "default", "via", &CARRIER_LAN.to_string()])?;
                    make_router(&carrier, false, &[])?;
                    a
                } else {
                    self.spoke(k, &router, "wan")?
                };
                self.veth(&party, "eth0", &router, "lan")?;
                ip(&["-n", &router, "addr", "add", &format!("{HOME_ROUTER}/24"), "dev", "lan"])?;
                ip(&["-n", &party, "addr", "add", &format!("{HOME_PARTY}/24"), "dev", "eth0"])?;
                ip(&["-n", &party, "route", "add", "default", "via", &HOME_ROUTER.to_string()])?;
                make_router(&router, nat == Nat::Symmetric, &[])?;
                // Behind a CGNAT the party's own router is not the one the Internet reaches:
                // a port forward there would be useless, and the carrier's is not theirs.
                let router = (nat != Nat::Cgnat).then_some(router);
                Ok(Home { nat, ns: party, ip: HOME_PARTY, wan_ip, router })
            }
            Nat::Mixed => bail!("a home has one NAT type (Mixed is per matrix)"),
        }
    }

    /// Sets (or with empty lists removes) port forwards on every home router that has one:
    /// TCP `tcp` and UDP `udp` ports to the party. Fails if some home cannot have any.
    pub fn port_forwards(&self, tcp: &[u16], udp: &[u16]) -> Result<()> {
        for h in &self.homes {
            match (&h.router, h.nat) {
                (Some(r), _) => make_router(r, h.nat == Nat::Symmetric, &forwards(tcp, udp))?,
                (None, Nat::Public) => {}
                (None, nat) => bail!("a party behind {nat} cannot forward a port"),
            }
        }
        Ok(())
    }

    /// Whether every party can be reached by a port forward (or a public address).
    pub fn forwardable(&self) -> bool {
        self.homes.iter().all(|h| h.router.is_some() || h.nat == Nat::Public)
    }

    /// `lab_bin ping` from `ns` to `target`: `count` probes 20 ms apart.
    pub fn ping(&self, ns: &str, target: SocketAddr, count: u32) -> Result<PingReport> {
        let out = run(realtime(ns, &self.lab_bin, 10).args([
            "ping",
            "--target",
            &target.to_string(),
            "--count",
            &count.to_string(),
            "--interval-ms",
            "20",
            "--linger-ms",
            "2000",
        ]))?;
        let v: serde_json::Value = serde_json::from_str(out.trim()).with_context(|| format!("ping output: {out}"))?;
        let median_ms = v["median_ms"].as_f64();
        let (sent, received) = (v["sent"].as_u64().unwrap_or(0), v["received"].as_u64().unwrap_or(0));
        Ok(PingReport {
            sent,
            received,
            rtts_ms: vec![],
            median_ms,
            min_ms: v["min_ms"].as_f64(),
            p95_ms: v["p95_ms"].as_f64(),
            loss: v["loss"].as_f64().unwrap_or(1.0),
        })
    }

    /// The lab binary (for subcommands run inside namespaces).
    pub fn lab_bin(&self) -> &Path {
        &self.lab_bin
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        self.echoes.clear();
        self.emulator.take();
        for ns in self.namespaces.iter().rev() {
            delete_ns(ns);
        }
    }
}

/// `program` in `ns` at real-time priority `prio` (SCHED_FIFO, `chrt -f`) when that works:
/// the emulator and the probes then keep their timing while MPyC and builds load the CPUs.
/// (They block between packets, so they cannot starve anything.)
pub fn realtime(ns: &str, program: &Path, prio: u8) -> Command {
    static RT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let rt = *RT.get_or_init(|| {
        let ok = Command::new("chrt").args(["-f", "10", "true"]).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            eprintln!("lab: `chrt -f` does not work here; the emulator and probes run at normal priority");
        }
        ok
    });
    if rt {
        let mut c = in_ns(ns, "chrt");
        c.args(["-f", &prio.to_string()]).arg(program);
        c
    } else {
        in_ns(ns, program)
    }
}

fn spoke_no(i: usize) -> u8 {
    u8::try_from(i + 1).ok().filter(|&k| k < SERVER_SPOKE).expect("the scenario check keeps parties ≤ 40")
}

fn sysctl(ns: &str, kv: &str) -> Result<()> {
    run(in_ns(ns, "sysctl").args(["-qw", kv])).map(|_| ())
}

struct Forward {
    proto: &'static str,
    port: u16,
}

fn forwards(tcp: &[u16], udp: &[u16]) -> Vec<Forward> {
    tcp.iter()
        .map(|&port| Forward { proto: "tcp", port })
        .chain(udp.iter().map(|&port| Forward { proto: "udp", port }))
        .collect()
}

/// A home router's ruleset: forward LAN→WAN, masquerade on WAN, drop unsolicited inbound
/// except what a port forward lets in.
fn router_ruleset(random: bool, fwd: &[Forward]) -> String {
    let masquerade = if random { "masquerade random" } else { "masquerade" };
    let accept_dnat = if fwd.is_empty() { "" } else { "iifname \"wan\" ct status dnat accept" };
    let dnat: String =
        fwd.iter().map(|f| format!("iifname \"wan\" {} dport {} dnat to {HOME_PARTY}\n", f.proto, f.port)).collect();
    format!(
        "flush ruleset
table inet lab_filter {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname \"wan\" ct state established,related accept
        iifname \"wan\" drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        {accept_dnat}
        iifname \"wan\" ct state new drop
        iifname \"lan\" oifname \"wan\" accept
    }}
}}
table ip lab_nat {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        {dnat}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"wan\" {masquerade}
    }}
}}
"
    )
}

fn make_router(ns: &str, random: bool, fwd: &[Forward]) -> Result<()> {
    sysctl(ns, "net.ipv4.ip_forward=1")?;
    run_with_input(in_ns(ns, "nft").args(["-f", "-"]), &router_ruleset(random, fwd))
        .with_context(|| format!("nft refused the router ruleset in {ns}"))
        .map(|_| ())
}

/// Deletes namespaces of earlier lab processes that are gone.
fn sweep_leftovers() {
    let me = std::process::id();
    for ns in netns_list() {
        let Some(rest) = ns.strip_prefix("wl") else { continue };
        let Some((pid, _)) = rest.split_once('x') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != me && !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("lab: deleting leftover namespace {ns}");
            delete_ns(&ns);
        }
    }
}
