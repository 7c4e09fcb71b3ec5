//! The emulator's thin IO driver: a TUN device in the lab's core namespace, one thread that
//! reads packets and asks the [`Model`] when each is due, one thread that writes them back at
//! that time.
//!
//! ```text
//!   spoke s1 ─┐  policy routing in the core:      ┌─▶ tun0 ─▶ reader ─▶ Model ─▶ heap
//!   spoke s2 ─┼─ "from any spoke: via tun0"  ─────┘                              │ due
//!   spoke sN ─┘  "from tun0: the main table" ◀─── tun0 ◀──── writer ◀────────────┘
//! ```
//!
//! The writer sleeps on a condition variable until the earliest packet is due (futex
//! timeouts are high-resolution timers); run the process with a real-time priority (`chrt -f`)
//! to keep that timing under CPU load. Lateness (write time − due time) is measured.

use std::collections::BinaryHeap;
use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::model::{Counters, Link, Model, Verdict};
use crate::error::{Error, Result};

/// A packet waiting for its time.
struct Pending {
    at: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Timing of the writer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Lateness {
    /// Packets written.
    pub written: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Mean lateness in microseconds.
    pub mean_us: f64,
    /// Largest lateness in microseconds.
    pub max_us: u64,
    /// Packets written more than 1 ms late.
    pub over_1ms: u64,
}

/// Counters and timing of a running emulator.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// What the model decided.
    pub model: Counters,
    /// How punctual the writer was.
    pub lateness: Lateness,
    /// Packets waiting now.
    pub queued: usize,
}

struct Shared {
    heap: Mutex<BinaryHeap<Pending>>,
    wake: Condvar,
    model: Mutex<Model>,
    lateness: Mutex<(Lateness, f64)>,
}

/// A running emulator; its threads end with the process.
pub struct Emulator {
    shared: Arc<Shared>,
}

impl Emulator {
    /// Creates TUN device `tun` (in the current network namespace), brings it up and starts
    /// forwarding between `links`.
    pub fn start(tun: &str, links: &[Link], seed: u64) -> Result<Emulator> {
        let model = Model::new(links, seed)?;
        let mut config = tun::Configuration::default();
        config.tun_name(tun).mtu(1500).up();
        let device = tun::create(&config).map_err(|e| Error::Tun(format!("{tun}: {e}")))?;
        let (mut reader, mut writer) = device.split();
        let shared = Arc::new(Shared {
            heap: Mutex::new(BinaryHeap::new()),
            wake: Condvar::new(),
            model: Mutex::new(model),
            lateness: Mutex::new((Lateness::default(), 0.0)),
        });

        let s = shared.clone();
        std::thread::Builder::new()
            .name("wanemu-read".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut seq = 0u64;
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            eprintln!("wanemu: reading the TUN device failed: {e}");
                            std::process::exit(1);
                        }
                    };
                    let now = Instant::now();
                    let verdict = lock(&s.model).packet(now, &buf[..n]);
                    if let Verdict::Deliver(at) = verdict {
                        seq += 1;
                        let mut heap = lock(&s.heap);
                        let earliest = heap.peek().is_none_or(|p| at < p.at);
                        heap.push(Pending { at, seq, data: buf[..n].to_vec() });
                        drop(heap);
                        if earliest {
                            s.wake.notify_one();
                        }
                    }
                }
            })
            .map_err(|e| Error::Tun(format!("cannot start the reader: {e}")))?;

        let s = shared.clone();
        std::thread::Builder::new()
            .name("wanemu-write".into())
            .spawn(move || {
                let mut heap = lock(&s.heap);
                loop {
                    let Some(next) = heap.peek() else {
                        heap = s.wake.wait(heap).unwrap_or_else(|p| p.into_inner());
                        continue;
                    };
                    let now = Instant::now();
                    if next.at > now {
                        let wait = next.at - now;
                        heap = s.wake.wait_timeout(heap, wait).unwrap_or_else(|p| p.into_inner()).0;
                        continue;
                    }
                    let Some(p) = heap.pop() else { continue };
                    drop(heap);
                    let ok = writer.write(&p.data).is_ok();
                    let late = Instant::now().saturating_duration_since(p.at);
                    record(&s.lateness, ok, late);
                    heap = lock(&s.heap);
                }
            })
            .map_err(|e| Error::Tun(format!("cannot start the writer: {e}")))?;
        Ok(Emulator { shared })
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let (lateness, _) = lock(&self.shared.lateness).clone();
        Stats { model: lock(&self.shared.model).counters().clone(), lateness, queued: lock(&self.shared.heap).len() }
    }
}

fn record(l: &Mutex<(Lateness, f64)>, ok: bool, late: Duration) {
    let mut g = lock(l);
    let (stats, sum) = &mut *g;
    if !ok {
        stats.write_errors += 1;
        return;
    }
    let us = late.as_micros() as u64;
    stats.written += 1;
    *sum += us as f64;
    stats.mean_us = *sum / stats.written as f64;
    stats.max_us = stats.max_us.max(us);
    if us > 1000 {
        stats.over_1ms += 1;
    }
}

/// Locks, ignoring poisoning (a panicked thread ends the process anyway).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
