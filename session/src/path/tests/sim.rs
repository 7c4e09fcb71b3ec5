//! The simulated network of the path tests: two hosts behind model NATs (open, easy,
//! hard), a relay, UDP with delay, loss, jitter, a cut switch and a bottleneck, and a
//! transfer driver, all in simulated time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::path::punch::Rng;
use crate::path::*;
use crate::session::tests::keys_pair;
use crate::{Config, Event, Read, Session, HEADROOM};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A public address.
    Open,
    /// Port-preserving, endpoint-independent mapping, address-and-port-dependent filtering.
    Easy,
    /// A random external port per destination.
    Hard,
}

pub(super) const MAIN_PORT: u16 = 40_000;
pub(super) const MEDIATOR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 3478);

/// One party's host and NAT.
pub(super) struct Host {
    pub(super) kind: Kind,
    pub(super) private: IpAddr,
    pub(super) public: IpAddr,
    pub(super) out_map: HashMap<(u16, SocketAddr), u16>,
    pub(super) in_map: HashMap<u16, u16>,
    pub(super) allowed: HashSet<(u16, SocketAddr)>,
    pub(super) rng: Rng,
}

impl Host {
    pub(super) fn new(kind: Kind, i: u8, seed: u64) -> Host {
        let public = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10 + i));
        let private = if kind == Kind::Open { public } else { IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)) };
        let mut h = Host {
            kind,
            private,
            public,
            out_map: HashMap::new(),
            in_map: HashMap::new(),
            allowed: HashSet::new(),
            rng: Rng::new(seed ^ u64::from(i)),
        };
        h.map(0, MEDIATOR); // the reflexive probe
        h
    }

    /// The external port for a datagram from our socket `local` to `to`.
    pub(super) fn map(&mut self, local: u16, to: SocketAddr) -> u16 {
        let port = MAIN_PORT + local;
        let ext = match self.kind {
            Kind::Open | Kind::Easy => port,
            Kind::Hard => match self.out_map.get(&(port, to)) {
                Some(e) => *e,
                None => loop {
                    let e = 1024 + (self.rng.next_u64() % 64_512) as u16;
                    if !self.in_map.contains_key(&e) {
                        break e;
                    }
                },
            },
        };
        self.out_map.insert((port, to), ext);
        self.in_map.insert(ext, port);
        self.allowed.insert((ext, to));
        ext
    }

    /// Which of our sockets gets a datagram from `from` to our external `port`, if any.
    pub(super) fn admit(&self, port: u16, from: SocketAddr) -> Option<u16> {
        let local = match self.kind {
            Kind::Open => port,
            Kind::Easy | Kind::Hard => {
                if !self.allowed.contains(&(port, from)) {
                    return None;
                }
                *self.in_map.get(&port)?
            }
        };
        local.checked_sub(MAIN_PORT).filter(|l| *l <= 1024)
    }

    pub(super) fn offer(&self) -> Offer {
        let reflexive = SocketAddr::new(self.public, *self.out_map.get(&(MAIN_PORT, MEDIATOR)).unwrap_or(&MAIN_PORT));
        let nat = match self.kind {
            Kind::Open | Kind::Easy => Nat::Easy,
            Kind::Hard => Nat::Hard,
        };
        Offer { host: vec![SocketAddr::new(self.private, MAIN_PORT)], reflexive: Some(reflexive), nat }
    }
}

pub(super) struct Arrival {
    pub(super) to: usize,
    pub(super) path: PathAddr,
    pub(super) bytes: Vec<u8>,
}

/// Two sessions, their hosts, a relay and a UDP network between them.
pub(super) struct Net {
    pub(super) s: [Session; 2],
    pub(super) hosts: [Host; 2],
    pub(super) now: Instant,
    pub(super) queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    pub(super) pending: HashMap<usize, Arrival>,
    pub(super) n: u64,
    pub(super) relay_delay: Duration,
    pub(super) udp_delay: Duration,
    /// Every UDP datagram is dropped.
    pub(super) cut: bool,
    /// Random loss of UDP datagrams.
    pub(super) loss: f64,
    /// Random extra delay (reordering) of UDP datagrams, up to this.
    pub(super) jitter: Duration,
    /// A bottleneck on UDP from 0 to 1: bytes per second and queue (in time).
    pub(super) bottleneck: Option<(f64, Duration)>,
    pub(super) link_free: Instant,
    pub(super) rng: Rng,
    pub(super) udp_sent: [u64; 2],
    pub(super) udp_dropped_at_queue: u64,
}

pub(super) fn cfg() -> Config {
    Config { peer_deadline: Duration::from_secs(120), ..Config::default() }
}

impl Net {
    pub(super) fn new(kinds: [Kind; 2], seed: u64, config: Config) -> Net {
        let (ka, kb) = keys_pair();
        let now = Instant::now();
        Net {
            s: [Session::new(ka, config.clone(), now), Session::new(kb, config, now)],
            hosts: [Host::new(kinds[0], 0, seed), Host::new(kinds[1], 1, seed.wrapping_mul(31))],
            now,
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            n: 0,
            relay_delay: Duration::from_millis(40),
            udp_delay: Duration::from_millis(20),
            cut: false,
            loss: 0.0,
            jitter: Duration::ZERO,
            bottleneck: None,
            link_free: now,
            rng: Rng::new(seed | 1),
            udp_sent: [0; 2],
            udp_dropped_at_queue: 0,
        }
    }

    pub(super) fn punch(&mut self) {
        let (o0, o1) = (self.hosts[0].offer(), self.hosts[1].offer());
        let now = self.now;
        self.s[0].punch(now, &o0, &o1);
        self.s[1].punch(now, &o1, &o0);
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() % 1_000_000) as f64 / 1e6 < p
    }

    pub(super) fn schedule(&mut self, at: Instant, a: Arrival) {
        self.n += 1;
        self.pending.insert(self.n as usize, a);
        self.queue.push(Reverse((at, self.n, self.n as usize)));
    }

    pub(super) fn route(&mut self, from: usize, path: PathAddr, bytes: Vec<u8>) {
        let to = 1 - from;
        match path {
            PathAddr::Relay => {
                let at = self.now + self.relay_delay;
                self.schedule(at, Arrival { to, path: PathAddr::Relay, bytes });
            }
            PathAddr::Udp { local, remote } => {
                self.udp_sent[from] += 1;
                let ext = self.hosts[from].map(local, remote);
                let src = SocketAddr::new(self.hosts[from].public, ext);
                if self.cut || self.chance(self.loss) || remote.ip() != self.hosts[to].public {
                    return; // cut, lost, or to nobody (e.g. a private address of another home)
                }
                let mut at = self.now + self.udp_delay;
                if let (Some((rate, queue)), 0) = (self.bottleneck, from) {
                    let start = self.link_free.max(self.now);
                    if start - self.now > queue {
                        self.udp_dropped_at_queue += 1;
                        return;
                    }
                    self.link_free = start + Duration::from_secs_f64(bytes.len() as f64 / rate);
                    at = self.link_free + self.udp_delay;
                }
                if !self.jitter.is_zero() {
                    at += Duration::from_micros(self.rng.next_u64() % self.jitter.as_micros() as u64);
                }
                let Some(local) = self.hosts[to].admit(remote.port(), src) else { return };
                self.schedule(at, Arrival { to, path: PathAddr::Udp { local, remote: src }, bytes });
            }
        }
    }

    /// Transmits everything, then advances to the next arrival or timer and handles it.
    pub(super) fn step(&mut self) {
        let mut buf = Vec::new();
        for i in 0..2 {
            while let Some(t) = self.s[i].poll_transmit(self.now, &mut buf) {
                let bytes = buf[HEADROOM..HEADROOM + t.len].to_vec();
                self.route(i, t.path, bytes);
            }
        }
        let next_arrival = self.queue.peek().map(|Reverse((t, _, _))| *t);
        let next = [next_arrival, self.s[0].poll_timeout(), self.s[1].poll_timeout()].into_iter().flatten().min();
        let Some(next) = next else { return };
        self.now = self.now.max(next);
        while let Some(Reverse((t, _, k))) = self.queue.peek().copied() {
            if t > self.now {
                break;
            }
            self.queue.pop();
            if let Some(a) = self.pending.remove(&k) {
                self.s[a.to].handle_packet_on(self.now, a.path, &a.bytes);
            }
        }
        for s in &mut self.s {
            if s.poll_timeout().is_some_and(|t| t <= self.now) {
                s.handle_timeout(self.now);
            }
        }
    }

    pub(super) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    pub(super) fn direct(&self, i: usize) -> bool {
        self.s[i].paths().get(self.s[i].paths().active()).addr.is_direct()
    }
}

/// A streams `data` to B while `during` may change the network; returns what B read.
pub(super) fn transfer(net: &mut Net, data: &[u8], limit: Duration, mut during: impl FnMut(&mut Net)) -> Vec<u8> {
    let id = net.s[0].open_stream().unwrap();
    let (mut written, mut got, mut fin) = (0, Vec::new(), false);
    let end = net.now + limit;
    let mut buf = vec![0u8; 65_536];
    while !fin {
        assert!(net.now < end, "transfer unfinished: {} of {} bytes", got.len(), data.len());
        if written < data.len() {
            written += net.s[0].write(id, &data[written..]).unwrap();
            if written == data.len() {
                net.s[0].finish(id).unwrap();
            }
        }
        net.step();
        during(net);
        while net.s[0].poll_event().is_some() {}
        while let Some(e) = net.s[1].poll_event() {
            assert!(!matches!(e, Event::Closed(_)), "{e:?}");
        }
        loop {
            match net.s[1].read(id, &mut buf) {
                Ok(Read::Data(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Read::Fin) => {
                    fin = true;
                    break;
                }
                _ => break,
            }
        }
    }
    got
}

pub(super) fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 131 % 251) as u8).collect()
}
