//! `didmpc-lab run`: every scenario of a matrix built once, every program run over every
//! transport on it, one row each, written as it comes (`results.csv`, `results.jsonl`), then
//! the report (`results.md`, `results.png`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use didmpc_lab::scenario::{Case, Scenarios, Transport};
use serde::Serialize;
use serde_json::{json, Value};

use super::didmpc::{self, Didmpc};
use super::sys::preflight;
use super::topo::{Spec, Topo};
use super::transport::{Job, RunReport, Step};
use super::wireguard::{self, Wg};
use super::{plain, report};

/// `run` options.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The scenario file.
    #[arg(long, default_value = "lab/scenarios.toml")]
    scenarios: PathBuf,
    /// Which matrix of the file.
    #[arg(long, default_value = "quick")]
    matrix: String,
    /// Where the results go.
    #[arg(long, default_value = "target/lab")]
    out: PathBuf,
    /// The didmpc binary.
    #[arg(long)]
    didmpc: PathBuf,
    /// Python interpreter with MPyC (mpc/setup-venv.sh prints it).
    #[arg(long)]
    python: PathBuf,
    /// Directory of the MPyC programs.
    #[arg(long, default_value = "mpc/programs")]
    programs: PathBuf,
    /// The plain-TCP launcher that computes the reference results on loopback.
    #[arg(long, default_value = "mpc/run-plain.py")]
    run_plain: PathBuf,
    /// Only these transports (comma-separated; default: the matrix's).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The command line to record in the report.
    #[arg(long, default_value = "")]
    command: String,
}

/// The CSV's columns, in order.
pub const COLUMNS: [&str; 12] = [
    "transport",
    "path",
    "nat",
    "parties",
    "program",
    "rtt_ms",
    "rtt_measured_ms",
    "loss_pct",
    "wall_s",
    "mpc_s",
    "ratio_vs_plain",
    "ok",
];

/// One row: the CSV's columns first, then what goes only into `results.jsonl`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Row {
    /// plain, wireguard, didmpc.
    pub transport: String,
    /// direct, hub, relayed.
    pub path: String,
    /// NAT type of the homes.
    pub nat: String,
    /// Number of parties.
    pub parties: usize,
    /// Program name.
    pub program: String,
    /// Nominal home-to-home round trip, ms.
    pub rtt_ms: f64,
    /// Round trip measured over this transport's path (party 0 ↔ party 1), ms.
    pub rtt_measured_ms: Option<f64>,
    /// One-way loss between two sites, percent.
    pub loss_pct: f64,
    /// Wall time: all parties' commands started → last exit, s.
    pub wall_s: Option<f64>,
    /// MPyC's own elapsed time (longest party), s.
    pub mpc_s: Option<f64>,
    /// wall_s / plain's wall_s on the same scenario and program.
    pub ratio_vs_plain: Option<f64>,
    /// Every party's RESULT equals the plain-TCP reference for the same seed.
    pub ok: bool,
    /// Profile name.
    pub profile: String,
    /// One-way delay of the server's spoke, ms (the mediator's and the hub's placement).
    #[serde(default)]
    pub server_ms: Option<f64>,
    /// Program arguments.
    pub args: Vec<String>,
    /// wall_s of every repeat (`null`: failed).
    pub wall_samples: Vec<Option<f64>>,
    /// mpc_s of every repeat.
    pub mpc_samples: Vec<Option<f64>>,
    /// Bytes each party's MPyC sent (last repeat).
    pub mpyc_bytes_sent: Vec<Option<u64>>,
    /// What the transport exposes (didmpc status, mediator metrics).
    pub observed: Value,
    /// Why the row failed, if it did.
    pub note: String,
    /// 1-minute load average when the run ended.
    pub load: f64,
}

impl Row {
    fn csv(&self) -> String {
        let f = |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_default();
        [
            self.transport.clone(),
            self.path.clone(),
            self.nat.clone(),
            self.parties.to_string(),
            self.program.clone(),
            format!("{}", self.rtt_ms),
            f(self.rtt_measured_ms, 2),
            format!("{}", self.loss_pct),
            f(self.wall_s, 3),
            f(self.mpc_s, 3),
            f(self.ratio_vs_plain, 3),
            self.ok.to_string(),
        ]
        .join(",")
    }
}

fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

struct Out {
    dir: PathBuf,
    csv: std::fs::File,
    jsonl: std::fs::File,
}

impl Out {
    fn create(dir: &Path) -> Result<Out> {
        std::fs::create_dir_all(dir.join("logs"))?;
        for f in ["results.csv", "results.jsonl", "results.md", "results.png", "topologies.jsonl", "steps.json"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let mut csv = std::fs::File::create(dir.join("results.csv"))?;
        writeln!(csv, "{}", COLUMNS.join(","))?;
        let jsonl = std::fs::File::create(dir.join("results.jsonl"))?;
        Ok(Out { dir: dir.to_path_buf(), csv, jsonl })
    }

    fn row(&mut self, r: &Row) -> Result<()> {
        writeln!(self.csv, "{}", r.csv())?;
        writeln!(self.jsonl, "{}", serde_json::to_string(r)?)?;
        self.csv.flush()?;
        self.jsonl.flush()?;
        Ok(())
    }

    fn append(&self, file: &str, v: &Value) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(file))?;
        writeln!(f, "{v}")?;
        Ok(())
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One row from the repeats of one transport: medians of what succeeded; ok only if every
/// repeat matched the reference.
fn aggregate(t: Transport, results: Vec<Result<RunReport>>, want: &Value) -> Row {
    let mut row = Row {
        transport: t.to_string(),
        path: String::new(),
        nat: String::new(),
        parties: 0,
        program: String::new(),
        rtt_ms: 0.0,
        rtt_measured_ms: None,
        loss_pct: 0.0,
        wall_s: None,
        mpc_s: None,
        ratio_vs_plain: None,
        ok: !results.is_empty(),
        profile: String::new(),
        server_ms: None,
        args: vec![],
        wall_samples: vec![],
        mpc_samples: vec![],
        mpyc_bytes_sent: vec![],
        observed: Value::Null,
        note: String::new(),
        load: load(),
    };
    let (mut walls, mut mpcs, mut rtts, mut notes) = (vec![], vec![], vec![], vec![]);
    for r in results {
        match r {
            Ok(r) => {
                let matched = r.outcome.matches(want);
                row.ok &= matched;
                if !matched {
                    notes.push(if r.outcome.wall_s.is_none() {
                        "failed or timed out".to_owned()
                    } else {
                        "result differs from the plain-TCP reference".to_owned()
                    });
                }
                row.wall_samples.push(r.outcome.wall_s);
                row.mpc_samples.push(r.outcome.mpc_s);
                walls.extend(r.outcome.wall_s.filter(|_| matched));
                mpcs.extend(r.outcome.mpc_s.filter(|_| matched));
                rtts.extend(r.rtt_measured_ms);
                if row.path.is_empty() || matched {
                    row.path = r.path;
                }
                row.mpyc_bytes_sent = r.outcome.mpyc_bytes_sent;
                row.observed = r.observed;
            }
            Err(e) => {
                row.ok = false;
                row.wall_samples.push(None);
                row.mpc_samples.push(None);
                notes.push(format!("{e:#}"));
            }
        }
    }
    if row.path.is_empty() {
        row.path = match t {
            Transport::Plain => "direct",
            Transport::Wireguard => "hub",
            Transport::Didmpc | Transport::DidmpcDirect => "relayed",
        }
        .into();
    }
    row.wall_s = median(&walls);
    row.mpc_s = median(&mpcs);
    row.rtt_measured_ms = median(&rtts);
    notes.dedup();
    row.note = notes.join("; ");
    row
}

/// The plain-TCP result of `program` with `parties` parties on loopback (mpc/run-plain.py):
/// what every row's `ok` compares with.
fn reference(a: &RunArgs, program: &Path, parties: usize, args: &[String]) -> Result<Value> {
    let out = Command::new(&a.python)
        .arg(&a.run_plain)
        .args(["--python"])
        .arg(&a.python)
        .args(["--parties", &parties.to_string(), "--timeout", "600"])
        .arg(program)
        .args(args)
        .output()
        .context("running mpc/run-plain.py")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("run-plain printed no summary: {text}{}", String::from_utf8_lossy(&out.stderr)))?;
    if summary["ok"] != true || summary["all_equal"] != true {
        bail!("the loopback reference run failed: {summary}");
    }
    Ok(summary["results"][0].clone())
}

/// Runs the matrix.
pub fn run(a: RunArgs) -> Result<()> {
    preflight(&["wg", "wireguard-go", "wg-quick"])?;
    let text = std::fs::read_to_string(&a.scenarios).with_context(|| format!("reading {}", a.scenarios.display()))?;
    let scen = Scenarios::parse(&text)?;
    let mut cases: Vec<Case> = scen.cases(&a.matrix)?;
    let only: Vec<String> = a.only.iter().map(|s| s.to_lowercase()).collect();
    for c in &mut cases {
        c.transports.retain(|t| only.is_empty() || only.contains(&t.to_string()));
        c.transports.sort();
    }
    let lab_bin = std::env::current_exe().context("the lab binary")?;
    let didmpc_bin = std::fs::canonicalize(&a.didmpc).with_context(|| format!("{}", a.didmpc.display()))?;
    let python = std::path::absolute(&a.python).context("the python path")?; // not canonicalize: a venv's python is a symlink
    let tmp_root = std::env::temp_dir().join(format!("didmpc-lab-{}", std::process::id()));
    let mut out = Out::create(&a.out)?;
    let t_start = Instant::now();
    let total: usize = cases.iter().map(|c| c.programs.len() * c.transports.len()).sum();
    let total_runs: usize = cases.iter().map(|c| c.programs.len() * c.transports.len() * c.repeat).sum();
    let meta = |finished: bool, rows: usize| {
        json!({
            "matrix": a.matrix, "command": a.command, "started_unix": unix_now() - t_start.elapsed().as_secs(),
            "elapsed_s": t_start.elapsed().as_secs_f64(), "finished": finished, "rows": rows, "planned_rows": total,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        })
    };
    std::fs::write(a.out.join("meta.json"), meta(false, 0).to_string())?;
    eprintln!("lab: matrix {}: {} scenarios, {total} rows, {total_runs} runs", a.matrix, cases.len());

    let mut refs: HashMap<(String, usize), Value> = HashMap::new();
    let mut steps: BTreeMap<String, BTreeMap<usize, Vec<Step>>> = BTreeMap::new();
    let mut done = 0usize;
    let mut seq = 0usize;
    let mut not_ok = 0usize;
    for case in &cases {
        let profile = &scen.profiles[&case.profile];
        let n = case.parties;
        let spec = Spec {
            nats: (0..n).map(|i| case.nat.of_home(i)).collect(),
            home_ms: (0..n).map(|i| profile.home_delay(i)).collect(),
            server_ms: Some(profile.server_delay()),
            jitter_ms: profile.jitter_ms,
            spoke_loss_pct: profile.spoke_loss_pct(),
            rate_mbit: scen.defaults.rate_mbit,
            queue_ms: scen.defaults.queue_ms,
            seed: scen.defaults.seed,
        };
        eprintln!("lab: scenario {} · {} · {n} parties", case.nat, case.profile);
        let t_topo = Instant::now();
        let mut topo = Topo::build(&spec, &lab_bin, &tmp_root)?;
        let mut wg: Option<Result<Wg>> = None;
        let mut dm: Option<Result<Didmpc>> = None;
        if case.transports.contains(&Transport::Wireguard) {
            let w = wireguard::setup(&topo);
            if let Ok(w) = &w {
                steps.entry("wireguard".into()).or_default().insert(n, w.steps.clone());
            }
            wg = Some(w);
        }
        if case.transports.iter().any(|t| matches!(t, Transport::Didmpc | Transport::DidmpcDirect)) {
            let d = didmpc::setup(&topo, &didmpc_bin);
            if let Ok(d) = &d {
                steps.entry("didmpc".into()).or_default().insert(n, d.steps.clone());
            }
            dm = Some(d);
        }
        if topo.forwardable() {
            steps.entry("plain".into()).or_default().insert(n, plain::steps(&topo));
        }
        let setup_s = t_topo.elapsed().as_secs_f64();

        for prog_name in &case.programs {
            let prog = &scen.programs[prog_name];
            let program =
                std::fs::canonicalize(a.programs.join(&prog.file)).with_context(|| format!("program {}", prog.file))?;
            let mut args = prog.args.clone();
            args.extend(["--seed".to_owned(), scen.defaults.seed.to_string()]);
            let key = (prog_name.clone(), n);
            if !refs.contains_key(&key) {
                refs.insert(key.clone(), reference(&a, &program, n, &args)?);
            }
            let want = &refs[&key];
            let transports: Vec<Transport> = case
                .transports
                .iter()
                .copied()
                .filter(|&t| {
                    let possible = t != Transport::Plain || topo.forwardable();
                    if !possible {
                        eprintln!("lab:   plain: not possible behind {} (no port forward), no row", case.nat);
                    }
                    possible
                })
                .collect();
            // Repeats interleave the transports, so that load from elsewhere spreads evenly.
            let mut runs: Vec<Vec<Result<RunReport>>> = transports.iter().map(|_| Vec::new()).collect();
            for rep in 0..case.repeat {
                for (ti, &t) in transports.iter().enumerate() {
                    seq += 1;
                    let job = Job {
                        topo: &topo,
                        program: &program,
                        args: &args,
                        python: &python,
                        timeout: Duration::from_secs(scen.defaults.timeout_s),
                        probes: scen.defaults.rtt_probes,
                        dir: tmp_root.join(format!("run{seq}")),
                    };
                    let r = match t {
                        Transport::Plain => plain::run(&job),
                        Transport::Wireguard => match &wg {
                            Some(Ok(w)) => wireguard::run_job(&job, w),
                            Some(Err(e)) => Err(anyhow::anyhow!("WireGuard setup failed: {e:#}")),
                            None => Err(anyhow::anyhow!("WireGuard was not set up")),
                        },
                        Transport::Didmpc | Transport::DidmpcDirect => match &mut dm {
                            Some(Ok(d)) => d.run_job(&job, t == Transport::Didmpc),
                            Some(Err(e)) => Err(anyhow::anyhow!("didmpc setup failed: {e:#}")),
                            None => Err(anyhow::anyhow!("didmpc was not set up")),
                        },
                    };
                    let ok = matches!(&r, Ok(x) if x.outcome.matches(want));
                    if !ok {
                        let log = a.out.join("logs").join(format!("run{seq}-{t}-{prog_name}.log"));
                        let text = match &r {
                            Ok(x) => format!(
                                "reference: {want}\nresults: {:?}\n{}\n",
                                x.outcome.results,
                                x.outcome.failures.join("\n")
                            ),
                            Err(e) => format!("{e:#}\n"),
                        };
                        std::fs::write(&log, text)?;
                    }
                    eprintln!(
                        "lab:   run {seq} ({}/{}) {t} {prog_name}: wall {} s{}",
                        rep + 1,
                        case.repeat,
                        r.as_ref().ok().and_then(|x| x.outcome.wall_s).map(|w| format!("{w:.2}")).unwrap_or("-".into()),
                        if ok { "" } else { " NOT OK" }
                    );
                    runs[ti].push(r);
                }
            }
            let mut plain_wall: Option<f64> = None;
            for (&t, results) in transports.iter().zip(runs) {
                done += 1;
                let mut row = aggregate(t, results, want);
                row.nat = case.nat.to_string();
                row.parties = n;
                row.program = prog_name.clone();
                row.rtt_ms = profile.rtt_ms;
                row.loss_pct = profile.loss_pct;
                row.profile = case.profile.clone();
                row.server_ms = Some(profile.server_delay());
                row.args = args.clone();
                if t == Transport::Plain {
                    plain_wall = row.wall_s.filter(|_| row.ok);
                }
                if let (Some(w), Some(p)) = (row.wall_s, plain_wall) {
                    row.ratio_vs_plain = Some(w / p);
                }
                eprintln!(
                    "lab: [{done}/{total}] {:<9} {:<8} {:<15} {}p {:<12} {:>5} ms: wall {} s, mpc {} s, ×{} {}{}",
                    row.transport,
                    row.path,
                    row.nat,
                    n,
                    row.program,
                    row.rtt_ms,
                    row.wall_s.map(|w| format!("{w:.2}")).unwrap_or("-".into()),
                    row.mpc_s.map(|w| format!("{w:.2}")).unwrap_or("-".into()),
                    row.ratio_vs_plain.map(|w| format!("{w:.2}")).unwrap_or("-".into()),
                    if row.ok { "ok" } else { "NOT OK: " },
                    row.note.lines().next().unwrap_or(""),
                );
                if !row.ok {
                    not_ok += 1;
                }
                out.row(&row)?;
            }
        }
        drop(wg);
        drop(dm);
        let emu = topo.emulator_stats();
        out.append(
            "topologies.jsonl",
            &json!({"nat": case.nat.to_string(), "profile": case.profile, "parties": n, "setup_s": setup_s,
                    "elapsed_s": t_topo.elapsed().as_secs_f64(), "emulator": emu}),
        )?;
        drop(topo);
        std::fs::write(a.out.join("steps.json"), serde_json::to_string_pretty(&steps)?)?;
        std::fs::write(a.out.join("meta.json"), meta(false, done).to_string())?;
    }
    std::fs::write(a.out.join("meta.json"), meta(true, done).to_string())?;
    let _ = std::fs::remove_dir_all(&tmp_root);
    report::write(&a.out)?;
    eprintln!(
        "lab: {done} rows ({seq} runs) in {:.1} min; results in {}",
        t_start.elapsed().as_secs_f64() / 60.0,
        a.out.display()
    );
    if not_ok > 0 {
        bail!("{not_ok} of {done} rows are not ok: see {}/results.md and logs/", a.out.display());
    }
    Ok(())
}
