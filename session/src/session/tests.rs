//! Two sessions in memory with simulated time and an impaired path: loss, reordering,
//! duplication, outages ("reconnects").

use super::*;
use crate::handshake::{respond, Initiator, Params};
use crate::stream::Read;
use proptest::prelude::*;

pub(crate) fn keys_pair() -> (Keys, Keys) {
    let b = snow::Builder::new(crate::handshake::NOISE_PARAMS.parse().unwrap());
    let a = b.generate_keypair().unwrap();
    let c = snow::Builder::new(crate::handshake::NOISE_PARAMS.parse().unwrap()).generate_keypair().unwrap();
    let (a_sk, a_pk): ([u8; 32], [u8; 32]) = (a.private.try_into().unwrap(), a.public.try_into().unwrap());
    let (c_sk, c_pk): ([u8; 32], [u8; 32]) = (c.private.try_into().unwrap(), c.public.try_into().unwrap());
    let d = [1u8; 32];
    let p = |l, r| Params {
        session_id: b"test",
        roster_digest: &d,
        initiator_did: "did:ex:a",
        responder_did: "did:ex:b",
        local_static: l,
        remote_static: r,
    };
    let (init, m1) = Initiator::start(&p(&a_sk, &c_pk)).unwrap();
    let (kb, m2) = respond(&p(&c_sk, &a_pk), &m1).unwrap();
    (init.finish(&m2).unwrap(), kb)
}

/// Deterministic xorshift, so failures replay.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
}

#[derive(Clone, Copy, Default)]
struct Impair {
    loss: f64,
    dup: f64,
    reorder: f64,
}

struct Pair {
    a: Session,
    b: Session,
    now: Instant,
    to_b: VecDeque<Vec<u8>>,
    to_a: VecDeque<Vec<u8>>,
    rng: Rng,
    impair: Impair,
    /// While true, every packet is lost (a dropped WebSocket).
    outage: bool,
}

impl Pair {
    fn new(cfg: Config, seed: u64, impair: Impair) -> Pair {
        let (ka, kb) = keys_pair();
        let now = Instant::now();
        Pair {
            a: Session::new(ka, cfg.clone(), now),
            b: Session::new(kb, cfg, now),
            now,
            to_b: VecDeque::new(),
            to_a: VecDeque::new(),
            rng: Rng(seed | 1),
            impair,
            outage: false,
        }
    }

    fn push(q: &mut VecDeque<Vec<u8>>, rng: &mut Rng, im: Impair, outage: bool, pkt: Vec<u8>) {
        if outage || rng.chance(im.loss) {
            return;
        }
        if rng.chance(im.dup) {
            q.push_back(pkt.clone());
        }
        if rng.chance(im.reorder) && !q.is_empty() {
            let at = (rng.next() as usize) % q.len();
            q.insert(at, pkt);
        } else {
            q.push_back(pkt);
        }
    }

    /// One round: both sides transmit what they have, packets in flight are delivered,
    /// and if nothing moved, time jumps to the earliest timer.
    fn step(&mut self) -> bool {
        let mut moved = false;
        while let Some(p) = self.a.next_packet(self.now) {
            Pair::push(&mut self.to_b, &mut self.rng, self.impair, self.outage, p);
            moved = true;
        }
        while let Some(p) = self.b.next_packet(self.now) {
            Pair::push(&mut self.to_a, &mut self.rng, self.impair, self.outage, p);
            moved = true;
        }
        while let Some(p) = self.to_b.pop_front() {
            self.b.handle_packet(self.now, &p);
            moved = true;
        }
        while let Some(p) = self.to_a.pop_front() {
            self.a.handle_packet(self.now, &p);
            moved = true;
        }
        if !moved {
            let t = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            if let Some(t) = t {
                self.now = self.now.max(t);
            }
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }
        moved
    }
}

/// Drains `id` on `s` into `out`; returns true at FIN.
fn drain(s: &mut Session, id: u32, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 7000];
    loop {
        match s.read(id, &mut buf) {
            Ok(Read::Data(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Read::Fin) => return true,
            Ok(Read::WouldBlock) | Err(Error::UnknownStream(_)) => return false,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Sends `data` from a to b on one stream and returns what b read.
fn transfer(pair: &mut Pair, data: &[u8], max_steps: usize) -> Vec<u8> {
    let id = pair.a.open_stream().unwrap();
    let mut written = 0;
    let mut got = Vec::new();
    let mut b_id = None;
    let mut fin = false;
    for _ in 0..max_steps {
        if written < data.len() {
            written += pair.a.write(id, &data[written..]).unwrap();
            if written == data.len() {
                pair.a.finish(id).unwrap();
            }
        }
        pair.step();
        while let Some(e) = pair.b.poll_event() {
            if let Event::StreamOpened(i) = e {
                b_id = Some(i);
            }
        }
        while pair.a.poll_event().is_some() {}
        if let Some(i) = b_id {
            if !fin {
                fin = drain(&mut pair.b, i, &mut got);
            }
        }
        if fin {
            return got;
        }
    }
    panic!("transfer did not finish: {} of {} bytes arrived", got.len(), data.len());
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn clean_path_delivers_in_order_with_fin() {
    let mut p = Pair::new(Config::default(), 1, Impair::default());
    let data = pattern(3 << 20);
    assert_eq!(transfer(&mut p, &data, 100_000), data);
    assert_eq!(p.a.stats().retransmits, 0);
}

#[test]
fn loss_reordering_and_duplicates() {
    let im = Impair { loss: 0.05, dup: 0.05, reorder: 0.1 };
    let mut p = Pair::new(Config::default(), 7, im);
    let data = pattern(4 << 20);
    assert_eq!(transfer(&mut p, &data, 1_000_000), data);
    assert!(p.a.stats().retransmits > 0);
    assert!(p.b.stats().duplicates > 0 || p.b.stats().dropped_replayed > 0);
}

#[test]
fn outage_then_path_reset_resumes() {
    let mut p = Pair::new(Config::default(), 3, Impair::default());
    let id = p.a.open_stream().unwrap();
    p.a.write(id, b"before").unwrap();
    p.step();
    p.outage = true;
    p.a.write(id, b" during").unwrap();
    for _ in 0..5 {
        p.step();
    }
    p.outage = false;
    p.a.on_path_reset(p.now);
    p.b.on_path_reset(p.now);
    p.a.write(id, b" after").unwrap();
    p.a.finish(id).unwrap();
    let mut got = Vec::new();
    for _ in 0..1000 {
        p.step();
        while p.b.poll_event().is_some() {}
        if drain(&mut p.b, id, &mut got) {
            break;
        }
    }
    assert_eq!(got, b"before during after");
}

/// A probe timeout resends one packet (the oldest), not the whole window; what the
/// peer then acknowledges declares the rest lost by the packet threshold.
#[test]
fn a_probe_timeout_resends_one_packet_not_the_window() {
    let mut p = Pair::new(Config::default(), 21, Impair::default());
    let id = p.a.open_stream().unwrap();
    assert_eq!(p.a.write(id, &pattern(400_000)).unwrap(), 400_000);
    let mut lost = Vec::new();
    while let Some(pkt) = p.a.next_packet(p.now) {
        lost.push(pkt);
    }
    assert!(lost.len() >= 6, "{} packets", lost.len());
    let t = p.a.poll_timeout().unwrap();
    p.now = t;
    p.a.handle_timeout(t);
    let probe = p.a.next_packet(p.now).expect("one probe");
    assert!(p.a.next_packet(p.now).is_none(), "only one packet after a timeout");
    assert_eq!((p.a.stats().retransmits, p.a.stats().ptos), (1, 1));
    // The peer gets the probe (the first packet) and the last one: a gap, selectively
    // acknowledged, so everything between is declared lost at once.
    p.b.handle_packet(p.now, &probe);
    p.b.handle_packet(p.now, lost.last().unwrap());
    while let Some(ack) = p.b.next_packet(p.now) {
        p.a.handle_packet(p.now, &ack);
    }
    assert_eq!(p.a.stats().lost as usize, lost.len() - 2, "{:?}", p.a.stats());
    let mut resent = 0;
    while p.a.next_packet(p.now).is_some() {
        resent += 1;
    }
    assert_eq!(resent, lost.len() - 2);
}

#[test]
fn peer_lost_after_deadline_on_both_sides() {
    let cfg = Config { peer_deadline: Duration::from_secs(5), keepalive: Duration::from_secs(1), ..Config::default() };
    let mut p = Pair::new(cfg, 5, Impair::default());
    p.step();
    p.outage = true;
    for _ in 0..100 {
        p.step();
    }
    let closed =
        |s: &mut Session| std::iter::from_fn(|| s.poll_event()).any(|e| e == Event::Closed(CloseReason::PeerLost));
    assert!(closed(&mut p.a) && closed(&mut p.b));
    assert!(matches!(p.a.open_stream(), Err(Error::Closed(CloseReason::PeerLost))));
}

#[test]
fn keepalives_keep_an_idle_session_alive() {
    let cfg = Config { peer_deadline: Duration::from_secs(5), keepalive: Duration::from_secs(1), ..Config::default() };
    let mut p = Pair::new(cfg, 9, Impair::default());
    let start = p.now;
    while p.now < start + Duration::from_secs(60) {
        p.step();
    }
    assert!(p.a.closed().is_none() && p.b.closed().is_none());
}

#[test]
fn a_deadline_shorter_than_the_keepalive_still_keeps_an_idle_session_alive() {
    // The gateway sets the peer deadline from the descriptor (e.g. 8 s) while the keepalive
    // default is 10 s: an idle, healthy peer must not be declared lost.
    let cfg = Config { peer_deadline: Duration::from_secs(8), keepalive: Duration::from_secs(10), ..Config::default() };
    let mut p = Pair::new(cfg, 13, Impair::default());
    let start = p.now;
    while p.now < start + Duration::from_secs(60) {
        p.step();
    }
    assert!(p.a.closed().is_none() && p.b.closed().is_none());
}

#[test]
fn reset_close_and_flow_control() {
    let cfg = Config { stream_window: 4096, send_buffer: 8192, ..Config::default() };
    let mut p = Pair::new(cfg, 11, Impair::default());
    let id = p.a.open_stream().unwrap();
    // The receiver does not read: the sender may not have more than the window in flight.
    assert_eq!(p.a.write(id, &[1u8; 20_000]).unwrap(), 8192);
    for _ in 0..50 {
        p.step();
    }
    let b_buffered: usize = p.b.streams.get(&id).map_or(0, |s| s.recv.buffer.len());
    assert_eq!(b_buffered, 4096, "exactly the window is buffered at the receiver");
    // Reading frees credit; the sender gets Writable once its buffer drains.
    let mut got = Vec::new();
    for _ in 0..200 {
        drain(&mut p.b, id, &mut got);
        p.step();
    }
    assert_eq!(got.len(), 8192);
    assert!(std::iter::from_fn(|| p.a.poll_event()).any(|e| e == Event::Writable(id)));
    p.a.reset(id, 42).unwrap();
    p.step();
    assert!(std::iter::from_fn(|| p.b.poll_event()).any(|e| e == Event::Reset(id, 42)));
    p.a.close(7, "done");
    p.step();
    p.step();
    assert_eq!(p.b.closed(), Some(&CloseReason::Peer(7, "done".into())));
    assert_eq!(p.a.closed(), Some(&CloseReason::Local));
}

#[test]
fn replayed_and_modified_packets_are_dropped_and_counted() {
    let mut p = Pair::new(Config::default(), 13, Impair::default());
    let id = p.a.open_stream().unwrap();
    p.a.write(id, b"once").unwrap();
    let pkt = p.a.next_packet(p.now).unwrap();
    p.b.handle_packet(p.now, &pkt);
    p.b.handle_packet(p.now, &pkt);
    p.a.write(id, b"!").unwrap();
    let mut bad = p.a.next_packet(p.now).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    p.b.handle_packet(p.now, &bad);
    assert_eq!(p.b.stats().dropped_replayed, 1);
    assert_eq!(p.b.stats().dropped_forged, 1);
    let mut got = Vec::new();
    drain(&mut p.b, id, &mut got);
    assert_eq!(got, b"once");
}

#[test]
fn rekeying_is_transparent() {
    let cfg = Config { rekey_after_packets: 10, ..Config::default() };
    let mut p = Pair::new(cfg, 17, Impair { reorder: 0.2, ..Impair::default() });
    let data = pattern(2 << 20);
    assert_eq!(transfer(&mut p, &data, 200_000), data);
    assert!(p.a.stats().rekeys >= 3, "{:?}", p.a.stats());
}

#[test]
fn many_streams_both_directions() {
    let mut p = Pair::new(Config::default(), 19, Impair { loss: 0.02, reorder: 0.05, dup: 0.02 });
    let mut expect = BTreeMap::new();
    for i in 0..20u8 {
        let (s, data) = if i % 2 == 0 { (&mut p.a, vec![i; 50_000 + i as usize]) } else { (&mut p.b, vec![i; 30_000]) };
        let id = s.open_stream().unwrap();
        assert_eq!(s.write(id, &data).unwrap(), data.len());
        s.finish(id).unwrap();
        expect.insert(id, data);
    }
    let mut got: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut done = std::collections::BTreeSet::new();
    for _ in 0..200_000 {
        p.step();
        for (s, parity) in [(&mut p.a, 0u32), (&mut p.b, 1u32)] {
            while s.poll_event().is_some() {}
            for id in expect.keys().filter(|id| *id % 2 == parity) {
                if !done.contains(id) && drain(s, *id, got.entry(*id).or_default()) {
                    done.insert(*id);
                }
            }
        }
        if done.len() == expect.len() {
            break;
        }
    }
    assert_eq!(got, expect);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Any byte stream written on one side is read identically on the other, whatever the
    /// path does (within bounds that still let packets through).
    #[test]
    fn any_stream_arrives_identically(
        data in proptest::collection::vec(any::<u8>(), 0..200_000),
        seed in 1u64..u64::MAX,
        loss in 0.0f64..0.2,
        dup in 0.0f64..0.2,
        reorder in 0.0f64..0.3,
    ) {
        let mut p = Pair::new(Config::default(), seed, Impair { loss, dup, reorder });
        prop_assert_eq!(transfer(&mut p, &data, 2_000_000), data);
    }
}
