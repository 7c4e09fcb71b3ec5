//! UDP probes: an echo server and a pinger that measures round trips and loss.
//!
//! A probe is 16 bytes: a magic word, then the sequence number (both big-endian u64). The
//! pinger sends `count` probes `interval` apart, matches echoes by sequence number (a late
//! echo still counts; duplicates and strangers are ignored) and waits `linger` after the last
//! send for stragglers.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

const MAGIC: u64 = 0x6469_646d_7063_6c62; // "didmpclb"

/// Answers every datagram with its own bytes, forever.
pub fn echo_server(listen: SocketAddr, ready: impl FnOnce()) -> Result<()> {
    let s = UdpSocket::bind(listen).map_err(Error::io(format!("binding {listen}")))?;
    ready();
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = match s.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io { what: "echo: receiving".into(), source: e }),
        };
        // A failed send (e.g. an ICMP error pending on the socket) is the sender's loss.
        let _ = s.send_to(&buf[..n], peer);
    }
}

/// What a ping run measured.
#[derive(Clone, Debug, Serialize)]
pub struct PingReport {
    /// Probes sent.
    pub sent: u64,
    /// Distinct probes echoed.
    pub received: u64,
    /// Round trips (ms), in the order the echoes arrived.
    pub rtts_ms: Vec<f64>,
    /// Median round trip (ms); `None` if nothing came back.
    pub median_ms: Option<f64>,
    /// Smallest round trip (ms).
    pub min_ms: Option<f64>,
    /// 95th percentile (ms).
    pub p95_ms: Option<f64>,
    /// Fraction of probes that never came back.
    pub loss: f64,
}

/// Sends `count` probes to `target`, `interval` apart; see the module docs.
pub fn ping(target: SocketAddr, count: u32, interval: Duration, linger: Duration) -> Result<PingReport> {
    if count == 0 {
        return Err(Error::Config("ping: count must be at least 1".into()));
    }
    let s = UdpSocket::bind("0.0.0.0:0").map_err(Error::io("ping: binding"))?;
    s.connect(target).map_err(Error::io(format!("ping: connecting to {target}")))?;
    let start = Instant::now();
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut rtts = Vec::new();
    let mut next_seq = 0u64;
    let mut next_send = start;
    let mut deadline: Option<Instant> = None;
    let mut buf = [0u8; 64];
    loop {
        let now = Instant::now();
        if next_seq < count as u64 && now >= next_send {
            let mut p = [0u8; 16];
            p[..8].copy_from_slice(&MAGIC.to_be_bytes());
            p[8..].copy_from_slice(&next_seq.to_be_bytes());
            // The time is taken before sending: a preemption between the two can only make the
            // round trip look longer, never shorter than the emulator's delay.
            let t = Instant::now();
            // ECONNREFUSED from an earlier ICMP error or a full buffer: that probe is lost.
            let _ = s.send(&p);
            sent_at.insert(next_seq, t);
            next_seq += 1;
            next_send += interval;
            if next_seq == count as u64 {
                deadline = Some(Instant::now() + linger);
            }
            continue;
        }
        let until = match deadline {
            None => next_send,
            Some(d) if now >= d || sent_at.is_empty() => break,
            Some(d) => d,
        };
        let wait = until.saturating_duration_since(now).max(Duration::from_micros(50));
        s.set_read_timeout(Some(wait)).map_err(Error::io("ping: timeout"))?;
        match s.recv(&mut buf) {
            Ok(16) if u64::from_be_bytes(buf[..8].try_into().expect("8 bytes")) == MAGIC => {
                let seq = u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
                if let Some(t) = sent_at.remove(&seq) {
                    rtts.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => return Err(Error::Io { what: format!("ping: receiving from {target}"), source: e }),
        }
    }
    Ok(report(count as u64, rtts))
}

fn report(sent: u64, rtts_ms: Vec<f64>) -> PingReport {
    let mut sorted = rtts_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |f: f64| (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * f).round() as usize]);
    let received = rtts_ms.len() as u64;
    PingReport {
        sent,
        received,
        median_ms: q(0.5),
        min_ms: q(0.0),
        p95_ms: q(0.95),
        loss: 1.0 - received as f64 / sent as f64,
        rtts_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_an_echo_server_on_loopback() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || echo_server(addr, || tx.send(()).unwrap()));
        rx.recv().unwrap();
        let r = ping(addr, 50, Duration::from_millis(1), Duration::from_millis(200)).unwrap();
        assert_eq!((r.sent, r.received), (50, 50));
        assert_eq!(r.loss, 0.0);
        assert!(r.median_ms.unwrap() < 50.0);
    }

    #[test]
    fn nothing_listening_is_total_loss() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let r = ping(addr, 5, Duration::from_millis(1), Duration::from_millis(50)).unwrap();
        assert_eq!((r.received, r.loss, r.median_ms), (0, 1.0, None));
        assert!(ping(addr, 0, Duration::from_millis(1), Duration::ZERO).is_err());
    }

    #[test]
    fn quantiles() {
        let r = report(4, vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((r.min_ms, r.median_ms, r.loss), (Some(1.0), Some(3.0), 0.0));
        let r = report(10, vec![]);
        assert_eq!((r.median_ms, r.loss), (None, 1.0));
    }
}
