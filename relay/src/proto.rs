//! Relay frames, a pure codec: one binary WebSocket message is exactly one frame, so
//! [`Frame::decode`] takes a whole message and never waits for more bytes. Every length is
//! fixed by the opcode except DATA's payload, which is at most [`MAX_PAYLOAD`] bytes; no
//! accepted frame is larger than [`MAX_FRAME`]. Decoding is canonical: whatever decodes
//! encodes back to exactly the bytes it came from.
//!
//! | bytes | direction | frame |
//! |---|---|---|
//! | `01 route[16] slot mac[32]` | client → relay | [`Frame::Join`] |
//! | `02 route[16] payload[≤65535]` | both | [`Frame::Data`] |
//! | `03 route[16]` | client → relay | [`Frame::Leave`] |
//! | `80 version=01 nonce[32]` | relay → client, first frame | [`Frame::Challenge`] |
//! | `81 route[16] status` | relay → client | [`Frame::Joined`] |
//! | `83 route[16] up` | relay → client | [`Frame::Peer`] |
//! | `84 route[16] slot` | relay → client | [`Frame::Displaced`] |

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Route id length.
pub const ROUTE_LEN: usize = 16;
/// Length of a JOIN's MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;
/// Length of the relay's per-connection challenge nonce.
pub const NONCE_LEN: usize = 32;
/// Largest DATA payload (a session packet).
pub const MAX_PAYLOAD: usize = 65_535;
/// Largest frame: a DATA frame with the largest payload.
pub const MAX_FRAME: usize = 1 + ROUTE_LEN + MAX_PAYLOAD;
/// The protocol version this build speaks (in CHALLENGE).
pub const VERSION: u8 = 1;

/// Opcodes.
pub mod op {
    /// JOIN (client → relay).
    pub const JOIN: u8 = 0x01;
    /// DATA (both ways).
    pub const DATA: u8 = 0x02;
    /// LEAVE (client → relay).
    pub const LEAVE: u8 = 0x03;
    /// CHALLENGE (relay → client, the first frame of every connection).
    pub const CHALLENGE: u8 = 0x80;
    /// JOINED (relay → client, the answer to JOIN).
    pub const JOINED: u8 = 0x81;
    /// PEER (relay → client: the other slot came or went).
    pub const PEER: u8 = 0x83;
    /// DISPLACED (relay → client: another connection took our slot).
    pub const DISPLACED: u8 = 0x84;
}

/// A route: 16 random bytes naming one pairwise session at one relay.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RouteId(pub [u8; ROUTE_LEN]);

impl RouteId {
    /// The first four bytes in hex, for logs.
    pub fn fmt_short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouteId({}…)", self.fmt_short())
    }
}

/// The answer to a JOIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum JoinStatus {
    /// Joined.
    Ok = 0,
    /// The route is not reserved (or its reservation expired).
    UnknownRoute = 1,
    /// The slot is not 0 or 1.
    BadSlot = 2,
    /// The frame did not decode.
    Malformed = 3,
    /// The MAC does not prove knowledge of the slot's secret for this connection's
    /// challenge (a guessed, wrong or replayed JOIN).
    BadAuth = 4,
    /// The relay could not look the reservation up; try again later.
    Unavailable = 5,
}

impl JoinStatus {
    /// Every status, in code order.
    pub const ALL: [JoinStatus; 6] = [
        JoinStatus::Ok,
        JoinStatus::UnknownRoute,
        JoinStatus::BadSlot,
        JoinStatus::Malformed,
        JoinStatus::BadAuth,
        JoinStatus::Unavailable,
    ];

    /// The status of a wire code.
    pub fn from_code(code: u8) -> Option<JoinStatus> {
        JoinStatus::ALL.get(usize::from(code)).copied()
    }

    /// A stable name (metrics labels, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            JoinStatus::Ok => "ok",
            JoinStatus::UnknownRoute => "unknown_route",
            JoinStatus::BadSlot => "bad_slot",
            JoinStatus::Malformed => "malformed",
            JoinStatus::BadAuth => "bad_auth",
            JoinStatus::Unavailable => "unavailable",
        }
    }
}

/// One relay frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Take `slot` (0 initiator, 1 responder) of `route`, proving knowledge of the slot's
    /// secret with `mac` over this connection's challenge (see [`crate::auth`]).
    Join {
        /// The route.
        route: RouteId,
        /// The slot (the relay answers [`JoinStatus::BadSlot`] unless 0 or 1).
        slot: u8,
        /// `HMAC(slot secret, label ‖ nonce ‖ route ‖ slot)`.
        mac: [u8; MAC_LEN],
    },
    /// A session packet for the other member of `route`.
    Data {
        /// The route.
        route: RouteId,
        /// The packet (opaque to the relay).
        payload: Bytes,
    },
    /// Give up our slot of `route`.
    Leave {
        /// The route.
        route: RouteId,
    },
    /// The relay's fresh per-connection nonce that JOINs on this connection must MAC.
    Challenge {
        /// The nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// The answer to a JOIN.
    Joined {
        /// The route (all zero when the JOIN did not even name one).
        route: RouteId,
        /// The outcome.
        status: JoinStatus,
    },
    /// The other slot of `route` is now held (`up`) or empty.
    Peer {
        /// The route.
        route: RouteId,
        /// Whether the other member is connected.
        up: bool,
    },
    /// Another connection took our `slot` of `route` with a valid JOIN.
    Displaced {
        /// The route.
        route: RouteId,
        /// Our former slot.
        slot: u8,
    },
}

fn expect_len(op: u8, b: &[u8], len: usize, expected: &'static str) -> Result<()> {
    if b.len() == len {
        Ok(())
    } else {
        Err(Error::Length { op, len: b.len(), expected })
    }
}

fn route_at(b: &[u8]) -> RouteId {
    let mut r = [0u8; ROUTE_LEN];
    r.copy_from_slice(&b[1..1 + ROUTE_LEN]);
    RouteId(r)
}

impl Frame {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        match self {
            Frame::Join { .. } => op::JOIN,
            Frame::Data { .. } => op::DATA,
            Frame::Leave { .. } => op::LEAVE,
            Frame::Challenge { .. } => op::CHALLENGE,
            Frame::Joined { .. } => op::JOINED,
            Frame::Peer { .. } => op::PEER,
            Frame::Displaced { .. } => op::DISPLACED,
        }
    }

    /// Bytes [`Frame::encode`] produces.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Frame::Join { .. } => ROUTE_LEN + 1 + MAC_LEN,
            Frame::Data { payload, .. } => ROUTE_LEN + payload.len(),
            Frame::Leave { .. } => ROUTE_LEN,
            Frame::Challenge { .. } => 1 + NONCE_LEN,
            Frame::Joined { .. } | Frame::Peer { .. } | Frame::Displaced { .. } => ROUTE_LEN + 1,
        }
    }

    /// The frame's bytes. A DATA payload longer than [`MAX_PAYLOAD`] encodes, but no relay
    /// or client accepts it.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        b.put_u8(self.opcode());
        match self {
            Frame::Join { route, slot, mac } => {
                b.put_slice(&route.0);
                b.put_u8(*slot);
                b.put_slice(mac);
            }
            Frame::Data { route, payload } => {
                b.put_slice(&route.0);
                b.put_slice(payload);
            }
            Frame::Leave { route } => b.put_slice(&route.0),
            Frame::Challenge { nonce } => {
                b.put_u8(VERSION);
                b.put_slice(nonce);
            }
            Frame::Joined { route, status } => {
                b.put_slice(&route.0);
                b.put_u8(*status as u8);
            }
            Frame::Peer { route, up } => {
                b.put_slice(&route.0);
                b.put_u8(u8::from(*up));
            }
            Frame::Displaced { route, slot } => {
                b.put_slice(&route.0);
                b.put_u8(*slot);
            }
        }
        b.freeze()
    }

    /// Decodes one whole frame. A DATA payload is a slice of `frame` (no copy).
    pub fn decode(frame: &Bytes) -> Result<Frame> {
        let b = &frame[..];
        let Some(&opcode) = b.first() else { return Err(Error::Empty) };
        const HDR: usize = 1 + ROUTE_LEN;
        Ok(match opcode {
            op::JOIN => {
                expect_len(opcode, b, HDR + 1 + MAC_LEN, "50")?;
                let mut mac = [0u8; MAC_LEN];
                mac.copy_from_slice(&b[HDR + 1..]);
                Frame::Join { route: route_at(b), slot: b[HDR], mac }
            }
            op::DATA => {
                if b.len() < HDR || b.len() > MAX_FRAME {
                    return Err(Error::Length { op: opcode, len: b.len(), expected: "17 to 65552" });
                }
                Frame::Data { route: route_at(b), payload: frame.slice(HDR..) }
            }
            op::LEAVE => {
                expect_len(opcode, b, HDR, "17")?;
                Frame::Leave { route: route_at(b) }
            }
            op::CHALLENGE => {
                expect_len(opcode, b, 2 + NONCE_LEN, "34")?;
                if b[1] != VERSION {
                    return Err(Error::Version(b[1]));
                }
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&b[2..]);
                Frame::Challenge { nonce }
            }
            op::JOINED | op::PEER | op::DISPLACED => {
                expect_len(opcode, b, HDR + 1, "18")?;
                let (route, v) = (route_at(b), b[HDR]);
                match opcode {
                    op::JOINED => Frame::Joined {
                        route,
                        status: JoinStatus::from_code(v).ok_or(Error::Value { field: "status", value: v })?,
                    },
                    op::PEER if v <= 1 => Frame::Peer { route, up: v == 1 },
                    op::PEER => return Err(Error::Value { field: "up", value: v }),
                    _ => Frame::Displaced { route, slot: v },
                }
            }
            other => return Err(Error::UnknownOpcode(other)),
        })
    }
}

/// A DATA frame for `route` carrying `payload` (the client's hot path: one copy into the
/// frame, as the socket needs one buffer per message anyway).
pub fn data_frame(route: &RouteId, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + ROUTE_LEN + payload.len());
    b.put_u8(op::DATA);
    b.put_slice(&route.0);
    b.put_slice(payload);
    b.freeze()
}

#[cfg(test)]
mod tests;
