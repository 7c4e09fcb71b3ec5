//! Secret keys: generation, raw bytes, signatures and key agreement.

use std::fmt;

use ed25519_dalek::Signer;
use rand::rngs::OsRng;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::{KeyKind, PublicKey, X25519Secret};
use crate::error::{Error, Result};

/// A private key. Zeroized on drop; `Debug` never shows the secret.
#[derive(Clone)]
pub enum SecretKey {
    /// Ed25519 signing key.
    Ed25519(ed25519_dalek::SigningKey),
    /// X25519 static secret (agreement by AWS-LC, see [`X25519Secret`]).
    X25519(X25519Secret),
    /// P-256 secret scalar.
    P256(p256::SecretKey),
    /// P-384 secret scalar.
    P384(p384::SecretKey),
    /// P-521 secret scalar.
    P521(p521::SecretKey),
    /// secp256k1 secret scalar.
    Secp256k1(k256::SecretKey),
}

impl SecretKey {
    /// Generates a fresh random key.
    pub fn generate(kind: KeyKind) -> SecretKey {
        match kind {
            KeyKind::Ed25519 => SecretKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
            KeyKind::X25519 => SecretKey::X25519(X25519Secret::random()),
            KeyKind::P256 => SecretKey::P256(p256::SecretKey::random(&mut OsRng)),
            KeyKind::P384 => SecretKey::P384(p384::SecretKey::random(&mut OsRng)),
            KeyKind::P521 => SecretKey::P521(p521::SecretKey::random(&mut OsRng)),
            KeyKind::Secp256k1 => SecretKey::Secp256k1(k256::SecretKey::random(&mut OsRng)),
        }
    }

    /// Builds a key from raw secret bytes (the Ed25519 seed, the X25519 scalar, or the
    /// big-endian scalar of a Weierstrass curve).
    pub fn from_bytes(kind: KeyKind, bytes: &[u8]) -> Result<SecretKey> {
        let bad = || Error::key(format!("{} private key is invalid", kind.crv()));
        Ok(match kind {
            KeyKind::Ed25519 => {
                let arr: Zeroizing<[u8; 32]> = Zeroizing::new(bytes.try_into().map_err(|_| bad())?);
                SecretKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&arr))
            }
            KeyKind::X25519 => {
                let arr: Zeroizing<[u8; 32]> = Zeroizing::new(bytes.try_into().map_err(|_| bad())?);
                SecretKey::X25519(X25519Secret::from_bytes(&arr)?)
            }
            KeyKind::P256 => SecretKey::P256(p256::SecretKey::from_slice(bytes).map_err(|_| bad())?),
            KeyKind::P384 => SecretKey::P384(p384::SecretKey::from_slice(bytes).map_err(|_| bad())?),
            KeyKind::P521 => SecretKey::P521(p521::SecretKey::from_slice(bytes).map_err(|_| bad())?),
            KeyKind::Secp256k1 => SecretKey::Secp256k1(k256::SecretKey::from_slice(bytes).map_err(|_| bad())?),
        })
    }

    /// Raw secret bytes (see [`SecretKey::from_bytes`]).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(match self {
            SecretKey::Ed25519(k) => k.to_bytes().to_vec(),
            SecretKey::X25519(k) => k.to_bytes().to_vec(),
            SecretKey::P256(k) => k.to_bytes().to_vec(),
            SecretKey::P384(k) => k.to_bytes().to_vec(),
            SecretKey::P521(k) => k.to_bytes().to_vec(),
            SecretKey::Secp256k1(k) => k.to_bytes().to_vec(),
        })
    }

    /// The key's type.
    pub fn kind(&self) -> KeyKind {
        match self {
            SecretKey::Ed25519(_) => KeyKind::Ed25519,
            SecretKey::X25519(_) => KeyKind::X25519,
            SecretKey::P256(_) => KeyKind::P256,
            SecretKey::P384(_) => KeyKind::P384,
            SecretKey::P521(_) => KeyKind::P521,
            SecretKey::Secp256k1(_) => KeyKind::Secp256k1,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SecretKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SecretKey::X25519(k) => PublicKey::X25519(k.public_key()),
            SecretKey::P256(k) => PublicKey::P256(k.public_key()),
            SecretKey::P384(k) => PublicKey::P384(k.public_key()),
            SecretKey::P521(k) => PublicKey::P521(k.public_key()),
            SecretKey::Secp256k1(k) => PublicKey::Secp256k1(k.public_key()),
        }
    }

    /// The X25519 secret derived from an Ed25519 seed: clamp(SHA-512(seed)[..32]).
    pub fn ed25519_to_x25519(&self) -> Result<SecretKey> {
        match self {
            SecretKey::Ed25519(k) => {
                let h = Zeroizing::new(Sha512::digest(k.to_bytes()));
                let mut s = Zeroizing::new([0u8; 32]);
                s.copy_from_slice(&h[..32]);
                s[0] &= 248;
                s[31] &= 127;
                s[31] |= 64;
                Ok(SecretKey::X25519(X25519Secret::from_bytes(&s)?))
            }
            _ => Err(Error::key("only Ed25519 keys convert to X25519")),
        }
    }

    /// ECDH with a public key of the same curve. Rejects low-order X25519 points.
    pub fn ecdh(&self, public: &PublicKey) -> Result<Zeroizing<Vec<u8>>> {
        let z = match (self, public) {
            (SecretKey::X25519(s), PublicKey::X25519(p)) => s.diffie_hellman(p)?.to_vec(),
            (SecretKey::P256(s), PublicKey::P256(p)) => {
                p256::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine()).raw_secret_bytes().to_vec()
            }
            (SecretKey::P384(s), PublicKey::P384(p)) => {
                p384::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine()).raw_secret_bytes().to_vec()
            }
            (SecretKey::P521(s), PublicKey::P521(p)) => {
                p521::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine()).raw_secret_bytes().to_vec()
            }
            (SecretKey::Secp256k1(s), PublicKey::Secp256k1(p)) => {
                k256::ecdh::diffie_hellman(s.to_nonzero_scalar(), p.as_affine()).raw_secret_bytes().to_vec()
            }
            (s, p) => {
                return Err(Error::key(format!(
                    "cannot do key agreement between {} and {} keys",
                    s.kind().crv(),
                    p.kind().crv()
                )))
            }
        };
        Ok(Zeroizing::new(z))
    }

    /// The JWS algorithm name this key signs with.
    pub fn jws_alg(&self) -> Result<&'static str> {
        match self {
            SecretKey::Ed25519(_) => Ok("EdDSA"),
            SecretKey::P256(_) => Ok("ES256"),
            SecretKey::P384(_) => Ok("ES384"),
            SecretKey::P521(_) => Ok("ES512"),
            SecretKey::Secp256k1(_) => Ok("ES256K"),
            SecretKey::X25519(_) => Err(Error::key("X25519 keys cannot sign")),
        }
    }

    /// Signs `msg` with the key's JWS algorithm ([`SecretKey::jws_alg`]).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        Ok(match self {
            SecretKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
            SecretKey::P256(k) => {
                let sig: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(k).sign(msg);
                sig.to_bytes().to_vec()
            }
            SecretKey::P384(k) => {
                let sig: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(k).sign(msg);
                sig.to_bytes().to_vec()
            }
            SecretKey::P521(k) => {
                let sk = p521::ecdsa::SigningKey::from_slice(&k.to_bytes()).map_err(|_| Error::key("bad P-521 key"))?;
                let sig: p521::ecdsa::Signature = sk.sign(msg);
                sig.to_bytes().to_vec()
            }
            SecretKey::Secp256k1(k) => {
                let sig: k256::ecdsa::Signature = k256::ecdsa::SigningKey::from(k).sign(msg);
                sig.to_bytes().to_vec()
            }
            SecretKey::X25519(_) => return Err(Error::key("X25519 keys cannot sign")),
        })
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.kind().crv())
    }
}
