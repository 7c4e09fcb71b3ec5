//! Starting mediators for tests: in-process on 127.0.0.1:0, or as the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediator::{Config, Mediator};
use tokio::sync::oneshot;

/// A mediator running inside the test process.
pub struct InProcess {
    /// The shared state.
    pub mediator: Arc<Mediator>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    /// Starts one with `config` (its store.db is replaced by a fresh temp file).
    pub async fn start(mut config: Config) -> InProcess {
        config.store.db = temp_path("mediator.db");
        InProcess::start_at(config).await
    }

    /// Starts one with `config` as given.
    pub async fn start_at(config: Config) -> InProcess {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        InProcess::start_on(config, listener).await
    }

    /// Starts one on an already-bound listener.
    pub async fn start_on(config: Config, listener: tokio::net::TcpListener) -> InProcess {
        let addr = listener.local_addr().unwrap();
        let mediator = Mediator::open(config, addr).await.unwrap();
        let (tx, rx) = oneshot::channel();
        let m = mediator.clone();
        let task = tokio::spawn(async move {
            mediator::serve(listener, m, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        InProcess { mediator, url: format!("http://{addr}"), stop: Some(tx), task: Some(task) }
    }

    /// Stops it and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t).await.expect("mediator shuts down in time").unwrap();
        }
    }
}

/// A fresh path under the system temp dir.
pub fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("didmpc-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The real `didmpc mediator serve` process.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Process {
    /// Starts the binary on `port` with database `db`, and waits for `/health`.
    pub fn start(port: u16, db: &Path, home: &Path) -> Process {
        Process::start_with(port, db, home, None)
    }

    /// Like [`Process::start`], reading the TOML configuration file `config` (the URL is
    /// `https://` when it serves TLS). The environment's DIDMPC_RESOLVE_PRIVATE is removed.
    pub fn start_with(port: u16, db: &Path, home: &Path, config: Option<&Path>) -> Process {
        Process::start_with_args(port, db, home, config, &[])
    }

    /// Like [`Process::start_with`], with more `mediator serve` arguments (`--public-url`).
    pub fn start_with_args(port: u16, db: &Path, home: &Path, config: Option<&Path>, extra: &[&str]) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_didmpc"));
        cmd.arg("--home")
            .arg(home)
            .args(["mediator", "serve", "--listen", &format!("127.0.0.1:{port}"), "--db"])
            .arg(db)
            .args(extra);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let tls = config.is_some_and(|c| std::fs::read_to_string(c).unwrap().contains("tls_cert"));
        let child = cmd
            .env_remove("DIDMPC_RESOLVE_PRIVATE")
            .env_remove("DIDMPC_MEDIATOR_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the didmpc binary starts");
        let url = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "mediator did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Process { child, url }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory (VmRSS from /proc/<pid>/status), KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
