//! The reflexive-address probe: a party asks its mediator over UDP "from which address do
//! you see me?", to learn the address its NAT gives its UDP socket (a direct-path
//! candidate, `specs/session.md` §8).
//!
//! The probe is authenticated, so the mediator is no open reflector: a party first gets a
//! probe key over its authenticated DIDComm link (`reflex/1.0/request` → `grant`), then
//! every probe carries a MAC under that key, and every answer one too (an on-path attacker
//! cannot feed a party a false address). An answer is never longer than the probe that
//! asked for it (no amplification), and the mediator answers a key at a bounded rate.
//!
//! ```text
//! probe  (64 bytes)   10 ‖ 01 ‖ key_id[16] ‖ txid[12] ‖ 00 × 18 ‖ mac[16]
//! answer (≤ 49 bytes) 11 ‖ 01 ‖ txid[12] ‖ family u8 (4 | 6) ‖ port u16 ‖ address[4 | 16] ‖ mac[16]
//! mac = HMAC-SHA256(key, everything before it)[..16]
//! key_id = expires (u64, Unix seconds, big-endian) ‖ 8 random bytes
//! key = HMAC-SHA256(mediator secret, "didmpc reflex/1 key" ‖ key_id)
//! ```
//!
//! The mediator keeps no state per key: it recomputes the key from the key id. The key
//! expires with the time in its id; a restarted mediator (new secret) answers no old key.

use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// First byte of a probe.
pub const KIND_PROBE: u8 = 0x10;
/// First byte of an answer.
pub const KIND_ANSWER: u8 = 0x11;
/// Protocol version byte.
pub const VERSION: u8 = 0x01;
/// Length of a probe.
pub const PROBE_LEN: usize = 64;
/// Length of a key id.
pub const KEY_ID_LEN: usize = 16;
/// Length of a transaction id.
pub const TXID_LEN: usize = 12;
/// Length of a MAC.
pub const MAC_LEN: usize = 16;
/// The DIDComm protocol of the key grant.
pub const PROTOCOL: &str = "https://didmpc.dev/protocols/reflex/1.0";
const KEY_LABEL: &[u8] = b"didmpc reflex/1 key";

fn hmac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m
}

fn mac(key: &ProbeKey, data: &[u8]) -> [u8; MAC_LEN] {
    let full = hmac(&key.0, &[data]).finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

fn verify(key: &ProbeKey, data: &[u8], tag: &[u8]) -> bool {
    hmac(&key.0, &[data]).verify_truncated_left(tag).is_ok()
}

/// A probe key (what the grant gives a party, and what the mediator recomputes).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ProbeKey([u8; 32]);

impl ProbeKey {
    /// From its 32 bytes.
    pub fn from_slice(b: &[u8]) -> Option<ProbeKey> {
        b.try_into().ok().map(ProbeKey)
    }

    /// Its bytes (to put in the grant).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ProbeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeKey(<redacted>)")
    }
}

/// The mediator's secret every probe key derives from.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ServerSecret([u8; 32]);

impl Default for ServerSecret {
    fn default() -> Self {
        ServerSecret::generate()
    }
}

impl ServerSecret {
    /// A fresh random secret.
    pub fn generate() -> ServerSecret {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        ServerSecret(k)
    }

    /// A new key id expiring at `expires` (Unix seconds), and its key.
    pub fn issue(&self, expires: u64) -> ([u8; KEY_ID_LEN], ProbeKey) {
        let mut id = [0u8; KEY_ID_LEN];
        id[..8].copy_from_slice(&expires.to_be_bytes());
        OsRng.fill_bytes(&mut id[8..]);
        (id, self.key(&id))
    }

    /// The key of a key id.
    pub fn key(&self, id: &[u8; KEY_ID_LEN]) -> ProbeKey {
        ProbeKey(hmac(&self.0, &[KEY_LABEL, id]).finalize().into_bytes().into())
    }
}

/// When a key id expires (Unix seconds).
pub fn expires(id: &[u8; KEY_ID_LEN]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[..8]);
    u64::from_be_bytes(b)
}

/// A fresh transaction id.
pub fn txid() -> [u8; TXID_LEN] {
    let mut t = [0u8; TXID_LEN];
    OsRng.fill_bytes(&mut t);
    t
}

/// The probe for key `id` (with its `key`) and transaction `txid`.
pub fn probe(id: &[u8; KEY_ID_LEN], key: &ProbeKey, txid: &[u8; TXID_LEN]) -> [u8; PROBE_LEN] {
    let mut p = [0u8; PROBE_LEN];
    p[0] = KIND_PROBE;
    p[1] = VERSION;
    p[2..18].copy_from_slice(id);
    p[18..30].copy_from_slice(txid);
    let tag = mac(key, &p[..PROBE_LEN - MAC_LEN]);
    p[PROBE_LEN - MAC_LEN..].copy_from_slice(&tag);
    p
}

/// Why the mediator does not answer a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a probe of this version, or the wrong length or padding.
    Malformed,
    /// The key expired.
    Expired,
    /// The MAC does not verify.
    BadMac,
}

/// A probe that verified: its key id and transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The key id.
    pub key_id: [u8; KEY_ID_LEN],
    /// The transaction id.
    pub txid: [u8; TXID_LEN],
}

/// Checks a datagram as a probe, at time `now` (Unix seconds); returns it and its key.
pub fn check_probe(secret: &ServerSecret, datagram: &[u8], now: u64) -> Result<(Probe, ProbeKey), Refusal> {
    if datagram.len() != PROBE_LEN || datagram[0] != KIND_PROBE || datagram[1] != VERSION {
        return Err(Refusal::Malformed);
    }
    if datagram[30..PROBE_LEN - MAC_LEN].iter().any(|b| *b != 0) {
        return Err(Refusal::Malformed);
    }
    let mut key_id = [0u8; KEY_ID_LEN];
    key_id.copy_from_slice(&datagram[2..18]);
    if expires(&key_id) < now {
        return Err(Refusal::Expired);
    }
    let key = secret.key(&key_id);
    if !verify(&key, &datagram[..PROBE_LEN - MAC_LEN], &datagram[PROBE_LEN - MAC_LEN..]) {
        return Err(Refusal::BadMac);
    }
    let mut txid = [0u8; TXID_LEN];
    txid.copy_from_slice(&datagram[18..30]);
    Ok((Probe { key_id, txid }, key))
}

/// The answer telling the prober it came from `seen` (at most 49 bytes, under [`PROBE_LEN`]).
pub fn answer(key: &ProbeKey, txid: &[u8; TXID_LEN], seen: SocketAddr) -> Vec<u8> {
    let mut a = Vec::with_capacity(49);
    a.extend_from_slice(&[KIND_ANSWER, VERSION]);
    a.extend_from_slice(txid);
    match seen.ip() {
        IpAddr::V4(v4) => {
            a.push(4);
            a.extend_from_slice(&seen.port().to_be_bytes());
            a.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            a.push(6);
            a.extend_from_slice(&seen.port().to_be_bytes());
            a.extend_from_slice(&v6.octets());
        }
    }
    let tag = mac(key, &a);
    a.extend_from_slice(&tag);
    a
}

/// The transaction id of an answer (to find the key it must verify under), if the datagram
/// looks like one.
pub fn answer_txid(datagram: &[u8]) -> Option<[u8; TXID_LEN]> {
    if datagram.len() < 2 + TXID_LEN || datagram[0] != KIND_ANSWER || datagram[1] != VERSION {
        return None;
    }
    datagram[2..2 + TXID_LEN].try_into().ok()
}

/// Verifies an answer under `key` and returns the address it reports.
pub fn check_answer(key: &ProbeKey, datagram: &[u8]) -> Option<SocketAddr> {
    answer_txid(datagram)?;
    let body = &datagram[2 + TXID_LEN..];
    let (ip, rest): (IpAddr, &[u8]) = match body.first()? {
        4 if body.len() == 1 + 2 + 4 + MAC_LEN => {
            let o: [u8; 4] = body[3..7].try_into().ok()?;
            (IpAddr::from(o), &body[7..])
        }
        6 if body.len() == 1 + 2 + 16 + MAC_LEN => {
            let o: [u8; 16] = body[3..19].try_into().ok()?;
            (IpAddr::from(o), &body[19..])
        }
        _ => return None,
    };
    let port = u16::from_be_bytes([body[1], body[2]]);
    verify(key, &datagram[..datagram.len() - MAC_LEN], rest).then_some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn probe_answer_roundtrip_and_refusals() {
        let secret = ServerSecret([9; 32]);
        let id = {
            let mut id = [0u8; KEY_ID_LEN];
            id[..8].copy_from_slice(&1000u64.to_be_bytes());
            id
        };
        let key = secret.key(&id);
        let tx = [3u8; TXID_LEN];
        let p = probe(&id, &key, &tx);
        assert_eq!(hex(&p[..30]), "100100000000000003e80000000000000000030303030303030303030303");
        let (got, k) = check_probe(&secret, &p, 1000).unwrap();
        assert_eq!(got, Probe { key_id: id, txid: tx });
        let seen: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let a = answer(&k, &tx, seen);
        assert_eq!(a.len(), 37);
        assert!(a.len() <= PROBE_LEN, "never more bytes than the probe");
        assert_eq!(hex(&a[..21]), "1101030303030303030303030303049c40cb007107");
        assert_eq!(check_answer(&key, &a), Some(seen));
        let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        let a6 = answer(&k, &tx, v6);
        assert!(a6.len() == 49 && a6.len() <= PROBE_LEN);
        assert_eq!(check_answer(&key, &a6), Some(v6));
        // Refusals.
        assert_eq!(check_probe(&secret, &p, 1001).unwrap_err(), Refusal::Expired);
        let mut bad = p;
        bad[20] ^= 1;
        assert_eq!(check_probe(&secret, &bad, 1000).unwrap_err(), Refusal::BadMac);
        let mut pad = p;
        pad[40] = 1;
        assert_eq!(check_probe(&secret, &pad, 1000).unwrap_err(), Refusal::Malformed);
        assert_eq!(check_probe(&secret, &p[..63], 1000).unwrap_err(), Refusal::Malformed);
        assert_eq!(check_probe(&ServerSecret([8; 32]), &p, 1000).unwrap_err(), Refusal::BadMac, "another mediator");
        // A forged or modified answer is refused.
        let mut fa = a.clone();
        fa[17] ^= 1;
        assert_eq!(check_answer(&key, &fa), None);
        assert_eq!(check_answer(&secret.key(&[1; 16]), &a), None);
        // Issued ids carry their expiry.
        let (id2, key2) = secret.issue(5000);
        assert_eq!(expires(&id2), 5000);
        assert_eq!(secret.key(&id2).as_bytes(), key2.as_bytes());
    }

    proptest! {
        /// Arbitrary datagrams never panic either side.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let secret = ServerSecret([1; 32]);
            let _ = check_probe(&secret, &bytes, 0);
            let _ = answer_txid(&bytes);
            let _ = check_answer(&secret.key(&[0; 16]), &bytes);
        }
    }
}
