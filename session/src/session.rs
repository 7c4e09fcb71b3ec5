//! The session state machine, sans IO: packets, time and application calls go in;
//! packets to send, events and the next deadline come out. A tokio driver
//! (`driver.rs`) only moves bytes and sleeps.
//!
//! Reliability is per packet: every packet that carries records has a sequence number,
//! is acknowledged cumulatively by the peer and retransmitted until it is; the receiver
//! applies packets in sequence order exactly once. Streams ride on top with their own
//! credit windows.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::crypto::{Drop, Opener, Sealer};
use crate::error::{CloseReason, Error, Result};
use crate::frame::{self, Record, DATA_OVERHEAD, HEADER_LEN, MAX_ACK_RANGES, MAX_PACKET, PLAIN_HEADER_LEN, TAG_LEN};
use crate::handshake::{Keys, Role};
use crate::path::manager::{Probe, RELAY};
use crate::path::{Offer, PathAddr, PathConfig, PathReport, Paths};
use crate::recovery::Recovery;
use crate::stream::{Read, Stream};
use crate::udp;

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

    /// Opens a stream.
    pub fn open_stream(&mut self) -> Result<u32> {
        self.check_open()?;
        if self.streams.len() >= self.cfg.max_streams {
            return Err(Error::TooManyStreams);
        }
        let id = self.next_local_id;
        self.next_local_id = self.next_local_id.checked_add(2).ok_or(Error::TooManyStreams)?;
        self.streams.insert(id, Stream::new(self.cfg.stream_window));
        Record::Open { id }.encode(&mut self.control);
        Ok(id)
    }

    fn stream(&mut self, id: u32) -> Result<&mut Stream> {
        self.streams.get_mut(&id).ok_or(Error::UnknownStream(id))
    }

    /// Queues bytes on a stream; returns how many were taken (0: wait for `Writable`).
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<usize> {
        self.check_open()?;
        let cap = self.cfg.send_buffer;
        let s = self.stream(id)?;
        if let Some(code) = s.reset {
            return Err(Error::StreamReset(id, code));
        }
        if s.send.fin_requested {
            return Err(Error::StreamFinished(id));
        }
        let n = data.len().min(cap.saturating_sub(s.send.pending.len()));
        s.send.pending.extend(&data[..n]);
        if n < data.len() {
            s.send.blocked = true;
        }
        self.stats.bytes_written += n as u64;
        Ok(n)
    }

    /// Finishes the sending half of a stream (FIN after everything written).
    pub fn finish(&mut self, id: u32) -> Result<()> {
        self.check_open()?;
        let s = self.stream(id)?;
        s.send.fin_requested = true;
        Ok(())
    }

    /// Abandons a stream in both directions.
    pub fn reset(&mut self, id: u32, code: u32) -> Result<()> {
        self.check_open()?;
        self.streams.remove(&id).ok_or(Error::UnknownStream(id))?;
        Record::Reset { id, code }.encode(&mut self.control);
        Ok(())
    }

    /// Reads from a stream.
    pub fn read(&mut self, id: u32, buf: &mut [u8]) -> Result<Read> {
        let window = self.cfg.stream_window;
        let s = self.stream(id)?;
        if let Some(code) = s.reset {
            return Err(Error::StreamReset(id, code));
        }
        let (r, grant) = s.read(buf, window);
        let done = s.finished();
        if let Some(max_offset) = grant {
            Record::Window { id, max_offset }.encode(&mut self.control);
        }
        if done {
            self.streams.remove(&id);
        }
        if let Read::Data(n) = &r {
            self.stats.bytes_read += *n as u64;
        }
        Ok(r)
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

    /// The relay path was re-established (e.g. a new relay connection): resend what is
    /// in flight on it now and ask for an acknowledgement.
    pub fn on_path_reset(&mut self, now: Instant) {
        self.rec.requeue_path(RELAY, &mut self.paths);
        self.rec.pto_count = 0;
        self.ping_owed = true;
        self.ack_at = Some(now);
    }

    /// Feeds a packet received through the relay. Bad packets are counted and dropped.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.handle_packet_on(now, PathAddr::Relay, packet);
    }

    /// Feeds a packet received on `path`. Bad packets are counted and dropped; an
    /// authenticated packet from a new UDP address makes it a path to probe.
    pub fn handle_packet_on(&mut self, now: Instant, path: PathAddr, packet: &[u8]) {
        if let State::Closed(_) = self.state {
            return;
        }
        let mut plain = std::mem::take(&mut self.plain);
        match self.opener.open(packet, &mut plain) {
            Ok(()) => self.on_plaintext(now, path, &plain),
            Err(Drop::Forged) => self.stats.dropped_forged += 1,
            Err(Drop::Replayed) => self.stats.dropped_replayed += 1,
            Err(Drop::StaleEpoch) => self.stats.dropped_epoch += 1,
        }
        self.plain = plain;
    }

    fn on_plaintext(&mut self, now: Instant, path: PathAddr, plain: &[u8]) {
        let Ok((seq, ack, body)) = frame::split_plain(plain) else {
            return self.fail("plaintext too short");
        };
        self.last_recv = now;
        self.stats.packets_received += 1;
        let id = self.paths.on_receive(now, path);
        // Records about the packet and the path act now, whatever the sequence number.
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for r in frame::records(body) {
            match r {
                Ok(Record::Ping) => self.ack_at = Some(now),
                Ok(Record::Acks { ranges: r }) => ranges.extend(r.iter().take(64)),
                Ok(Record::PathChallenge { token }) => {
                    if let Some(id) = id {
                        self.paths.on_challenge(id, token);
                    }
                }
                Ok(Record::PathResponse { token }) => {
                    if let Some(id) = id {
                        self.paths.on_response(now, id, token);
                    }
                }
                Ok(_) if seq == 0 => return self.fail("unreliable packet with a reliable record"),
                Ok(_) => {}
                Err(_) => return self.fail("undecodable record"),
            }
        }
        self.on_ack(now, ack, &ranges, id);
        if seq == 0 {
            return;
        }
        if seq < self.recv_next {
            self.stats.duplicates += 1;
            self.ack_at = Some(now);
            return;
        }
        if seq > self.recv_next {
            if self.reorder.len() < self.cfg.max_reorder {
                self.reorder.insert(seq, body.to_vec());
            }
            self.ack_at = Some(now);
            return;
        }
        self.apply(body);
        self.recv_next += 1;
        self.ack_owed += 1;
        while let Some(next) = self.reorder.remove(&self.recv_next) {
            self.apply(&next);
            self.recv_next += 1;
            self.ack_owed += 1;
        }
        if self.ack_owed >= self.cfg.ack_every || !self.reorder.is_empty() {
            self.ack_at = Some(now);
        } else if self.ack_at.is_none() {
            self.ack_at = Some(now + self.cfg.ack_delay);
        }
    }

    /// Applies an acknowledgement that arrived on path `arrived`. An RTT sample counts for
    /// a path only when the acknowledgement came back on the path the packet went out on
    /// (while the peer still sends elsewhere, the round trip mixes two paths).
    fn on_ack(&mut self, now: Instant, ack: u64, ranges: &[(u64, u64)], arrived: Option<usize>) {
        let acked = self.rec.on_ack(now, ack, ranges.iter().copied(), &mut self.paths);
        self.stats.lost = self.rec.lost;
        if let Some((path, sample)) = acked.sample.filter(|(p, _)| Some(*p) == arrived) {
            self.paths.on_rtt_sample(now, path, sample);
        }
        if acked.packets > 0 {
            self.refresh_stats();
        }
    }

    fn refresh_stats(&mut self) {
        let active = self.paths.get(self.paths.active());
        self.stats.srtt_us = active.rtt.smoothed().map(|d| d.as_micros() as u64);
        self.stats.direct = active.addr.is_direct();
        self.stats.path_switches = self.paths.switch_count();
    }

    fn apply(&mut self, body: &[u8]) {
        for r in frame::records(body) {
            let Ok(r) = r else {
                return self.fail("undecodable record");
            };
            if let Err(what) = self.apply_record(r) {
                return self.fail(what);
            }
        }
    }

    fn apply_record(&mut self, r: Record<'_>) -> std::result::Result<(), &'static str> {
        let peer_parity = if self.role == Role::Initiator { 0 } else { 1 };
        match r {
            Record::Open { id } => {
                if id % 2 != peer_parity || id == 0 {
                    return Err("peer opened a stream with our parity");
                }
                if self.streams.contains_key(&id) {
                    return Err("stream opened twice");
                }
                if self.streams.len() >= self.cfg.max_streams {
                    Record::Reset { id, code: 0xffff }.encode(&mut self.control);
                } else {
                    self.streams.insert(id, Stream::new(self.cfg.stream_window));
                    self.events.push_back(Event::StreamOpened(id));
                }
            }
            Record::Data { id, offset, data } => {
                // Data for a stream we already reset is dropped.
                if let Some(s) = self.streams.get_mut(&id) {
                    let was_empty = s.recv.buffer.is_empty();
                    s.on_data(offset, data).map_err(|_| "stream data violates order or window")?;
                    if was_empty && !data.is_empty() {
                        self.events.push_back(Event::Readable(id));
                    }
                }
            }
            Record::Fin { id, final_offset } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.on_fin(final_offset).map_err(|_| "FIN offset mismatch")?;
                    self.events.push_back(Event::Readable(id));
                }
            }
            Record::Reset { id, code } => {
                if self.streams.remove(&id).is_some() {
                    self.events.push_back(Event::Reset(id, code));
                }
            }
            Record::Window { id, max_offset } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.send.max_offset = s.send.max_offset.max(max_offset);
                }
            }
            Record::Close { code, reason } => {
                let why = CloseReason::Peer(code, reason.to_owned());
                self.state = State::Closed(why.clone());
                self.events.push_back(Event::Closed(why));
            }
            Record::Ping | Record::Acks { .. } | Record::PathChallenge { .. } | Record::PathResponse { .. } => {}
        }
        Ok(())
    }

    fn has_new_data(&self) -> bool {
        !self.control.is_empty()
            || self
                .streams
                .values()
                .any(|s| s.fin_ready() || (!s.send.pending.is_empty() && s.send.max_offset > s.send.offset))
    }

    /// Whether a packet of `size` bytes may go on `path` now: congestion window (unless a
    /// probe is owed) and pacing. Sets the pacing timer when it must wait.
    fn may_send(&mut self, now: Instant, path: usize, size: usize) -> bool {
        let probe = self.rec.probes_owed > 0;
        let p = self.paths.get_mut(path);
        let window = p.cc.window();
        if !probe && p.in_flight + size as u64 > window {
            return false;
        }
        let mtu = p.mtu as u64;
        match p.pacer.delay(now, size as u64, window, p.rtt.smoothed(), mtu) {
            Some(t) if !probe => {
                self.pace_at = Some(t);
                false
            }
            _ => true,
        }
    }

    /// The packet of a `Vec` (for tests and tools): like [`Session::poll_transmit`] into a
    /// fresh buffer, without the path.
    pub fn next_packet(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        self.poll_transmit(now, &mut buf).map(|t| buf[HEADROOM..HEADROOM + t.len].to_vec())
    }

    /// The next packet to send, if any: written into `buf` at [`HEADROOM`] (the bytes
    /// before it are free for the caller's framing), and where it goes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if let State::Closed(_) = self.state {
            return None;
        }
        self.pace_at = None;
        if let Some(probe) = self.paths.poll_probe(now) {
            return Some(self.send_probe(now, probe, buf));
        }
        let active = self.paths.active();
        // Retransmissions first, in order.
        while let Some(&seq) = self.rec.resend.front() {
            let Some(sent) = self.rec.unacked.get_mut(&seq).filter(|s| s.queued) else {
                self.rec.resend.pop_front();
                continue;
            };
            let size = sent.body.len() + PACKET_OVERHEAD;
            // A packet built for the relay may be too big for a direct path.
            let target = if size <= self.paths.get(active).mtu { active } else { RELAY };
            if !self.may_send(now, target, size) {
                break;
            }
            self.rec.resend.pop_front();
            let Some(sent) = self.rec.unacked.get_mut(&seq) else { continue };
            let body = std::mem::take(&mut sent.body);
            sent.resent = true;
            let len = self.seal(now, target, seq, &body, buf);
            if let Some(s) = self.rec.unacked.get_mut(&seq) {
                s.body = body;
            }
            self.after_reliable(now, seq, target, len);
            self.stats.retransmits += 1;
            return Some(Transmit { path: self.paths.get(target).addr, len });
        }
        let mtu = self.paths.get(active).mtu;
        if self.rec.resend.is_empty()
            && self.rec.bytes < self.cfg.max_in_flight
            && self.has_new_data()
            && self.may_send(now, active, mtu)
        {
            let reserve = self.volatile_records(mtu);
            let body = self.build_body(mtu - PACKET_OVERHEAD - reserve);
            let seq = self.next_seq;
            self.next_seq += 1;
            self.rec.insert(seq, body, now);
            let body = std::mem::take(&mut self.rec.unacked.get_mut(&seq)?.body);
            let len = self.seal(now, active, seq, &body, buf);
            self.rec.unacked.get_mut(&seq)?.body = body;
            self.after_reliable(now, seq, active, len);
            if let State::Closing(r) = &self.state {
                if self.control.is_empty() {
                    let r = r.clone();
                    self.events.push_back(Event::Closed(r.clone()));
                    self.state = State::Closed(r);
                }
            }
            return Some(Transmit { path: self.paths.get(active).addr, len });
        }
        if self.ping_owed || self.ack_at.is_some_and(|t| t <= now) {
            self.volatile_records(mtu);
            if self.ping_owed {
                Record::Ping.encode(&mut self.volatile);
                self.ping_owed = false;
            }
            let len = self.seal(now, active, 0, &[], buf);
            return Some(Transmit { path: self.paths.get(active).addr, len });
        }
        None
    }

    fn after_reliable(&mut self, now: Instant, seq: u64, path: usize, len: usize) {
        let p = self.paths.get(path);
        let app_limited = (p.in_flight + len as u64).saturating_mul(2) < p.cc.window();
        self.rec.on_sent(seq, now, path, len as u64, app_limited, &mut self.paths);
        let p = self.paths.get_mut(path);
        p.pacer.on_sent(len as u64);
        self.paths.on_sent(now, path, true);
    }

    fn send_probe(&mut self, now: Instant, probe: Probe, buf: &mut Vec<u8>) -> Transmit {
        let id = self.paths.lookup(&probe.addr);
        self.volatile.clear();
        if let Some(token) = probe.challenge {
            Record::PathChallenge { token }.encode(&mut self.volatile);
        }
        for token in &probe.responses {
            Record::PathResponse { token: *token }.encode(&mut self.volatile);
        }
        let len = self.seal_raw(now, 0, &[], buf);
        if let Some(id) = id {
            self.paths.on_sent(now, id, probe.challenge.is_some());
        }
        Transmit { path: probe.addr, len }
    }

    /// Prepares the records that ride on the next packet whatever it carries (selective
    /// acknowledgements); returns their length.
    fn volatile_records(&mut self, mtu: usize) -> usize {
        self.volatile.clear();
        if !self.reorder.is_empty() {
            let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(MAX_ACK_RANGES);
            for &seq in self.reorder.keys().rev() {
                if let Some((first, _)) = ranges.last_mut().filter(|(f, _)| *f == seq + 1) {
                    *first = seq;
                } else if ranges.len() == MAX_ACK_RANGES {
                    break;
                } else {
                    ranges.push((seq, seq));
                }
            }
            if 2 + 16 * ranges.len() + PACKET_OVERHEAD + 64 <= mtu {
                frame::encode_acks(&ranges, &mut self.volatile);
            }
        }
        self.volatile.len()
    }

    /// Control records first, then stream data round-robin, filling `budget` bytes.
    fn build_body(&mut self, budget: usize) -> Vec<u8> {
        let needed = self.control.len()
            + self
                .streams
                .values()
                .map(|s| {
                    s.send.pending.len().min(s.send.max_offset.saturating_sub(s.send.offset) as usize)
                        + DATA_OVERHEAD
                        + 13
                })
                .sum::<usize>();
        let mut body = Vec::with_capacity(needed.min(budget));
        // Control records are never split: they are small and appended whole, as many as fit
        // (a record larger than a whole packet budget goes alone).
        let mut take = 0;
        for r in frame::records(&self.control) {
            let Ok(r) = r else { break };
            let n = r.encoded_len();
            if take + n > budget && take > 0 {
                break;
            }
            take += n;
        }
        body.extend(self.control.drain(..take.min(self.control.len())));
        let ids: Vec<u32> = self
            .streams
            .range(self.rr_cursor.saturating_add(1)..)
            .chain(self.streams.range(..=self.rr_cursor))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let room = budget.saturating_sub(body.len());
            if room < DATA_OVERHEAD + 13 {
                break;
            }
            let cap = self.cfg.send_buffer;
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            let want = s.send.pending.len().min(room - DATA_OVERHEAD - 13);
            let credit = s.send.max_offset.saturating_sub(s.send.offset) as usize;
            let n = want.min(credit);
            if n > 0 {
                // The payload goes straight from the stream's buffer into the packet body.
                let offset = s.send.offset;
                frame::encode_data_with(id, offset, n as u16, &mut body, |out| {
                    s.take_sendable_into(n, out);
                });
                self.rr_cursor = id;
                if s.send.blocked && s.send.pending.len() < cap / 2 {
                    s.send.blocked = false;
                    self.events.push_back(Event::Writable(id));
                }
            }
            if s.fin_ready() {
                Record::Fin { id, final_offset: s.send.offset }.encode(&mut body);
                s.send.fin_sent = true;
                if s.finished() {
                    self.streams.remove(&id);
                }
            }
        }
        body
    }

    /// Seals a packet on `path` with the prepared volatile records (dropped if they do not
    /// fit) and `body`; returns its length.
    fn seal(&mut self, now: Instant, path: usize, seq: u64, body: &[u8], buf: &mut Vec<u8>) -> usize {
        if self.volatile.len() + body.len() + PACKET_OVERHEAD > self.paths.get(path).mtu {
            self.volatile.clear();
        }
        let len = self.seal_raw(now, seq, body, buf);
        if seq == 0 {
            self.paths.on_sent(now, path, true);
        }
        len
    }

    fn seal_raw(&mut self, now: Instant, seq: u64, body: &[u8], buf: &mut Vec<u8>) -> usize {
        if self.sealer.packets_in_epoch() >= self.cfg.rekey_after_packets
            || now.saturating_duration_since(self.epoch_started) >= self.cfg.rekey_after
        {
            self.sealer.rekey();
            self.epoch_started = now;
            self.stats.rekeys += 1;
        }
        buf.clear();
        buf.reserve(HEADROOM + PACKET_OVERHEAD + self.volatile.len() + body.len());
        buf.resize(HEADROOM, 0);
        let volatile = &self.volatile;
        self.sealer.seal_with(buf, |plain| {
            frame::plain_header(seq, self.recv_next - 1, plain);
            plain.extend_from_slice(volatile);
            plain.extend_from_slice(body);
        });
        self.volatile.clear();
        self.last_send = now;
        self.ack_owed = 0;
        self.ack_at = None;
        self.stats.packets_sent += 1;
        buf.len() - HEADROOM
    }

    /// Advances timers: loss detection, probe timeout, path probes and failures,
    /// keepalive and the peer deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Closed(_) = self.state {
            return;
        }
        if now.saturating_duration_since(self.last_recv) >= self.cfg.peer_deadline {
            self.state = State::Closed(CloseReason::PeerLost);
            self.events.push_back(Event::Closed(CloseReason::PeerLost));
            return;
        }
        if self.rec.loss_time.is_some_and(|t| t <= now) {
            self.rec.detect_lost(now, &mut self.paths);
            self.stats.lost = self.rec.lost;
        }
        if self.pto_deadline().is_some_and(|t| t <= now) {
            self.rec.on_pto(now, &mut self.paths);
            self.stats.ptos += 1;
        }
        for failed in self.paths.on_timeout(now) {
            // Whatever was in flight there goes again on the path now in use.
            self.rec.requeue_path(failed, &mut self.paths);
        }
        self.refresh_stats();
        if now.saturating_duration_since(self.last_send) >= self.cfg.keepalive {
            self.ping_owed = true;
        }
    }

    fn pto_deadline(&self) -> Option<Instant> {
        self.rec.pto_deadline(&self.paths, self.cfg.rto_min, self.cfg.rto_max, self.cfg.ack_delay)
    }

    /// When `handle_timeout` (or `poll_transmit`, for paced packets and probes) should
    /// next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let State::Closed(_) = self.state {
            return None;
        }
        let mut t = self.last_recv + self.cfg.peer_deadline;
        t = t.min(self.last_send + self.cfg.keepalive);
        for x in [
            self.ack_at,
            self.rec.loss_time,
            self.pto_deadline(),
            self.pace_at,
            self.paths.poll_timeout(self.last_send.max(self.last_recv)),
        ]
        .into_iter()
        .flatten()
        {
            t = t.min(x);
        }
        Some(t)
    }
}

#[cfg(test)]
pub(crate) mod tests;
