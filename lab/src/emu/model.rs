//! The emulator's sans-IO core: given a packet, the time it was read and the links of the
//! lab, decide whether it is lost and when it must be written back. No IO, no clock: time is
//! an argument, randomness a seeded generator, so tests replay exact schedules.
//!
//! The lab is a star: every site (a home, a server region) hangs off the core on one *spoke*.
//! A packet from site `a` to site `b` crosses spoke `a` (uplink) and spoke `b` (downlink):
//!
//! ```text
//!  read ─▶ uplink of a: serialise at a's rate ─▶ a's loss ─▶ a's delay ± jitter
//!       ─▶ b's delay ± jitter ─▶ downlink of b: serialise at b's rate ─▶ b's loss ─▶ write
//! ```
//!
//! Release times never go backwards between one pair of sites (jitter delays, it does not
//! reorder: TCP would read reordering as loss). A serialiser whose backlog exceeds
//! [`Link::queue`] drops the packet (tail drop). The downlink's backlog is booked when the
//! packet is read, in read order, which is exact while packets to one site arrive in the order
//! they were read (always so when its senders have equal delays).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One spoke: the link between a site and the core, the same both ways.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The site's name (for counters and messages).
    pub name: String,
    /// The site's addresses, `a.b.c.d/len`: packets from them use this spoke's uplink,
    /// packets to them its downlink.
    pub prefix: String,
    /// One-way propagation delay between the site and the core, in milliseconds.
    #[serde(default)]
    pub delay_ms: f64,
    /// Jitter: each crossing adds a uniform random extra in `[-jitter, +jitter]` ms (never
    /// below zero delay, never reordering a pair of sites).
    #[serde(default)]
    pub jitter_ms: f64,
    /// Random loss on this spoke, percent per crossing, each direction.
    #[serde(default)]
    pub loss_pct: f64,
    /// Rate in Mbit/s each direction; absent = unlimited.
    #[serde(default)]
    pub rate_mbit: Option<f64>,
    /// Longest backlog a serialiser may hold before it drops, in milliseconds (default 200).
    #[serde(default = "default_queue_ms")]
    pub queue_ms: f64,
}

fn default_queue_ms() -> f64 {
    200.0
}

impl Link {
    /// A link with only a delay.
    pub fn delay(name: &str, prefix: &str, delay_ms: f64) -> Link {
        Link {
            name: name.into(),
            prefix: prefix.into(),
            delay_ms,
            jitter_ms: 0.0,
            loss_pct: 0.0,
            rate_mbit: None,
            queue_ms: default_queue_ms(),
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(format!("link {}: {what}", self.name)));
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !finite_nonneg(self.delay_ms) || self.delay_ms > 10_000.0 {
            return bad("delay_ms must be in 0..=10000");
        }
        if !finite_nonneg(self.jitter_ms) || self.jitter_ms > 10_000.0 {
            return bad("jitter_ms must be in 0..=10000");
        }
        if !finite_nonneg(self.loss_pct) || self.loss_pct > 100.0 {
            return bad("loss_pct must be in 0..=100");
        }
        if let Some(r) = self.rate_mbit {
            if !(r.is_finite() && r > 0.0) {
                return bad("rate_mbit must be positive");
            }
        }
        if !finite_nonneg(self.queue_ms) {
            return bad("queue_ms must be >= 0");
        }
        Ok(())
    }
}

/// An IPv4 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    net: u32,
    mask: u32,
}

impl Prefix {
    /// Parses `a.b.c.d/len` (or a bare address: /32).
    pub fn parse(s: &str) -> Result<Prefix> {
        let bad = || Error::Config(format!("not an IPv4 prefix: {s:?}"));
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u32>().map_err(|_| bad())?),
            None => (s, 32),
        };
        if len > 32 {
            return Err(bad());
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Ok(Prefix { net: u32::from(addr) & mask, mask })
    }

    /// Whether `a` is inside.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask == self.net
    }
}

/// Why a packet was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Not IPv4, or too short to be.
    NotIpv4,
    /// Its source or destination is on no spoke.
    Unrouted,
    /// Random loss.
    Lost,
    /// A serialiser's backlog was full.
    Queue,
}

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it back at this time.
    Deliver(Instant),
    /// Drop it.
    Drop(Drop),
}

/// Counters, per spoke and in total.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// Packets scheduled for delivery.
    pub delivered: u64,
    /// Bytes scheduled for delivery.
    pub bytes: u64,
    /// Packets lost at random.
    pub lost: u64,
    /// Packets dropped by a full serialiser.
    pub queue_drops: u64,
    /// Packets from or to no spoke, or not IPv4.
    pub unrouted: u64,
}

struct Spoke {
    link: Link,
    prefix: Prefix,
    /// Seconds per byte, 0 when unlimited.
    byte_time: f64,
    up_free: Option<Instant>,
    down_free: Option<Instant>,
}

/// The emulator's state: the spokes, serialiser backlogs, per-pair release order, counters.
pub struct Model {
    spokes: Vec<Spoke>,
    last_release: HashMap<(usize, usize), Instant>,
    rng: StdRng,
    total: Counters,
}

impl Model {
    /// A model of these links; `seed` fixes loss and jitter draws.
    pub fn new(links: &[Link], seed: u64) -> Result<Model> {
        let mut spokes = Vec::new();
        for l in links {
            l.check()?;
            let prefix = Prefix::parse(&l.prefix)?;
            if spokes.iter().any(|s: &Spoke| s.link.name == l.name) {
                return Err(Error::Config(format!("two links are named {}", l.name)));
            }
            let byte_time = l.rate_mbit.map(|r| 8.0 / (r * 1e6)).unwrap_or(0.0);
            spokes.push(Spoke { link: l.clone(), prefix, byte_time, up_free: None, down_free: None });
        }
        Ok(Model { spokes, last_release: HashMap::new(), rng: StdRng::seed_from_u64(seed), total: Counters::default() })
    }

    /// The totals so far.
    pub fn counters(&self) -> &Counters {
        &self.total
    }

    /// The spoke whose prefix holds `a` (the longest prefix wins).
    fn spoke_of(&self, a: Ipv4Addr) -> Option<usize> {
        self.spokes
            .iter()
            .enumerate()
            .filter(|(_, s)| s.prefix.contains(a))
            .max_by_key(|(_, s)| s.prefix.mask.count_ones())
            .map(|(i, _)| i)
    }

    /// Decides the fate of `packet`, read at `now`.
    pub fn packet(&mut self, now: Instant, packet: &[u8]) -> Verdict {
        let v = self.decide(now, packet);
        match v {
            Verdict::Deliver(_) => {
                self.total.delivered += 1;
                self.total.bytes += packet.len() as u64;
            }
            Verdict::Drop(Drop::Lost) => self.total.lost += 1,
            Verdict::Drop(Drop::Queue) => self.total.queue_drops += 1,
            Verdict::Drop(Drop::NotIpv4 | Drop::Unrouted) => self.total.unrouted += 1,
        }
        v
    }

    fn decide(&mut self, now: Instant, packet: &[u8]) -> Verdict {
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return Verdict::Drop(Drop::NotIpv4);
        }
        let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let (Some(a), Some(b)) = (self.spoke_of(src), self.spoke_of(dst)) else {
            return Verdict::Drop(Drop::Unrouted);
        };
        let len = packet.len() as f64;

        // Uplink of a.
        let up = &mut self.spokes[a];
        let start = up.up_free.map_or(now, |f| f.max(now));
        if secs(start - now) * 1e3 > up.link.queue_ms {
            return Verdict::Drop(Drop::Queue);
        }
        let sent = start + Duration::from_secs_f64(len * up.byte_time);
        up.up_free = Some(sent);
        let (loss_a, delay_a, jitter_a) = (up.link.loss_pct, up.link.delay_ms, up.link.jitter_ms);
        if self.lost(loss_a) {
            return Verdict::Drop(Drop::Lost);
        }
        let (loss_b, delay_b, jitter_b) = {
            let l = &self.spokes[b].link;
            (l.loss_pct, l.delay_ms, l.jitter_ms)
        };
        let flight = self.delay(delay_a, jitter_a) + self.delay(delay_b, jitter_b);
        let at_core_exit = sent + Duration::from_secs_f64(flight / 1e3);

        // Downlink of b.
        let down = &mut self.spokes[b];
        let start = down.down_free.map_or(at_core_exit, |f| f.max(at_core_exit));
        if secs(start - at_core_exit) * 1e3 > down.link.queue_ms {
            return Verdict::Drop(Drop::Queue);
        }
        let arrived = start + Duration::from_secs_f64(len * down.byte_time);
        down.down_free = Some(arrived);
        if self.lost(loss_b) {
            return Verdict::Drop(Drop::Lost);
        }

        // Never reorder a pair of sites.
        let last = self.last_release.entry((a, b)).or_insert(arrived);
        let at = arrived.max(*last);
        *last = at;
        Verdict::Deliver(at)
    }

    fn lost(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.rng.gen::<f64>() * 100.0 < pct
    }

    /// One crossing's delay in ms: `delay` plus uniform jitter, never negative.
    fn delay(&mut self, delay: f64, jitter: f64) -> f64 {
        if jitter > 0.0 {
            (delay + self.rng.gen_range(-jitter..=jitter)).max(0.0)
        } else {
            delay
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p
    }

    const A: [u8; 4] = [198, 18, 1, 2];
    const B: [u8; 4] = [198, 18, 2, 2];

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    #[test]
    fn delays_add_up_per_crossing() {
        let links = [Link::delay("a", "198.18.1.0/24", 5.0), Link::delay("b", "198.18.2.0/24", 15.0)];
        let mut m = Model::new(&links, 1).unwrap();
        let t0 = Instant::now();
        let Verdict::Deliver(at) = m.packet(t0, &packet(A, B, 100)) else { panic!("dropped") };
        assert!((ms(at - t0) - 20.0).abs() < 1e-6, "{}", ms(at - t0));
        let Verdict::Deliver(at) = m.packet(t0, &packet(B, A, 100)) else { panic!("dropped") };
        assert!((ms(at - t0) - 20.0).abs() < 1e-6);
        assert_eq!(m.counters().delivered, 2);
    }

    #[test]
    fn unknown_and_non_ipv4_are_dropped() {
        let mut m = Model::new(&[Link::delay("a", "198.18.1.0/24", 5.0)], 1).unwrap();
        let t0 = Instant::now();
        assert_eq!(m.packet(t0, &packet(A, [10, 0, 0, 1], 40)), Verdict::Drop(Drop::Unrouted));
        assert_eq!(m.packet(t0, &[0x60; 40]), Verdict::Drop(Drop::NotIpv4));
        assert_eq!(m.packet(t0, &[0x45; 10]), Verdict::Drop(Drop::NotIpv4));
        assert_eq!(m.counters().unrouted, 3);
    }

    #[test]
    fn rate_serialises_and_queue_overflows() {
        // 8 Mbit/s = 1 byte per µs: a 1000-byte packet takes 1 ms on each serialiser.
        let mut a = Link::delay("a", "198.18.1.0/24", 0.0);
        a.rate_mbit = Some(8.0);
        a.queue_ms = 5.0;
        let b = Link::delay("b", "198.18.2.0/24", 0.0);
        let mut m = Model::new(&[a, b], 1).unwrap();
        let t0 = Instant::now();
        let times: Vec<_> = (0..8).map(|_| m.packet(t0, &packet(A, B, 1000))).collect();
        for (i, v) in times.iter().enumerate().take(6) {
            let Verdict::Deliver(at) = v else { panic!("packet {i} dropped: {v:?}") };
            assert!((ms(*at - t0) - (i + 1) as f64).abs() < 1e-3, "packet {i} at {}", ms(*at - t0));
        }
        // The 7th would wait 6 ms > 5 ms of queue.
        assert_eq!(times[6], Verdict::Drop(Drop::Queue));
        assert_eq!(m.counters().queue_drops, 2);
    }

    #[test]
    fn loss_rate_is_what_was_asked() {
        let mut a = Link::delay("a", "198.18.1.0/24", 1.0);
        a.loss_pct = 1.0;
        let mut b = Link::delay("b", "198.18.2.0/24", 1.0);
        b.loss_pct = 1.0;
        let mut m = Model::new(&[a, b], 7).unwrap();
        let t0 = Instant::now();
        let n = 200_000;
        for _ in 0..n {
            m.packet(t0, &packet(A, B, 60));
        }
        let rate = m.counters().lost as f64 / n as f64;
        let want = 1.0 - 0.99f64 * 0.99;
        let sd = (want * (1.0 - want) / n as f64).sqrt();
        assert!((rate - want).abs() < 5.0 * sd, "loss {rate} vs {want} ± {}", 5.0 * sd);
    }

    #[test]
    fn jitter_never_reorders_a_pair() {
        let mut a = Link::delay("a", "198.18.1.0/24", 10.0);
        a.jitter_ms = 8.0;
        let b = Link::delay("b", "198.18.2.0/24", 10.0);
        let mut m = Model::new(&[a, b], 3).unwrap();
        let t0 = Instant::now();
        let mut last = t0;
        let mut spread = (f64::MAX, 0.0f64);
        for i in 0..1000 {
            let now = t0 + Duration::from_micros(100 * i);
            let Verdict::Deliver(at) = m.packet(now, &packet(A, B, 60)) else { panic!() };
            assert!(at >= last, "reordered");
            last = at;
            let d = ms(at - now);
            spread = (spread.0.min(d), spread.1.max(d));
            assert!((12.0 - 1e-6..=28.0 + 1e-6).contains(&d), "delay {d} outside 20 ± 8 (+ order)");
        }
        assert!(spread.1 - spread.0 > 8.0, "jitter spreads delays: {spread:?}");
    }

    #[test]
    fn bad_links_are_refused() {
        let mut l = Link::delay("a", "198.18.1.0/24", -1.0);
        assert!(Model::new(&[l.clone()], 1).is_err());
        l.delay_ms = 1.0;
        l.loss_pct = 101.0;
        assert!(Model::new(&[l.clone()], 1).is_err());
        l.loss_pct = 0.0;
        l.prefix = "198.18.1.0/33".into();
        assert!(Model::new(&[l.clone()], 1).is_err());
        l.prefix = "nonsense".into();
        assert!(Model::new(&[l], 1).is_err());
        let ok = Link::delay("a", "198.18.1.0/24", 1.0);
        assert!(Model::new(&[ok.clone(), ok], 1).is_err(), "duplicate names");
    }
}
