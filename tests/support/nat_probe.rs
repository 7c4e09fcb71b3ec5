//! The NAT lab's network probes (run with `python3 -c PROBE MODE ARGS…` inside the lab's
//! namespaces) and what a probe is expected to see. Used by `tests/nat_lab.rs`.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::netns::{output_within, Background, Lab};

/// Small network probes, run with `python3 -c PROBE MODE ARGS…`. Every client prints one JSON line.
pub const PROBE: &str = r#"
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

pub const SECOND: Duration = Duration::from_secs(1);

/// The real Python interpreter (not a version-manager shim: it starts faster).
pub fn python() -> &'static str {
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
pub fn serve(lab: &Lab, ns: &str, args: &[&str], what: &str) -> Background {
    let mut server = Background::spawn(lab.command(ns, python()).args(["-c", PROBE]).args(args), what);
    server.wait_for_line(|l| l == "ready", 10 * SECOND, "the probe server to listen");
    server
}

/// Runs probe clients in parallel (namespace, arguments) and returns their JSON answers.
pub fn probe_all(lab: &Lab, probes: &[(&str, Vec<String>)]) -> Vec<Value> {
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

pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

pub fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("not ip:port: {addr}"))
}

pub fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(addr)
}

/// What a probe should see.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    Connects,
    Fails,
    TimesOut,
}
