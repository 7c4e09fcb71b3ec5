//! Instance links: how the relays of several mediator instances (one mediator behind a
//! load balancer) join route members that connected to different instances, with one hop
//! between instances (`specs/mediator.md`, "Cluster").
//!
//! A link is a WebSocket between two instances, authenticated both ways with a key every
//! instance of the mediator holds ([`LinkKey`]), then carrying these frames (a pure codec,
//! like [`crate::proto`]; DATA is byte for byte the client protocol's DATA frame):
//!
//! | bytes | direction | frame |
//! |---|---|---|
//! | `90 01 nonce[32]` | acceptor → dialer, first | [`LinkFrame::Challenge`] |
//! | `91 nonce[32] mac[32] len id[len]` | dialer → acceptor | [`LinkFrame::Hello`] |
//! | `92 mac[32] len id[len]` | acceptor → dialer | [`LinkFrame::Welcome`] |
//! | `02 route[16] payload[≤65535]` | both | [`LinkFrame::Data`] |
//! | `05 route[16] slot reply` | both | [`LinkFrame::Attach`]: the sender holds `slot` of `route` |
//! | `06 route[16] slot` | both | [`LinkFrame::Detach`]: the sender no longer does |
//!
//! ```text
//! hello_mac   = HMAC-SHA256(K, "didmpc cluster/1 hello"   ‖ nonce_a ‖ nonce_d ‖ u8 len ‖ dialer id)
//! welcome_mac = HMAC-SHA256(K, "didmpc cluster/1 welcome" ‖ nonce_d ‖ nonce_a ‖ u8 len ‖ acceptor id ‖ u8 len ‖ dialer id)
//! ```
//!
//! Each side proves the key over the other's fresh nonce, so a recorded handshake is
//! worthless, and each learns the other's instance id.

use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::proto::{op as client_op, RouteId, MAC_LEN, MAX_FRAME, NONCE_LEN, ROUTE_LEN};
use crate::pump::FrameSocket;

/// Longest instance id.
pub const MAX_ID: usize = 64;
/// How long each handshake step may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The link protocol version (in CHALLENGE).
pub const VERSION: u8 = 1;

/// Opcodes of link frames.
pub mod op {
    /// DATA (both ways), as in the client protocol.
    pub const DATA: u8 = crate::proto::op::DATA;
    /// ATTACH (both ways).
    pub const ATTACH: u8 = 0x05;
    /// DETACH (both ways).
    pub const DETACH: u8 = 0x06;
    /// CHALLENGE (acceptor → dialer, first).
    pub const CHALLENGE: u8 = 0x90;
    /// HELLO (dialer → acceptor).
    pub const HELLO: u8 = 0x91;
    /// WELCOME (acceptor → dialer).
    pub const WELCOME: u8 = 0x92;
}

const HELLO_LABEL: &[u8] = b"didmpc cluster/1 hello";
const WELCOME_LABEL: &[u8] = b"didmpc cluster/1 welcome";

/// The key that authenticates instance links. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LinkKey([u8; 32]);

impl LinkKey {
    /// A key from its bytes.
    pub fn new(bytes: [u8; 32]) -> LinkKey {
        LinkKey(bytes)
    }

    /// The link key of a mediator derived from secret material all its instances hold (its
    /// own X25519 key, or a configured cluster secret).
    pub fn derive(secret: &[u8]) -> LinkKey {
        LinkKey(mac(secret, &[b"didmpc cluster/1 link key"]))
    }

    fn hello(&self, nonce_a: &[u8; NONCE_LEN], nonce_d: &[u8; NONCE_LEN], dialer: &str) -> [u8; MAC_LEN] {
        mac(&self.0, &[HELLO_LABEL, nonce_a, nonce_d, &[dialer.len() as u8], dialer.as_bytes()])
    }

    fn welcome(
        &self,
        nonce_a: &[u8; NONCE_LEN],
        nonce_d: &[u8; NONCE_LEN],
        acceptor: &str,
        dialer: &str,
    ) -> [u8; MAC_LEN] {
        let (la, ld) = ([acceptor.len() as u8], [dialer.len() as u8]);
        mac(&self.0, &[WELCOME_LABEL, nonce_d, nonce_a, &la, acceptor.as_bytes(), &ld, dialer.as_bytes()])
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(redacted)")
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length: this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Constant-time comparison of two MACs.
fn same(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One frame of an instance link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFrame {
    /// The acceptor's fresh nonce.
    Challenge {
        /// The nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// The dialer's id, nonce and proof of the key.
    Hello {
        /// The dialer's nonce.
        nonce: [u8; NONCE_LEN],
        /// Its proof over both nonces.
        mac: [u8; MAC_LEN],
        /// Its instance id.
        id: String,
    },
    /// The acceptor's id and proof of the key.
    Welcome {
        /// Its proof over both nonces and both ids.
        mac: [u8; MAC_LEN],
        /// Its instance id.
        id: String,
    },
    /// A session packet for the member of `route` on the receiving instance.
    Data {
        /// The route.
        route: RouteId,
        /// The packet.
        payload: Bytes,
    },
    /// The sender holds `slot` of `route`; with `reply`, the receiver answers with an ATTACH
    /// of the other slot if it holds that one.
    Attach {
        /// The route.
        route: RouteId,
        /// The slot the sender's member holds.
        slot: u8,
        /// Whether an answer is wanted.
        reply: bool,
    },
    /// The sender no longer holds `slot` of `route`.
    Detach {
        /// The route.
        route: RouteId,
        /// The slot.
        slot: u8,
    },
}

fn len_is(op: u8, b: &[u8], len: usize, expected: &'static str) -> Result<()> {
    if b.len() == len {
        Ok(())
    } else {
        Err(Error::Length { op, len: b.len(), expected })
    }
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

fn route_at(b: &[u8]) -> RouteId {
    RouteId(array(&b[1..]))
}

/// An instance id: 1 to [`MAX_ID`] printable ASCII characters.
fn id_from(b: &[u8]) -> Result<String> {
    let ok = !b.is_empty() && b.len() <= MAX_ID && b.iter().all(|c| c.is_ascii_graphic());
    match std::str::from_utf8(b) {
        Ok(s) if ok => Ok(s.to_owned()),
        _ => Err(Error::Value { field: "id", value: b.first().copied().unwrap_or(0) }),
    }
}

fn slot_at(b: &[u8], at: usize) -> Result<u8> {
    match b[at] {
        s @ (0 | 1) => Ok(s),
        s => Err(Error::Value { field: "slot", value: s }),
    }
}

impl LinkFrame {
    /// The frame's bytes.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            LinkFrame::Challenge { nonce } => {
                b.put_u8(op::CHALLENGE);
                b.put_u8(VERSION);
                b.put_slice(nonce);
            }
            LinkFrame::Hello { nonce, mac, id } => {
                b.put_u8(op::HELLO);
                b.put_slice(nonce);
                b.put_slice(mac);
                b.put_u8(id.len() as u8);
                b.put_slice(id.as_bytes());
            }
            LinkFrame::Welcome { mac, id } => {
                b.put_u8(op::WELCOME);
                b.put_slice(mac);
                b.put_u8(id.len() as u8);
                b.put_slice(id.as_bytes());
            }
            LinkFrame::Data { route, payload } => return crate::proto::data_frame(route, payload),
            LinkFrame::Attach { route, slot, reply } => {
                b.put_u8(op::ATTACH);
                b.put_slice(&route.0);
                b.put_u8(*slot);
                b.put_u8(u8::from(*reply));
            }
            LinkFrame::Detach { route, slot } => {
                b.put_u8(op::DETACH);
                b.put_slice(&route.0);
                b.put_u8(*slot);
            }
        }
        b.freeze()
    }

    /// Decodes one whole frame (a DATA payload is a slice of `frame`).
    pub fn decode(frame: &Bytes) -> Result<LinkFrame> {
        let b = &frame[..];
        let Some(&opcode) = b.first() else { return Err(Error::Empty) };
        const HDR: usize = 1 + ROUTE_LEN;
        Ok(match opcode {
            client_op::DATA => {
                if b.len() < HDR || b.len() > MAX_FRAME {
                    return Err(Error::Length { op: opcode, len: b.len(), expected: "17 to 65552" });
                }
                LinkFrame::Data { route: route_at(b), payload: frame.slice(HDR..) }
            }
            op::ATTACH => {
                len_is(opcode, b, HDR + 2, "19")?;
                let reply = match b[HDR + 1] {
                    r @ (0 | 1) => r == 1,
                    r => return Err(Error::Value { field: "reply", value: r }),
                };
                LinkFrame::Attach { route: route_at(b), slot: slot_at(b, HDR)?, reply }
            }
            op::DETACH => {
                len_is(opcode, b, HDR + 1, "18")?;
                LinkFrame::Detach { route: route_at(b), slot: slot_at(b, HDR)? }
            }
            op::CHALLENGE => {
                len_is(opcode, b, 2 + NONCE_LEN, "34")?;
                if b[1] != VERSION {
                    return Err(Error::Version(b[1]));
                }
                LinkFrame::Challenge { nonce: array(&b[2..]) }
            }
            op::HELLO => {
                const FIXED: usize = 1 + NONCE_LEN + MAC_LEN + 1;
                if b.len() < FIXED || b.len() != FIXED + usize::from(b[FIXED - 1]) {
                    return Err(Error::Length { op: opcode, len: b.len(), expected: "66 + id length" });
                }
                LinkFrame::Hello { nonce: array(&b[1..]), mac: array(&b[1 + NONCE_LEN..]), id: id_from(&b[FIXED..])? }
            }
            op::WELCOME => {
                const FIXED: usize = 1 + MAC_LEN + 1;
                if b.len() < FIXED || b.len() != FIXED + usize::from(b[FIXED - 1]) {
                    return Err(Error::Length { op: opcode, len: b.len(), expected: "34 + id length" });
                }
                LinkFrame::Welcome { mac: array(&b[1..]), id: id_from(&b[FIXED..])? }
            }
            other => return Err(Error::UnknownOpcode(other)),
        })
    }
}

fn refused(reason: &str) -> Error {
    Error::Link(reason.to_owned())
}

async fn next<S: FrameSocket>(socket: &mut S) -> Result<LinkFrame> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, socket.next()).await {
        Err(_) => Err(refused("the other instance did not answer in time")),
        Ok(None) => Err(refused("closed during the handshake")),
        Ok(Some(f)) => LinkFrame::decode(&f?),
    }
}

fn check_id(id: &str) -> Result<()> {
    id_from(id.as_bytes()).map(drop)
}

/// The accepting side of a link's handshake: returns the dialer's instance id once it
/// proved the key.
pub async fn accept<S: FrameSocket>(socket: &mut S, key: &LinkKey, me: &str) -> Result<String> {
    check_id(me)?;
    let nonce_a = crate::auth::nonce();
    socket.send(LinkFrame::Challenge { nonce: nonce_a }.encode()).await?;
    let LinkFrame::Hello { nonce: nonce_d, mac, id } = next(socket).await? else {
        return Err(refused("expected HELLO"));
    };
    if !same(&mac, &key.hello(&nonce_a, &nonce_d, &id)) {
        return Err(refused("the dialer does not hold the cluster key"));
    }
    socket
        .send(LinkFrame::Welcome { mac: key.welcome(&nonce_a, &nonce_d, me, &id), id: me.to_owned() }.encode())
        .await?;
    Ok(id)
}

/// The dialing side of a link's handshake: returns the acceptor's instance id once it
/// proved the key.
pub async fn dial<S: FrameSocket>(socket: &mut S, key: &LinkKey, me: &str) -> Result<String> {
    check_id(me)?;
    let LinkFrame::Challenge { nonce: nonce_a } = next(socket).await? else {
        return Err(refused("expected CHALLENGE"));
    };
    let nonce_d = crate::auth::nonce();
    socket
        .send(LinkFrame::Hello { nonce: nonce_d, mac: key.hello(&nonce_a, &nonce_d, me), id: me.to_owned() }.encode())
        .await?;
    let LinkFrame::Welcome { mac, id } = next(socket).await? else {
        return Err(refused("expected WELCOME"));
    };
    if !same(&mac, &key.welcome(&nonce_a, &nonce_d, &id, me)) {
        return Err(refused("the acceptor does not hold the cluster key"));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pump::testing::pair;

    #[test]
    fn frames_round_trip_and_junk_is_refused() {
        let r = RouteId([3; 16]);
        let frames = [
            LinkFrame::Challenge { nonce: [1; 32] },
            LinkFrame::Hello { nonce: [2; 32], mac: [3; 32], id: "instance-a".into() },
            LinkFrame::Welcome { mac: [4; 32], id: "b".into() },
            LinkFrame::Data { route: r, payload: Bytes::from_static(b"packet") },
            LinkFrame::Attach { route: r, slot: 1, reply: true },
            LinkFrame::Detach { route: r, slot: 0 },
        ];
        for f in frames {
            assert_eq!(LinkFrame::decode(&f.encode()).unwrap(), f);
        }
        assert_eq!(LinkFrame::Attach { route: r, slot: 0, reply: false }.encode().len(), 19);
        for junk in [&b""[..], &[0x05; 19], &[0x05, 0, 0], &[0x06; 18], &[0x91; 70], &[0x92; 20], &[0x77]] {
            assert!(LinkFrame::decode(&Bytes::copy_from_slice(junk)).is_err(), "{junk:?}");
        }
        let mut long = LinkFrame::Welcome { mac: [4; 32], id: "b".into() }.encode().to_vec();
        long.push(b'x');
        assert!(LinkFrame::decode(&Bytes::from(long)).is_err(), "length must match the id");
    }

    #[tokio::test]
    async fn both_sides_prove_the_key() {
        let key = LinkKey::derive(b"the mediator's secret");
        let (mut a, mut d) = pair(8);
        let k2 = key.clone();
        let acceptor = tokio::spawn(async move { accept(&mut a, &k2, "acceptor").await });
        assert_eq!(dial(&mut d, &key, "dialer").await.unwrap(), "acceptor");
        assert_eq!(acceptor.await.unwrap().unwrap(), "dialer");

        // Another key: the acceptor refuses the dialer (and the dialer never gets a WELCOME).
        let (mut a, mut d) = pair(8);
        let wrong = LinkKey::derive(b"someone else");
        let acceptor = tokio::spawn(async move { accept(&mut a, &key, "acceptor").await });
        let dialer = tokio::spawn(async move { dial(&mut d, &wrong, "dialer").await });
        assert!(matches!(acceptor.await.unwrap(), Err(Error::Link(_))));
        assert!(dialer.await.unwrap().is_err());
    }
}
