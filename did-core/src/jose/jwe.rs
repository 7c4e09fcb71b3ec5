//! JWE in General JSON serialization with ECDH-ES+A256KW (anoncrypt) and
//! ECDH-1PU+A256KW (authcrypt), as profiled by DIDComm v2 §"Message Encryption".

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::content::ContentEnc;
use super::{b64d, b64e, kdf, to_json_vec, zs_cache};
use crate::error::{clip, Error, Result};
use crate::jwk::Jwk;
use crate::keys::{PublicKey, SecretKey};

/// Most recipients accepted in one envelope.
pub const MAX_RECIPIENTS: usize = 256;

/// The key-management algorithm (`alg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// Anonymous sender: ECDH-ES+A256KW.
    EcdhEsA256kw,
    /// Authenticated sender: ECDH-1PU+A256KW.
    Ecdh1puA256kw,
}

impl KeyAlg {
    /// The JWE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::EcdhEsA256kw => "ECDH-ES+A256KW",
            KeyAlg::Ecdh1puA256kw => "ECDH-1PU+A256KW",
        }
    }

    fn from_name(s: &str) -> Result<KeyAlg> {
        match s {
            "ECDH-ES+A256KW" => Ok(KeyAlg::EcdhEsA256kw),
            "ECDH-1PU+A256KW" => Ok(KeyAlg::Ecdh1puA256kw),
            other => Err(Error::UnsupportedAlgorithm(format!("key management `{}`", clip(other)))),
        }
    }
}

/// A JWE in General JSON serialization.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Jwe {
    /// Base64url of the protected header.
    pub protected: String,
    /// One entry per recipient key.
    pub recipients: Vec<JweRecipient>,
    /// Base64url IV.
    pub iv: String,
    /// Base64url ciphertext.
    pub ciphertext: String,
    /// Base64url authentication tag.
    pub tag: String,
}

/// A JWE recipient entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JweRecipient {
    /// Per-recipient header with the recipient's `kid`.
    pub header: RecipientHeader,
    /// Base64url wrapped content key.
    pub encrypted_key: String,
}

/// The per-recipient header.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecipientHeader {
    /// Absolute DID URL of the recipient key.
    pub kid: String,
}

/// The protected header fields DIDComm uses.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProtectedHeader {
    /// Critical extensions; none are understood, so any makes the envelope unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<Value>,
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Content type of the payload, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
    /// Key-management algorithm.
    pub alg: String,
    /// Content-encryption algorithm.
    pub enc: String,
    /// Sender key id (authcrypt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skid: Option<String>,
    /// Base64url PartyUInfo (authcrypt: the sender kid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apu: Option<String>,
    /// Base64url PartyVInfo: SHA-256 of the sorted recipient kids joined by `.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apv: Option<String>,
    /// Ephemeral public key.
    pub epk: Jwk,
}

/// The `apv` value for a set of recipient key ids.
pub fn apv_for(kids: &[&str]) -> Vec<u8> {
    let mut sorted = kids.to_vec();
    sorted.sort_unstable();
    Sha256::digest(sorted.join(".").as_bytes()).to_vec()
}

/// The sender of an authcrypt envelope.
#[derive(Clone, Copy, Debug)]
pub struct Sender<'a> {
    /// The sender's key id (becomes `skid` and `apu`).
    pub kid: &'a str,
    /// The sender's key-agreement secret.
    pub key: &'a SecretKey,
}

/// Encrypts `plaintext` for `recipients` (all on one curve). With a sender this is
/// ECDH-1PU+A256KW (which requires A256CBC-HS512), without it ECDH-ES+A256KW.
pub fn encrypt(
    plaintext: &[u8],
    typ: &str,
    enc: ContentEnc,
    sender: Option<Sender<'_>>,
    recipients: &[(&str, &PublicKey)],
) -> Result<Jwe> {
    let first = recipients.first().ok_or_else(|| Error::Protocol("no recipients to encrypt for".into()))?;
    let kind = first.1.kind();
    if !kind.is_key_agreement() {
        return Err(Error::key(format!("{} keys cannot do key agreement", kind.crv())));
    }
    if let Some((kid, k)) = recipients.iter().find(|(_, k)| k.kind() != kind) {
        return Err(Error::key(format!("recipient {kid} is {} but others are {}", k.kind().crv(), kind.crv())));
    }
    let alg = if sender.is_some() { KeyAlg::Ecdh1puA256kw } else { KeyAlg::EcdhEsA256kw };
    if let Some(s) = sender {
        if s.key.kind() != kind {
            return Err(Error::key(format!("sender key is {} but recipients are {}", s.key.kind().crv(), kind.crv())));
        }
        if enc != ContentEnc::A256CbcHs512 {
            return Err(Error::UnsupportedAlgorithm(format!("authcrypt requires A256CBC-HS512, not {}", enc.name())));
        }
    }
    let epk = SecretKey::generate(kind);
    let kids: Vec<&str> = recipients.iter().map(|(kid, _)| *kid).collect();
    let apv = apv_for(&kids);
    let header = ProtectedHeader {
        crit: None,
        typ: Some(typ.to_owned()),
        cty: None,
        alg: alg.name().to_owned(),
        enc: enc.name().to_owned(),
        skid: sender.map(|s| s.kid.to_owned()),
        apu: sender.map(|s| b64e(s.kid)),
        apv: Some(b64e(&apv)),
        epk: Jwk::from_public(&epk.public_key()),
    };
    let protected = b64e(to_json_vec(&header)?);
    let cek = enc.generate_key();
    let (iv, ct, tag) = enc.encrypt(&cek, protected.as_bytes(), plaintext)?;
    let apu = sender.map(|s| s.kid.as_bytes()).unwrap_or_default();
    let mut out = Vec::with_capacity(recipients.len());
    for (kid, pk) in recipients {
        let z = shared_secret(&epk, sender.map(|s| s.key), pk)?;
        let cctag = (alg == KeyAlg::Ecdh1puA256kw).then_some(tag.as_slice());
        let kek = kdf::concat_kdf(&z, alg.name(), apu, &apv, cctag);
        out.push(JweRecipient {
            header: RecipientHeader { kid: (*kid).to_owned() },
            encrypted_key: b64e(kdf::wrap(&kek, &cek)?),
        });
    }
    Ok(Jwe { protected, recipients: out, iv: b64e(iv), ciphertext: b64e(ct), tag: b64e(tag) })
}

/// `Ze` (ephemeral) followed, for 1PU, by `Zs` (static sender; from [`zs_cache`]).
fn shared_secret(
    eph_or_recipient: &SecretKey,
    static_sender: Option<&SecretKey>,
    other: &PublicKey,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut z = eph_or_recipient.ecdh(other)?;
    if let Some(s) = static_sender {
        z.extend_from_slice(&zs_cache::static_z(s, other)?);
    }
    Ok(z)
}

/// A parsed, structurally validated JWE, ready to decrypt.
#[derive(Debug)]
pub struct ParsedJwe {
    /// The envelope.
    pub jwe: Jwe,
    /// Its decoded protected header.
    pub header: ProtectedHeader,
    /// Key-management algorithm.
    pub alg: KeyAlg,
    /// Content-encryption algorithm.
    pub enc: ContentEnc,
    epk: PublicKey,
    apu: Vec<u8>,
    apv: Vec<u8>,
    /// Decoded `iv`, `tag` and `ciphertext` (decoded once, by `parse`).
    iv: Vec<u8>,
    tag: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl ParsedJwe {
    /// Parses and checks a JWE JSON value: algorithms, `epk`, `apu`/`skid`, `apv`.
    pub fn parse(v: Value) -> Result<ParsedJwe> {
        let jwe: Jwe = serde_json::from_value(v).map_err(|e| Error::malformed(format!("not a DIDComm JWE: {e}")))?;
        ParsedJwe::from_jwe(jwe)
    }

    /// [`ParsedJwe::parse`] of an already deserialized envelope.
    pub(crate) fn from_jwe(jwe: Jwe) -> Result<ParsedJwe> {
        if jwe.recipients.is_empty() || jwe.recipients.len() > MAX_RECIPIENTS {
            return Err(Error::malformed(format!("JWE has {} recipients", jwe.recipients.len())));
        }
        let header_bytes = b64d(&jwe.protected, "protected")?;
        let header: ProtectedHeader = serde_json::from_slice(&header_bytes)
            .map_err(|e| Error::malformed(format!("JWE protected header: {e}")))?;
        if header.crit.is_some() {
            return Err(Error::UnsupportedAlgorithm("JWE critical header extensions (`crit`)".into()));
        }
        if header.apv.is_none() {
            return Err(Error::malformed("JWE without `apv` (DIDComm requires it)"));
        }
        let alg = KeyAlg::from_name(&header.alg)?;
        let enc = ContentEnc::from_name(&header.enc)?;
        if alg == KeyAlg::Ecdh1puA256kw && enc != ContentEnc::A256CbcHs512 {
            return Err(Error::UnsupportedAlgorithm(format!("authcrypt with {}", enc.name())));
        }
        let epk = header.epk.public_key().map_err(|e| match e {
            Error::UnsupportedAlgorithm(m) => Error::UnsupportedAlgorithm(m),
            e => Error::malformed(format!("epk: {e}")),
        })?;
        if !epk.kind().is_key_agreement() {
            return Err(Error::malformed("epk is not a key-agreement key"));
        }
        let apu = match &header.apu {
            Some(a) => b64d(a, "apu")?,
            None => vec![],
        };
        if let (Some(skid), true) = (&header.skid, header.apu.is_some()) {
            if skid.as_bytes() != apu.as_slice() {
                return Err(Error::Protocol("`skid` and `apu` name different sender keys".into()));
            }
        }
        if alg == KeyAlg::Ecdh1puA256kw && header.skid.is_none() && apu.is_empty() {
            return Err(Error::malformed("authcrypt envelope names no sender (`skid`/`apu`)"));
        }
        let apv = match &header.apv {
            Some(a) => b64d(a, "apv")?,
            None => vec![],
        };
        let kids: Vec<&str> = jwe.recipients.iter().map(|r| r.header.kid.as_str()).collect();
        if header.apv.is_some() && apv != apv_for(&kids) {
            return Err(Error::Protocol("`apv` does not match the recipients' key ids".into()));
        }
        let iv = b64d(&jwe.iv, "iv/tag/ciphertext")?;
        let tag = b64d(&jwe.tag, "iv/tag/ciphertext")?;
        let ciphertext = b64d(&jwe.ciphertext, "iv/tag/ciphertext")?;
        Ok(ParsedJwe { jwe, header, alg, enc, epk, apu, apv, iv, tag, ciphertext })
    }

    /// Recipient key ids, in envelope order.
    pub fn recipient_kids(&self) -> impl Iterator<Item = &str> {
        self.jwe.recipients.iter().map(|r| r.header.kid.as_str())
    }

    /// The sender key id of an authcrypt envelope (`skid`, or decoded `apu`).
    pub fn sender_kid(&self) -> Result<Option<String>> {
        if self.alg != KeyAlg::Ecdh1puA256kw {
            return Ok(None);
        }
        match &self.header.skid {
            Some(s) => Ok(Some(s.clone())),
            None => String::from_utf8(self.apu.clone())
                .map(Some)
                .map_err(|_| Error::malformed("`apu` is not a UTF-8 key id")),
        }
    }

    /// The curve of the envelope's keys.
    pub fn curve(&self) -> crate::keys::KeyKind {
        self.epk.kind()
    }

    /// Decrypts as recipient `kid` with `key`; `sender` is the sender's static
    /// public key and is required for authcrypt (its `Zs` comes from the `zs_cache`).
    pub fn decrypt(&self, kid: &str, key: &SecretKey, sender: Option<&PublicKey>) -> Result<Zeroizing<Vec<u8>>> {
        let r = self.jwe.recipients.iter().find(|r| r.header.kid == kid).ok_or_else(|| Error::NotForUs(clip(kid)))?;
        if key.kind() != self.epk.kind() {
            return Err(Error::key(format!("recipient key {kid} is not on the envelope's curve")));
        }
        let z = match (self.alg, sender) {
            (KeyAlg::EcdhEsA256kw, _) => key.ecdh(&self.epk)?,
            (KeyAlg::Ecdh1puA256kw, Some(s)) => {
                let mut z = key.ecdh(&self.epk)?;
                z.extend_from_slice(&zs_cache::static_z(key, s)?);
                z
            }
            (KeyAlg::Ecdh1puA256kw, None) => return Err(Error::Protocol("authcrypt needs the sender's key".into())),
        };
        let cctag = (self.alg == KeyAlg::Ecdh1puA256kw).then_some(self.tag.as_slice());
        let kek = kdf::concat_kdf(&z, self.alg.name(), &self.apu, &self.apv, cctag);
        let cek = kdf::unwrap(&kek, &b64d(&r.encrypted_key, "encrypted_key")?)?;
        self.enc.decrypt(&cek, self.jwe.protected.as_bytes(), &self.iv, &self.ciphertext, &self.tag)
    }
}

#[cfg(test)]
mod tests;
