//! Hole-punching plans. Each party tells the other how it might be reached directly (an
//! [`Offer`]: host addresses, the reflexive address its mediator saw, the NAT behaviour it
//! observed); from both offers each side derives the same plan:
//!
//! | us \ peer | easy or unknown | hard |
//! |---|---|---|
//! | easy or unknown | probe the peer's candidates | also spray the peer's address: `spray_ports` random ports |
//! | hard | probe, and send from `hard_sockets` extra sockets to the peer's reflexive address | host candidates only (stays relayed) |
//!
//! "Easy" is an endpoint-independent mapping (one external port for every destination:
//! cone NATs, port-restricted included, and no NAT); "hard" an endpoint-dependent one
//! (symmetric). Spraying and the extra sockets make a birthday match likely: with 256
//! mappings among 64,512 ports and 2,048 sprayed ports, the chance that none meets is
//! (1 − 256/64,512)^2,048 ≈ 0.03 %. Both are bounded in packets and time.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The NAT behaviour a party observed (mapping, from two probes to different ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Not measured.
    Unknown,
    /// Endpoint-independent mapping (or no NAT): one external port for all destinations.
    Easy,
    /// Endpoint-dependent mapping (symmetric): a new external port per destination.
    Hard,
}

impl Nat {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Nat::Unknown => "unknown",
            Nat::Easy => "easy",
            Nat::Hard => "hard",
        }
    }

    /// From the wire name (anything else is `Unknown`).
    pub fn parse(s: &str) -> Nat {
        match s {
            "easy" => Nat::Easy,
            "hard" => Nat::Hard,
            _ => Nat::Unknown,
        }
    }
}

/// How a party might be reached directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Addresses of its own interfaces (with its UDP port).
    pub host: Vec<SocketAddr>,
    /// The address its mediator saw its UDP socket come from.
    pub reflexive: Option<SocketAddr>,
    /// Its NAT's mapping behaviour.
    pub nat: Nat,
}

/// Most candidates taken from a peer's offer.
pub const MAX_CANDIDATES: usize = 8;

/// Whether a peer may make us send to `a`: a unicast address with a port.
pub fn acceptable(a: &SocketAddr) -> bool {
    if a.port() == 0 || a.ip().is_unspecified() || a.ip().is_multicast() {
        return false;
    }
    match a.ip() {
        IpAddr::V4(v4) => !v4.is_broadcast(),
        IpAddr::V6(_) => true,
    }
}

impl Offer {
    /// The candidates to probe from our main socket, given our own NAT: the peer's host
    /// addresses, and its reflexive address unless both sides are hard (then it can only
    /// fail). Deduplicated, filtered by [`acceptable`], at most [`MAX_CANDIDATES`].
    pub fn candidates(&self, ours: Nat) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let both_hard = ours == Nat::Hard && self.nat == Nat::Hard;
        let reflexive = self.reflexive.filter(|_| !both_hard);
        for a in self.host.iter().chain(reflexive.iter()) {
            if acceptable(a) && !out.contains(a) && out.len() < MAX_CANDIDATES {
                out.push(*a);
            }
        }
        out
    }
}

/// Spraying random ports of a hard peer's address from our main socket.
#[derive(Debug, Clone)]
pub struct Spray {
    /// The peer's external address.
    pub ip: IpAddr,
    /// Ports still to spray (drawn at the start, distinct).
    pub ports: Vec<u16>,
    /// When the next one goes.
    pub next_at: Instant,
    /// Time between two.
    pub interval: Duration,
}

impl Spray {
    /// `count` distinct random ports of 1024–65535 except `skip` (probed anyway).
    pub fn new(ip: IpAddr, count: u16, skip: u16, now: Instant, interval: Duration, rng: &mut Rng) -> Spray {
        let mut seen = vec![0u64; 1024];
        let mut ports = Vec::with_capacity(count as usize);
        while ports.len() < count as usize {
            let p = 1024 + (rng.next_u64() % 64_512) as u16;
            let (w, b) = (p as usize / 64, 1u64 << (p % 64));
            if p != skip && seen[w] & b == 0 {
                seen[w] |= b;
                ports.push(p);
            }
        }
        Spray { ip, ports, next_at: now, interval }
    }

    /// The next address to spray, if one is due.
    pub fn poll(&mut self, now: Instant) -> Option<SocketAddr> {
        if now < self.next_at {
            return None;
        }
        let p = self.ports.pop()?;
        self.next_at = now + self.interval;
        Some(SocketAddr::new(self.ip, p))
    }

    /// When the next one is due, if any is left.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.ports.is_empty()).then_some(self.next_at)
    }
}

/// Sending from many sockets (many mappings of our hard NAT) to an easy peer's address.
#[derive(Debug, Clone)]
pub struct Burst {
    /// The peer's reflexive address.
    pub remote: SocketAddr,
    /// Our extra sockets are 1..=`sockets`.
    pub sockets: u16,
    /// The next socket of the current round (0: between rounds).
    pub cursor: u16,
    /// When the next round starts.
    pub next_round: Instant,
    /// Time between rounds.
    pub interval: Duration,
    /// No round starts after this.
    pub until: Instant,
}

impl Burst {
    /// The next (socket, address) to send from and to, if due.
    pub fn poll(&mut self, now: Instant) -> Option<(u16, SocketAddr)> {
        if self.cursor == 0 {
            if now < self.next_round || now >= self.until {
                return None;
            }
            self.cursor = 1;
            self.next_round = now + self.interval;
        }
        let s = self.cursor;
        self.cursor = if s >= self.sockets { 0 } else { s + 1 };
        Some((s, self.remote))
    }

    /// When the next packet is due, if any round is left.
    pub fn deadline(&self, now: Instant) -> Option<Instant> {
        if self.cursor != 0 {
            Some(now)
        } else {
            (self.next_round < self.until).then_some(self.next_round)
        }
    }
}

/// A small deterministic generator (xorshift64*): ports to spray need no secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (0 is replaced by a constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_filtered_and_deduplicated() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let o = Offer {
            host: vec![a("192.168.1.2:4000"), a("0.0.0.0:1"), a("224.0.0.1:5"), a("10.0.0.1:0"), a("192.168.1.2:4000")],
            reflexive: Some(a("203.0.113.9:4000")),
            nat: Nat::Hard,
        };
        assert_eq!(o.candidates(Nat::Easy), [a("192.168.1.2:4000"), a("203.0.113.9:4000")]);
        assert_eq!(o.candidates(Nat::Hard), [a("192.168.1.2:4000")], "hard to hard: host candidates only");
        let many =
            Offer { host: (1..40).map(|p| a(&format!("10.0.0.1:{p}"))).collect(), reflexive: None, nat: Nat::Easy };
        assert_eq!(many.candidates(Nat::Easy).len(), MAX_CANDIDATES);
        assert_eq!(Nat::parse("hard"), Nat::Hard);
        assert_eq!(Nat::parse("?"), Nat::Unknown);
    }

    #[test]
    fn spray_and_burst_are_bounded() {
        let t0 = Instant::now();
        let mut rng = Rng::new(7);
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let mut s = Spray::new(ip, 2048, 5000, t0, Duration::from_micros(500), &mut rng);
        let mut now = t0;
        let mut ports = std::collections::BTreeSet::new();
        while let Some(t) = s.deadline() {
            now = now.max(t);
            let a = s.poll(now).unwrap();
            assert!(a.port() >= 1024 && a.port() != 5000 && a.ip() == ip);
            assert!(ports.insert(a.port()), "distinct ports");
        }
        assert_eq!(ports.len(), 2048);
        assert!(now - t0 < Duration::from_millis(1100));
        let remote: SocketAddr = "203.0.113.6:4000".parse().unwrap();
        let mut b = Burst {
            remote,
            sockets: 256,
            cursor: 0,
            next_round: t0,
            interval: Duration::from_millis(500),
            until: t0 + Duration::from_secs(10),
        };
        let mut now = t0;
        let mut sent = 0;
        while let Some(t) = b.deadline(now) {
            now = now.max(t);
            let (sock, to) = b.poll(now).unwrap();
            assert!((1..=256).contains(&sock) && to == remote);
            sent += 1;
        }
        assert_eq!(sent, 256 * 20, "20 rounds in 10 s, 256 sockets each");
    }
}
