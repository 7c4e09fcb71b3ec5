//! Unpacking any DIDComm v2 envelope down to its plaintext, checking every layer.

use serde::Serialize;
use serde_json::Value;

use crate::did::DidUrl;
use crate::doc::Relationship;
use crate::error::{clip, Error, Result};
use crate::jose::jwe::{KeyAlg, ParsedJwe};
use crate::jose::jws::ParsedJws;
use crate::resolver::DidResolver;
use crate::secrets::SecretStore;

use super::from_prior;
use super::message::Message;
use super::wire::{read_layer, Read};

/// Default largest envelope accepted, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Most nested envelopes accepted (anoncrypt ▸ authcrypt ▸ signed ▸ plaintext is 4).
pub const MAX_LAYERS: usize = 5;

/// Options of [`unpack`].
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    /// Largest envelope accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions { max_bytes: DEFAULT_MAX_BYTES }
    }
}

/// What unpacking found out about a message.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct UnpackMetadata {
    /// Some layer was encrypted.
    pub encrypted: bool,
    /// The sender was authenticated (by authcrypt or by a signature).
    pub authenticated: bool,
    /// The message was signed (non-repudiable).
    pub non_repudiation: bool,
    /// The outermost layer hid the sender (anoncrypt, or authcrypt wrapped in anoncrypt).
    pub anonymous_sender: bool,
    /// Authcrypt sat inside anoncrypt.
    pub sender_protected: bool,
    /// The authcrypt sender key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_from_kid: Option<String>,
    /// The recipient key ids of ours that the envelope layers were addressed to (each once).
    pub encrypted_to_kids: Vec<String>,
    /// The signer key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_from: Option<String>,
    /// `alg`/`enc` of the authcrypt layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enc_alg_auth: Option<String>,
    /// `alg`/`enc` of the (outermost) anoncrypt layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enc_alg_anon: Option<String>,
    /// The JWS algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_alg: Option<String>,
    /// The signed envelope (for keeping as a non-repudiable record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_message: Option<String>,
    /// The authenticated sender DID (authcrypt or signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Key id that signed a `from_prior` rotation JWT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_prior_issuer_kid: Option<String>,
    /// The verified `from_prior` rotation (old DID `iss` → new DID `sub`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_prior: Option<super::from_prior::FromPrior>,
}

/// Unpacks `packed` (JSON text): decrypts with our keys, verifies signatures against
/// the signers' `authentication` keys and the authcrypt sender's `keyAgreement` key,
/// checks that the plaintext `from` is the DID that authenticated it, that an encrypted
/// message's `to` (when present) names us, and verifies a `from_prior` rotation.
pub async fn unpack(
    packed: &str,
    resolver: &dyn DidResolver,
    secrets: &dyn SecretStore,
    opts: &UnpackOptions,
) -> Result<(Message, UnpackMetadata)> {
    if packed.len() > opts.max_bytes {
        return Err(Error::TooLarge { size: packed.len(), limit: opts.max_bytes });
    }
    let mut next = read_layer(packed.as_bytes(), "not JSON")?;
    let mut meta = UnpackMetadata::default();
    for layer in 1..=MAX_LAYERS {
        let v = match next {
            Read::Jwe(jwe) => {
                if meta.non_repudiation {
                    return Err(Error::malformed("an encrypted envelope inside a signed one"));
                }
                let jwe = ParsedJwe::from_jwe(jwe)?;
                next = decrypt_layer(jwe, layer == 1, &mut meta, resolver, secrets).await?;
                continue;
            }
            Read::Json(v) => v,
        };
        match Layer::of(&v) {
            Layer::Encrypted => {
                if meta.non_repudiation {
                    return Err(Error::malformed("an encrypted envelope inside a signed one"));
                }
                let jwe = ParsedJwe::parse(v)?;
                next = decrypt_layer(jwe, layer == 1, &mut meta, resolver, secrets).await?;
            }
            Layer::Signed => {
                if meta.non_repudiation {
                    return Err(Error::malformed("a signed envelope inside a signed one"));
                }
                next = verify_layer(v, &mut meta, resolver).await?;
            }
            Layer::Plain => {
                let msg = Message::from_value(v)?;
                check_sender(&msg, &mut meta)?;
                check_recipient(&msg, &meta)?;
                if let Some(jwt) = &msg.from_prior {
                    let (claims, kid) = from_prior::verify(jwt, msg.from.as_deref(), resolver).await?;
                    meta.from_prior_issuer_kid = Some(kid);
                    meta.from_prior = Some(claims);
                }
                return Ok((msg, meta));
            }
        }
    }
    Err(Error::malformed(format!("more than {MAX_LAYERS} nested envelopes")))
}

/// What kind of envelope a JSON value is, by its shape.
enum Layer {
    Encrypted,
    Signed,
    Plain,
}

impl Layer {
    fn of(v: &Value) -> Layer {
        let has = |k: &str| v.get(k).is_some();
        if has("ciphertext") && has("protected") {
            Layer::Encrypted
        } else if has("payload") && (has("signatures") || has("signature")) && !has("type") {
            Layer::Signed
        } else {
            Layer::Plain
        }
    }
}

async fn verify_layer(v: Value, meta: &mut UnpackMetadata, resolver: &dyn DidResolver) -> Result<Read> {
    meta.signed_message = Some(serde_json::to_string(&v).map_err(|e| Error::malformed(format!("JWS: {e}")))?);
    let jws = ParsedJws::parse(v)?;
    let mut signer_did: Option<String> = None;
    for sig in &jws.signatures {
        let url = DidUrl::parse(&sig.kid)?;
        match &signer_did {
            Some(d) if d != url.did().as_str() => {
                return Err(Error::Protocol("signatures by different DIDs on one message".into()))
            }
            _ => signer_did = Some(url.did().to_string()),
        }
        let doc = resolver.resolve(url.did()).await?;
        let vm = doc.method(&sig.kid).ok_or_else(|| Error::KeyNotFound(clip(&sig.kid)))?;
        if !doc.has(Relationship::Authentication, &sig.kid) {
            return Err(Error::Protocol(format!("{} signs but is not an authentication key", clip(&sig.kid))));
        }
        sig.verify(&vm.key)?;
    }
    let first = &jws.signatures[0];
    meta.non_repudiation = true;
    meta.authenticated = true;
    meta.sign_from = Some(first.kid.clone());
    meta.sign_alg = Some(first.alg.clone());
    read_layer(&jws.payload, INNER)
}

async fn decrypt_layer(
    jwe: ParsedJwe,
    outermost: bool,
    meta: &mut UnpackMetadata,
    resolver: &dyn DidResolver,
    secrets: &dyn SecretStore,
) -> Result<Read> {
    let ours: Vec<(&str, _)> = jwe.recipient_kids().filter_map(|k| secrets.secret(k).map(|s| (k, s))).collect();
    if ours.is_empty() {
        let all: Vec<&str> = jwe.recipient_kids().collect();
        return Err(Error::NotForUs(clip(&all.join(", "))));
    }
    let alg = format!("{}/{}", jwe.alg.name(), jwe.enc.name());
    let sender = match jwe.alg {
        KeyAlg::EcdhEsA256kw => {
            if meta.encrypted_from_kid.is_some() {
                return Err(Error::malformed("an anoncrypt envelope inside an authcrypt one"));
            }
            if outermost {
                meta.anonymous_sender = true;
                meta.enc_alg_anon = Some(alg.clone());
            }
            None
        }
        KeyAlg::Ecdh1puA256kw => {
            if meta.encrypted_from_kid.is_some() {
                return Err(Error::malformed("two authcrypt layers"));
            }
            let skid = jwe.sender_kid()?.ok_or_else(|| Error::malformed("authcrypt without a sender"))?;
            let url = DidUrl::parse(&skid)?;
            let doc = resolver.resolve(url.did()).await?;
            let vm = doc.method(&skid).ok_or_else(|| Error::KeyNotFound(clip(&skid)))?;
            if !doc.has(Relationship::KeyAgreement, &skid) {
                return Err(Error::Protocol(format!("sender key {} is not a keyAgreement key", clip(&skid))));
            }
            Some((skid, vm.key.clone()))
        }
    };
    // Any of our keys may be the one the envelope was really made for.
    let mut result = Err(Error::DecryptionFailed);
    for (kid, key) in &ours {
        result = jwe.decrypt(kid, key, sender.as_ref().map(|(_, k)| k));
        if result.is_ok() {
            break;
        }
    }
    let plain = result?;
    if let Some((skid, _)) = sender {
        meta.sender_protected = meta.encrypted;
        meta.authenticated = true;
        meta.encrypted_from_kid = Some(skid);
        meta.enc_alg_auth = Some(alg);
    }
    meta.encrypted = true;
    for (k, _) in ours {
        if !meta.encrypted_to_kids.iter().any(|have| have == k) {
            meta.encrypted_to_kids.push(k.to_owned());
        }
    }
    read_layer(&plain, INNER)
}

/// Error prefix for a decrypted or signed payload that is not JSON.
const INNER: &str = "inner envelope is not JSON";

/// The plaintext `from` must be the DID behind the authcrypt sender key and the signer.
fn check_sender(msg: &Message, meta: &mut UnpackMetadata) -> Result<()> {
    for (kid, how) in [(&meta.encrypted_from_kid, "encrypted"), (&meta.sign_from, "signed")] {
        let Some(kid) = kid else { continue };
        let did = DidUrl::parse(kid)?.did().to_string();
        match &msg.from {
            Some(from) if *from == did => {}
            Some(from) => return Err(Error::SenderMismatch { claimed: clip(from), actual: clip(&did), how }),
            None => return Err(Error::SenderMismatch { claimed: "(none)".into(), actual: clip(&did), how }),
        }
        meta.sender = Some(did);
    }
    Ok(())
}

/// An encrypted message that lists recipients in `to` must list one of the DIDs it was
/// decrypted for (otherwise it was replayed or misrouted to us).
fn check_recipient(msg: &Message, meta: &UnpackMetadata) -> Result<()> {
    let (Some(to), false) = (&msg.to, meta.encrypted_to_kids.is_empty()) else {
        return Ok(());
    };
    let ours = meta.encrypted_to_kids.iter().filter_map(|k| DidUrl::parse(k).ok());
    for url in ours {
        if to.iter().any(|t| t == url.did().as_str()) {
            return Ok(());
        }
    }
    Err(Error::Protocol("the message's `to` does not name the DID it was encrypted for".into()))
}
