//! The wire codec: packets (clear header + AEAD ciphertext) and the records inside the
//! plaintext. Pure functions with hard limits; see `specs/session.md` for byte layouts.

use bytes::{Buf, BufMut};

use crate::error::{Error, Result};

/// Largest packet on the wire, header and tag included.
pub const MAX_PACKET: usize = 65_535;
/// Packet kind byte of a v1 data packet.
pub const KIND_DATA: u8 = 0x01;
/// Clear header: kind u8, epoch u8, nonce u64 (big-endian).
pub const HEADER_LEN: usize = 10;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Plaintext header: seq u64, ack u64.
pub const PLAIN_HEADER_LEN: usize = 16;
/// Largest plaintext in one packet.
pub const MAX_PLAINTEXT: usize = MAX_PACKET - HEADER_LEN - TAG_LEN;
/// Longest CLOSE reason, bytes.
pub const MAX_REASON: usize = 1024;

/// The clear header of a packet (authenticated as AEAD associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Key epoch (increments on rekey, wraps).
    pub epoch: u8,
    /// Per-direction, per-epoch nonce; strictly increasing at the sender.
    pub nonce: u64,
}

impl Header {
    /// The 10 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = KIND_DATA;
        h[1] = self.epoch;
        h[2..].copy_from_slice(&self.nonce.to_be_bytes());
        h
    }

    /// Splits a packet into header and ciphertext.
    pub fn decode(packet: &[u8]) -> Result<(Header, &[u8])> {
        if packet.len() > MAX_PACKET {
            return Err(Error::Malformed("packet larger than 65,535 bytes"));
        }
        if packet.len() < HEADER_LEN + TAG_LEN {
            return Err(Error::Malformed("packet shorter than header and tag"));
        }
        if packet[0] != KIND_DATA {
            return Err(Error::Malformed("unknown packet kind"));
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&packet[2..HEADER_LEN]);
        Ok((Header { epoch: packet[1], nonce: u64::from_be_bytes(nonce) }, &packet[HEADER_LEN..]))
    }
}

/// One record inside a packet's plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// Opens stream `id` (ids of the initiator are odd, of the responder even).
    Open {
        /// Stream id.
        id: u32,
    },
    /// Bytes of stream `id` starting at `offset`.
    Data {
        /// Stream id.
        id: u32,
        /// Offset of the first byte in the stream.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// The sender will write nothing after `final_offset` on stream `id`.
    Fin {
        /// Stream id.
        id: u32,
        /// Total bytes the sender wrote.
        final_offset: u64,
    },
    /// Stream `id` is abandoned in both directions.
    Reset {
        /// Stream id.
        id: u32,
        /// Application error code.
        code: u32,
    },
    /// The peer may send stream `id` bytes up to (excluding) `max_offset`.
    Window {
        /// Stream id.
        id: u32,
        /// Credit limit.
        max_offset: u64,
    },
    /// The session ends.
    Close {
        /// Code.
        code: u32,
        /// Human-readable reason (UTF-8, at most 1,024 bytes).
        reason: &'a str,
    },
    /// Asks for an acknowledgement (keepalive).
    Ping,
    /// Packets received above the cumulative acknowledgement: ranges of sequence numbers,
    /// highest first (a selective acknowledgement).
    Acks {
        /// The ranges.
        ranges: AckRanges<'a>,
    },
    /// Please echo `token` on the path this arrived on (path validation, RTT, keepalive).
    PathChallenge {
        /// Opaque token.
        token: u64,
    },
    /// The echo of a [`Record::PathChallenge`] received on this path.
    PathResponse {
        /// The challenge's token.
        token: u64,
    },
}

/// Inclusive ranges `(first, last)` of sequence numbers, as carried by [`Record::Acks`]:
/// `count u8` then `count × (first u64, last u64)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRanges<'a> {
    raw: &'a [u8],
}

/// Most ranges one [`Record::Acks`] carries when we send it.
pub const MAX_ACK_RANGES: usize = 8;

impl<'a> AckRanges<'a> {
    /// The ranges, as encoded.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        self.raw.chunks_exact(16).map(|c| {
            let mut b = c;
            (b.get_u64(), b.get_u64())
        })
    }

    /// How many ranges.
    pub fn len(&self) -> usize {
        self.raw.len() / 16
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Appends an ACKS record for `ranges` (at most 255 are encoded).
pub fn encode_acks(ranges: &[(u64, u64)], out: &mut Vec<u8>) {
    let n = ranges.len().min(255);
    out.put_u8(T_ACKS);
    out.put_u8(n as u8);
    for (first, last) in &ranges[..n] {
        out.put_u64(*first);
        out.put_u64(*last);
    }
}

const T_OPEN: u8 = 0x01;
const T_DATA: u8 = 0x02;
const T_FIN: u8 = 0x03;
const T_RESET: u8 = 0x04;
const T_WINDOW: u8 = 0x05;
const T_CLOSE: u8 = 0x06;
const T_PING: u8 = 0x07;
const T_ACKS: u8 = 0x08;
const T_PATH_CHALLENGE: u8 = 0x09;
const T_PATH_RESPONSE: u8 = 0x0a;

/// Appends a DATA record whose payload `fill` writes (exactly `len` bytes) to `out`.
pub fn encode_data_with(id: u32, offset: u64, len: u16, out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    out.put_u8(T_DATA);
    out.put_u32(id);
    out.put_u64(offset);
    out.put_u16(len);
    let before = out.len();
    fill(out);
    debug_assert_eq!(out.len() - before, len as usize);
}

/// Bytes a DATA record adds on top of its payload.
pub const DATA_OVERHEAD: usize = 1 + 4 + 8 + 2;

impl Record<'_> {
    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        match self {
            Record::Open { .. } => 5,
            Record::Data { data, .. } => DATA_OVERHEAD + data.len(),
            Record::Fin { .. } | Record::Window { .. } => 13,
            Record::Reset { .. } => 9,
            Record::Close { reason, .. } => 7 + clip_reason(reason).len(),
            Record::Ping => 1,
            Record::Acks { ranges } => 2 + 16 * ranges.len(),
            Record::PathChallenge { .. } | Record::PathResponse { .. } => 9,
        }
    }

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Open { id } => {
                out.put_u8(T_OPEN);
                out.put_u32(*id);
            }
            Record::Data { id, offset, data } => {
                out.put_u8(T_DATA);
                out.put_u32(*id);
                out.put_u64(*offset);
                out.put_u16(data.len() as u16);
                out.put_slice(data);
            }
            Record::Fin { id, final_offset } => {
                out.put_u8(T_FIN);
                out.put_u32(*id);
                out.put_u64(*final_offset);
            }
            Record::Reset { id, code } => {
                out.put_u8(T_RESET);
                out.put_u32(*id);
                out.put_u32(*code);
            }
            Record::Window { id, max_offset } => {
                out.put_u8(T_WINDOW);
                out.put_u32(*id);
                out.put_u64(*max_offset);
            }
            Record::Close { code, reason } => {
                let r = clip_reason(reason).as_bytes();
                out.put_u8(T_CLOSE);
                out.put_u32(*code);
                out.put_u16(r.len() as u16);
                out.put_slice(r);
            }
            Record::Ping => out.put_u8(T_PING),
            Record::Acks { ranges } => {
                out.put_u8(T_ACKS);
                out.put_u8(ranges.len() as u8);
                out.put_slice(ranges.raw);
            }
            Record::PathChallenge { token } => {
                out.put_u8(T_PATH_CHALLENGE);
                out.put_u64(*token);
            }
            Record::PathResponse { token } => {
                out.put_u8(T_PATH_RESPONSE);
                out.put_u64(*token);
            }
        }
    }

    /// Whether the record is about the packet or the path rather than the streams: it is
    /// acted on when the packet arrives, is never retransmitted, and may ride in an
    /// unreliable packet (PING, ACKS, PATH_CHALLENGE, PATH_RESPONSE).
    pub fn is_volatile(&self) -> bool {
        matches!(self, Record::Ping | Record::Acks { .. } | Record::PathChallenge { .. } | Record::PathResponse { .. })
    }
}

/// A CLOSE reason as sent: at most `MAX_REASON` bytes, cut at a character boundary so it
/// stays UTF-8 (the receiver refuses anything else).
fn clip_reason(reason: &str) -> &str {
    let mut n = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(n) {
        n -= 1;
    }
    &reason[..n]
}

/// Decodes the records of a plaintext body (after the 16-byte plaintext header).
pub struct Records<'a> {
    buf: &'a [u8],
}

/// Iterates the records in `body`; each item is a record or the first decoding error.
pub fn records(body: &[u8]) -> Records<'_> {
    Records { buf: body }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let r = decode_one(&mut self.buf);
        if r.is_err() {
            self.buf = &[];
        }
        Some(r)
    }
}

fn need(buf: &[u8], n: usize) -> Result<()> {
    if buf.remaining() < n {
        Err(Error::Malformed("truncated record"))
    } else {
        Ok(())
    }
}

fn decode_one<'a>(buf: &mut &'a [u8]) -> Result<Record<'a>> {
    let t = buf.get_u8();
    Ok(match t {
        T_OPEN => {
            need(buf, 4)?;
            Record::Open { id: buf.get_u32() }
        }
        T_DATA => {
            need(buf, 14)?;
            let id = buf.get_u32();
            let offset = buf.get_u64();
            let len = buf.get_u16() as usize;
            need(buf, len)?;
            let (data, rest) = buf.split_at(len);
            *buf = rest;
            Record::Data { id, offset, data }
        }
        T_FIN => {
            need(buf, 12)?;
            Record::Fin { id: buf.get_u32(), final_offset: buf.get_u64() }
        }
        T_RESET => {
            need(buf, 8)?;
            Record::Reset { id: buf.get_u32(), code: buf.get_u32() }
        }
        T_WINDOW => {
            need(buf, 12)?;
            Record::Window { id: buf.get_u32(), max_offset: buf.get_u64() }
        }
        T_CLOSE => {
            need(buf, 6)?;
            let code = buf.get_u32();
            let len = buf.get_u16() as usize;
            if len > MAX_REASON {
                return Err(Error::Malformed("close reason too long"));
            }
            need(buf, len)?;
            let (r, rest) = buf.split_at(len);
            *buf = rest;
            let reason = std::str::from_utf8(r).map_err(|_| Error::Malformed("close reason is not UTF-8"))?;
            Record::Close { code, reason }
        }
        T_PING => Record::Ping,
        T_ACKS => {
            need(buf, 1)?;
            let n = buf.get_u8() as usize * 16;
            need(buf, n)?;
            let (raw, rest) = buf.split_at(n);
            *buf = rest;
            Record::Acks { ranges: AckRanges { raw } }
        }
        T_PATH_CHALLENGE => {
            need(buf, 8)?;
            Record::PathChallenge { token: buf.get_u64() }
        }
        T_PATH_RESPONSE => {
            need(buf, 8)?;
            Record::PathResponse { token: buf.get_u64() }
        }
        _ => return Err(Error::Malformed("unknown record type")),
    })
}

/// Writes the plaintext header.
pub fn plain_header(seq: u64, ack: u64, out: &mut Vec<u8>) {
    out.put_u64(seq);
    out.put_u64(ack);
}

/// Reads the plaintext header: (seq, ack, records body).
pub fn split_plain(plain: &[u8]) -> Result<(u64, u64, &[u8])> {
    if plain.len() < PLAIN_HEADER_LEN {
        return Err(Error::Malformed("plaintext shorter than its header"));
    }
    let mut b = plain;
    let seq = b.get_u64();
    let ack = b.get_u64();
    Ok((seq, ack, b))
}

#[cfg(test)]
mod tests;
