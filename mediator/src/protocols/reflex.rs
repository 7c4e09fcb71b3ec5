//! Reflexive-address probe keys (`https://didmpc.dev/protocols/reflex/1.0`): a mediated
//! client asks for a key over its authenticated link (`request`) and gets one (`grant`)
//! with the UDP addresses that answer probes under it (see `transport::udp`).

use did_core::didcomm::{message::now, Message};
use did_core::jose::b64e;
use serde_json::json;

use super::{codes, problem_reply, reply};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::state::Mediator;

/// Handles `request` from client `sender`.
pub async fn handle(m: &Mediator, name: &str, msg: &Message, sender: &str) -> Result<Message> {
    if name != "request" {
        return Ok(problem_reply(msg, codes::UNSUPPORTED, "only `request` is defined"));
    }
    if !m.store.is_granted(sender).await? {
        return Ok(problem_reply(msg, codes::NOT_GRANTED, "probe keys are for parties this mediator serves"));
    }
    if m.udp.advertised.is_empty() {
        return Ok(problem_reply(msg, codes::UNSUPPORTED, "this mediator answers no UDP probes"));
    }
    let expires = now() + m.config.udp.key_ttl_secs;
    let (id, key) = m.reflex.issue(expires);
    Metrics::inc(&m.metrics.reflex_grants);
    let body = json!({
        "key_id": b64e(id),
        "key": b64e(key.as_bytes()),
        "expires_time": expires,
        "udp": m.udp.advertised,
    });
    Ok(reply(msg, format!("{}/grant", relay::reflex::PROTOCOL), body))
}
