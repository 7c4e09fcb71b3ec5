//! Soak: the real mediator binary under a mixed hostile load while three parties run a real
//! MPyC program through it. Loopback only, bounded by the run (a few minutes at most).
//!
//! The load, all at once until the run ends: strangers flooding one party's queue from eight
//! source addresses; relay JOINs with forged MACs; relay readers that stop reading while a
//! flooder fills them (replaced as they are cut); frames held for absent route members;
//! Discover Features queries with pathological globs; 200 idle WebSockets; slow uploads that
//! declare big bodies. The mediator runs with the budgets of [`CONFIG`].
//!
//! Asserted: the computation is correct (equal to plain TCP), and the mediator's resident
//! memory (VmRSS, sampled every 500 ms) never passes [`CEILING_MIB`]. The samples are written to
//! `target/soak/rss.csv` (reported in benches/RESULTS.md). `DIDMPC_SOAK_STEPS` (default 1500)
//! lengthens the MPyC run, and with it the load.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/parties.rs"]
mod parties;
#[path = "support/relay_raw.rs"]
mod relay_raw;
#[path = "support/stranger.rs"]
mod stranger;
#[path = "support/mediator.rs"]
mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use did_core::didcomm::Message;
use did_core::jose::b64e;
use gateway::Agent;
use parties::{join, Running};
use relay::auth::RouteKey;
use relay::proto::{Frame, JoinStatus, RouteId};
use relay_raw::RawRelay;
use stranger::Stranger;
use tokio::io::AsyncWriteExt;

/// The mediator's budgets for the soak (a `mediator serve --config` file).
const CONFIG: &str = "[limits]\n\
    memory_budget_bytes = 67108864\n\
    max_queue_messages_per_source = 200\n\
    max_queue_bytes_per_source = 4194304\n\
    [relay]\n\
    held_bytes_per_route = 1048576\n\
    held_bytes_per_client = 8388608\n\
    held_bytes_total = 33554432\n\
    queue_bytes_per_conn = 4194304\n\
    queue_bytes_total = 67108864\n\
    stall_secs = 3\n";

/// The documented ceiling: 64 MiB of request/message budget, 32 MiB held, 64 MiB queued on
/// relay connections, the idle sockets and the process itself (~20 MiB), with headroom.
const CEILING_MIB: u64 = 320;

fn random_route() -> RouteId {
    RouteId(*uuid::Uuid::new_v4().as_bytes())
}

async fn reserve(agent: &Agent, route: RouteId, key: &RouteKey) {
    let body = serde_json::json!({"route": b64e(route.0), "key": b64e(key.as_bytes()), "ttl_secs": 3600});
    let _ = agent.link().request(Message::new(format!("{}/reserve", gateway::pairing::RELAY_1), body)).await;
}

/// Runs `f` again and again until `stop`, counting rounds that completed (a round that
/// fails, e.g. a connection the mediator cut, just ends that round).
fn spawn_loop<F, Fut>(stop: Arc<AtomicBool>, rounds: Arc<AtomicU64>, mut f: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            if tokio::spawn(f()).await.is_ok() {
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

#[test]
fn a_hostile_load_leaves_the_run_correct_and_memory_bounded() {
    let db = support::temp_path("mediator.db");
    let config = db.with_file_name("soak.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let m = support::Process::start_with(support::free_port(), &db, &db.parent().unwrap().join("mh"), Some(&config));
    let url = m.url.clone();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| parties::party(&url)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicU64>> = (0..7).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let victim = parties[1].1.clone();
    let start_rss = m.rss_kib();

    rt.block_on(async {
        let mediator_did = stranger::mediator_did(&url).await;
        // (0) queue flood from eight source addresses.
        for i in 0..8 {
            let (url, did, victim) = (url.clone(), mediator_did.clone(), victim.clone());
            let client = stranger::http_from(&format!("127.0.0.{}", 10 + i));
            let s = Arc::new(Stranger::key());
            spawn_loop(stop.clone(), counters[0].clone(), move || {
                let (url, did, victim, client, s) = (url.clone(), did.clone(), victim.clone(), client.clone(), s.clone());
                async move {
                    let env = s.forward(&did, &victim, 8 * 1024).await;
                    let _ = stranger::post(&client, &url, stranger::ENCRYPTED, env).await;
                }
            });
        }
        // (1) forged JOINs.
        {
            let url = url.clone();
            spawn_loop(stop.clone(), counters[1].clone(), move || {
                let url = url.clone();
                async move {
                    let mut c = RawRelay::connect(&url).await;
                    for _ in 0..32 {
                        let mut mac = [0u8; 32];
                        mac[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                        let _ = c.join_raw(random_route(), 0, mac).await;
                    }
                }
            });
        }
        // (2) stalled readers fed by a flooder, and (3) frames held for absent members.
        let owner = Arc::new(Agent::init(&support::temp_path("hostile-owner"), &url).await.unwrap());
        {
            let (url, owner) = (url.clone(), owner.clone());
            spawn_loop(stop.clone(), counters[2].clone(), move || {
                let (url, owner) = (url.clone(), owner.clone());
                async move {
                    let (route, key) = (random_route(), RouteKey::generate());
                    reserve(&owner, route, &key).await;
                    let mut flooder = RawRelay::connect(&url).await;
                    let mut staller = RawRelay::connect_with(&url, Some(4096)).await;
                    if flooder.join(&key.slot_secret(0), route, 0).await != JoinStatus::Ok
                        || staller.join(&key.slot_secret(1), route, 1).await != JoinStatus::Ok
                    {
                        return;
                    }
                    let payload = Bytes::from(vec![0x5au8; 60_000]);
                    for _ in 0..400 {
                        if flooder.send_raw(Frame::Data { route, payload: payload.clone() }.encode()).await.is_err() {
                            break;
                        }
                    }
                    drop(staller);
                }
            });
        }
        {
            let (url, owner) = (url.clone(), owner.clone());
            spawn_loop(stop.clone(), counters[3].clone(), move || {
                let (url, owner) = (url.clone(), owner.clone());
                async move {
                    let (route, key) = (random_route(), RouteKey::generate());
                    reserve(&owner, route, &key).await;
                    let mut c = RawRelay::connect(&url).await;
                    if c.join(&key.slot_secret(0), route, 0).await == JoinStatus::Ok {
                        for _ in 0..40 {
                            c.send(&Frame::Data { route, payload: Bytes::from(vec![1u8; 60_000]) }).await;
                        }
                    }
                }
            });
        }
        // (4) pathological Discover Features globs.
        {
            let (url, did) = (url.clone(), mediator_did.clone());
            let s = Arc::new(Stranger::key());
            let client = stranger::http_from("127.0.0.30");
            spawn_loop(stop.clone(), counters[4].clone(), move || {
                let (url, did, s, client) = (url.clone(), did.clone(), s.clone(), client.clone());
                async move {
                    let q = Message::new(
                        "https://didcomm.org/discover-features/2.0/queries",
                        serde_json::json!({"queries": [{"feature-type": "protocol", "match": format!("{}b", "*a".repeat(60))}]}),
                    );
                    let _ = s.ask(&client, &url, &did, q).await;
                }
            });
        }
        // (5) 200 idle WebSockets from another address.
        let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        let mut idle = Vec::new();
        for _ in 0..200 {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind("127.0.0.40:0".parse().unwrap()).unwrap();
            let tcp = sock.connect(addr).await.unwrap();
            let ws_url = format!("ws://{addr}/ws");
            if let Ok((ws, _)) = tokio_tungstenite::client_async(ws_url, tcp).await {
                idle.push(ws);
            }
        }
        counters[5].store(idle.len() as u64, Ordering::Relaxed);
        tokio::spawn(async move {
            let _keep = idle;
            std::future::pending::<()>().await
        });
        // (6) slow uploads declaring 1 MiB bodies.
        for i in 0..16 {
            let stop = stop.clone();
            let n = counters[6].clone();
            tokio::spawn(async move {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind(format!("127.0.0.{}:0", 50 + i).parse().unwrap()).unwrap();
                let Ok(mut tcp) = sock.connect(addr).await else { return };
                let head = "POST /didcomm HTTP/1.1\r\nhost: x\r\ncontent-type: application/didcomm-encrypted+json\r\ncontent-length: 1048576\r\n\r\n";
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                n.fetch_add(1, Ordering::Relaxed);
                while !stop.load(Ordering::Relaxed) {
                    if tcp.write_all(&[b'x'; 1024]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });

    // The honest run, under that load.
    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("soak{i}"), "many_rounds.py")).collect();
    // DIDMPC_SOAK_STEPS lengthens the run (and so the load) for a longer soak by hand.
    let steps = std::env::var("DIDMPC_SOAK_STEPS").unwrap_or_else(|_| "1500".into());
    let args = ["--steps", steps.as_str()];
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host = parties::invite(&parties[0].0, &dirs[0], &dids, "many_rounds.py", &["--peer-deadline", "60"], &args);
    let joiners: Vec<Running> =
        (1..3).map(|i| join(&parties[i].0, &dirs[i], &format!("party {i}"), &parties[0].1)).collect();
    let t0 = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pid, stop) = (m.pid(), sampler_stop.clone());
        std::thread::spawn(move || {
            let mut out = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let kib = status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .unwrap_or(0);
                out.push((t0.elapsed().as_secs_f64(), kib));
                std::thread::sleep(Duration::from_millis(500));
            }
            out
        })
    };
    let (ok, out, err) = host.wait(Duration::from_secs(3600));
    let mut results = Vec::new();
    let host_ok = ok;
    if ok {
        results.push(mpyc::result_of(&out).expect("host RESULT"));
    }
    let mut failures = if ok { String::new() } else { format!("host failed:\n{out}\n{err}\n") };
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(120));
        if ok {
            results.push(mpyc::result_of(&out).expect("RESULT"));
        } else {
            failures.push_str(&format!("{name} failed:\n{out}\n{err}\n"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler_stop.store(true, Ordering::Relaxed);
    samples.extend(sampler.join().unwrap());
    let metrics = rt.block_on(relay_raw::metrics(&url));
    drop(rt);

    // Report: RSS over time.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../soak");
    std::fs::create_dir_all(&dir).unwrap();
    let csv: String = std::iter::once("t_s,rss_mib\n".to_owned())
        .chain(samples.iter().map(|(t, k)| format!("{t:.1},{:.1}\n", *k as f64 / 1024.0)))
        .collect();
    std::fs::write(dir.join("rss.csv"), &csv).unwrap();
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let loads: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let refused: u64 = metrics.iter().filter(|(k, _)| k.contains("refused_total")).map(|(_, v)| *v as u64).sum();
    eprintln!(
        "soak: {:.0} s; RSS start {:.1} MiB, peak {:.1} MiB (ceiling {CEILING_MIB}); load rounds: floods {} forged-join batches {} \
         stall rounds {} held rounds {} globs {} idle ws {} slow uploads {}; refusals {refused}; csv {}",
        t0.elapsed().as_secs_f64(),
        start_rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        loads[0],
        loads[1],
        loads[2],
        loads[3],
        loads[4],
        loads[5],
        loads[6],
        dir.join("rss.csv").display()
    );
    assert!(host_ok && failures.is_empty(), "{failures}");
    let (plain, _) = mpyc::plain("many_rounds.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain, "the computation is correct under load");
    }
    assert!(loads.iter().all(|n| *n > 0), "every kind of load ran: {loads:?}");
    assert!(peak <= CEILING_MIB * 1024, "RSS peaked at {:.1} MiB (ceiling {CEILING_MIB} MiB)", peak as f64 / 1024.0);
}
