//! Routing 2.0: wrapping for a recipient's routing keys, and unwrapping on a mediator.

use serde_json::{json, Value};

use crate::did::Did;
use crate::error::{clip, Error, Result};
use crate::resolver::DidResolver;

use super::message::{Attachment, Message};
use super::pack::{anoncrypt_raw, PackOptions};

/// The Routing 2.0 forward message type.
pub const FORWARD: &str = "https://didcomm.org/routing/2.0/forward";

/// Where and through which keys a message for a DID travels.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceTarget {
    /// Transport URI to deliver the outermost envelope to.
    pub uri: String,
    /// The routing keys wrapped for (the first one's layer is outermost), starting with an implied mediator DID.
    #[serde(default)]
    pub routing_keys: Vec<String>,
}

/// The DIDComm v2 endpoint of a DID, following a mediator DID used as `uri` (one level).
pub async fn service_target(to: &Did, resolver: &dyn DidResolver) -> Result<Option<ServiceTarget>> {
    let doc = resolver.resolve(to).await?;
    let usable = |e: &&crate::doc::DidCommEndpoint| e.accept.is_empty() || e.accept.iter().any(|a| a == "didcomm/v2");
    let Some(ep) = doc.didcomm_endpoints().find(usable) else {
        return Ok(None);
    };
    if !ep.uri.starts_with("did:") {
        return Ok(Some(ServiceTarget { uri: ep.uri.clone(), routing_keys: ep.routing_keys.clone() }));
    }
    let mediator = Did::parse(&ep.uri)?;
    let mdoc = resolver.resolve(&mediator).await?;
    let mep = mdoc.didcomm_endpoints().find(usable).ok_or_else(|| {
        Error::Protocol(format!("mediator {} publishes no DIDComm endpoint", clip(mediator.as_str())))
    })?;
    if mep.uri.starts_with("did:") {
        return Err(Error::Protocol("mediator endpoint is itself a DID; only one level is followed".into()));
    }
    let mut routing_keys = vec![mediator.to_string()];
    routing_keys.extend(ep.routing_keys.iter().cloned());
    Ok(Some(ServiceTarget { uri: mep.uri.clone(), routing_keys }))
}

/// A forward message carrying `envelope` to `next`.
pub fn forward_message(next: &str, envelope: Value, expires_time: Option<u64>) -> Message {
    let mut m = Message::new(FORWARD, json!({ "next": next }));
    m.expires_time = expires_time;
    m.attachments = Some(vec![Attachment::json(envelope)]);
    m
}

/// Wraps `envelope` once per routing key of `to`'s service (innermost first, so the
/// first routing key's layer is outermost). Returns the result and the service used.
pub async fn wrap_for_service(
    envelope: String,
    to: &Did,
    resolver: &dyn DidResolver,
    opts: &PackOptions,
) -> Result<(String, Option<ServiceTarget>)> {
    let Some(target) = service_target(to, resolver).await? else {
        return Ok((envelope, None));
    };
    let wrapped = wrap_for_target(envelope, to, &target, resolver, opts).await?;
    Ok((wrapped, Some(target)))
}

/// Wraps `envelope` for `to` once per routing key of `target`.
pub async fn wrap_for_target(
    envelope: String,
    to: &Did,
    target: &ServiceTarget,
    resolver: &dyn DidResolver,
    opts: &PackOptions,
) -> Result<String> {
    let mut current = envelope;
    let keys = &target.routing_keys;
    for i in (0..keys.len()).rev() {
        let next = keys.get(i + 1).map_or(to.as_str(), String::as_str);
        let inner: Value = serde_json::from_str(&current).map_err(|e| Error::malformed(e.to_string()))?;
        let fwd = forward_message(next, inner, opts.forward_expires_time);
        current = anoncrypt_raw(fwd.to_json().as_bytes(), &keys[i], opts.anon_enc, resolver).await?;
    }
    Ok(current)
}

/// A forward message, validated, as a mediator sees it after decrypting it.
#[derive(Clone, Debug)]
pub struct Forward {
    /// The next hop (a DID, or a key id for the last hop).
    pub next: String,
    /// The attached envelopes to pass on, as JSON text.
    pub payloads: Vec<String>,
    /// The forward message's `expires_time`.
    pub expires_time: Option<u64>,
}

/// Interprets a plaintext message as a forward; attachments may be inline JSON or base64.
pub fn parse_forward(msg: &Message) -> Result<Forward> {
    if !msg.type_.starts_with("https://didcomm.org/routing/2.") || !msg.type_.ends_with("/forward") {
        return Err(Error::Protocol(format!("{} is not a forward message", clip(&msg.type_))));
    }
    let next =
        msg.body.get("next").and_then(Value::as_str).ok_or_else(|| Error::malformed("forward without `next`"))?;
    if !next.starts_with("did:") {
        return Err(Error::malformed("forward `next` is not a DID"));
    }
    let atts = msg.attachments.as_deref().unwrap_or_default();
    if atts.is_empty() {
        return Err(Error::malformed("forward without attachments"));
    }
    let mut payloads = Vec::with_capacity(atts.len());
    for a in atts {
        let text = match (&a.data.json, &a.data.base64) {
            (Some(v @ Value::Object(_)), _) => v.to_string(),
            (Some(Value::String(s)), _) => s.clone(),
            (_, Some(b)) => String::from_utf8(crate::jose::b64d(b, "attachment base64")?)
                .map_err(|_| Error::malformed("forward attachment is not UTF-8"))?,
            _ => return Err(Error::malformed("forward attachment has neither json nor base64 data")),
        };
        payloads.push(text);
    }
    Ok(Forward { next: next.to_owned(), payloads, expires_time: msg.expires_time })
}
