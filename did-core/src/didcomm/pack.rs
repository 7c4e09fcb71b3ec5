//! Packing: plaintext, signed, anoncrypt, authcrypt, sender-protected, with Forward wrapping.

use crate::doc::Relationship;
use crate::error::{clip, Error, Result};
use crate::jose::content::ContentEnc;
use crate::jose::{jwe, jws, to_json_string};
use crate::resolver::DidResolver;
use crate::secrets::SecretStore;

use super::forward::{self, ServiceTarget};
use super::keys::{own_keys, public_keys, same_curve, Target};
use super::message::{Message, ENCRYPTED, SIGNED};

/// Options of [`pack_encrypted`].
#[derive(Clone, Debug)]
pub struct PackOptions {
    /// Wrap an authcrypt envelope in anoncrypt so only the recipient learns the sender.
    pub protect_sender: bool,
    /// Wrap in Routing 2.0 `forward` messages for the recipient's routing keys.
    pub forward: bool,
    /// Content cipher for anoncrypt layers (authcrypt always uses A256CBC-HS512).
    pub anon_enc: ContentEnc,
    /// `expires_time` to put on forward messages.
    pub forward_expires_time: Option<u64>,
    /// Where to route the message when the recipient's DID publishes no DIDComm service
    /// (an identity such as did:key): an endpoint learned from an authenticated message of
    /// the recipient, or our own mediator, which delivers only to parties registered there.
    pub via: Option<ServiceTarget>,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            protect_sender: false,
            forward: true,
            anon_enc: ContentEnc::A256CbcHs512,
            forward_expires_time: None,
            via: None,
        }
    }
}

/// A packed message and what was used to pack it.
#[derive(Clone, Debug)]
pub struct Packed {
    /// The envelope to transmit (JSON text).
    pub message: String,
    /// Sender key id (authcrypt).
    pub from_kid: Option<String>,
    /// Signer key id.
    pub sign_by_kid: Option<String>,
    /// Recipient key ids of the innermost encryption.
    pub to_kids: Vec<String>,
    /// Where to send the envelope, if the recipient publishes a DIDComm service.
    pub service: Option<ServiceTarget>,
}

/// Plaintext (unprotected) form of a message.
pub fn pack_plaintext(msg: &Message) -> String {
    msg.to_json()
}

/// Signs a message with an `authentication` key of `sign_by` (a DID or key id).
/// Returns the JWS text and the key id used.
pub async fn pack_signed(
    msg: &Message,
    sign_by: &str,
    resolver: &dyn DidResolver,
    secrets: &dyn SecretStore,
) -> Result<(String, String)> {
    let (did, keys) = own_keys(sign_by, Relationship::Authentication, resolver, secrets).await?;
    check_from(msg, did.as_str(), "signer")?;
    let (kid, key) = &keys[0];
    let jws = jws::sign(msg.to_json().as_bytes(), SIGNED, kid, key)?;
    Ok((to_json_string(&jws)?, kid.clone()))
}

/// Encrypts a message for `to` (a DID, or one of its key ids): authcrypt from `from`
/// when given, else anoncrypt; signed first by `sign_by` when given; wrapped for
/// routing when the recipient's service lists routing keys.
pub async fn pack_encrypted(
    msg: &Message,
    to: &str,
    from: Option<&str>,
    sign_by: Option<&str>,
    resolver: &dyn DidResolver,
    secrets: &dyn SecretStore,
    opts: &PackOptions,
) -> Result<Packed> {
    let to_did = Target::parse(to)?.did().clone();
    if let Some(tos) = &msg.to {
        if !tos.iter().any(|t| t == to_did.as_str()) {
            return Err(Error::Protocol(format!("recipient {} is not in the message's `to`", clip(to_did.as_str()))));
        }
    }
    let (payload, sign_by_kid) = match sign_by {
        Some(s) => {
            let (jws, kid) = pack_signed(msg, s, resolver, secrets).await?;
            (jws, Some(kid))
        }
        None => (msg.to_json(), None),
    };
    let (_, recipients) = public_keys(to, Relationship::KeyAgreement, resolver).await?;
    let (envelope, from_kid, to_kids) = match from {
        Some(from) => {
            let (from_did, ours) = own_keys(from, Relationship::KeyAgreement, resolver, secrets).await?;
            check_from(msg, from_did.as_str(), "sender")?;
            let (kid, key) = ours
                .iter()
                .find(|(_, k)| recipients.iter().any(|(_, r)| r.kind() == k.kind()))
                .ok_or_else(|| Error::key(format!("{} and {} share no key-agreement curve", clip(from), clip(to))))?;
            let recipients = same_curve(recipients, Some(key.kind()));
            let refs: Vec<(&str, &_)> = recipients.iter().map(|(k, p)| (k.as_str(), p)).collect();
            let sender = jwe::Sender { kid, key };
            let env = jwe::encrypt(payload.as_bytes(), ENCRYPTED, ContentEnc::A256CbcHs512, Some(sender), &refs)?;
            let mut text = to_json_string(&env)?;
            if opts.protect_sender {
                text = to_json_string(&jwe::encrypt(text.as_bytes(), ENCRYPTED, opts.anon_enc, None, &refs)?)?;
            }
            (text, Some(kid.clone()), recipients.into_iter().map(|(k, _)| k).collect())
        }
        None => {
            let recipients = same_curve(recipients, None);
            let refs: Vec<(&str, &_)> = recipients.iter().map(|(k, p)| (k.as_str(), p)).collect();
            let env = jwe::encrypt(payload.as_bytes(), ENCRYPTED, opts.anon_enc, None, &refs)?;
            (to_json_string(&env)?, None, recipients.into_iter().map(|(k, _)| k).collect())
        }
    };
    let mut service = forward::service_target(&to_did, resolver).await?;
    if service.is_none() {
        service = opts.via.clone();
    }
    let message = match (&service, opts.forward) {
        (Some(target), true) => forward::wrap_for_target(envelope, &to_did, target, resolver, opts).await?,
        _ => envelope,
    };
    Ok(Packed { message, from_kid, sign_by_kid, to_kids, service })
}

/// Anoncrypts any payload for `to` (a DID or key id).
pub(crate) async fn anoncrypt_raw(
    payload: &[u8],
    to: &str,
    enc: ContentEnc,
    resolver: &dyn DidResolver,
) -> Result<String> {
    let (_, recipients) = public_keys(to, Relationship::KeyAgreement, resolver).await?;
    let recipients = same_curve(recipients, None);
    let refs: Vec<(&str, &_)> = recipients.iter().map(|(k, p)| (k.as_str(), p)).collect();
    to_json_string(&jwe::encrypt(payload, ENCRYPTED, enc, None, &refs)?)
}

fn check_from(msg: &Message, did: &str, role: &str) -> Result<()> {
    match &msg.from {
        Some(f) if f == did => Ok(()),
        Some(f) => Err(Error::Protocol(format!("message `from` {} is not the {role} {}", clip(f), clip(did)))),
        None => Err(Error::Protocol(format!("message has no `from`, but a {role} ({}) was given", clip(did)))),
    }
}
