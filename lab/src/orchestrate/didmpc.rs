//! didmpc: the mediator on the public server (also answering reflexive-address probes on UDP),
//! every party `init`ed against it, and per run the host's `invite` and the others' `join`,
//! with `--relay-only` (transport `didmpc`) or without (`didmpc-direct`: direct paths where the
//! NATs allow). The session's path comes from `didmpc status --json`; the status and the
//! mediator's `/metrics` are recorded with every row.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::parties::{run_all, workdirs};
use super::sys::{in_ns, run, Proc};
use super::topo::{Topo, ECHO_PORT};
use super::transport::{Job, Kind, RunReport, Step};

const MEDIATOR_PORT: u16 = 7080;
/// The mediator's two UDP ports for reflexive-address probes (two tell NAT kinds apart).
const REFLEX_PORTS: [u16; 2] = [7081, 7082];

/// Everything the lab knows about didmpc's command line, in one place: the CLI is evolving,
/// and only this needs to follow it. [`Cli::check`] compares it with `--help` at run time.
struct Cli {
    bin: PathBuf,
}

impl Cli {
    fn at(&self, ns: &str, home: &Path) -> Command {
        let mut c = in_ns(ns, &self.bin);
        c.arg("--home").arg(home);
        c
    }

    /// `didmpc mediator serve` listening on `listen`, its database in `home`.
    fn serve(&self, ns: &str, home: &Path, listen: SocketAddr) -> Command {
        let mut c = self.at(ns, home);
        c.args(["mediator", "serve", "--listen", &listen.to_string(), "--db"]).arg(home.join("mediator.db"));
        for port in REFLEX_PORTS {
            c.args(["--udp", &SocketAddr::new(listen.ip(), port).to_string()]);
        }
        c
    }

    /// The mediator printed this when it listens.
    fn serving(line: &str) -> bool {
        line.starts_with("listening on")
    }

    /// `didmpc init --mediator URL`: prints the party's DID.
    fn init(&self, ns: &str, home: &Path, url: &str) -> Command {
        let mut c = self.at(ns, home);
        c.args(["init", "--mediator", url]);
        c
    }

    /// `didmpc invite DIDs… --program FILE --python PY [--relay-only] -- ARGS` (run in the
    /// program's dir).
    #[allow(clippy::too_many_arguments)] // each is one part of the command line
    fn invite(
        &self,
        ns: &str,
        home: &Path,
        dids: &[String],
        program: &str,
        python: &Path,
        relay_only: bool,
        args: &[String],
    ) -> Command {
        let mut c = self.at(ns, home);
        c.arg("invite").args(dids).args(["--program", program, "--python"]).arg(python);
        if relay_only {
            c.arg("--relay-only");
        }
        c.arg("--").args(args);
        c
    }

    /// `didmpc join next --yes --from HOST --python PY` (run in the program's dir): the next
    /// invitation from the host, without asking.
    fn join(&self, ns: &str, home: &Path, host: &str, python: &Path, wait_s: u64, relay_only: bool) -> Command {
        let mut c = self.at(ns, home);
        c.args(["join", "next", "--yes", "--from", host, "--wait", &wait_s.to_string(), "--python"]).arg(python);
        if relay_only {
            c.arg("--relay-only");
        }
        c
    }

    /// `didmpc status --json`.
    fn status(&self, ns: &str, home: &Path) -> Command {
        let mut c = self.at(ns, home);
        c.args(["status", "--json"]);
        c
    }

    /// Fails clearly if the binary's help no longer lists what the lab uses.
    fn check(&self) -> Result<()> {
        let help = |args: &[&str]| -> Result<String> {
            run(Command::new(&self.bin).args(args).arg("--help"))
                .with_context(|| format!("didmpc {} --help", args.join(" ")))
        };
        let expect = [
            (vec!["mediator", "serve"], vec!["--listen", "--db", "--udp"]),
            (vec!["init"], vec!["--mediator"]),
            (vec!["invite"], vec!["--program", "--python", "--relay-only"]),
            (vec!["join"], vec!["--wait", "--python", "--yes", "--from", "--relay-only"]),
            (vec!["status"], vec!["--json"]),
        ];
        for (cmd, flags) in expect {
            let h = help(&cmd)?;
            for f in flags {
                if !h.contains(f) {
                    bail!(
                        "`didmpc {}` has no {f} any more: adapt lab/src/orchestrate/didmpc.rs (struct Cli)",
                        cmd.join(" ")
                    );
                }
            }
        }
        Ok(())
    }
}

/// The mediator and the parties' identities on one topology.
pub struct Didmpc {
    cli: Cli,
    server_ns: String,
    server_ip: std::net::Ipv4Addr,
    /// Kept running for the topology's lifetime.
    mediator: Proc,
    homes: Vec<PathBuf>,
    dids: Vec<String>,
    /// The manual steps taken.
    pub steps: Vec<Step>,
}

/// Starts the mediator on the server and `init`s every party.
pub fn setup(topo: &Topo, bin: &Path) -> Result<Didmpc> {
    let cli = Cli { bin: bin.to_path_buf() };
    cli.check()?;
    let server = topo.server.as_ref().context("didmpc needs the lab's public server for its mediator")?;
    let root = topo.tmp.join("didmpc");
    let mhome = root.join("mediator");
    std::fs::create_dir_all(&mhome)?;
    let listen = SocketAddr::new(server.ip.into(), MEDIATOR_PORT);
    let url = format!("http://{listen}");
    let mut mediator = Proc::spawn(&mut cli.serve(&server.ns, &mhome, listen), "the mediator")?;
    mediator.wait_for_line(Cli::serving, Duration::from_secs(30))?;
    let op = "mediator operator";
    let mut steps = vec![
        Step::new(
            op,
            Kind::Admin,
            format!("a server with a public address; allow TCP {MEDIATOR_PORT} (or any public mediator)"),
        ),
        Step::new(op, Kind::Command, format!("didmpc mediator serve --listen 0.0.0.0:{MEDIATOR_PORT}")),
    ];
    // Every home reaches the mediator before anyone inits.
    for h in &topo.homes {
        let health = format!("{url}/health");
        let mut ok = false;
        for _ in 0..50 {
            if run(in_ns(&h.ns, topo.lab_bin()).args(["http-get", &health])).is_ok() {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ok {
            bail!("{} cannot reach the mediator at {health}\n{}", h.ns, mediator.transcript());
        }
    }
    let homes: Vec<PathBuf> = (0..topo.homes.len()).map(|i| root.join(format!("p{i}"))).collect();
    let dids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = topo
            .homes
            .iter()
            .zip(&homes)
            .map(|(h, home)| {
                let cmd = cli.init(&h.ns, home, &url);
                s.spawn(move || {
                    let mut cmd = cmd;
                    run(&mut cmd).map(|o| o.trim().lines().last().unwrap_or("").to_owned())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().map_err(|_| anyhow::anyhow!("init panicked"))?).collect::<Result<_>>()
    })?;
    if let Some(d) = dids.iter().find(|d| !d.starts_with("did:")) {
        bail!("didmpc init printed {d:?}, not a DID");
    }
    for i in 0..topo.homes.len() {
        let who = format!("party {i}");
        steps.push(Step::new(&who, Kind::Command, "install didmpc"));
        steps.push(Step::new(&who, Kind::Command, format!("didmpc init --mediator {url}")));
        if i == 0 {
            steps.push(Step::new(&who, Kind::Exchange, "collect the others' DIDs"));
            steps.push(Step::new(&who, Kind::Command, "didmpc invite DID1 … --program PROGRAM -- ARGS"));
        } else {
            steps.push(Step::new(&who, Kind::Exchange, "send the host your DID"));
            steps.push(Step::new(&who, Kind::Command, "didmpc join next"));
        }
    }
    Ok(Didmpc { cli, server_ns: server.ns.clone(), server_ip: server.ip, mediator, homes, dids, steps })
}

/// Prometheus text → name{labels} → value.
fn metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse::<f64>().ok()?)))
        .collect()
}

impl Didmpc {
    fn metrics(&self, topo: &Topo) -> BTreeMap<String, f64> {
        let url = format!("http://{}:{MEDIATOR_PORT}/metrics", self.server_ip);
        run(in_ns(&self.server_ns, topo.lab_bin()).args(["http-get", &url])).map(|t| metrics(&t)).unwrap_or_default()
    }

    /// Runs `job` (`relay_only`: every party with `--relay-only`): RTT probes of both legs
    /// (party 0 → server, party 1 → server), then the joiners and the host at once; afterwards
    /// every party's status and the mediator's metrics (as deltas over the run).
    pub fn run_job(&mut self, job: &Job, relay_only: bool) -> Result<RunReport> {
        let topo = job.topo;
        let server = SocketAddr::new(self.server_ip.into(), ECHO_PORT);
        let leg0 = topo.ping(&topo.homes[0].ns, server, job.probes)?;
        let leg1 = topo.ping(&topo.homes[1].ns, server, job.probes)?;
        let rtt = leg0.median_ms.zip(leg1.median_ms).map(|(a, b)| a + b);
        let dirs = workdirs(&job.dir, topo.homes.len(), job.program)?;
        let name = job.program.file_name().context("program")?.to_string_lossy().into_owned();
        let before = self.metrics(topo);
        let wait = job.timeout.as_secs();
        let mut cmds = Vec::new();
        for (i, h) in topo.homes.iter().enumerate().skip(1) {
            let mut c = self.cli.join(&h.ns, &self.homes[i], &self.dids[0], job.python, wait, relay_only);
            c.current_dir(&dirs[i]);
            cmds.push((format!("didmpc party {i} (join)"), c));
        }
        let mut host = self.cli.invite(
            &topo.homes[0].ns,
            &self.homes[0],
            &self.dids[1..],
            &name,
            job.python,
            relay_only,
            job.args,
        );
        host.current_dir(&dirs[0]);
        cmds.insert(0, ("didmpc party 0 (invite)".to_owned(), host));
        let outcome = run_all(cmds, job.timeout)?;
        let after = self.metrics(topo);
        let delta: BTreeMap<&String, f64> = after
            .iter()
            .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d != 0.0)
            .collect();
        let mut status = Vec::new();
        for (h, home) in topo.homes.iter().zip(&self.homes) {
            let s = run(&mut self.cli.status(&h.ns, home))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .unwrap_or(Value::Null);
            status.push(s);
        }
        let path = path_of(&status);
        let phases: Vec<Option<&String>> =
            outcome.stderr.iter().map(|l| l.iter().rev().find(|l| l.starts_with("done:"))).collect();
        if self.mediator.poll().is_some() {
            bail!("the mediator exited\n{}", self.mediator.transcript());
        }
        Ok(RunReport {
            rtt_measured_ms: rtt,
            path,
            observed: json!({
                "legs_ms": [leg0.median_ms, leg1.median_ms],
                "status": status,
                "mediator_metrics_delta": delta,
                "mediator_metrics": after,
                "phases": phases,
            }),
            outcome,
        })
    }
}

/// `relayed`, `direct` or `mixed`, from the peers' `path` in `didmpc status --json`.
fn path_of(status: &[Value]) -> String {
    let mut kinds: Vec<String> = status
        .iter()
        .flat_map(|s| s["peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["path"].as_str().map(|s| s.split_whitespace().next().unwrap_or("").to_owned()))
        .collect();
    kinds.sort();
    kinds.dedup();
    match kinds.len() {
        0 => "unknown".into(),
        1 => kinds.remove(0),
        _ => "mixed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metrics_and_paths() {
        let m = metrics("# HELP x y\nx_total{a=\"b\"} 3\ny 4.5\nbad line\n");
        assert_eq!(m.get("x_total{a=\"b\"}"), Some(&3.0));
        assert_eq!(m.get("y"), Some(&4.5));
        assert_eq!(m.len(), 2);
        let s = |p: &str| json!({"peers": [{"path": p}]});
        assert_eq!(path_of(&[s("relayed (mediator)"), s("relayed (mediator)")]), "relayed");
        assert_eq!(path_of(&[s("relayed (mediator)"), s("direct (udp)")]), "mixed");
        assert_eq!(path_of(&[Value::Null]), "unknown");
    }
}
