//! JWS in General (and, on input, flattened) JSON serialization for DIDComm signed messages.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{b64d, b64e, to_json_vec};
use crate::error::{clip, Error, Result};
use crate::keys::{PublicKey, SecretKey};

/// Most signatures accepted on one message.
pub const MAX_SIGNATURES: usize = 16;

/// A JWS in General JSON serialization.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Jws {
    /// Base64url payload.
    pub payload: String,
    /// The signatures.
    pub signatures: Vec<JwsSignature>,
}

/// One signature of a JWS.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JwsSignature {
    /// Base64url protected header.
    pub protected: String,
    /// Base64url signature.
    pub signature: String,
    /// Unprotected header (carries `kid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct Protected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<Value>,
}

/// Signs `payload` with `key`, naming it `kid` in the unprotected header.
pub fn sign(payload: &[u8], typ: &str, kid: &str, key: &SecretKey) -> Result<Jws> {
    let alg = key.jws_alg()?;
    let protected = Protected { typ: Some(typ.to_owned()), alg: alg.to_owned(), kid: None, crv: None, crit: None };
    let protected = b64e(to_json_vec(&protected)?);
    let payload = b64e(payload);
    let sig = key.sign(format!("{protected}.{payload}").as_bytes())?;
    Ok(Jws {
        payload,
        signatures: vec![JwsSignature {
            protected,
            signature: b64e(sig),
            header: Some(serde_json::json!({ "kid": kid })),
        }],
    })
}

/// A signature awaiting verification: who claims to have signed, with which algorithm.
#[derive(Debug, Clone)]
pub struct PendingSignature {
    /// The signer's key id.
    pub kid: String,
    /// The JWS algorithm.
    pub alg: String,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

impl PendingSignature {
    /// Verifies with the signer's public key.
    pub fn verify(&self, key: &PublicKey) -> Result<()> {
        let alg = if self.alg == "Ed25519" { "EdDSA" } else { self.alg.as_str() };
        if key.verify(alg, &self.signing_input, &self.signature)? {
            Ok(())
        } else {
            Err(Error::InvalidSignature(clip(&self.kid)))
        }
    }
}

/// A parsed JWS: the payload and the signatures to verify.
#[derive(Debug)]
pub struct ParsedJws {
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<PendingSignature>,
}

impl ParsedJws {
    /// Parses a General or flattened JSON JWS.
    pub fn parse(v: Value) -> Result<ParsedJws> {
        let jws: Jws = if v.get("signatures").is_some() {
            serde_json::from_value(v).map_err(|e| Error::malformed(format!("not a JWS: {e}")))?
        } else {
            let obj = v.as_object().ok_or_else(|| Error::malformed("JWS is not an object"))?;
            let get = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
            Jws {
                payload: get("payload").ok_or_else(|| Error::malformed("JWS without payload"))?,
                signatures: vec![JwsSignature {
                    protected: get("protected").ok_or_else(|| Error::malformed("JWS without protected header"))?,
                    signature: get("signature").ok_or_else(|| Error::malformed("JWS without signature"))?,
                    header: obj.get("header").cloned(),
                }],
            }
        };
        if jws.signatures.is_empty() || jws.signatures.len() > MAX_SIGNATURES {
            return Err(Error::malformed(format!("JWS has {} signatures", jws.signatures.len())));
        }
        let payload = b64d(&jws.payload, "payload")?;
        let mut signatures = Vec::with_capacity(jws.signatures.len());
        for s in &jws.signatures {
            let p: Protected = serde_json::from_slice(&b64d(&s.protected, "protected")?)
                .map_err(|e| Error::malformed(format!("JWS protected header: {e}")))?;
            if p.crit.is_some() {
                return Err(Error::UnsupportedAlgorithm("JWS critical header extensions (`crit`)".into()));
            }
            let unprotected_kid = s.header.as_ref().and_then(|h| h.get("kid")).and_then(Value::as_str);
            let kid = match (p.kid.as_deref(), unprotected_kid) {
                (Some(a), Some(b)) if a != b => return Err(Error::Protocol("JWS names two different kids".into())),
                (Some(k), _) | (None, Some(k)) => k.to_owned(),
                (None, None) => return Err(Error::malformed("JWS signature without `kid`")),
            };
            signatures.push(PendingSignature {
                kid,
                alg: p.alg,
                signing_input: format!("{}.{}", s.protected, jws.payload).into_bytes(),
                signature: b64d(&s.signature, "signature")?,
            });
        }
        Ok(ParsedJws { payload, signatures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;

    #[test]
    fn sign_verify_and_tamper() {
        for kind in [KeyKind::Ed25519, KeyKind::P256, KeyKind::Secp256k1] {
            let sk = SecretKey::generate(kind);
            let jws = sign(b"{\"a\":1}", "application/didcomm-signed+json", "did:ex:a#k", &sk).unwrap();
            let v = serde_json::to_value(&jws).unwrap();
            let parsed = ParsedJws::parse(v.clone()).unwrap();
            assert_eq!(parsed.payload, b"{\"a\":1}");
            assert_eq!(parsed.signatures[0].kid, "did:ex:a#k");
            parsed.signatures[0].verify(&sk.public_key()).unwrap();
            let other = SecretKey::generate(kind).public_key();
            assert!(matches!(parsed.signatures[0].verify(&other), Err(Error::InvalidSignature(_))));
            let mut w = v.clone();
            w["payload"] = b64e(b"{\"a\":2}").into();
            let p = ParsedJws::parse(w).unwrap();
            assert!(p.signatures[0].verify(&sk.public_key()).is_err());
        }
    }

    #[test]
    fn flattened_accepted_and_kid_required() {
        let sk = SecretKey::generate(KeyKind::Ed25519);
        let jws = sign(b"x", "t", "did:ex:a#k", &sk).unwrap();
        let s = &jws.signatures[0];
        let flat = serde_json::json!({"payload": jws.payload, "protected": s.protected, "signature": s.signature, "header": s.header});
        ParsedJws::parse(flat).unwrap().signatures[0].verify(&sk.public_key()).unwrap();
        let no_kid = serde_json::json!({"payload": jws.payload, "protected": s.protected, "signature": s.signature});
        assert!(ParsedJws::parse(no_kid).is_err());
    }
}
