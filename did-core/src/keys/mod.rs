//! Public and secret keys of the curves DIDComm v2 uses, with multicodec/multibase
//! encodings and the Ed25519 → X25519 conversion of the did:key spec.

use std::fmt;

use ed25519_dalek::Verifier;

use crate::error::{Error, Result};

mod secret;
mod x25519;
pub use secret::SecretKey;
pub use x25519::X25519Secret;

/// The key types didmpc understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Ed25519 signing key (EdDSA).
    Ed25519,
    /// X25519 key agreement key.
    X25519,
    /// NIST P-256 (ES256 / ECDH).
    P256,
    /// NIST P-384 (ES384 / ECDH).
    P384,
    /// NIST P-521 (ES512 / ECDH).
    P521,
    /// secp256k1 (ES256K / ECDH).
    Secp256k1,
}

impl KeyKind {
    /// The JWK `crv` name.
    pub fn crv(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "Ed25519",
            KeyKind::X25519 => "X25519",
            KeyKind::P256 => "P-256",
            KeyKind::P384 => "P-384",
            KeyKind::P521 => "P-521",
            KeyKind::Secp256k1 => "secp256k1",
        }
    }

    /// Parses a JWK `crv` name.
    pub fn from_crv(crv: &str) -> Result<KeyKind> {
        Ok(match crv {
            "Ed25519" => KeyKind::Ed25519,
            "X25519" => KeyKind::X25519,
            "P-256" => KeyKind::P256,
            "P-384" => KeyKind::P384,
            "P-521" => KeyKind::P521,
            "secp256k1" => KeyKind::Secp256k1,
            other => return Err(Error::UnsupportedAlgorithm(format!("curve {other}"))),
        })
    }

    /// Whether the key type is usable for ECDH key agreement.
    pub fn is_key_agreement(self) -> bool {
        self != KeyKind::Ed25519
    }

    /// Multicodec code of the public key type.
    fn multicodec_pub(self) -> u64 {
        match self {
            KeyKind::Ed25519 => 0xed,
            KeyKind::X25519 => 0xec,
            KeyKind::Secp256k1 => 0xe7,
            KeyKind::P256 => 0x1200,
            KeyKind::P384 => 0x1201,
            KeyKind::P521 => 0x1202,
        }
    }

    fn from_multicodec_pub(code: u64) -> Result<KeyKind> {
        Ok(match code {
            0xed => KeyKind::Ed25519,
            0xec => KeyKind::X25519,
            0xe7 => KeyKind::Secp256k1,
            0x1200 => KeyKind::P256,
            0x1201 => KeyKind::P384,
            0x1202 => KeyKind::P521,
            other => return Err(Error::UnsupportedAlgorithm(format!("multicodec key type 0x{other:x}"))),
        })
    }
}

/// A public key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519 verifying key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// X25519 public key.
    X25519(x25519_dalek::PublicKey),
    /// P-256 public key (validated on the curve).
    P256(p256::PublicKey),
    /// P-384 public key (validated on the curve).
    P384(p384::PublicKey),
    /// P-521 public key (validated on the curve).
    P521(p521::PublicKey),
    /// secp256k1 public key (validated on the curve).
    Secp256k1(k256::PublicKey),
}

impl PublicKey {
    /// The key's type.
    pub fn kind(&self) -> KeyKind {
        match self {
            PublicKey::Ed25519(_) => KeyKind::Ed25519,
            PublicKey::X25519(_) => KeyKind::X25519,
            PublicKey::P256(_) => KeyKind::P256,
            PublicKey::P384(_) => KeyKind::P384,
            PublicKey::P521(_) => KeyKind::P521,
            PublicKey::Secp256k1(_) => KeyKind::Secp256k1,
        }
    }

    /// Builds a key from its raw bytes: 32 bytes for the 25519 curves, SEC1
    /// (compressed or uncompressed) for the Weierstrass curves.
    pub fn from_bytes(kind: KeyKind, bytes: &[u8]) -> Result<PublicKey> {
        let bad = || Error::key(format!("{} public key of {} bytes is invalid", kind.crv(), bytes.len()));
        Ok(match kind {
            KeyKind::Ed25519 => {
                let arr: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
                PublicKey::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| bad())?)
            }
            KeyKind::X25519 => {
                let arr: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
                PublicKey::X25519(x25519_dalek::PublicKey::from(arr))
            }
            KeyKind::P256 => PublicKey::P256(p256::PublicKey::from_sec1_bytes(bytes).map_err(|_| bad())?),
            KeyKind::P384 => PublicKey::P384(p384::PublicKey::from_sec1_bytes(bytes).map_err(|_| bad())?),
            KeyKind::P521 => PublicKey::P521(p521::PublicKey::from_sec1_bytes(bytes).map_err(|_| bad())?),
            KeyKind::Secp256k1 => PublicKey::Secp256k1(k256::PublicKey::from_sec1_bytes(bytes).map_err(|_| bad())?),
        })
    }

    /// Raw bytes: 32 bytes for the 25519 curves, compressed SEC1 otherwise.
    pub fn to_bytes(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        match self {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::X25519(k) => k.to_bytes().to_vec(),
            PublicKey::P256(k) => k.to_encoded_point(true).as_bytes().to_vec(),
            PublicKey::P384(k) => k.to_encoded_point(true).as_bytes().to_vec(),
            PublicKey::P521(k) => k.to_encoded_point(true).as_bytes().to_vec(),
            PublicKey::Secp256k1(k) => k.to_encoded_point(true).as_bytes().to_vec(),
        }
    }

    /// Multicodec-prefixed, base58btc multibase form (`z6Mk…`, `z6LS…`, …).
    pub fn to_multibase(&self) -> String {
        let mut buf = Vec::with_capacity(40);
        write_varint(self.kind().multicodec_pub(), &mut buf);
        buf.extend_from_slice(&self.to_bytes());
        multibase::encode(multibase::Base::Base58Btc, buf)
    }

    /// Parses a multicodec-prefixed multibase key.
    pub fn from_multibase(s: &str) -> Result<PublicKey> {
        let (_, bytes) = multibase::decode(s).map_err(|e| Error::key(format!("bad multibase key: {e}")))?;
        let (code, rest) = read_varint(&bytes).ok_or_else(|| Error::key("bad multicodec prefix"))?;
        PublicKey::from_bytes(KeyKind::from_multicodec_pub(code)?, rest)
    }

    /// The X25519 key derived from an Ed25519 key (u = (1+y)/(1−y)), as in the did:key spec.
    pub fn ed25519_to_x25519(&self) -> Result<PublicKey> {
        match self {
            PublicKey::Ed25519(k) => Ok(PublicKey::X25519(x25519_dalek::PublicKey::from(k.to_montgomery().to_bytes()))),
            _ => Err(Error::key("only Ed25519 keys convert to X25519")),
        }
    }

    /// Verifies a JWS signature (`EdDSA`, `ES256`, `ES256K`, `ES384`) over `msg`.
    pub fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> Result<bool> {
        let ok = match (alg, self) {
            ("EdDSA", PublicKey::Ed25519(k)) => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(s) => k.verify_strict(msg, &s).is_ok(),
                Err(_) => false,
            },
            ("ES256", PublicKey::P256(k)) => match p256::ecdsa::Signature::from_slice(sig) {
                Ok(s) => p256::ecdsa::VerifyingKey::from(k).verify(msg, &s).is_ok(),
                Err(_) => false,
            },
            ("ES384", PublicKey::P384(k)) => match p384::ecdsa::Signature::from_slice(sig) {
                Ok(s) => p384::ecdsa::VerifyingKey::from(k).verify(msg, &s).is_ok(),
                Err(_) => false,
            },
            ("ES512", PublicKey::P521(k)) => {
                match (p521::ecdsa::Signature::from_slice(sig), p521::ecdsa::VerifyingKey::from_affine(*k.as_affine()))
                {
                    (Ok(s), Ok(vk)) => vk.verify(msg, &s).is_ok(),
                    _ => false,
                }
            }
            ("ES256K", PublicKey::Secp256k1(k)) => match k256::ecdsa::Signature::from_slice(sig) {
                Ok(s) => {
                    // Accept high-S signatures as JOSE does not mandate low-S.
                    let s = s.normalize_s().unwrap_or(s);
                    k256::ecdsa::VerifyingKey::from(k).verify(msg, &s).is_ok()
                }
                Err(_) => false,
            },
            (alg, k) => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "signature algorithm {alg} with a {} key",
                    k.kind().crv()
                )))
            }
        };
        Ok(ok)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_multibase())
    }
}

fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(9) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests;
