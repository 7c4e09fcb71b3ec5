//! Transport encryption after the handshake: ChaCha20-Poly1305 with explicit nonces,
//! key epochs advanced by the Noise REKEY function, and a replay window per epoch.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use zeroize::{Zeroize, Zeroizing};

use crate::frame::{Header, HEADER_LEN, TAG_LEN};

/// Nonces remembered behind the highest one seen, per epoch.
pub const REPLAY_WINDOW: u64 = 4096;

fn noise_nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(b)
}

/// Noise REKEY: the first 32 bytes of ENCRYPT(k, 2^64−1, "", zeros(32)).
fn rekey(key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let mut buf = Zeroizing::new([0u8; 32]);
    // Encryption in place cannot fail for 32 bytes.
    let _tag = cipher.encrypt_in_place_detached(&noise_nonce(u64::MAX), &[], buf.as_mut());
    buf
}

/// The sending side: current key, epoch and next nonce.
pub struct Sealer {
    key: Zeroizing<[u8; 32]>,
    cipher: ChaCha20Poly1305,
    epoch: u8,
    nonce: u64,
}

impl Sealer {
    /// A sealer for epoch 0.
    pub fn new(key: Zeroizing<[u8; 32]>) -> Sealer {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        Sealer { key, cipher, epoch: 0, nonce: 0 }
    }

    /// Packets sealed in the current epoch.
    pub fn packets_in_epoch(&self) -> u64 {
        self.nonce
    }

    /// The current epoch.
    pub fn epoch(&self) -> u8 {
        self.epoch
    }

    /// Moves to the next epoch (new key = REKEY(key), nonces restart at 0).
    pub fn rekey(&mut self) {
        self.key = rekey(&self.key);
        self.cipher = ChaCha20Poly1305::new(Key::from_slice(self.key.as_ref()));
        self.epoch = self.epoch.wrapping_add(1);
        self.nonce = 0;
    }

    /// Seals the plaintext that `write` appends into a packet appended to `out` (no extra
    /// copy; bytes already in `out` stay in front): header || ciphertext || tag.
    pub fn seal_with(&mut self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
        let header = Header { epoch: self.epoch, nonce: self.nonce };
        self.nonce += 1;
        let start = out.len();
        out.extend_from_slice(&header.encode());
        write(out);
        let (aad, body) = out[start..].split_at_mut(HEADER_LEN);
        // ChaCha20-Poly1305 encryption only fails for inputs over 256 GiB.
        let tag = self.cipher.encrypt_in_place_detached(&noise_nonce(header.nonce), aad, body).unwrap_or_default();
        out.extend_from_slice(&tag);
    }

    /// Seals `plaintext` into a packet: header || ciphertext || tag.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let header = Header { epoch: self.epoch, nonce: self.nonce };
        self.nonce += 1;
        out.clear();
        out.reserve(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(plaintext);
        let (aad, body) = out.split_at_mut(HEADER_LEN);
        // ChaCha20-Poly1305 encryption only fails for inputs over 256 GiB.
        let tag = self.cipher.encrypt_in_place_detached(&noise_nonce(header.nonce), aad, body).unwrap_or_default();
        out.extend_from_slice(&tag);
    }
}

struct EpochKeys {
    epoch: u8,
    key: Zeroizing<[u8; 32]>,
    cipher: ChaCha20Poly1305,
    highest: Option<u64>,
    window: Box<[u64; (REPLAY_WINDOW / 64) as usize]>,
}

impl EpochKeys {
    fn new(epoch: u8, key: Zeroizing<[u8; 32]>) -> EpochKeys {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        EpochKeys { epoch, key, cipher, highest: None, window: Box::new([0; (REPLAY_WINDOW / 64) as usize]) }
    }

    fn bit(n: u64) -> (usize, u64) {
        let i = n % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Whether `n` may be accepted (not too old, not seen).
    fn fresh(&self, n: u64) -> bool {
        match self.highest {
            None => true,
            Some(h) if n > h => true,
            Some(h) if h - n >= REPLAY_WINDOW => false,
            Some(_) => {
                let (w, b) = EpochKeys::bit(n);
                self.window[w] & b == 0
            }
        }
    }

    fn mark(&mut self, n: u64) {
        if let Some(h) = self.highest {
            if n > h {
                // Clear the slots that slide out of the window.
                let steps = (n - h).min(REPLAY_WINDOW);
                for k in 1..=steps {
                    let (w, b) = EpochKeys::bit(h + k);
                    self.window[w] &= !b;
                }
            }
        }
        if self.highest.is_none_or(|h| n > h) {
            self.highest = Some(n);
        }
        let (w, b) = EpochKeys::bit(n);
        self.window[w] |= b;
    }
}

/// Why a packet was dropped (counted, never fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Authentication failed (modified, or not for this session).
    Forged,
    /// Seen before, or older than the replay window.
    Replayed,
    /// Its epoch is neither the current, the previous nor the next one.
    StaleEpoch,
}

/// The receiving side: the current and previous epoch keys with their replay windows.
pub struct Opener {
    current: EpochKeys,
    previous: Option<EpochKeys>,
}

impl Opener {
    /// An opener for epoch 0.
    pub fn new(key: Zeroizing<[u8; 32]>) -> Opener {
        Opener { current: EpochKeys::new(0, key), previous: None }
    }

    /// Opens a packet; returns the plaintext (in `buf`) or why it was dropped.
    pub fn open(&mut self, packet: &[u8], buf: &mut Vec<u8>) -> std::result::Result<(), Drop> {
        let (header, ct) = Header::decode(packet).map_err(|_| Drop::Forged)?;
        let next_epoch = self.current.epoch.wrapping_add(1);
        let keys = if header.epoch == self.current.epoch {
            &mut self.current
        } else if self.previous.as_ref().is_some_and(|p| p.epoch == header.epoch) {
            self.previous.as_mut().ok_or(Drop::StaleEpoch)?
        } else if header.epoch == next_epoch {
            // Try the next key without committing to it until the packet authenticates.
            let mut candidate = EpochKeys::new(next_epoch, rekey(&self.current.key));
            decrypt(&candidate.cipher, &packet[..HEADER_LEN], header.nonce, ct, buf)?;
            candidate.mark(header.nonce);
            self.previous = Some(std::mem::replace(&mut self.current, candidate));
            return Ok(());
        } else {
            return Err(Drop::StaleEpoch);
        };
        if !keys.fresh(header.nonce) {
            return Err(Drop::Replayed);
        }
        decrypt(&keys.cipher, &packet[..HEADER_LEN], header.nonce, ct, buf)?;
        keys.mark(header.nonce);
        Ok(())
    }
}

fn decrypt(
    cipher: &ChaCha20Poly1305,
    aad: &[u8],
    nonce: u64,
    ct: &[u8],
    buf: &mut Vec<u8>,
) -> std::result::Result<(), Drop> {
    let (body, tag) = ct.split_at(ct.len() - TAG_LEN);
    buf.clear();
    buf.extend_from_slice(body);
    match cipher.decrypt_in_place_detached(&noise_nonce(nonce), aad, buf, Tag::from_slice(tag)) {
        Ok(()) => Ok(()),
        Err(_) => {
            buf.zeroize();
            buf.clear();
            Err(Drop::Forged)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sealer, Opener) {
        let k = Zeroizing::new([7u8; 32]);
        (Sealer::new(k.clone()), Opener::new(k))
    }

    #[test]
    fn seal_open_tamper_replay() {
        let (mut s, mut o) = pair();
        let mut p = Vec::new();
        let mut out = Vec::new();
        s.seal(b"hello", &mut p);
        o.open(&p, &mut out).unwrap();
        assert_eq!(out, b"hello");
        assert_eq!(o.open(&p, &mut out), Err(Drop::Replayed));
        let mut bad = p.clone();
        bad[12] ^= 1;
        s.seal(b"second", &mut p);
        let mut bad2 = p.clone();
        bad2[3] ^= 1; // header is authenticated too
        assert_eq!(o.open(&bad2, &mut out), Err(Drop::Forged));
        o.open(&p, &mut out).unwrap();
        assert_eq!(out, b"second");
        let _ = bad;
    }

    #[test]
    fn reordering_within_the_window_and_old_packets() {
        let (mut s, mut o) = pair();
        let mut packets = Vec::new();
        for i in 0..10u8 {
            let mut p = Vec::new();
            s.seal(&[i], &mut p);
            packets.push(p);
        }
        let mut out = Vec::new();
        for i in [3usize, 1, 0, 9, 2, 8, 4, 5, 7, 6] {
            o.open(&packets[i], &mut out).unwrap();
            assert_eq!(out, [i as u8]);
        }
        for p in &packets {
            assert_eq!(o.open(p, &mut out), Err(Drop::Replayed));
        }
        // Far ahead: everything older than the window is refused.
        let mut far = Vec::new();
        for _ in 0..REPLAY_WINDOW + 20 {
            s.seal(b"x", &mut far);
        }
        o.open(&far, &mut out).unwrap();
        assert_eq!(o.open(&packets[9], &mut out), Err(Drop::Replayed));
    }

    #[test]
    fn rekey_epochs() {
        let (mut s, mut o) = pair();
        let mut out = Vec::new();
        let mut old = Vec::new();
        s.seal(b"epoch0", &mut old);
        s.rekey();
        let mut p = Vec::new();
        s.seal(b"epoch1", &mut p);
        o.open(&p, &mut out).unwrap();
        assert_eq!(out, b"epoch1");
        o.open(&old, &mut out).unwrap(); // late packet of the previous epoch
        assert_eq!(out, b"epoch0");
        s.rekey();
        s.rekey();
        s.seal(b"epoch3", &mut p);
        assert_eq!(o.open(&p, &mut out), Err(Drop::StaleEpoch));
        // A forged packet claiming the next epoch does not advance the opener.
        let mut next = pair().0;
        next.rekey();
        next.rekey();
        let mut forged = Vec::new();
        next.seal(b"x", &mut forged);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(o.open(&forged, &mut out), Err(Drop::Forged));
        let mut late = Vec::new();
        let mut e1 = pair().0;
        e1.rekey();
        e1.nonce = 5;
        e1.seal(b"still epoch 1", &mut late);
        o.open(&late, &mut out).unwrap();
        assert_eq!(out, b"still epoch 1");
    }
}
