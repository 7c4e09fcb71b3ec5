//! Outgoing packets: retransmissions first, then new data (control records and stream
//! data round-robin), then acknowledgements, pings and path probes; congestion window,
//! pacing, sealing and rekeying.

use std::time::Instant;

use super::{Event, Session, State, Transmit, HEADROOM, PACKET_OVERHEAD};
use crate::frame::{self, Record, DATA_OVERHEAD, MAX_ACK_RANGES};
use crate::path::manager::{Probe, RELAY};

impl Session {
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
}
