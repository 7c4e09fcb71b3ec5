//! Scripted cluster load, side by side in one run: forwards accepted per second and live
//! deliveries per second for SQLite on one instance, Redis with one instance, and Redis with
//! two and three instances behind HAProxy; CPU per forward (every process of the setup:
//! instances, Redis, HAProxy); idle live WebSockets per instance.
//!
//! `cargo bench --bench mediator_cluster` (env: FORWARDS=10000, IDLE_CONNECTIONS=2000,
//! SETUPS=sqlite,redis1,redis2,redis3). Needs redis-server and haproxy
//! (`scripts/setup-system.sh --cluster`). With `COMPARE_BIN=/path/to/another/didmpc` (say, a
//! build of an earlier commit), every setup also runs on that binary, right after the same
//! setup on this build, as `<setup>@other`: a before/after in one run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/forwards.rs"]
mod forwards;

use did_core::didcomm::vocab::LiveDeliveryChange;
use did_core::didcomm::Message as Msg;
use did_core::didcomm::{self, Message, PackOptions};
use did_core::{Keystore, Resolver};
use forwards::metric;
use gateway::Agent;
use serde_json::json;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with the last ')').
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12) // utime, stime (fields 14 and 15 of stat)
}

fn clock_ticks_per_sec() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(30), "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One setup: its processes and the URL parties use.
struct Setup {
    name: String,
    /// Instance base URLs.
    instances: Vec<String>,
    /// Every process (instances first).
    procs: Vec<Proc>,
    url: String,
}

fn start(name: &str, bin: &Path, n: usize, redis: bool, dir: &Path) -> Setup {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut procs = Vec::new();
    let mut redis_procs = Vec::new();
    let store = if redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup-system.sh --cluster)");
        redis_procs.push(Proc(child));
        wait_port(port);
        format!("url = \"redis://127.0.0.1:{port}/0\"\n")
    } else {
        String::new()
    };
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let lb_port = free_port();
    let public = if n > 1 { format!("http://127.0.0.1:{lb_port}") } else { format!("http://127.0.0.1:{}", ports[0]) };
    for (i, port) in ports.iter().enumerate() {
        let config = dir.join(format!("instance{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_urls = [\"{public}\"]\n[store]\n{store}db = \"{}\"\n\
                 [limits]\nmax_connections = 30000\nmax_connections_per_ip = 30000\n\
                 requests_per_second_per_ip = 1000000\nrequest_burst_per_ip = 1000000\n\
                 max_queue_messages = 1000000\nmax_queue_bytes = 10000000000\n\
                 max_queue_messages_per_source = 1000000\nmax_queue_bytes_per_source = 10000000000\n",
                dir.join("mediator.db").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args(["mediator", "serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        procs.push(Proc(child));
        // The first instance makes the identity; the others load it.
        wait_port(*port);
        std::thread::sleep(Duration::from_millis(300));
    }
    if n > 1 {
        let mut cfg = String::from(
            "global\n  maxconn 9000\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 300s\n  \
             timeout server 300s\n  timeout tunnel 1h\n  maxconn 9000\nfrontend mediator\n",
        );
        cfg.push_str(&format!("  bind 127.0.0.1:{lb_port}\n  default_backend instances\n"));
        cfg.push_str("backend instances\n  balance roundrobin\n  option httpchk GET /health\n");
        for (i, p) in ports.iter().enumerate() {
            cfg.push_str(&format!("  server i{i} 127.0.0.1:{p} check inter 1s\n"));
        }
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, cfg).unwrap();
        let bin = if Path::new("/usr/sbin/haproxy").exists() { "/usr/sbin/haproxy" } else { "haproxy" };
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (scripts/setup-system.sh --cluster)");
        procs.push(Proc(child));
        wait_port(lb_port);
        std::thread::sleep(Duration::from_millis(1500)); // first health checks
    }
    procs.extend(redis_procs);
    Setup {
        name: name.to_owned(),
        instances: ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect(),
        procs,
        url: public,
    }
}

struct Row {
    name: String,
    accepted_per_s: f64,
    live_per_s: f64,
    live_count: usize,
    cpu_us: f64,
    idle: Vec<(u64, u64)>,
}

async fn run(s: &Setup, dir: &Path, forwards: usize, idle: usize, tck: f64) -> Row {
    let ws_url = format!("{}/ws", s.url.replacen("http://", "ws://", 1));
    let home = |p: &str| -> PathBuf { dir.join(&s.name).join(p) };
    let alice = Agent::init(&home("alice"), &s.url).await.unwrap();
    let bob = Agent::init(&home("bob"), &s.url).await.unwrap();

    // Pre-pack the forwards (the sender's cost is not the mediator's).
    let ks = Keystore::open(home("alice")).unwrap();
    let alice_id = Arc::new(ks.load(&alice.file.party).unwrap());
    let resolver = Arc::new(Resolver::with_http().unwrap());
    let mut packers = Vec::new();
    for w in 0..2 {
        let to = bob.file.routed.as_ref().expect("a routed DID").to_string();
        let (id, r) = (alice_id.clone(), resolver.clone());
        packers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (w..forwards).step_by(2) {
                let msg = Message::new(
                    "https://didcomm.org/basicmessage/2.0/message",
                    json!({"content": format!("message {i:06} {}", "x".repeat(120))}),
                )
                .from(id.did.as_str())
                .to(to.as_str());
                let opts = PackOptions::default();
                let p = didcomm::pack_encrypted(&msg, &to, Some(id.did.as_str()), None, r.as_ref(), id.as_ref(), &opts)
                    .await
                    .unwrap();
                out.push(p.message);
            }
            out
        }));
    }
    let mut packed = Vec::new();
    for p in packers {
        packed.extend(p.await.unwrap());
    }

    // Bob live on one WebSocket (through the balancer: on one of the instances).
    let link = bob.link();
    let transport = gateway::transport::Transport::new().unwrap();
    let mut other = Vec::new();
    let mut live = transport.connect(&ws_url).await.unwrap();
    let answer =
        link.request_ws(&mut live, Msg::typed(&LiveDeliveryChange { live_delivery: true }), &mut other).await.unwrap();
    assert_eq!(answer.body["live_delivery"], true);
    let pushed = Arc::new(AtomicUsize::new(0));
    let (pushed2, want) = (pushed.clone(), forwards);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Instant>();
    let counter = tokio::spawn(async move {
        let mut done = Some(done_tx);
        while pushed2.load(Ordering::SeqCst) < want {
            match live.recv().await {
                Ok(Some(_)) => {
                    if pushed2.fetch_add(1, Ordering::SeqCst) + 1 >= want {
                        if let Some(d) = done.take() {
                            let _ = d.send(Instant::now());
                        }
                    }
                }
                Ok(None) => panic!("the live connection closed"),
                Err(e) => panic!("live connection: {e}"),
            }
        }
        live
    });

    // Blast over 8 WebSockets (through the balancer: spread over the instances).
    let pids: Vec<u32> = s.procs.iter().map(|p| p.0.id()).collect();
    let cpu0: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
    let before = forwards::total(&s.instances, "didmpc_mediator_forwards_queued_total").await;
    let t = Instant::now();
    let keep = forwards::blast(&ws_url, &packed, &s.instances, before).await;
    let accept_secs = t.elapsed().as_secs_f64();
    // Pushes are best effort (a message a slow live socket cannot take stays queued for
    // pickup): wait for all of them, or until none came for 5 s.
    let mut done_rx = done_rx;
    let mut last = (0, Instant::now());
    let live_done = loop {
        match tokio::time::timeout(Duration::from_millis(200), &mut done_rx).await {
            Ok(Ok(at)) => break at,
            _ => {
                let n = pushed.load(Ordering::SeqCst);
                if n != last.0 {
                    last = (n, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(5) {
                    break last.1;
                }
            }
        }
    };
    let live_count = pushed.load(Ordering::SeqCst);
    let live_secs = (live_done - t).as_secs_f64();
    let cpu1: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
    drop(keep);
    counter.abort();

    // Idle live WebSockets through the same URL.
    let mut conns = Vec::with_capacity(idle);
    let rss0: Vec<u64> = pids[..s.instances.len()].iter().map(|&p| rss_kib(p)).collect();
    for i in 0..idle {
        let mut c = transport.connect(&ws_url).await.unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let a = link.request_ws(&mut c, Msg::typed(&LiveDeliveryChange { live_delivery: true }), &mut other).await;
        assert_eq!(a.unwrap().body["live_delivery"], true);
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut per = Vec::new();
    for (i, u) in s.instances.iter().enumerate() {
        let open = metric(u, "didmpc_mediator_ws_connections").await;
        per.push((open, rss_kib(pids[i]).saturating_sub(rss0[i])));
    }
    drop(conns);
    Row {
        name: s.name.clone(),
        accepted_per_s: forwards as f64 / accept_secs,
        live_per_s: live_count as f64 / live_secs,
        live_count,
        cpu_us: (cpu1 - cpu0) as f64 / tck * 1e6 / forwards as f64,
        idle: per,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` support
    }
    let forwards = env_num("FORWARDS", 10_000);
    let idle = env_num("IDLE_CONNECTIONS", 2_000);
    let setups = std::env::var("SETUPS").unwrap_or_else(|_| "sqlite,redis1,redis2,redis3".into());
    let tck = clock_ticks_per_sec();
    let dir = std::env::temp_dir().join(format!("didmpc-cluster-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rows = Vec::new();
    let mut bins = vec![("", PathBuf::from(env!("CARGO_BIN_EXE_didmpc")))];
    if let Some(other) = std::env::var_os("COMPARE_BIN") {
        let other = PathBuf::from(other);
        assert!(other.is_file(), "COMPARE_BIN={} is not a file", other.display());
        bins.push(("@other", other));
    }
    for setup in setups.split(',') {
        let (n, redis) = match setup {
            "sqlite" => (1, false),
            "redis1" => (1, true),
            "redis2" => (2, true),
            "redis3" => (3, true),
            other => panic!("unknown setup {other}"),
        };
        for (suffix, bin) in &bins {
            let name = format!("{setup}{suffix}");
            let s = start(&name, bin, n, redis, &dir);
            let row = run(&s, &dir, forwards, idle, tck).await;
            eprintln!("{name}: {:.0} forwards/s, {:.0} live/s", row.accepted_per_s, row.live_per_s);
            rows.push(row);
            drop(s);
        }
    }
    let base = rows.iter().find(|r| r.name == "sqlite").map(|r| r.accepted_per_s);
    println!("| setup | forwards accepted/s | live deliveries/s (pushed of sent) | CPU per forward (all processes) | vs SQLite | idle live WebSockets per instance (open, RSS growth) |");
    println!("|---|---:|---:|---:|---:|---|");
    for r in &rows {
        let ratio = base.map_or("—".to_owned(), |b| format!("{:.2}x", r.accepted_per_s / b));
        let idle: Vec<String> = r.idle.iter().map(|(o, k)| format!("{o} ({:.1} MiB)", *k as f64 / 1024.0)).collect();
        println!(
            "| {} | {:.0} | {:.0} ({} of {forwards}) | {:.0} µs | {ratio} | {} |",
            r.name,
            r.accepted_per_s,
            r.live_per_s,
            r.live_count,
            r.cpu_us,
            idle.join(", ")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
