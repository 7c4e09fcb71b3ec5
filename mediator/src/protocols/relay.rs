//! Relay route reservations (`https://didmpc.dev/protocols/relay/1.0`): a mediated client
//! reserves a 16-byte route id with a 32-byte route key; both session members then join
//! it on `/relay`, each proving its slot's secret (derived from the key, see
//! `specs/session.md` §2).

use did_core::didcomm::{message::now, Message};
use did_core::jose::{b64d, b64e};
use serde_json::{json, Value};

use super::{codes, problem_reply, reply, RELAY_1};
use crate::error::Result;
use crate::state::Mediator;
use relay::auth::KEY_LEN;
use relay::proto::ROUTE_LEN;

/// Default reservation lifetime.
pub const DEFAULT_TTL: u64 = 24 * 3600;
/// Longest reservation lifetime.
pub const MAX_TTL: u64 = 7 * 24 * 3600;

/// Handles `reserve` from client `sender`.
pub async fn handle(m: &Mediator, name: &str, msg: &Message, sender: &str) -> Result<Message> {
    if name != "reserve" {
        return Ok(problem_reply(msg, codes::UNSUPPORTED, "only `reserve` is defined"));
    }
    if !m.store.is_granted(sender).await? {
        return Ok(problem_reply(msg, codes::NOT_GRANTED, "relay routes are for parties this mediator serves"));
    }
    let route = match msg.body.get("route").and_then(Value::as_str).map(|r| b64d(r, "route")) {
        Some(Ok(r)) if r.len() == ROUTE_LEN => r,
        _ => return Ok(problem_reply(msg, codes::BAD_REQUEST, "`route` must be 16 bytes, base64url")),
    };
    let key = match msg.body.get("key").and_then(Value::as_str).map(|k| b64d(k, "key")) {
        Some(Ok(k)) if k.len() == KEY_LEN => zeroize::Zeroizing::new(k),
        _ => return Ok(problem_reply(msg, codes::BAD_REQUEST, "`key` must be 32 random bytes, base64url")),
    };
    let ttl = msg.body.get("ttl_secs").and_then(Value::as_u64).unwrap_or(DEFAULT_TTL).clamp(60, MAX_TTL);
    let expires = now() + ttl;
    if !m.store.reserve_route(&route, sender, &key, expires, m.config.limits.max_routes_per_client).await? {
        return Ok(problem_reply(
            msg,
            codes::BAD_REQUEST,
            "route taken by another client, or too many routes reserved",
        ));
    }
    if let Ok(id) = <[u8; ROUTE_LEN]>::try_from(route.as_slice()) {
        m.relay.renew(&relay::RouteId(id), expires);
    }
    let url = m.relay_url();
    Ok(reply(msg, format!("{RELAY_1}/reserved"), json!({"route": b64e(&route), "url": url, "expires_time": expires})))
}
