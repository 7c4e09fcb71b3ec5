//! A mediator cluster for tests: a real `redis-server`, real `didmpc mediator serve`
//! instances on it sharing one identity, and a real HAProxy in front of them, each on
//! loopback ports of its own (`scripts/setup-system.sh --cluster` installs Redis and HAProxy).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, temp_path, Process};

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed on drop.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `redis-server` without persistence.
pub struct Redis {
    _child: Owned,
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
}

impl Redis {
    /// Starts one on a free port and waits until it listens.
    pub fn start() -> Redis {
        let port = free_port();
        let dir = temp_path("redis");
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/setup-system.sh --cluster installs it)");
        let child = Owned(child);
        wait_listening(port, "redis-server");
        Redis { _child: child, url: format!("redis://127.0.0.1:{port}/0") }
    }
}

/// HAProxy balancing HTTP and WebSockets round robin over the instances, checking
/// `GET /health` every 200 ms; a request whose connection fails goes to another instance.
pub struct Haproxy {
    _child: Owned,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Haproxy {
    /// Starts one on `port` in front of `backends` (ports on 127.0.0.1).
    pub fn start(port: u16, backends: &[u16]) -> Haproxy {
        let mut cfg = String::from(
            "global\n  maxconn 4096\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n  \
             timeout tunnel 1h\n  retries 3\n  option redispatch 1\n\
             frontend mediator\n",
        );
        cfg.push_str(&format!("  bind 127.0.0.1:{port}\n  http-request deny if {{ path_beg /cluster/ }}\n"));
        cfg.push_str("  default_backend instances\n");
        cfg.push_str("backend instances\n  balance roundrobin\n  option httpchk GET /health\n");
        for (i, p) in backends.iter().enumerate() {
            cfg.push_str(&format!("  server i{i} 127.0.0.1:{p} check inter 200ms fall 2 rise 1\n"));
        }
        let file = temp_path("haproxy.cfg");
        std::fs::write(&file, cfg).unwrap();
        let bin = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("haproxy");
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy runs (scripts/setup-system.sh --cluster installs it)");
        let child = Owned(child);
        wait_listening(port, "haproxy");
        Haproxy { _child: child, url: format!("http://127.0.0.1:{port}") }
    }
}

/// Redis, `n` instances sharing one identity, and HAProxy in front; the mediator's public
/// URL (in its DID) is HAProxy's.
pub struct Cluster {
    /// The instances, in order (None once killed).
    pub instances: Vec<Option<Process>>,
    /// Their ports.
    pub ports: Vec<u16>,
    /// The load balancer.
    pub lb: Haproxy,
    /// Redis.
    pub redis: Redis,
    db: PathBuf,
    home: PathBuf,
}

impl Cluster {
    /// Starts everything and waits until every instance answers `/health` directly and the
    /// load balancer reaches them all.
    pub async fn start(n: usize) -> Cluster {
        let redis = Redis::start();
        let db = temp_path("mediator.db");
        let home = db.parent().unwrap().join("mhome");
        let lb_port = free_port();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let lb = Haproxy::start(lb_port, &ports);
        let mut c = Cluster { instances: Vec::new(), ports, lb, redis, db, home };
        for i in 0..n {
            let p = c.spawn(i);
            c.instances.push(Some(p));
        }
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..n {
            let id = c.instance_id(i).await;
            assert!(seen.insert(id), "instances have ids of their own");
        }
        // Round robin: 4n requests through the balancer reach every instance.
        loop {
            let mut reached = std::collections::BTreeSet::new();
            for _ in 0..4 * n {
                if let Ok(id) = health_instance(&c.lb.url).await {
                    reached.insert(id);
                }
            }
            if reached.len() == n {
                break;
            }
            assert!(Instant::now() < deadline, "the load balancer reaches {} of {n} instances", reached.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c
    }

    fn spawn(&self, i: usize) -> Process {
        let extra = ["--store", self.redis.url.as_str(), "--public-url", self.lb.url.as_str()];
        Process::start_with_args(self.ports[i], &self.db, &self.home, None, &extra)
    }

    /// `http://127.0.0.1:PORT` of instance `i`.
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Instance `i`'s id, from its `/health` (waits until it answers).
    pub async fn instance_id(&self, i: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match health_instance(&self.url(i)).await {
                Ok(id) => return id,
                Err(e) => assert!(Instant::now() < deadline, "instance {i} does not answer /health: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL instance `i`.
    pub fn kill9(&mut self, i: usize) {
        self.instances[i].take().expect("instance running").kill9();
    }

    /// One counter of instance `i`'s `/metrics` (0 when absent).
    pub async fn metric(&self, i: usize, name: &str) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.url(i))).await.unwrap().text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

async fn health_instance(base: &str) -> Result<String, String> {
    let r = reqwest::get(format!("{base}/health")).await.map_err(|e| e.to_string())?;
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    v["instance"].as_str().map(str::to_owned).ok_or_else(|| format!("no instance in {v}"))
}

/// Points `agent` at instance base URL `to` instead of the load balancer `lb` (its pickups,
/// live connection and the sends that go through its own mediator).
pub fn pin(agent: &mut gateway::Agent, lb: &str, to: &str) {
    let m = &mut agent.file.mediator;
    for u in [&mut m.http, &mut m.ws].into_iter().flatten() {
        let lb_ws = lb.replacen("http://", "ws://", 1);
        let to_ws = to.replacen("http://", "ws://", 1);
        *u = u.replacen(lb, to, 1).replacen(&lb_ws, &to_ws, 1);
    }
    if let Some(r) = agent.file.route.as_mut() {
        r.uri = r.uri.replacen(lb, to, 1);
    }
}
