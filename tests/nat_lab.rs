//! Parties behind emulated NATs (network namespaces + nftables, see `support/netns.rs`): the lab
//! itself behaves like the NATs it names, `didmpc` parties behind different NATs exchange
//! messages through a mediator on the "Internet", and run a real MPyC program together whose
//! result matches the same program over plain TCP. Needs root and nftables; fails loudly without.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/netns.rs"]
mod netns;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use netns::{output_within, Background, Lab, Site, PUBLIC_IP, PUBLIC_IP2};
use serde_json::Value;

/// Small network probes, run with `python3 -c PROBE MODE ARGS…`. Every client prints one JSON line.
const PROBE: &str = r#"
import json, select, socket, sys, time, urllib.request

def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)

def fmt(a):
    return "%s:%d" % (a[0], a[1])

def tcp_serve(listen):
    # Tells every client the address it came from, and logs it.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr(listen))
    s.listen(64)
    print("ready", flush=True)
    while True:
        c, peer = s.accept()
        print("peer " + fmt(peer), flush=True)
        try:
            c.sendall((fmt(peer) + "\n").encode())
        finally:
            c.close()

def tcp_probe(target, timeout):
    try:
        c = socket.create_connection(addr(target), timeout=float(timeout))
        local = fmt(c.getsockname())
        out = {"local": local, "seen": c.makefile().readline().strip()}
    except socket.timeout:
        out = {"error": "timeout"}
    except ConnectionRefusedError:
        out = {"error": "refused"}
    except OSError as e:
        out = {"error": e.strerror or str(e)}
    print(json.dumps(out))

def udp_serve(*listens):
    # Answers each datagram with the address it came from, and also sends the sender one
    # datagram from another port it never contacted.
    socks = []
    for l in listens:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(addr(l))
        socks.append(s)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind((addr(listens[0])[0], 0))
    print("ready", flush=True)
    while True:
        for s in select.select(socks, [], [])[0]:
            data, peer = s.recvfrom(2048)
            s.sendto(("seen " + fmt(peer)).encode(), peer)
            other.sendto(b"unsolicited", peer)
            print("peer %s -> %s" % (fmt(peer), fmt(s.getsockname())), flush=True)

def udp_probe(sport, timeout, *targets):
    # From one local port to every target; reports how each target saw us, and how many
    # datagrams arrived from elsewhere.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sport)))
    s.settimeout(0.05)
    targets = [addr(t) for t in targets]
    seen, unsolicited = {}, 0
    deadline = time.time() + float(timeout)
    resend, linger = 0.0, None
    while time.time() < deadline and (linger is None or time.time() < linger):
        if time.time() >= resend:
            for t in targets:
                if fmt(t) not in seen:
                    s.sendto(b"probe", t)
            resend = time.time() + 0.2
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        if data.startswith(b"seen "):
            seen[fmt(peer)] = data[5:].decode()
        else:
            unsolicited += 1
        if linger is None and len(seen) == len(targets):
            linger = time.time() + 0.3
    print(json.dumps({"seen": seen, "unsolicited": unsolicited}))

def http_wait(url, timeout):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline, last = time.time() + float(timeout), None
    while time.time() < deadline:
        try:
            with opener.open(url, timeout=1) as r:
                print(json.dumps({"status": r.status}))
                return
        except Exception as e:
            last = e
            time.sleep(0.05)
    print(json.dumps({"error": str(last)}))

{"tcp-serve": tcp_serve, "tcp-probe": tcp_probe, "udp-serve": udp_serve, "udp-probe": udp_probe,
 "http-wait": http_wait}[sys.argv[1]](*sys.argv[2:])
"#;

const SECOND: Duration = Duration::from_secs(1);

/// The real Python interpreter (not a version-manager shim: it starts faster).
fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by the NAT lab tests");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

/// A probe server in `ns`, ready.
fn serve(lab: &Lab, ns: &str, args: &[&str], what: &str) -> Background {
    let mut server = Background::spawn(lab.command(ns, python()).args(["-c", PROBE]).args(args), what);
    server.wait_for_line(|l| l == "ready", 10 * SECOND, "the probe server to listen");
    server
}

/// Runs probe clients in parallel (namespace, arguments) and returns their JSON answers.
fn probe_all(lab: &Lab, probes: &[(&str, Vec<String>)]) -> Vec<Value> {
    std::thread::scope(|s| {
        let runs: Vec<_> = probes
            .iter()
            .map(|(ns, args)| {
                s.spawn(move || {
                    let what = format!("probe {args:?} in {ns}");
                    let out =
                        output_within(lab.command(ns, python()).args(["-c", PROBE]).args(args), 20 * SECOND, &what);
                    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
                    serde_json::from_slice::<Value>(&out.stdout)
                        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("not ip:port: {addr}"))
}

fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(addr)
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    Connects,
    Fails,
    TimesOut,
}

#[test]
fn lab_behaves_like_nats() {
    let sites = [Site::PortRestricted, Site::Symmetric, Site::Cgnat, Site::Public];
    let lab = Lab::new(&sites);
    let public = lab.public_ns().to_owned();

    // 1. Outbound TCP works from everywhere, and the Internet sees the router's address.
    let tcp_target = format!("{PUBLIC_IP}:7000");
    let tcp_server = serve(&lab, &public, &["tcp-serve", &tcp_target], "TCP server in public");
    let answers: Vec<Value> = probe_all(
        &lab,
        &(0..sites.len()).map(|i| (lab.party_ns(i), args(&["tcp-probe", &tcp_target, "5"]))).collect::<Vec<_>>(),
    );
    for (i, a) in answers.iter().enumerate() {
        let (site, seen, local) = (lab.site(i), a["seen"].as_str(), a["local"].as_str());
        let (Some(seen), Some(local)) = (seen, local) else {
            panic!("party {i} ({site:?}) cannot reach the public server: {a}\n{}", tcp_server.transcript());
        };
        eprintln!("TCP {site:?}: party {local} seen by the public server as {seen}");
        assert_eq!(ip_of(local), lab.party_ip(i).to_string(), "party {i} ({site:?}) has its own address");
        assert_eq!(ip_of(seen), lab.external_ip(i).to_string(), "party {i} ({site:?}) is seen at its router's address");
        if site != Site::Public {
            assert_ne!(ip_of(seen), ip_of(local), "party {i} ({site:?}) is NATed");
        }
        if matches!(site, Site::PortRestricted | Site::Cgnat | Site::Public) {
            assert_eq!(port_of(seen), port_of(local), "party {i} ({site:?}): plain masquerade keeps the port");
        }
        assert!(
            tcp_server.stdout_lines().contains(&format!("peer {seen}")),
            "the public server logged {seen}\n{}",
            tcp_server.transcript()
        );
    }

    // 2. Unsolicited inbound is dropped: a server in a home is reachable from inside only.
    let mut home_servers = Vec::new();
    for i in 0..sites.len() {
        home_servers.push(serve(
            &lab,
            lab.party_ns(i),
            &["tcp-serve", "0.0.0.0:8000"],
            &format!("server of party {i}"),
        ));
    }
    let mut probes: Vec<(&str, Vec<String>)> = Vec::new();
    // (what, expected): `Connects`, `Fails` (any error), or `TimesOut` (silently dropped: a
    // router without the `ct state new drop` rule would answer RST itself).
    let mut expect: Vec<(String, Expect)> = Vec::new();
    let nat_or_open = |i: usize| if lab.site(i) == Site::Public { Expect::Connects } else { Expect::TimesOut };
    for i in 0..sites.len() {
        let (site, ext, own) = (lab.site(i), lab.external_ip(i), lab.party_ip(i));
        probes.push((lab.party_ns(i), args(&["tcp-probe", "127.0.0.1:8000", "5"])));
        expect.push((format!("party {i} ({site:?}) to its own server on loopback"), Expect::Connects));
        probes.push((lab.party_ns(i), args(&["tcp-probe", &format!("{own}:8000"), "5"])));
        expect.push((format!("party {i} ({site:?}) to its own server at {own}"), Expect::Connects));
        probes.push((&public, args(&["tcp-probe", &format!("{ext}:8000"), "1"])));
        expect.push((format!("public to party {i} ({site:?}) at its external address {ext}"), nat_or_open(i)));
        if site != Site::Public {
            probes.push((&public, args(&["tcp-probe", &format!("{own}:8000"), "1"])));
            expect.push((format!("public to party {i} ({site:?}) at its private address {own}"), Expect::Fails));
        }
        for j in (0..sites.len()).filter(|&j| j != i) {
            probes.push((lab.party_ns(j), args(&["tcp-probe", &format!("{ext}:8000"), "1"])));
            expect.push((format!("party {j} ({:?}) to party {i} ({site:?}) at {ext}", lab.site(j)), nat_or_open(i)));
        }
    }
    let answers = probe_all(&lab, &probes);
    for ((what, expected), a) in expect.iter().zip(&answers) {
        eprintln!("{what}: {a}");
        match expected {
            Expect::Connects => assert!(a["seen"].is_string(), "{what}: should connect, got {a}"),
            Expect::Fails => assert!(a["error"].is_string(), "{what}: should NOT connect, got {a}"),
            Expect::TimesOut => assert_eq!(a["error"], "timeout", "{what}: should be dropped silently, got {a}"),
        }
    }
    for (i, server) in home_servers.iter().enumerate() {
        for line in server.stdout_lines().iter().filter_map(|l| l.strip_prefix("peer ")) {
            let ok =
                ip_of(line) == "127.0.0.1" || ip_of(line) == lab.party_ip(i).to_string() || lab.site(i) == Site::Public;
            assert!(ok, "party {i}'s server was reached from {line}\n{}", server.transcript());
        }
    }

    // 3. UDP mapping and filtering: one local port to four destinations (two addresses × two ports).
    let targets: Vec<String> =
        [PUBLIC_IP, PUBLIC_IP2].iter().flat_map(|ip| [7001, 7002].map(|p| format!("{ip}:{p}"))).collect();
    let mut serve_args = vec!["udp-serve"];
    serve_args.extend(targets.iter().map(String::as_str));
    let udp_server = serve(&lab, &public, &serve_args, "UDP server in public");
    let sport = 40000u16;
    let probes: Vec<(&str, Vec<String>)> = (0..sites.len())
        .map(|i| {
            let mut a = args(&["udp-probe", &sport.to_string(), "5"]);
            a.extend(targets.iter().cloned());
            (lab.party_ns(i), a)
        })
        .collect();
    for (i, a) in probe_all(&lab, &probes).iter().enumerate() {
        let site = lab.site(i);
        let seen: Vec<&str> = targets.iter().filter_map(|t| a["seen"][t].as_str()).collect();
        assert_eq!(
            seen.len(),
            targets.len(),
            "party {i} ({site:?}) reaches every UDP target: {a}\n{}",
            udp_server.transcript()
        );
        let ports: BTreeSet<u16> = seen.iter().map(|s| port_of(s)).collect();
        let unsolicited = a["unsolicited"].as_u64().unwrap();
        eprintln!(
            "UDP {site:?}: local port {sport} mapped to {:?} for {targets:?}; {unsolicited} datagram(s) from an uncontacted port got in",
            seen
        );
        for s in &seen {
            assert_eq!(ip_of(s), lab.external_ip(i).to_string(), "party {i} ({site:?}) UDP external address");
        }
        match site {
            Site::Symmetric => {
                // `masquerade random` picks the port from a hash of the destination: four
                // destinations all landing on one port would be a 1-in-2^48 coincidence.
                assert!(ports.len() >= 2, "symmetric NAT maps each destination anew, got {seen:?}");
            }
            _ => {
                assert_eq!(ports, BTreeSet::from([sport]), "party {i} ({site:?}): one mapping, port kept: {seen:?}");
            }
        }
        if site == Site::Public {
            assert!(unsolicited > 0, "no NAT, no filter: the uncontacted port gets through");
        } else {
            assert_eq!(unsolicited, 0, "party {i} ({site:?}): a port it never contacted must not get in");
        }
    }
}

/// A temp directory of this test.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("didmpc-natlab-{}", uuid::Uuid::new_v4().simple())).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn didmpc_ok(lab: &Lab, ns: &str, home: &std::path::Path, a: &[&str], timeout: Duration) -> String {
    let what = format!("didmpc {} in {ns}", a.join(" "));
    let out =
        output_within(lab.command(ns, env!("CARGO_BIN_EXE_didmpc")).arg("--home").arg(home).args(a), timeout, &what);
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Reads `home`'s inbox until a Basic Message with `text` arrives; returns it (JSON).
fn receive(lab: &Lab, ns: &str, home: &std::path::Path, text: &str) -> Value {
    let deadline = std::time::Instant::now() + 20 * SECOND;
    let mut got = Vec::new();
    loop {
        let out = didmpc_ok(lab, ns, home, &["inbox", "--json"], 30 * SECOND);
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("inbox --json line is not JSON ({e}): {line}"));
            if v["message"]["body"]["content"] == text {
                return v;
            }
            got.push(v);
        }
        assert!(std::time::Instant::now() < deadline, "{text:?} never arrived in {ns}; the inbox had: {got:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `didmpc mediator serve` in the public namespace, reachable (`/health`) from `from`.
fn start_mediator(lab: &Lab, from: &[&str]) -> (Background, String) {
    let listen = format!("{}:7080", lab.public_ip());
    let url = format!("http://{listen}");
    let db = tmp("mediator").join("mediator.db");
    let mut mediator = Background::spawn(
        lab.command(lab.public_ns(), env!("CARGO_BIN_EXE_didmpc"))
            .arg("--home")
            .arg(db.parent().unwrap())
            .args(["mediator", "serve", "--listen", &listen, "--db"])
            .arg(&db),
        "the mediator in public",
    );
    mediator.wait_for_line(|l| l.starts_with("listening on"), 30 * SECOND, "the mediator to listen");
    let health = format!("{url}/health");
    let probes: Vec<(&str, Vec<String>)> = from.iter().map(|ns| (*ns, args(&["http-wait", &health, "10"]))).collect();
    for (ns, a) in from.iter().zip(probe_all(lab, &probes)) {
        assert_eq!(a["status"], 200, "{health} from {ns}: {a}\n{}", mediator.transcript());
    }
    (mediator, url)
}

#[test]
fn messages_cross_nats_through_the_mediator() {
    let lab = Lab::new(&[Site::Symmetric, Site::Cgnat]);
    let (a_ns, b_ns) = (lab.party_ns(0).to_owned(), lab.party_ns(1).to_owned());
    let (mediator, url) = start_mediator(&lab, &[&a_ns, &b_ns]);

    let (home_a, home_b) = (tmp("a"), tmp("b"));
    let (did_a, did_b) = std::thread::scope(|s| {
        let a = s.spawn(|| didmpc_ok(&lab, &a_ns, &home_a, &["init", "--mediator", &url], 60 * SECOND));
        let b = s.spawn(|| didmpc_ok(&lab, &b_ns, &home_b, &["init", "--mediator", &url], 60 * SECOND));
        (a.join().unwrap().trim().to_owned(), b.join().unwrap().trim().to_owned())
    });
    assert!(did_a.starts_with("did:") && did_b.starts_with("did:"), "init prints the DIDs: {did_a:?} {did_b:?}");
    assert_ne!(did_a, did_b);

    // A (symmetric NAT) → B (CGNAT), then back.
    let hello = "hello from behind a symmetric NAT";
    didmpc_ok(&lab, &a_ns, &home_a, &["send", "--to", &did_b, "--text", hello], 30 * SECOND);
    let got = receive(&lab, &b_ns, &home_b, hello);
    let sender = got["metadata"]["sender"].as_str().unwrap_or_default();
    assert!(sender == did_a || sender.starts_with(&format!("{did_a}#")), "B sees the message from A ({did_a}): {got}");

    let reply = "hello back from behind a CGNAT";
    didmpc_ok(&lab, &b_ns, &home_b, &["send", "--to", &did_a, "--text", reply], 30 * SECOND);
    let got = receive(&lab, &a_ns, &home_a, reply);
    let sender = got["metadata"]["sender"].as_str().unwrap_or_default();
    assert!(sender == did_b || sender.starts_with(&format!("{did_b}#")), "A sees the reply from B ({did_b}): {got}");

    let mut mediator = mediator;
    assert!(mediator.exited().is_none(), "the mediator is still up\n{}", mediator.transcript());
}

/// Runs `didmpc ARGS` in `ns` in the background.
fn didmpc_bg(lab: &Lab, ns: &str, home: &std::path::Path, cwd: &std::path::Path, a: &[&str], what: &str) -> Background {
    Background::spawn(
        lab.command(ns, env!("CARGO_BIN_EXE_didmpc")).arg("--home").arg(home).args(a).current_dir(cwd),
        what,
    )
}

/// Waits for a background `didmpc` to exit successfully; its RESULT line.
fn finished_with_result(mut p: Background, timeout: Duration, what: &str) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(st) = p.exited() {
            std::thread::sleep(Duration::from_millis(200));
            assert!(st.success(), "{what} failed ({st})\n{}", p.transcript());
            let line = p.stdout_lines().into_iter().find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned));
            let line = line.unwrap_or_else(|| panic!("{what} printed no RESULT\n{}", p.transcript()));
            return serde_json::from_str(&line).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "{what} did not finish in {timeout:?}\n{}", p.transcript());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mpc_runs_across_nats() {
    // Three homes that cannot reach each other: a port-restricted cone NAT, a symmetric NAT and
    // a double NAT (CGNAT); the mediator on the "Internet". No route between the homes.
    let lab = Lab::new(&[Site::PortRestricted, Site::Symmetric, Site::Cgnat]);
    let ns: Vec<String> = (0..3).map(|i| lab.party_ns(i).to_owned()).collect();
    let nsr: Vec<&str> = ns.iter().map(String::as_str).collect();
    let (mut mediator, url) = start_mediator(&lab, &nsr);
    let homes: Vec<PathBuf> = (0..3).map(|i| tmp(&format!("mpc{i}"))).collect();
    let dids: Vec<String> = std::thread::scope(|s| {
        let h: Vec<_> = (0..3)
            .map(|i| {
                let (lab, ns, home, url) = (&lab, &ns[i], &homes[i], &url);
                s.spawn(move || didmpc_ok(lab, ns, home, &["init", "--mediator", url], 60 * SECOND).trim().to_owned())
            })
            .collect();
        h.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let py = mpyc::python();
    let py = py.to_str().unwrap();
    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("nat{i}"), "secure_stats.py")).collect();
    let args = ["--rounds", "2", "--seed", "3"];
    let mut host_args = vec!["invite", &dids[1], &dids[2], "--program", "secure_stats.py", "--python", py, "--"];
    host_args.extend(args);
    let host = didmpc_bg(&lab, &ns[0], &homes[0], &dirs[0], &host_args, "host (port-restricted NAT)");
    let joiners: Vec<Background> = (1..3)
        .map(|i| {
            let a = ["join", "next", "--yes", "--from", &dids[0], "--wait", "120", "--python", py];
            didmpc_bg(&lab, &ns[i], &homes[i], &dirs[i], &a, &format!("party {i} ({:?})", lab.site(i)))
        })
        .collect();
    let mut results = vec![finished_with_result(host, 240 * SECOND, "the host")];
    for (i, j) in joiners.into_iter().enumerate() {
        results.push(finished_with_result(j, 60 * SECOND, &format!("party {}", i + 1)));
    }
    let (plain, _) = mpyc::plain("secure_stats.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain, "the result across NATs equals plain TCP's");
    }
    assert!(mediator.exited().is_none(), "the mediator is still up\n{}", mediator.transcript());
}
