//! X25519 static secrets whose agreement runs in AWS-LC.
//!
//! Every forward is anoncrypted to the mediator's static X25519 key, so one agreement is
//! most of what accepting a forward costs. AWS-LC's X25519 (through aws-lc-rs, already
//! linked for TLS) is faster than curve25519-dalek's on x86-64: see `benches/x25519.rs`
//! and `benches/RESULTS.md`. ring is no alternative: its agreement takes ephemeral keys only.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// An X25519 secret: its 32 bytes (for export), AWS-LC's key built from them once, and the
/// public key. Cloning shares the AWS-LC key. The bytes are zeroized on drop; AWS-LC
/// cleanses its copy when the last clone drops (its allocator clears freed memory).
#[derive(Clone)]
pub struct X25519Secret {
    bytes: Zeroizing<[u8; 32]>,
    key: Arc<PrivateKey>,
    public: x25519_dalek::PublicKey,
}

impl X25519Secret {
    /// A fresh secret from the operating system's RNG.
    pub fn random() -> X25519Secret {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut bytes[..]);
        // AWS-LC takes every 32-byte string as an X25519 secret (it clamps when it uses it).
        X25519Secret::from_bytes(&bytes).expect("AWS-LC accepts any 32-byte X25519 secret")
    }

    /// The secret with these bytes (the RFC 7748 scalar, unclamped as stored).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<X25519Secret> {
        let key = PrivateKey::from_private_key(&X25519, bytes)
            .map_err(|e| Error::key(format!("X25519 private key is invalid: {e}")))?;
        let public = key.compute_public_key().map_err(|_| Error::key("X25519 public key could not be computed"))?;
        let public: [u8; 32] =
            public.as_ref().try_into().map_err(|_| Error::key("X25519 public key is not 32 bytes"))?;
        Ok(X25519Secret { bytes: Zeroizing::new(*bytes), key: Arc::new(key), public: public.into() })
    }

    /// The secret's bytes.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.bytes.clone()
    }

    /// The matching public key.
    pub fn public_key(&self) -> x25519_dalek::PublicKey {
        self.public
    }

    /// The shared secret with `peer`. A low-order `peer` (all-zero result) is refused.
    pub fn diffie_hellman(&self, peer: &x25519_dalek::PublicKey) -> Result<Zeroizing<[u8; 32]>> {
        let peer = UnparsedPublicKey::new(&X25519, peer.as_bytes());
        agreement::agree(&self.key, peer, Error::key("X25519 public key has low order"), |z| {
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(z);
            Ok(out)
        })
    }
}

impl fmt::Debug for X25519Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X25519Secret(<redacted>)")
    }
}
