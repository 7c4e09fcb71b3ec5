//! Verification methods: decoding every key format in use (`publicKeyMultibase`,
//! `publicKeyJwk`, `publicKeyBase58`) and writing them back in the form they came in.

use serde_json::{json, Map, Value};

use crate::did::{Did, DidUrl};
use crate::error::{Error, Result};
use crate::jwk::Jwk;
use crate::keys::{KeyKind, PublicKey};

/// How a verification method's key is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// `publicKeyMultibase` with a multicodec prefix.
    Multibase,
    /// `publicKeyJwk`.
    Jwk,
    /// `publicKeyBase58` (raw key bytes).
    Base58,
}

/// A verification method with its key decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationMethod {
    /// Absolute DID URL of the method.
    pub id: String,
    /// The `type` (`Multikey`, `JsonWebKey2020`, `X25519KeyAgreementKey2020`, …).
    pub type_: String,
    /// The controller DID.
    pub controller: String,
    /// The decoded public key.
    pub key: PublicKey,
    /// How the key is written when serialized.
    pub format: KeyFormat,
}

impl VerificationMethod {
    /// A `Multikey` method.
    pub fn multikey(id: String, controller: &Did, key: PublicKey) -> Self {
        VerificationMethod {
            id,
            type_: "Multikey".into(),
            controller: controller.to_string(),
            key,
            format: KeyFormat::Multibase,
        }
    }

    pub(super) fn parse(v: &Value, doc_id: &Did) -> Result<Option<VerificationMethod>> {
        let obj = v.as_object().ok_or_else(|| Error::doc("verification method is not an object"))?;
        let id = obj.get("id").and_then(Value::as_str).ok_or_else(|| Error::doc("verification method without `id`"))?;
        let id = DidUrl::resolve_ref(doc_id, id)?.to_string();
        let type_ =
            obj.get("type").and_then(Value::as_str).ok_or_else(|| Error::doc(format!("{id}: no `type`")))?.to_owned();
        let controller = obj.get("controller").and_then(Value::as_str).unwrap_or(doc_id.as_str()).to_owned();
        let implied = implied_kind(&type_);
        let (key, format) = if let Some(jwk) = obj.get("publicKeyJwk") {
            if jwk.get("d").is_some() {
                return Err(Error::doc(format!("{id}: publicKeyJwk contains a private key")));
            }
            // RSA and other key types this crate does not decode: keep the method verbatim.
            if !matches!(jwk.get("kty").and_then(Value::as_str), Some("OKP" | "EC")) {
                return Ok(None);
            }
            let jwk: Jwk =
                serde_json::from_value(jwk.clone()).map_err(|e| Error::doc(format!("{id}: bad publicKeyJwk: {e}")))?;
            if jwk.d.is_some() {
                return Err(Error::doc(format!("{id}: publicKeyJwk contains a private key")));
            }
            match jwk.public_key() {
                Ok(k) => (k, KeyFormat::Jwk),
                Err(Error::UnsupportedAlgorithm(_)) => return Ok(None),
                Err(e) => return Err(Error::doc(format!("{id}: {e}"))),
            }
        } else if let Some(mb) = obj.get("publicKeyMultibase").and_then(Value::as_str) {
            match PublicKey::from_multibase(mb) {
                Ok(k) => (k, KeyFormat::Multibase),
                Err(Error::UnsupportedAlgorithm(_)) => return Ok(None),
                Err(e) => {
                    // Some 2018/2019 documents put the raw key in publicKeyMultibase.
                    let raw = multibase::decode(mb).map(|(_, b)| b).ok();
                    match (implied, raw) {
                        (Some(kind), Some(raw)) => (PublicKey::from_bytes(kind, &raw)?, KeyFormat::Multibase),
                        _ => return Err(Error::doc(format!("{id}: {e}"))),
                    }
                }
            }
        } else if let Some(b58) = obj.get("publicKeyBase58").and_then(Value::as_str) {
            let Some(kind) = implied else { return Ok(None) };
            let raw =
                bs58::decode(b58).into_vec().map_err(|_| Error::doc(format!("{id}: publicKeyBase58 is not base58")))?;
            (PublicKey::from_bytes(kind, &raw).map_err(|e| Error::doc(format!("{id}: {e}")))?, KeyFormat::Base58)
        } else {
            // RSA, blockchainAccountId, … : keep the document usable, skip the method.
            return Ok(None);
        };
        if let Some(kind) = implied {
            if kind != key.kind() {
                return Err(Error::doc(format!("{id}: type {type_} holds a {} key", key.kind().crv())));
            }
        }
        Ok(Some(VerificationMethod { id, type_, controller, key, format }))
    }

    /// The JSON form.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("type".into(), self.type_.clone().into());
        m.insert("controller".into(), self.controller.clone().into());
        match self.format {
            KeyFormat::Multibase => m.insert("publicKeyMultibase".into(), self.key.to_multibase().into()),
            KeyFormat::Jwk => m.insert("publicKeyJwk".into(), json!(Jwk::from_public(&self.key))),
            KeyFormat::Base58 => {
                m.insert("publicKeyBase58".into(), bs58::encode(self.key.to_bytes()).into_string().into())
            }
        };
        Value::Object(m)
    }
}

fn implied_kind(type_: &str) -> Option<KeyKind> {
    match type_ {
        "X25519KeyAgreementKey2019" | "X25519KeyAgreementKey2020" => Some(KeyKind::X25519),
        "Ed25519VerificationKey2018" | "Ed25519VerificationKey2020" => Some(KeyKind::Ed25519),
        "EcdsaSecp256k1VerificationKey2019" => Some(KeyKind::Secp256k1),
        _ => None,
    }
}
