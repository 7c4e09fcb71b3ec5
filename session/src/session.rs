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
use crate::frame::{self, Record, DATA_OVERHEAD, MAX_PLAINTEXT, PLAIN_HEADER_LEN};
use crate::handshake::{Keys, Role};
use crate::stream::{Read, Stream};

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
    /// First retransmission timeout.
    pub rto_initial: Duration,
    /// Smallest retransmission timeout.
    pub rto_min: Duration,
    /// Largest retransmission timeout (after backoff).
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
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(10),
            keepalive: Duration::from_secs(10),
            peer_deadline: Duration::from_secs(60),
            rekey_after_packets: 1 << 32,
            rekey_after: Duration::from_secs(3600),
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
    /// Packets sent (including retransmissions and acks).
    pub packets_sent: u64,
    /// Packets accepted.
    pub packets_received: u64,
    /// Packets retransmitted.
    pub retransmits: u64,
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
    /// Smoothed round-trip time (microseconds), once measured.
    pub srtt_us: Option<u64>,
    /// Bytes sent and not yet acknowledged (filled by [`Session::snapshot`]).
    pub unacked_bytes: u64,
    /// Stream bytes, FINs and control records not yet sent (filled by [`Session::snapshot`]).
    pub queued: u64,
}

struct Unacked {
    seq: u64,
    body: Vec<u8>,
    first_sent: Instant,
    sent_at: Instant,
    resent: bool,
    queued: bool,
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
    unacked: VecDeque<Unacked>,
    in_flight: usize,
    resend: VecDeque<u64>,
    control: Vec<u8>,
    recv_next: u64,
    reorder: BTreeMap<u64, Vec<u8>>,
    ack_owed: u32,
    ack_at: Option<Instant>,
    ping_owed: bool,
    last_recv: Instant,
    last_send: Instant,
    srtt: Option<Duration>,
    rto: Duration,
    events: VecDeque<Event>,
    state: State,
    stats: Stats,
    plain: Vec<u8>,
}

impl Session {
    /// A session over keys from a completed handshake.
    pub fn new(keys: Keys, mut cfg: Config, now: Instant) -> Session {
        cfg.keepalive = cfg.keepalive.min(cfg.peer_deadline / 3).max(Duration::from_millis(10));
        let rto = cfg.rto_initial;
        Session {
            role: keys.role,
            sealer: Sealer::new(keys.send),
            opener: Opener::new(keys.recv),
            epoch_started: now,
            streams: BTreeMap::new(),
            next_local_id: if keys.role == Role::Initiator { 1 } else { 2 },
            rr_cursor: 0,
            next_seq: 1,
            unacked: VecDeque::new(),
            in_flight: 0,
            resend: VecDeque::new(),
            control: Vec::new(),
            recv_next: 1,
            reorder: BTreeMap::new(),
            ack_owed: 0,
            ack_at: None,
            ping_owed: false,
            last_recv: now,
            last_send: now,
            srtt: None,
            rto,
            events: VecDeque::new(),
            state: State::Open,
            stats: Stats::default(),
            plain: Vec::with_capacity(MAX_PLAINTEXT),
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
        s.unacked_bytes = self.in_flight as u64;
        s.queued = self.control.len() as u64
            + self
                .streams
                .values()
                .map(|st| st.send.pending.len() as u64 + u64::from(st.send.fin_requested && !st.send.fin_sent))
                .sum::<u64>();
        s
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
        self.unacked.is_empty()
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

    /// The path to the peer was re-established (e.g. a new relay connection): resend
    /// everything unacknowledged now and ask for an acknowledgement.
    pub fn on_path_reset(&mut self, now: Instant) {
        self.rto = self.cfg.rto_initial;
        for u in self.unacked.iter_mut() {
            if !u.queued {
                u.queued = true;
                self.resend.push_back(u.seq);
            }
        }
        self.ping_owed = true;
        self.ack_at = Some(now);
    }

    /// Feeds a packet received from the peer. Bad packets are counted and dropped.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        if let State::Closed(_) = self.state {
            return;
        }
        let mut plain = std::mem::take(&mut self.plain);
        match self.opener.open(packet, &mut plain) {
            Ok(()) => self.on_plaintext(now, &plain),
            Err(Drop::Forged) => self.stats.dropped_forged += 1,
            Err(Drop::Replayed) => self.stats.dropped_replayed += 1,
            Err(Drop::StaleEpoch) => self.stats.dropped_epoch += 1,
        }
        self.plain = plain;
    }

    fn on_plaintext(&mut self, now: Instant, plain: &[u8]) {
        let Ok((seq, ack, body)) = frame::split_plain(plain) else {
            return self.fail("plaintext too short");
        };
        self.last_recv = now;
        self.stats.packets_received += 1;
        self.on_ack(now, ack);
        if seq == 0 {
            for r in frame::records(body) {
                match r {
                    Ok(Record::Ping) => self.ack_at = Some(now),
                    _ => return self.fail("unreliable packet with a reliable record"),
                }
            }
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
        if self.ack_owed >= self.cfg.ack_every {
            self.ack_at = Some(now);
        } else if self.ack_at.is_none() {
            self.ack_at = Some(now + self.cfg.ack_delay);
        }
    }

    fn on_ack(&mut self, now: Instant, ack: u64) {
        let mut acked = false;
        while let Some(front) = self.unacked.front() {
            if front.seq > ack {
                break;
            }
            if !front.resent {
                let sample = now.saturating_duration_since(front.first_sent);
                let srtt = match self.srtt {
                    None => sample,
                    Some(s) => (s * 7 + sample) / 8,
                };
                self.srtt = Some(srtt);
                self.stats.srtt_us = Some(srtt.as_micros() as u64);
            }
            self.in_flight -= front.body.len();
            self.unacked.pop_front();
            acked = true;
        }
        if acked {
            let base = self.srtt.map_or(self.cfg.rto_initial, |s| s * 3);
            self.rto = base.clamp(self.cfg.rto_min, self.cfg.rto_max);
            while self.resend.front().is_some_and(|s| *s <= ack) {
                self.resend.pop_front();
            }
        }
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
            Record::Ping => {}
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

    /// The next packet to send, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let State::Closed(_) = self.state {
            return None;
        }
        while let Some(seq) = self.resend.pop_front() {
            let Some(i) = self.unacked.iter().position(|u| u.seq == seq) else {
                continue;
            };
            let body = std::mem::take(&mut self.unacked[i].body);
            let pkt = self.seal(now, seq, &body);
            let u = &mut self.unacked[i];
            u.body = body;
            u.sent_at = now;
            u.resent = true;
            u.queued = false;
            self.stats.retransmits += 1;
            return Some(pkt);
        }
        if self.in_flight < self.cfg.max_in_flight && self.has_new_data() {
            let body = self.build_body();
            let seq = self.next_seq;
            self.next_seq += 1;
            let pkt = self.seal(now, seq, &body);
            self.in_flight += body.len();
            self.unacked.push_back(Unacked { seq, body, first_sent: now, sent_at: now, resent: false, queued: false });
            if let State::Closing(r) = &self.state {
                if self.control.is_empty() {
                    let r = r.clone();
                    self.events.push_back(Event::Closed(r.clone()));
                    self.state = State::Closed(r);
                }
            }
            return Some(pkt);
        }
        if self.ping_owed || self.ack_at.is_some_and(|t| t <= now) {
            let mut body = Vec::new();
            if self.ping_owed {
                Record::Ping.encode(&mut body);
                self.ping_owed = false;
            }
            return Some(self.seal(now, 0, &body));
        }
        None
    }

    /// Control records first, then stream data round-robin, filling one packet.
    fn build_body(&mut self) -> Vec<u8> {
        let budget = MAX_PLAINTEXT - PLAIN_HEADER_LEN;
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
        let take = self.control.len().min(budget);
        // Control records are never split: they are small and appended whole.
        body.extend(self.control.drain(..take));
        let ids: Vec<u32> = self
            .streams
            .range(self.rr_cursor.saturating_add(1)..)
            .chain(self.streams.range(..=self.rr_cursor))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let room = budget - body.len();
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

    fn seal(&mut self, now: Instant, seq: u64, body: &[u8]) -> Vec<u8> {
        if self.sealer.packets_in_epoch() >= self.cfg.rekey_after_packets
            || now.saturating_duration_since(self.epoch_started) >= self.cfg.rekey_after
        {
            self.sealer.rekey();
            self.epoch_started = now;
            self.stats.rekeys += 1;
        }
        let mut pkt = Vec::with_capacity(frame::HEADER_LEN + PLAIN_HEADER_LEN + body.len() + frame::TAG_LEN);
        self.sealer.seal_with(&mut pkt, |plain| {
            frame::plain_header(seq, self.recv_next - 1, plain);
            plain.extend_from_slice(body);
        });
        self.last_send = now;
        self.ack_owed = 0;
        self.ack_at = None;
        self.stats.packets_sent += 1;
        pkt
    }

    /// Advances timers: retransmission, keepalive and the peer deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Closed(_) = self.state {
            return;
        }
        if now.saturating_duration_since(self.last_recv) >= self.cfg.peer_deadline {
            self.state = State::Closed(CloseReason::PeerLost);
            self.events.push_back(Event::Closed(CloseReason::PeerLost));
            return;
        }
        if let Some(front) = self.unacked.front() {
            if !front.queued && now >= front.sent_at + self.rto {
                for u in self.unacked.iter_mut().filter(|u| !u.queued) {
                    u.queued = true;
                    self.resend.push_back(u.seq);
                }
                self.rto = (self.rto * 2).min(self.cfg.rto_max);
            }
        }
        if now.saturating_duration_since(self.last_send) >= self.cfg.keepalive {
            self.ping_owed = true;
        }
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let State::Closed(_) = self.state {
            return None;
        }
        let mut t = self.last_recv + self.cfg.peer_deadline;
        t = t.min(self.last_send + self.cfg.keepalive);
        if let Some(a) = self.ack_at {
            t = t.min(a);
        }
        if let Some(front) = self.unacked.front().filter(|f| !f.queued) {
            t = t.min(front.sent_at + self.rto);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests;
