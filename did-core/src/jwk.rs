//! JSON Web Keys (RFC 7517) for OKP (RFC 8037) and EC keys, public and private.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{KeyKind, PublicKey, SecretKey};

/// A JWK as it appears in DID documents and key files. The private part `d`
/// is zeroized on drop and never shown by `Debug`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    /// Key type: `OKP` or `EC`.
    pub kty: String,
    /// Curve name.
    pub crv: String,
    /// Base64url x coordinate (or the whole OKP public key).
    pub x: String,
    /// Base64url y coordinate (EC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Base64url private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<Zeroizing<String>>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use (`sig` or `enc`), informational.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Algorithm hint, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("crv", &self.crv)
            .field("x", &self.x)
            .field("y", &self.y)
            .field("d", &self.d.as_ref().map(|_| "<redacted>"))
            .field("kid", &self.kid)
            .finish()
    }
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>> {
    B64.decode(s.trim_end_matches('=')).map_err(|_| Error::key(format!("JWK `{what}` is not base64url")))
}

impl Jwk {
    /// The public JWK of a key.
    pub fn from_public(key: &PublicKey) -> Jwk {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let (kty, x, y) = match key {
            PublicKey::Ed25519(_) | PublicKey::X25519(_) => ("OKP", B64.encode(key.to_bytes()), None),
            PublicKey::P256(k) => {
                let p = k.to_encoded_point(false);
                ("EC", B64.encode(p.x().map(|x| x.to_vec()).unwrap_or_default()), p.y().map(|y| B64.encode(y)))
            }
            PublicKey::P384(k) => {
                let p = k.to_encoded_point(false);
                ("EC", B64.encode(p.x().map(|x| x.to_vec()).unwrap_or_default()), p.y().map(|y| B64.encode(y)))
            }
            PublicKey::P521(k) => {
                let p = k.to_encoded_point(false);
                ("EC", B64.encode(p.x().map(|x| x.to_vec()).unwrap_or_default()), p.y().map(|y| B64.encode(y)))
            }
            PublicKey::Secp256k1(k) => {
                let p = k.to_encoded_point(false);
                ("EC", B64.encode(p.x().map(|x| x.to_vec()).unwrap_or_default()), p.y().map(|y| B64.encode(y)))
            }
        };
        Jwk { kty: kty.into(), crv: key.kind().crv().into(), x, y, d: None, kid: None, use_: None, alg: None }
    }

    /// The private JWK of a key (includes the public part).
    pub fn from_secret(key: &SecretKey) -> Jwk {
        let mut jwk = Jwk::from_public(&key.public_key());
        jwk.d = Some(Zeroizing::new(B64.encode(&*key.to_bytes())));
        jwk
    }

    /// Sets the key id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Jwk {
        self.kid = Some(kid.into());
        self
    }

    /// The key type, checking `kty` against `crv`.
    pub fn kind(&self) -> Result<KeyKind> {
        let kind = KeyKind::from_crv(&self.crv)?;
        let expected = match kind {
            KeyKind::Ed25519 | KeyKind::X25519 => "OKP",
            _ => "EC",
        };
        if self.kty != expected {
            return Err(Error::key(format!("JWK kty {} does not match crv {}", self.kty, self.crv)));
        }
        Ok(kind)
    }

    /// The public key.
    pub fn public_key(&self) -> Result<PublicKey> {
        let kind = self.kind()?;
        let x = b64(&self.x, "x")?;
        match kind {
            KeyKind::Ed25519 | KeyKind::X25519 => PublicKey::from_bytes(kind, &x),
            _ => {
                let y = b64(self.y.as_deref().ok_or_else(|| Error::key("EC JWK without `y`"))?, "y")?;
                // RFC 7518 §6.2.1.2 wants full-size coordinates, but Authlib (so
                // didcomm-python) drops leading zero bytes: left-pad, never truncate.
                let size = match kind {
                    KeyKind::P384 => 48,
                    KeyKind::P521 => 66,
                    _ => 32,
                };
                if x.len() > size || y.len() > size {
                    return Err(Error::key(format!("EC JWK coordinate longer than {size} bytes for {}", kind.crv())));
                }
                let mut sec1 = vec![0u8; 1 + 2 * size];
                sec1[0] = 4;
                sec1[1 + size - x.len()..1 + size].copy_from_slice(&x);
                sec1[1 + 2 * size - y.len()..].copy_from_slice(&y);
                PublicKey::from_bytes(kind, &sec1)
            }
        }
    }

    /// The private key, checked against the public part.
    pub fn secret_key(&self) -> Result<SecretKey> {
        let d = self.d.as_ref().ok_or_else(|| Error::key("JWK has no private part `d`"))?;
        let bytes = Zeroizing::new(b64(d, "d")?);
        let sk = SecretKey::from_bytes(self.kind()?, &bytes)?;
        if sk.public_key() != self.public_key()? {
            return Err(Error::key("JWK private key `d` does not match its public key `x`"));
        }
        Ok(sk)
    }

    /// The same JWK without the private part.
    pub fn to_public(&self) -> Jwk {
        Jwk { d: None, ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8037_ed25519_example() {
        // RFC 8037 Appendix A.1
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519",
                "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
                "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        let sk = jwk.secret_key().unwrap();
        assert_eq!(Jwk::from_secret(&sk).x, jwk.x);
        // RFC 8037 A.4: signature over "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
        let sig = sk.sign(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc").unwrap();
        assert_eq!(
            B64.encode(sig),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn rfc8037_x25519_example() {
        // RFC 8037 Appendix A.6 (the RFC 7748 test keys)
        let bob = Jwk {
            kty: "OKP".into(),
            crv: "X25519".into(),
            x: "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08".into(),
            y: None,
            d: None,
            kid: None,
            use_: None,
            alg: None,
        };
        let eph = SecretKey::from_bytes(
            KeyKind::X25519,
            &hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
        )
        .unwrap();
        let z = eph.ecdh(&bob.public_key().unwrap()).unwrap();
        assert_eq!(*z, hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"));
    }

    #[test]
    fn mismatched_private_key_rejected() {
        let a = Jwk::from_secret(&SecretKey::generate(KeyKind::X25519));
        let b = Jwk::from_secret(&SecretKey::generate(KeyKind::X25519));
        let franken = Jwk { d: b.d.clone(), ..a };
        assert!(franken.secret_key().is_err());
    }

    #[test]
    fn ec_roundtrip() {
        for kind in [KeyKind::P256, KeyKind::P384, KeyKind::P521, KeyKind::Secp256k1] {
            let sk = SecretKey::generate(kind);
            let jwk = Jwk::from_secret(&sk);
            assert_eq!(jwk.kty, "EC");
            assert_eq!(jwk.secret_key().unwrap().public_key(), sk.public_key());
        }
    }

    #[test]
    fn short_ec_coordinates_are_left_padded() {
        // Authlib writes EC coordinates without leading zero bytes; e.g. a P-521
        // coordinate below 2^512 takes 65 bytes instead of 66.
        for kind in [KeyKind::P256, KeyKind::P521] {
            let mut found = false;
            for _ in 0..4000 {
                let pk = SecretKey::generate(kind).public_key();
                let full = Jwk::from_public(&pk);
                let y = b64(full.y.as_deref().unwrap(), "y").unwrap();
                if y[0] != 0 {
                    continue;
                }
                let short = Jwk { y: Some(B64.encode(&y[1..])), ..full.clone() };
                assert_eq!(short.public_key().unwrap(), pk);
                found = true;
                break;
            }
            assert!(found, "no {kind:?} key with a leading zero in y");
        }
        let long = Jwk::from_public(&SecretKey::generate(KeyKind::P256).public_key());
        let x = b64(&long.x, "x").unwrap();
        let too_long = Jwk { x: B64.encode([&[0u8][..], &x].concat()), ..long };
        assert!(too_long.public_key().is_err());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
