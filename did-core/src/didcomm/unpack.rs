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

use super::message::Message;

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
        UnpackOptions {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// What unpacking found out about a message.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct UnpackMetadata {
    /// Some layer was encrypted.
    pub encrypted: bool,
    /// The sender was authenticated by authcrypt.
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
    /// The recipient key ids we decrypted with (outermost layer first).
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
}

/// Unpacks `packed` (JSON text): decrypts with our keys, verifies signatures against
/// the signer's `authentication` keys and the authcrypt sender's `keyAgreement` key,
/// and checks that the plaintext `from` is the DID that authenticated it.
pub async fn unpack(
    packed: &str,
    resolver: &dyn DidResolver,
    secrets: &dyn SecretStore,
    opts: &UnpackOptions,
) -> Result<(Message, UnpackMetadata)> {
    if packed.len() > opts.max_bytes {
        return Err(Error::TooLarge {
            size: packed.len(),
            limit: opts.max_bytes,
        });
    }
    let mut v: Value =
        serde_json::from_str(packed).map_err(|e| Error::malformed(format!("not JSON: {e}")))?;
    let mut meta = UnpackMetadata::default();
    let mut layers = 0;
    loop {
        layers += 1;
        if layers > MAX_LAYERS {
            return Err(Error::malformed(format!(
                "more than {MAX_LAYERS} nested envelopes"
            )));
        }
        if v.get("ciphertext").is_some() {
            if meta.non_repudiation {
                return Err(Error::malformed(
                    "an encrypted envelope inside a signed one",
                ));
            }
            v = decrypt_layer(v, layers == 1, &mut meta, resolver, secrets).await?;
        } else if v.get("payload").is_some() {
            if meta.non_repudiation {
                return Err(Error::malformed("a signed envelope inside a signed one"));
            }
            meta.signed_message = Some(v.to_string());
            let jws = ParsedJws::parse(v)?;
            let first = &jws.signatures[0];
            for sig in &jws.signatures {
                let url = DidUrl::parse(&sig.kid)?;
                let doc = resolver.resolve(url.did()).await?;
                let vm = doc
                    .method(&sig.kid)
                    .ok_or_else(|| Error::KeyNotFound(clip(&sig.kid)))?;
                if !doc.has(Relationship::Authentication, &sig.kid) {
                    return Err(Error::Protocol(format!(
                        "{} signs but is not an authentication key",
                        clip(&sig.kid)
                    )));
                }
                sig.verify(&vm.key)?;
            }
            meta.non_repudiation = true;
            meta.sign_from = Some(first.kid.clone());
            meta.sign_alg = Some(first.alg.clone());
            v = parse_json(&jws.payload)?;
        } else {
            let msg = Message::from_value(v)?;
            check_sender(&msg, &mut meta)?;
            return Ok((msg, meta));
        }
    }
}

async fn decrypt_layer(
    v: Value,
    outermost: bool,
    meta: &mut UnpackMetadata,
    resolver: &dyn DidResolver,
    secrets: &dyn SecretStore,
) -> Result<Value> {
    let jwe = ParsedJwe::parse(v)?;
    let ours: Vec<&str> = jwe
        .recipient_kids()
        .filter(|k| secrets.secret(k).is_some())
        .collect();
    let Some(kid) = ours.first().copied() else {
        let all: Vec<&str> = jwe.recipient_kids().collect();
        return Err(Error::NotForUs(clip(&all.join(", "))));
    };
    let key = secrets
        .secret(kid)
        .ok_or_else(|| Error::SecretNotFound(clip(kid)))?;
    let alg = format!("{}/{}", jwe.alg.name(), jwe.enc.name());
    let plain = match jwe.alg {
        KeyAlg::EcdhEsA256kw => {
            if meta.authenticated {
                return Err(Error::malformed(
                    "an anoncrypt envelope inside an authcrypt one",
                ));
            }
            if outermost {
                meta.anonymous_sender = true;
                meta.enc_alg_anon = Some(alg);
            }
            jwe.decrypt(kid, key, None)?
        }
        KeyAlg::Ecdh1puA256kw => {
            if meta.authenticated {
                return Err(Error::malformed("two authcrypt layers"));
            }
            let skid = jwe
                .sender_kid()?
                .ok_or_else(|| Error::malformed("authcrypt without a sender"))?;
            let url = DidUrl::parse(&skid)?;
            let doc = resolver.resolve(url.did()).await?;
            let vm = doc
                .method(&skid)
                .ok_or_else(|| Error::KeyNotFound(clip(&skid)))?;
            if !doc.has(Relationship::KeyAgreement, &skid) {
                return Err(Error::Protocol(format!(
                    "sender key {} is not a keyAgreement key",
                    clip(&skid)
                )));
            }
            let plain = jwe.decrypt(kid, key, Some(&vm.key))?;
            meta.sender_protected = meta.encrypted;
            meta.authenticated = true;
            meta.encrypted_from_kid = Some(skid);
            meta.enc_alg_auth = Some(alg);
            plain
        }
    };
    meta.encrypted = true;
    meta.encrypted_to_kids
        .extend(ours.iter().map(|k| (*k).to_owned()));
    parse_json(&plain)
}

fn parse_json(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::malformed(format!("inner envelope is not JSON: {e}")))
}

/// The plaintext `from` must be the DID behind the authcrypt sender key and the signer.
fn check_sender(msg: &Message, meta: &mut UnpackMetadata) -> Result<()> {
    for (kid, how) in [
        (&meta.encrypted_from_kid, "encrypted"),
        (&meta.sign_from, "signed"),
    ] {
        let Some(kid) = kid else { continue };
        let did = DidUrl::parse(kid)?.did().to_string();
        match &msg.from {
            Some(from) if *from == did => {}
            Some(from) => {
                return Err(Error::SenderMismatch {
                    claimed: clip(from),
                    actual: clip(&did),
                    how,
                })
            }
            None => {
                return Err(Error::SenderMismatch {
                    claimed: "(none)".into(),
                    actual: clip(&did),
                    how,
                })
            }
        }
        meta.sender = Some(did);
    }
    Ok(())
}
