//! A NAT lab made of Linux network namespaces, for integration tests.
//!
//! One `public` namespace plays the Internet: a bridge `br0` (203.0.113.0/24, TEST-NET-3) holding
//! 203.0.113.1 and 203.0.113.2, where the mediator (or any test server) listens. Every party lives
//! in its own namespace behind the routers of its [`Site`]:
//!
//! ```text
//!  PortRestricted  party 192.168.1.2 ─ lan [router: masquerade]        wan 203.0.113.(10+i) ─┐
//!  Symmetric       party 192.168.1.2 ─ lan [router: masquerade random] wan 203.0.113.(10+i) ─┤ br0 in `public`
//!  Cgnat           party 192.168.1.2 ─ lan [router] wan 100.64.0.2 ─ lan [carrier] wan ...   ─┤ 203.0.113.1, .2
//!  Public          party 203.0.113.(100+i) ───────────────────────────────────────────────────┘
//! ```
//!
//! Every home uses 192.168.1.0/24 (overlapping, as real homes do); nothing routes between homes.
//! Routers forward, masquerade what leaves on `wan`, and drop whatever arrives on `wan` unsolicited
//! (`ct state new`), so only replies to what the inside started get in. Interfaces inside the
//! namespaces have fixed short names (`wan`, `lan`, `eth0`, `br0`, `s0`…): veth pairs are created
//! directly in their namespaces, so nothing is ever named in the host's namespace.
//!
//! Namespaces are fresh per [`Lab`] (no conntrack state survives) and named
//! `nlab<pid>-<n>-<role>`; [`Lab`]'s `Drop` kills every process left in them and deletes them, and
//! the first lab of a process deletes leftovers of crashed runs (`nlab<pid>` with a dead pid).
//! Needs root, `ip` (iproute2) and `nft` (nftables); without them the lab panics loudly.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// Where a party sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// A home router with `masquerade`: port-preserving, endpoint-independent mapping; only
    /// replies from the exact address:port contacted get in (port-restricted cone).
    PortRestricted,
    /// A home router with `masquerade random`: a new external port per destination (symmetric).
    Symmetric,
    /// A home router (`masquerade`) behind a carrier-grade NAT (`masquerade`, 100.64.0.0/10).
    Cgnat,
    /// No NAT: the party has its own address on the public network.
    Public,
}

/// The mediator's (first) public address.
pub const PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// A second address of the public namespace (a "different host" for mapping tests).
pub const PUBLIC_IP2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// Every home's LAN: router .1, party .2.
const HOME_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const HOME_PARTY: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
/// Between a CGNAT subscriber's home router and the carrier's router.
const CARRIER_LAN: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
const SUBSCRIBER_WAN: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

const PREFIX: &str = "nlab";
const NEEDS: &str = "the NAT lab needs root, iproute2 (`ip`) and nftables (`nft`): run the tests as root after \
                     `apt-get install -y iproute2 nftables`";

/// One party of a lab.
#[derive(Clone, Debug)]
pub struct Party {
    /// Its site.
    pub site: Site,
    /// Its namespace.
    pub ns: String,
    /// Its own address (private unless `Site::Public`).
    pub ip: Ipv4Addr,
    /// The address the public network sees its traffic come from.
    pub external_ip: Ipv4Addr,
    /// Its routers, innermost first (none for `Site::Public`).
    pub routers: Vec<String>,
}

/// A set of fresh namespaces; deleted (with everything running in them) on drop.
pub struct Lab {
    prefix: String,
    /// Every namespace created so far, in creation order.
    namespaces: Vec<String>,
    public_ns: String,
    parties: Vec<Party>,
}

impl Lab {
    /// Builds the public namespace and one party per site (party `i` is `sites[i]`).
    pub fn new(sites: &[Site]) -> Lab {
        preflight();
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_leftovers);
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!("{PREFIX}{}-{}-", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let public_ns = format!("{prefix}pub");
        // The lab exists (and cleans up on a panic) from here on.
        let mut lab = Lab { prefix, namespaces: Vec::new(), public_ns: public_ns.clone(), parties: Vec::new() };
        lab.add_ns(&public_ns);
        ip(&["-n", &public_ns, "link", "add", "br0", "type", "bridge", "forward_delay", "0"]);
        ip(&["-n", &public_ns, "link", "set", "br0", "up"]);
        for a in [PUBLIC_IP, PUBLIC_IP2] {
            ip(&["-n", &public_ns, "addr", "add", &format!("{a}/24"), "dev", "br0"]);
        }
        for (i, site) in sites.iter().enumerate() {
            assert!(i < 80, "the NAT lab holds at most 80 parties");
            let party = lab.add_site(i, *site);
            lab.parties.push(party);
        }
        lab
    }

    /// The "Internet" namespace (mediator, test servers).
    pub fn public_ns(&self) -> &str {
        &self.public_ns
    }

    /// The public namespace's main address (203.0.113.1).
    pub fn public_ip(&self) -> Ipv4Addr {
        PUBLIC_IP
    }

    /// All parties, in the order of the sites given to [`Lab::new`].
    pub fn parties(&self) -> &[Party] {
        &self.parties
    }

    /// Party `i`'s namespace.
    pub fn party_ns(&self, i: usize) -> &str {
        &self.parties[i].ns
    }

    /// Party `i`'s own address.
    pub fn party_ip(&self, i: usize) -> Ipv4Addr {
        self.parties[i].ip
    }

    /// The address the public namespace sees party `i` come from.
    pub fn external_ip(&self, i: usize) -> Ipv4Addr {
        self.parties[i].external_ip
    }

    /// Party `i`'s site.
    pub fn site(&self, i: usize) -> Site {
        self.parties[i].site
    }

    /// `program` run inside namespace `ns` (`ip netns exec NS program`), with proxy variables
    /// removed so that nothing tries to leave through a proxy.
    pub fn command(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        assert!(self.namespaces.iter().any(|n| n == ns), "{ns} is not a namespace of this lab");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        for v in
            ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"]
        {
            c.env_remove(v);
        }
        c
    }

    /// Loads nftables `rules` (`nft -f -` syntax) in namespace `ns`, e.g. to cut or degrade a
    /// router's traffic in the middle of a test.
    pub fn nft(&self, ns: &str, rules: &str) {
        assert!(self.namespaces.iter().any(|n| n == ns), "{ns} is not a namespace of this lab");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nft ({e}); {NEEDS}"));
        child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "nft refused {rules:?} in {ns}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The nftables ruleset a router of this lab runs (for diagnostics).
    pub fn ruleset(&self, router_ns: &str) -> String {
        String::from_utf8_lossy(
            &run(Command::new("ip").args(["netns", "exec", router_ns, "nft", "list", "ruleset"])).stdout,
        )
        .into_owned()
    }

    fn add_ns(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    /// A veth pair from `ns_if` in `ns` to port `port` of the public bridge.
    fn plug_into_public(&self, ns: &str, ns_if: &str, port: &str) {
        ip(&["-n", ns, "link", "add", ns_if, "type", "veth", "peer", "name", port, "netns", &self.public_ns]);
        ip(&["-n", &self.public_ns, "link", "set", port, "master", "br0"]);
        ip(&["-n", &self.public_ns, "link", "set", port, "up"]);
        ip(&["-n", ns, "link", "set", ns_if, "up"]);
    }

    /// A veth pair between two lab namespaces.
    fn link(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        ip(&["-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b]);
        ip(&["-n", a, "link", "set", a_if, "up"]);
        ip(&["-n", b, "link", "set", b_if, "up"]);
    }

    fn add_site(&mut self, i: usize, site: Site) -> Party {
        let party_ns = format!("{}p{i}", self.prefix);
        let port = format!("s{i}");
        let wan_ip = Ipv4Addr::new(203, 0, 113, 10 + i as u8);
        self.add_ns(&party_ns);
        if site == Site::Public {
            let ip_addr = Ipv4Addr::new(203, 0, 113, 100 + i as u8);
            self.plug_into_public(&party_ns, "eth0", &port);
            ip(&["-n", &party_ns, "addr", "add", &format!("{ip_addr}/24"), "dev", "eth0"]);
            return Party { site, ns: party_ns, ip: ip_addr, external_ip: ip_addr, routers: vec![] };
        }
        let router = format!("{}r{i}", self.prefix);
        self.add_ns(&router);
        let mut routers = vec![router.clone()];
        if site == Site::Cgnat {
            let carrier = format!("{}c{i}", self.prefix);
            self.add_ns(&carrier);
            self.plug_into_public(&carrier, "wan", &port);
            ip(&["-n", &carrier, "addr", "add", &format!("{wan_ip}/24"), "dev", "wan"]);
            self.link(&router, "wan", &carrier, "lan");
            ip(&["-n", &carrier, "addr", "add", &format!("{CARRIER_LAN}/10"), "dev", "lan"]);
            ip(&["-n", &router, "addr", "add", &format!("{SUBSCRIBER_WAN}/10"), "dev", "wan"]);
            ip(&["-n", &router, "route", "add", "default", "via", &CARRIER_LAN.to_string()]);
            make_router(&carrier, false);
            routers.push(carrier);
        } else {
            self.plug_into_public(&router, "wan", &port);
            ip(&["-n", &router, "addr", "add", &format!("{wan_ip}/24"), "dev", "wan"]);
        }
        self.link(&party_ns, "eth0", &router, "lan");
        ip(&["-n", &router, "addr", "add", &format!("{HOME_ROUTER}/24"), "dev", "lan"]);
        ip(&["-n", &party_ns, "addr", "add", &format!("{HOME_PARTY}/24"), "dev", "eth0"]);
        ip(&["-n", &party_ns, "route", "add", "default", "via", &HOME_ROUTER.to_string()]);
        make_router(&router, site == Site::Symmetric);
        Party { site, ns: party_ns, ip: HOME_PARTY, external_ip: wan_ip, routers }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            delete_ns(ns);
        }
    }
}

/// The router ruleset: forward LAN→WAN, masquerade on WAN, drop unsolicited inbound.
fn router_ruleset(random: bool) -> String {
    let masquerade = if random { "masquerade random" } else { "masquerade" };
    format!(
        "table inet nat_lab_filter {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname \"wan\" ct state established,related accept
        iifname \"wan\" drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        iifname \"wan\" ct state new drop
        iifname \"lan\" oifname \"wan\" accept
    }}
}}
table ip nat_lab_nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"wan\" {masquerade}
    }}
}}
"
    )
}

fn make_router(ns: &str, random: bool) {
    run_ok(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]));
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run nft ({e}); {NEEDS}"));
    child.stdin.take().unwrap().write_all(router_ruleset(random).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft refused the router ruleset in {ns}: {}\n{NEEDS}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Panics loudly unless we are root with `ip` and `nft` available.
fn preflight() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(euid, Some("0"), "not running as root; {NEEDS}");
    for (prog, arg) in [("ip", "-V"), ("nft", "--version")] {
        match Command::new(prog).arg(arg).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("`{prog} {arg}` failed: {}; {NEEDS}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!("cannot run `{prog}` ({e}); {NEEDS}"),
        }
    }
}

/// Deletes namespaces of earlier runs of this pattern whose process is gone (or is us, reused pid).
fn sweep_leftovers() {
    let me = std::process::id();
    for ns in netns_list() {
        let Some(rest) = ns.strip_prefix(PREFIX) else { continue };
        let Some((pid, _)) = rest.split_once('-') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid == me || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("NAT lab: deleting leftover namespace {ns}");
            delete_ns(&ns);
        }
    }
}

fn netns_list() -> Vec<String> {
    let out = run(Command::new("ip").args(["netns", "list"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Kills every process inside `ns`, then deletes it. Best effort (used from `Drop`).
fn delete_ns(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<String> = match Command::new("ip").args(["netns", "pids", ns]).output() {
            Ok(o) => String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect(),
            Err(_) => vec![],
        };
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        let _ = Command::new("kill").arg("-KILL").args(&pids).stderr(Stdio::null()).status();
        std::thread::sleep(Duration::from_millis(20));
    }
    match Command::new("ip").args(["netns", "delete", ns]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!("NAT lab: cannot delete namespace {ns}: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => eprintln!("NAT lab: cannot delete namespace {ns}: {e}"),
    }
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}); {NEEDS}"))
}

fn run_ok(cmd: &mut Command) {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}\n{NEEDS}", String::from_utf8_lossy(&out.stderr).trim());
}

/// Runs `cmd` to completion (stdin closed), killing it and panicking after `timeout`.
pub fn output_within(cmd: &mut Command, timeout: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {timeout:?}, killed\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&finish(out)),
                String::from_utf8_lossy(&finish(err))
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: finish(out), stderr: finish(err) }
}

/// A pipe being read to its end on a thread: the bytes so far, and the reader.
type Drained = (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>);

fn drain(mut r: impl Read + Send + 'static) -> Drained {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    (buf, reader)
}

/// Waits (briefly: a leftover grandchild may hold the pipe) for the end of a drained pipe.
fn finish((buf, reader): Drained) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let v = buf.lock().unwrap().clone();
    v
}

/// A long-running process (a server) whose output is collected line by line; killed on drop.
pub struct Background {
    what: String,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Background {
    /// Starts `cmd` with stdin closed and stdout/stderr collected.
    pub fn spawn(cmd: &mut Command, what: &str) -> Background {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Background { what: what.to_owned(), child, stdout, stderr }
    }

    /// Its stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until a stdout line satisfies `pred` and returns it; panics (with the output so far)
    /// after `timeout` or if the process exits first.
    pub fn wait_for_line(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration, waiting_for: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.stdout.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                // Give the readers a moment to collect the last words.
                std::thread::sleep(Duration::from_millis(100));
                let why = match exited {
                    Some(s) => format!("exited ({s})"),
                    None => format!("nothing after {timeout:?}"),
                };
                panic!("{}: waiting for {waiting_for}: {why}\n{}", self.what, self.transcript());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Everything it printed so far.
    pub fn transcript(&self) -> String {
        format!(
            "--- stdout of {w}\n{}\n--- stderr of {w}\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n"),
            w = self.what
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(r: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => b.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
    buf
}
