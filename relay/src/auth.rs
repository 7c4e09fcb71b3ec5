//! JOIN authentication (`specs/session.md` §2).
//!
//! The client that reserves a route registers a fresh random [`RouteKey`] with it, inside
//! its authcrypted `reserve` to its own mediator. Each slot's secret is derived from the
//! key, `HMAC-SHA256(key, "didmpc relay/1 slot secret" ‖ slot)`; the reserving party (the
//! session's responder) gives the initiator only slot 0's secret, inside the authcrypted
//! session `accept`. The relay opens every connection with a fresh nonce (CHALLENGE), and a
//! JOIN carries `HMAC-SHA256(slot secret, "didmpc relay/1 join" ‖ nonce ‖ route ‖ slot)`:
//! a route id alone takes no slot, and a JOIN seen on one connection is worthless on any
//! other.

use std::fmt;

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::proto::{RouteId, MAC_LEN, NONCE_LEN};

/// Length of a route key and of a slot secret.
pub const KEY_LEN: usize = 32;
const SLOT_LABEL: &[u8] = b"didmpc relay/1 slot secret";
const JOIN_LABEL: &[u8] = b"didmpc relay/1 join";

fn hmac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m
}

/// The secret a route's reserver registers with the relay; every slot secret derives from it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RouteKey([u8; KEY_LEN]);

impl RouteKey {
    /// A fresh random key.
    pub fn generate() -> RouteKey {
        let mut k = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut k);
        RouteKey(k)
    }

    /// A key from its bytes; `None` unless there are exactly 32.
    pub fn from_slice(b: &[u8]) -> Option<RouteKey> {
        b.try_into().ok().map(RouteKey)
    }

    /// The key's bytes (to register or store it).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The secret of `slot`.
    pub fn slot_secret(&self, slot: u8) -> SlotSecret {
        SlotSecret(hmac(&self.0, &[SLOT_LABEL, &[slot]]).finalize().into_bytes().into())
    }
}

impl fmt::Debug for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RouteKey(redacted)")
    }
}

/// What proves the right to one slot of a route.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SlotSecret([u8; KEY_LEN]);

impl SlotSecret {
    /// A secret from its bytes; `None` unless there are exactly 32.
    pub fn from_slice(b: &[u8]) -> Option<SlotSecret> {
        b.try_into().ok().map(SlotSecret)
    }

    /// The secret's bytes (to send it inside an encrypted message).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The MAC a JOIN of `slot` of `route` carries on a connection challenged with `nonce`.
    pub fn join_mac(&self, nonce: &[u8; NONCE_LEN], route: &RouteId, slot: u8) -> [u8; MAC_LEN] {
        hmac(&self.0, &[JOIN_LABEL, nonce, &route.0, &[slot]]).finalize().into_bytes().into()
    }

    /// Whether `mac` is [`SlotSecret::join_mac`] (compared in constant time).
    pub fn verify(&self, nonce: &[u8; NONCE_LEN], route: &RouteId, slot: u8, mac: &[u8; MAC_LEN]) -> bool {
        hmac(&self.0, &[JOIN_LABEL, nonce, &route.0, &[slot]]).verify_slice(mac).is_ok()
    }
}

impl fmt::Debug for SlotSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlotSecret(redacted)")
    }
}

/// A fresh random challenge nonce.
pub fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Pinned against Python's `hmac`/`hashlib` (an implementation we did not write):
    /// key 00..1f, route 00..0f, nonce 5a×32. The same vector is in `specs/session.md`.
    #[test]
    fn vectors() {
        let key = RouteKey::from_slice(&(0u8..32).collect::<Vec<_>>()).unwrap();
        let route = RouteId(core::array::from_fn(|i| i as u8));
        let nonce = [0x5a; NONCE_LEN];
        let want = [
            (
                "19f7cc8f6ad396ce7bc0c8701977ed4ed019471f622a6f8f1dd54fcded4dc471",
                "6abad8e954591bd027100dc1d3a7fa120ac7ff375996344e75961c242fef8aee",
            ),
            (
                "671b207cf135ed3d51ef225d422f2fcf44eba24a5dbf3990e663cf1ad8244c20",
                "bdf83240f99611f55de0f99ad55f61f28fc78d30b045a6c143213265d10d9b94",
            ),
        ];
        for (slot, (secret, mac)) in want.iter().enumerate() {
            let s = key.slot_secret(slot as u8);
            assert_eq!(hex(s.as_bytes()), *secret);
            let m = s.join_mac(&nonce, &route, slot as u8);
            assert_eq!(hex(&m), *mac);
            assert!(s.verify(&nonce, &route, slot as u8, &m));
        }
    }

    #[test]
    fn a_mac_is_bound_to_secret_nonce_route_and_slot() {
        let key = RouteKey::generate();
        let (s0, s1) = (key.slot_secret(0), key.slot_secret(1));
        assert_ne!(s0.as_bytes(), s1.as_bytes());
        let (n, r) = (nonce(), RouteId([3; 16]));
        let m = s0.join_mac(&n, &r, 0);
        assert!(s0.verify(&n, &r, 0, &m));
        assert!(!s1.verify(&n, &r, 0, &m), "other slot's secret");
        assert!(!s0.verify(&nonce(), &r, 0, &m), "other connection's nonce (a replay)");
        assert!(!s0.verify(&n, &RouteId([4; 16]), 0, &m), "other route");
        assert!(!s0.verify(&n, &r, 1, &m), "other slot");
        assert!(!RouteKey::generate().slot_secret(0).verify(&n, &r, 0, &m), "other key");
        assert!(RouteKey::from_slice(&[0; 31]).is_none() && SlotSecret::from_slice(&[0; 33]).is_none());
        assert_eq!(format!("{key:?} {s0:?}"), "RouteKey(redacted) SlotSecret(redacted)");
    }
}
