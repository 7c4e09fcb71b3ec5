//! Loss recovery (RFC 9002 §6, adapted): every packet that carries records is kept until
//! acknowledged (cumulatively or selectively). Each transmission gets a number; a packet
//! is declared lost once a packet transmitted 3 later was acknowledged, or once a later one
//! was acknowledged and a loss delay (9/8 RTT) passed since it was sent. A probe timeout
//! retransmits one packet, never the whole window. Congestion controllers of the paths
//! learn of acknowledgements and losses here.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::path::Paths;

/// Transmissions acknowledged after a packet's that make it lost.
pub const PACKET_THRESHOLD: u64 = 3;

/// A packet sent and not yet acknowledged.
pub(crate) struct Sent {
    /// Its records (what is resent).
    pub body: Vec<u8>,
    /// First transmission.
    pub first_sent: Instant,
    /// Latest transmission.
    pub sent_at: Instant,
    /// Transmitted more than once (its acknowledgement gives no RTT sample).
    pub resent: bool,
    /// Waiting in the resend queue.
    pub queued: bool,
    /// Path of the latest transmission.
    pub path: usize,
    /// Number of the latest transmission.
    pub tx: u64,
    /// Bytes of the latest transmission (counted in its path's flight while `counted`).
    pub size: u64,
    /// Counted in flight on `path`.
    pub counted: bool,
    /// The sender did not use its window when it sent this.
    pub app_limited: bool,
}

/// What an acknowledgement did.
#[derive(Debug, Default)]
pub(crate) struct Acked {
    /// Packets newly acknowledged.
    pub packets: u64,
    /// An RTT sample (from the highest newly acknowledged packet sent once), and its path.
    pub sample: Option<(usize, Duration)>,
    /// The sequence number the sample is from.
    sample_seq: u64,
}

/// The sender's side of reliability.
#[derive(Default)]
pub(crate) struct Recovery {
    /// By sequence number.
    pub unacked: BTreeMap<u64, Sent>,
    /// Transmission number → sequence number, for packets in flight.
    flight: BTreeMap<u64, u64>,
    /// Sequence numbers to resend, in order.
    pub resend: VecDeque<u64>,
    /// Bytes of bodies kept (the memory bound).
    pub bytes: usize,
    next_tx: u64,
    largest_acked_tx: Option<u64>,
    /// Probe timeouts since the last acknowledgement.
    pub pto_count: u32,
    /// When the time threshold may declare the next packet lost.
    pub loss_time: Option<Instant>,
    /// When the latest packet in flight was sent.
    pub last_sent: Option<Instant>,
    /// Path of the latest packet in flight.
    pub last_path: usize,
    /// Packets that may leave beyond the congestion window (probes).
    pub probes_owed: u32,
    /// Packets declared lost.
    pub lost: u64,
}

impl Recovery {
    /// Whether nothing is unacknowledged.
    pub fn is_empty(&self) -> bool {
        self.unacked.is_empty()
    }

    /// Records a transmission (first or again) of `seq` on `path`.
    pub fn on_sent(&mut self, seq: u64, now: Instant, path: usize, size: u64, app_limited: bool, paths: &mut Paths) {
        let tx = self.next_tx;
        self.next_tx += 1;
        let Some(s) = self.unacked.get_mut(&seq) else { return };
        if s.counted {
            self.flight.remove(&s.tx);
            let p = paths.get_mut(s.path);
            p.in_flight = p.in_flight.saturating_sub(s.size);
        }
        s.tx = tx;
        s.sent_at = now;
        s.path = path;
        s.size = size;
        s.counted = true;
        s.queued = false;
        s.app_limited = app_limited;
        self.flight.insert(tx, seq);
        paths.get_mut(path).in_flight += size;
        self.last_sent = Some(now);
        self.last_path = path;
        self.probes_owed = self.probes_owed.saturating_sub(1);
    }

    /// Keeps a new packet (then call [`Recovery::on_sent`]).
    pub fn insert(&mut self, seq: u64, body: Vec<u8>, now: Instant) {
        self.bytes += body.len();
        self.unacked.insert(
            seq,
            Sent {
                body,
                first_sent: now,
                sent_at: now,
                resent: false,
                queued: false,
                path: 0,
                tx: 0,
                size: 0,
                counted: false,
                app_limited: false,
            },
        );
    }

    fn remove(&mut self, seq: u64, now: Instant, paths: &mut Paths, out: &mut Acked) -> Option<Sent> {
        let s = self.unacked.remove(&seq)?;
        self.bytes -= s.body.len();
        if s.counted {
            self.flight.remove(&s.tx);
            let p = paths.get_mut(s.path);
            p.in_flight = p.in_flight.saturating_sub(s.size);
            let rtt = p.rtt;
            p.cc.on_ack(now, s.sent_at, s.size, s.app_limited, &rtt);
        }
        self.largest_acked_tx = Some(self.largest_acked_tx.map_or(s.tx, |l| l.max(s.tx)));
        out.packets += 1;
        if !s.resent && (out.sample.is_none() || seq > out.sample_seq) {
            out.sample = Some((s.path, now.saturating_duration_since(s.first_sent)));
            out.sample_seq = seq;
        }
        Some(s)
    }

    /// Applies an acknowledgement: everything up to `cumulative`, and the `ranges`.
    pub fn on_ack(
        &mut self,
        now: Instant,
        cumulative: u64,
        ranges: impl Iterator<Item = (u64, u64)>,
        paths: &mut Paths,
    ) -> Acked {
        let mut out = Acked::default();
        while let Some((&seq, _)) = self.unacked.first_key_value() {
            if seq > cumulative {
                break;
            }
            self.remove(seq, now, paths, &mut out);
        }
        for (first, last) in ranges {
            if first > last {
                continue;
            }
            let seqs: Vec<u64> = self.unacked.range(first..=last).map(|(s, _)| *s).collect();
            for seq in seqs {
                self.remove(seq, now, paths, &mut out);
            }
        }
        if out.packets > 0 {
            self.pto_count = 0;
            while self.resend.front().is_some_and(|s| !self.unacked.contains_key(s)) {
                self.resend.pop_front();
            }
            self.detect_lost(now, paths);
        }
        out
    }

    /// Declares lost what the thresholds say is lost; arms the loss timer for the next one.
    pub fn detect_lost(&mut self, now: Instant, paths: &mut Paths) -> u64 {
        self.loss_time = None;
        let Some(largest) = self.largest_acked_tx else { return 0 };
        let mut lost = 0;
        let mut congested: Vec<(usize, Instant)> = Vec::new();
        while let Some((&tx, &seq)) = self.flight.first_key_value() {
            if tx >= largest {
                break;
            }
            let Some(s) = self.unacked.get_mut(&seq) else {
                self.flight.remove(&tx);
                continue;
            };
            let delay = paths.get(s.path).rtt.loss_delay();
            if largest - tx < PACKET_THRESHOLD && now < s.sent_at + delay {
                self.loss_time = Some(s.sent_at + delay);
                break;
            }
            self.flight.remove(&tx);
            s.counted = false;
            let p = paths.get_mut(s.path);
            p.in_flight = p.in_flight.saturating_sub(s.size);
            p.lost += 1;
            match congested.iter_mut().find(|(i, _)| *i == s.path) {
                Some((_, t)) => *t = (*t).max(s.sent_at),
                None => congested.push((s.path, s.sent_at)),
            }
            if !s.queued {
                s.queued = true;
                self.resend.push_back(seq);
            }
            lost += 1;
        }
        for (path, sent) in congested {
            paths.get_mut(path).cc.on_congestion_event(now, sent, false);
        }
        self.lost += lost;
        lost
    }

    /// When the probe timeout fires, if anything is in flight.
    pub fn pto_deadline(&self, paths: &Paths, min: Duration, max: Duration, ack_delay: Duration) -> Option<Instant> {
        if self.flight.is_empty() {
            return None;
        }
        let base = (paths.get(self.last_path).rtt.pto_base() + ack_delay).max(min);
        let backoff = base.saturating_mul(1 << self.pto_count.min(16)).min(max);
        Some(self.last_sent? + backoff)
    }

    /// The probe timeout fired: resend the oldest packet in flight (beyond the window),
    /// and after three in a row treat the path as persistently congested.
    pub fn on_pto(&mut self, now: Instant, paths: &mut Paths) {
        self.pto_count += 1;
        let oldest = self.unacked.iter_mut().find(|(_, s)| s.counted && !s.queued);
        if let Some((&seq, s)) = oldest {
            s.queued = true;
            // Resent before anything else queued.
            self.resend.push_front(seq);
            if self.pto_count >= 3 {
                paths.get_mut(s.path).cc.on_congestion_event(now, s.sent_at, true);
            }
        }
        self.probes_owed = 1;
        // The timer restarts from now (with the doubled timeout).
        self.last_sent = Some(now);
    }

    /// Everything in flight on `path` is resent (the path failed or was re-established),
    /// without a congestion signal; returns how many packets.
    pub fn requeue_path(&mut self, path: usize, paths: &mut Paths) -> usize {
        let mut n = 0;
        let mut seqs = Vec::new();
        for (&seq, s) in self.unacked.iter_mut() {
            if s.path != path || s.queued {
                continue;
            }
            if s.counted {
                self.flight.remove(&s.tx);
                let p = paths.get_mut(s.path);
                p.in_flight = p.in_flight.saturating_sub(s.size);
                s.counted = false;
            }
            s.queued = true;
            seqs.push(seq);
            n += 1;
        }
        // In sequence order, ahead of later retransmissions.
        for seq in seqs.into_iter().rev() {
            self.resend.push_front(seq);
        }
        n
    }
}
