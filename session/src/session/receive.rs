//! Incoming packets: opening, acknowledgements, path records, in-order delivery through
//! the reorder buffer, and the records applied to streams and the session state.

use std::time::Instant;

use super::{Event, Session, State};
use crate::crypto::Drop;
use crate::error::CloseReason;
use crate::frame::{self, Record};
use crate::handshake::Role;
use crate::path::PathAddr;
use crate::stream::Stream;

impl Session {
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
}
