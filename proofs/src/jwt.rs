//! Compact JWS (JWT) for credentials and presentations: signing with a DID's key, and
//! verification of a JWT against a verification method of its signer's DID document
//! (the signature check itself is done by SpruceID's `ssi-jws`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use did_core::{Did, DidResolver, Jwk, Relationship, SecretKey};
use serde_json::{json, Map, Value};

use crate::error::{Error, ProofReason, Result};

/// JWS algorithms accepted on credentials and presentations.
pub const ALGORITHMS: [&str; 3] = ["EdDSA", "ES256K", "ES256"];
/// Largest JWT accepted (a presentation carries its credentials inside).
pub const MAX_JWT_BYTES: usize = 64 * 1024;

/// A `malformed` proof refusal.
pub(super) fn malformed(what: impl Into<String>) -> Error {
    Error::proof(ProofReason::Malformed, what)
}

/// Signs `claims` as a compact JWS with `key` (`kid`: its verification method id).
pub fn sign(claims: &Value, typ: &str, kid: &str, key: &SecretKey) -> Result<String> {
    let alg = key.jws_alg()?;
    let header = json!({"alg": alg, "kid": kid, "typ": typ});
    let mut out = B64.encode(header.to_string());
    out.push('.');
    out.push_str(&B64.encode(claims.to_string()));
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&B64.encode(sig));
    Ok(out)
}

/// A JWT decoded but not yet verified.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// The compact serialization.
    pub compact: String,
    /// `alg` of the protected header.
    pub alg: String,
    /// `kid` of the protected header, if any.
    pub kid: Option<String>,
    /// The claims.
    pub claims: Map<String, Value>,
}

/// Decodes a compact JWS whose payload is a JSON object (`what`: for messages).
pub fn decode(compact: &str, what: &str) -> Result<Unverified> {
    if compact.len() > MAX_JWT_BYTES {
        return Err(malformed(format!("the {what} is larger than {MAX_JWT_BYTES} bytes")));
    }
    let parts: Vec<&str> = compact.split('.').collect();
    let [h, p, _s] = parts[..] else {
        return Err(malformed(format!("the {what} is not a compact JWS (header.payload.signature)")));
    };
    let part = |s: &str, name: &str| -> Result<Map<String, Value>> {
        let bytes = B64.decode(s).map_err(|_| malformed(format!("the {what}'s {name} is not base64url")))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(malformed(format!("the {what}'s {name} is not a JSON object"))),
        }
    };
    let header = part(h, "header")?;
    let claims = part(p, "payload")?;
    if header.get("crit").is_some() || header.get("b64").is_some() {
        return Err(malformed(format!("the {what} uses JWS extensions (crit/b64) that are not accepted")));
    }
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default().to_owned();
    if !ALGORITHMS.contains(&alg.as_str()) {
        return Err(malformed(format!("the {what} is signed with {alg:?}; accepted: {}", ALGORITHMS.join(", "))));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(malformed(format!("the {what}'s kid is not a string"))),
    };
    Ok(Unverified { compact: compact.to_owned(), alg, kid, claims })
}

impl Unverified {
    /// A string claim, if present (an error if present but not a string).
    pub fn str_claim(&self, name: &str) -> Result<Option<&str>> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(malformed(format!("the claim {name} is not a string"))),
        }
    }

    /// A NumericDate claim (RFC 7519: seconds, possibly fractional), if present.
    pub fn time_claim(&self, name: &str) -> Result<Option<i64>> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                match n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)) {
                    Some(t) => Ok(Some(t)),
                    None => Err(malformed(format!("the claim {name} is not a time"))),
                }
            }
            Some(_) => Err(malformed(format!("the claim {name} is not a NumericDate"))),
        }
    }

    /// Verifies the signature with a verification method of `signer`'s DID document that
    /// is in relationship `rel`: the one `kid` names (a DID URL of `signer`, or a
    /// `#fragment`), or when there is no `kid`, any such method.
    pub async fn verify(&self, signer: &str, rel: Relationship, resolver: &dyn DidResolver) -> Result<String> {
        let did = Did::parse(signer).map_err(|e| malformed(format!("{signer:?} is not a DID: {e}")))?;
        let kid = match &self.kid {
            Some(k) if k.starts_with('#') => Some(format!("{signer}{k}")),
            Some(k) => {
                if k.split('#').next() != Some(signer) {
                    return Err(Error::proof(
                        ProofReason::BadSignature,
                        format!("signed with {k}, which is not a key of {signer}"),
                    ));
                }
                Some(k.clone())
            }
            None => None,
        };
        let doc = resolver.resolve(&did).await.map_err(|e| {
            Error::proof(ProofReason::BadSignature, format!("cannot resolve {signer} to check the signature: {e}"))
        })?;
        let candidates: Vec<_> = doc.methods(rel).filter(|m| kid.as_deref().is_none_or(|k| m.id == k)).collect();
        if candidates.is_empty() {
            return Err(Error::proof(
                ProofReason::BadSignature,
                format!("{} is not an {} key of {signer}", kid.as_deref().unwrap_or("the signing key"), rel.name()),
            ));
        }
        for m in candidates {
            let jwk_json = serde_json::to_value(Jwk::from_public(&m.key)).map_err(|e| Error::State(e.to_string()))?;
            let Ok(jwk) = serde_json::from_value::<ssi_jwk::JWK>(jwk_json) else { continue };
            if ssi_jws::decode_verify(&self.compact, &jwk).is_ok() {
                return Ok(m.id.clone());
            }
        }
        Err(Error::proof(ProofReason::BadSignature, format!("the signature is not by {signer}'s {} key", rel.name())))
    }
}

/// The authentication key (kid, secret) of one of our DIDs, from its document.
pub fn signing_key<'a>(
    doc: &did_core::DidDocument,
    rel: Relationship,
    secret: impl Fn(&str) -> Option<&'a SecretKey>,
) -> Result<(String, &'a SecretKey)> {
    doc.methods(rel)
        .find_map(|m| secret(&m.id).filter(|k| k.jws_alg().is_ok()).map(|k| (m.id.clone(), k)))
        .ok_or_else(|| Error::State(format!("no private {} key for {}", rel.name(), doc.id)))
}
