//! The session state machine, sans IO: packets, time and application calls go in;
//! packets to send, events and the next deadline come out. A tokio driver
//! ([`crate::driver`]) only moves bytes and sleeps.
//!
//! Reliability is per packet: every packet that carries records has a sequence number,
//! is acknowledged cumulatively by the peer and retransmitted until it is; the receiver
//! applies packets in sequence order exactly once. Streams ride on top with their own
//! credit windows.
//!
//! This file holds the types, construction and the accessors; the methods that do the
//! work live in submodules: `streams` (the application's stream calls), `receive`
//! (incoming packets and records), `transmit` (building, pacing and sealing packets)
//! and `timers` (timeouts and deadlines).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::crypto::{Opener, Sealer};
use crate::error::{CloseReason, Error, Result};
use crate::frame::{Record, HEADER_LEN, MAX_PACKET, PLAIN_HEADER_LEN, TAG_LEN};
use crate::handshake::{Keys, Role};
use crate::path::{Offer, PathAddr, PathConfig, PathReport, Paths};
use crate::recovery::Recovery;
use crate::stream::Stream;
use crate::udp;

mod receive;
mod streams;
mod timers;
mod transmit;

/// Bytes [`Session::poll_transmit`] leaves free in front of each packet, so that a driver
/// can frame it in place (relay: op and route; UDP: the connection-id prefix).
pub const HEADROOM: usize = 32;
/// Packet bytes that are not records: header, tag, plaintext header.
const PACKET_OVERHEAD: usize = HEADER_LEN + TAG_LEN + PLAIN_HEADER_LEN;

/// Tunables. The defaults suit a relayed path on the Internet.
#[derive(Debug, Clone)]
pub struct Config {
    /// Credit per stream, bytes (the receiver buffers at most this much per stream).
    pub stream_window: u64,
    /// Bytes an application may queue on a stream before `write` pushes back.
    pub send_buffer: usize,
    /// Bytes of unacknowledged packets in flight.
    pub max_in_flight: usize,
    /// Most open streams.
    pub max_streams: usize,
    /// Most packets held for reordering.
    pub max_reorder: usize,
    /// Acknowledge at once after this many packets.
    pub ack_every: u32,
    /// Otherwise acknowledge within this delay.
    pub ack_delay: Duration,
    /// Probe timeout before the first RTT sample (an RTT of a third of it is assumed).
    pub rto_initial: Duration,
    /// Smallest probe timeout.
    pub rto_min: Duration,
    /// Largest probe timeout (after backoff).
    pub rto_max: Duration,
    /// Send a keepalive after this much silence (at most a third of `peer_deadline` is
    /// used, so an idle but healthy peer is never declared lost).
    pub keepalive: Duration,
    /// Declare the peer lost after hearing nothing for this long.
    pub peer_deadline: Duration,
    /// Rekey after this many packets in one epoch.
    pub rekey_after_packets: u64,
    /// Rekey after this much time in one epoch.
    pub rekey_after: Duration,
    /// Largest UDP payload on a direct path, bytes: packets there are
    /// `udp_payload − udp::PREFIX_LEN` bytes at most (default 1,200).
    pub udp_payload: usize,
    /// Direct paths: punching, validation, failure and re-probing.
    pub path: PathConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stream_window: 16 << 20,
            send_buffer: 1 << 20,
            max_in_flight: 32 << 20,
            max_streams: 1024,
            max_reorder: 4096,
            ack_every: 8,
            ack_delay: Duration::from_millis(2),
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(50),
            rto_max: Duration::from_secs(10),
            keepalive: Duration::from_secs(10),
            peer_deadline: Duration::from_secs(60),
            rekey_after_packets: 1 << 32,
            rekey_after: Duration::from_secs(3600),
            udp_payload: 1200,
            path: PathConfig::default(),
        }
    }
}

/// What the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a stream.
    StreamOpened(u32),
    /// A stream has bytes (or its end) to read.
    Readable(u32),
    /// A stream that pushed back on `write` can take bytes again.
    Writable(u32),
    /// The peer reset a stream (with its code); the stream is gone.
    Reset(u32, u32),
    /// The session ended.
    Closed(CloseReason),
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets sent (including retransmissions, acks and probes).
    pub packets_sent: u64,
    /// Packets accepted.
    pub packets_received: u64,
    /// Packets retransmitted.
    pub retransmits: u64,
    /// Packets declared lost (by the packet or time threshold).
    pub lost: u64,
    /// Probe timeouts that fired.
    pub ptos: u64,
    /// Packets dropped: failed authentication.
    pub dropped_forged: u64,
    /// Packets dropped: replayed or too old.
    pub dropped_replayed: u64,
    /// Packets dropped: unknown key epoch.
    pub dropped_epoch: u64,
    /// Reliable packets received twice (ignored).
    pub duplicates: u64,
    /// Key epochs started.
    pub rekeys: u64,
    /// Application bytes taken by `write` (all streams).
    pub bytes_written: u64,
    /// Application bytes returned by `read` (all streams).
    pub bytes_read: u64,
    /// Smoothed round-trip time of the active path (microseconds), once measured.
    pub srtt_us: Option<u64>,
    /// Whether new packets take a direct path.
    pub direct: bool,
    /// Changes of the active path.
    pub path_switches: u64,
    /// Bytes sent and not yet acknowledged (filled by [`Session::snapshot`]).
    pub unacked_bytes: u64,
    /// Stream bytes, FINs and control records not yet sent (filled by [`Session::snapshot`]).
    pub queued: u64,
}

/// A packet [`Session::poll_transmit`] wrote: `buf[HEADROOM..HEADROOM + len]`, to go on `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub path: PathAddr,
    /// Its length.
    pub len: usize,
}

enum State {
    Open,
    Closing(CloseReason),
    Closed(CloseReason),
}

/// One end of a session.
pub struct Session {
    role: Role,
    cfg: Config,
    sealer: Sealer,
    opener: Opener,
    epoch_started: Instant,
    streams: BTreeMap<u32, Stream>,
    next_local_id: u32,
    rr_cursor: u32,
    next_seq: u64,
    rec: Recovery,
    paths: Paths,
    control: Vec<u8>,
    recv_next: u64,
    reorder: BTreeMap<u64, Vec<u8>>,
    ack_owed: u32,
    ack_at: Option<Instant>,
    ping_owed: bool,
    /// The pacer holds back the next packet until then.
    pace_at: Option<Instant>,
    last_recv: Instant,
    last_send: Instant,
    events: VecDeque<Event>,
    state: State,
    stats: Stats,
    plain: Vec<u8>,
    volatile: Vec<u8>,
}

impl Session {
    /// A session over keys from a completed handshake. Its only path is the relay until
    /// [`Session::punch`] adds direct candidates.
    pub fn new(keys: Keys, mut cfg: Config, now: Instant) -> Session {
        cfg.keepalive = cfg.keepalive.min(cfg.peer_deadline / 3).max(Duration::from_millis(10));
        let seed = u64::from_le_bytes(keys.handshake_hash[..8].try_into().unwrap_or([7; 8]))
            ^ if keys.role == Role::Initiator { 0 } else { 0x5555_5555_5555_5555 };
        let udp_mtu = cfg.udp_payload.saturating_sub(udp::PREFIX_LEN).clamp(PACKET_OVERHEAD + 64, MAX_PACKET);
        let paths = Paths::new(cfg.path.clone(), now, seed, cfg.rto_initial / 3, MAX_PACKET, udp_mtu);
        Session {
            role: keys.role,
            sealer: Sealer::new(keys.send),
            opener: Opener::new(keys.recv),
            epoch_started: now,
            streams: BTreeMap::new(),
            next_local_id: if keys.role == Role::Initiator { 1 } else { 2 },
            rr_cursor: 0,
            next_seq: 1,
            rec: Recovery::default(),
            paths,
            control: Vec::new(),
            recv_next: 1,
            reorder: BTreeMap::new(),
            ack_owed: 0,
            ack_at: None,
            ping_owed: false,
            pace_at: None,
            last_recv: now,
            last_send: now,
            events: VecDeque::new(),
            state: State::Open,
            stats: Stats::default(),
            plain: Vec::with_capacity(MAX_PACKET),
            volatile: Vec::new(),
            cfg,
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Counters with the current backlog: when `unacked_bytes` and `queued` are both 0,
    /// the peer has everything written so far.
    pub fn snapshot(&self) -> Stats {
        let mut s = self.stats.clone();
        s.unacked_bytes = self.rec.bytes as u64;
        s.queued = self.control.len() as u64
            + self
                .streams
                .values()
                .map(|st| st.send.pending.len() as u64 + u64::from(st.send.fin_requested && !st.send.fin_sent))
                .sum::<u64>();
        s
    }

    /// The paths, their RTTs and the switches so far.
    pub fn path_report(&self) -> PathReport {
        self.paths.report()
    }

    /// Changes whenever a path changes state (a cheap test for a new [`Session::path_report`]).
    pub fn path_generation(&self) -> u64 {
        self.paths.generation()
    }

    /// The path manager (tests inspect it).
    #[cfg(test)]
    pub(crate) fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Starts hole punching towards the peer: `ours` is what we told it, `theirs` what it
    /// told us (see `path::punch`). Candidates are probed with authenticated challenges; a
    /// path carries data once its challenge was answered.
    pub fn punch(&mut self, now: Instant, ours: &Offer, theirs: &Offer) {
        self.paths.punch(now, ours, theirs);
    }

    /// Why the session ended, if it did.
    pub fn closed(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// Whether every packet we sent was acknowledged and nothing waits to be sent.
    pub fn is_idle(&self) -> bool {
        self.rec.is_empty()
            && self.control.is_empty()
            && self.streams.values().all(|s| s.send.pending.is_empty() && !s.fin_ready())
    }

    fn check_open(&self) -> Result<()> {
        match &self.state {
            State::Open => Ok(()),
            State::Closing(r) | State::Closed(r) => Err(Error::Closed(r.clone())),
        }
    }

    /// Ends the session: tells the peer (best effort) and stops.
    pub fn close(&mut self, code: u32, reason: &str) {
        if let State::Open = self.state {
            Record::Close { code, reason }.encode(&mut self.control);
            self.state = State::Closing(CloseReason::Local);
        }
    }

    fn fail(&mut self, what: &'static str) {
        if let State::Open = self.state {
            Record::Close { code: 1, reason: what }.encode(&mut self.control);
            self.state = State::Closing(CloseReason::Protocol(what));
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn refresh_stats(&mut self) {
        let active = self.paths.get(self.paths.active());
        self.stats.srtt_us = active.rtt.smoothed().map(|d| d.as_micros() as u64);
        self.stats.direct = active.addr.is_direct();
        self.stats.path_switches = self.paths.switch_count();
    }
}

#[cfg(test)]
pub(crate) mod tests;
