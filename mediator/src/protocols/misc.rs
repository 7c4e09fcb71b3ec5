//! Trust Ping 2.0, Discover Features 2.0 and Out-of-Band short links.

use did_core::didcomm::{message::now, oob, Message};
use serde_json::{json, Value};

use super::{codes, problem_reply, reply, DISCLOSED, DISCOVER_2, OOB_LINK_1, TRUST_PING_2};
use crate::error::Result;
use crate::state::Mediator;

/// Longest lifetime of a short link, seconds.
pub const MAX_LINK_TTL: u64 = 30 * 24 * 3600;

/// Trust Ping: answers unless `response_requested` is false.
pub fn trust_ping(msg: &Message) -> Option<Message> {
    let wanted = msg.body.get("response_requested").and_then(Value::as_bool).unwrap_or(true);
    wanted.then(|| reply(msg, format!("{TRUST_PING_2}/ping-response"), json!({})))
}

/// Discover Features: discloses our protocols matching the queries (`*` wildcards).
pub fn discover(msg: &Message) -> Message {
    let queries = msg.body.get("queries").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut disclosures = Vec::new();
    for q in queries.iter().take(50) {
        if q.get("feature-type").and_then(Value::as_str) != Some("protocol") {
            continue;
        }
        let pattern = q.get("match").and_then(Value::as_str).unwrap_or_default();
        for (proto, role) in DISCLOSED {
            if glob(pattern, proto) && !disclosures.iter().any(|d: &Value| d["id"] == *proto) {
                disclosures.push(json!({"feature-type": "protocol", "id": proto, "roles": [role]}));
            }
        }
    }
    reply(msg, format!("{DISCOVER_2}/disclose"), json!({ "disclosures": disclosures }))
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, rest)) => {
            let Some(tail) = s.strip_prefix(pre) else {
                return false;
            };
            (0..=tail.len()).filter(|i| tail.is_char_boundary(*i)).any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// OOB short links: `create` stores an invitation and answers with its `_oobid` URL.
pub async fn oob_link(m: &Mediator, name: &str, msg: &Message, sender: &str) -> Result<Message> {
    if name != "create" {
        return Ok(problem_reply(msg, codes::UNSUPPORTED, "only `create` is defined"));
    }
    if !m.store.is_granted(sender).await? {
        return Ok(problem_reply(msg, codes::NOT_GRANTED, "short links are for parties this mediator serves"));
    }
    let Some(inv) = msg.body.get("invitation") else {
        return Ok(problem_reply(msg, codes::BAD_REQUEST, "`invitation` is required"));
    };
    let text = inv.to_string();
    if text.len() > oob::MAX_URL_BYTES {
        return Ok(problem_reply(msg, codes::TOO_BIG, "invitation too large"));
    }
    if let Err(e) = oob::from_url(&text) {
        return Ok(problem_reply(msg, codes::BAD_REQUEST, &format!("not an OOB 2.0 invitation: {e}")));
    }
    let ttl = msg.body.get("ttl_secs").and_then(Value::as_u64).unwrap_or(24 * 3600).min(MAX_LINK_TTL);
    let id = uuid::Uuid::new_v4().simple().to_string();
    m.store.put_oob(&id, &text, now() + ttl).await?;
    let url = format!("{}/oob?_oobid={id}", m.base_urls[0]);
    Ok(reply(msg, format!("{OOB_LINK_1}/created"), json!({"id": id, "url": url, "expires_time": now() + ttl})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing() {
        assert!(glob("https://didcomm.org/*", "https://didcomm.org/routing/2.0"));
        assert!(glob("https://didcomm.org/messagepickup/3.*", "https://didcomm.org/messagepickup/3.0"));
        assert!(!glob("https://didcomm.org/messagepickup/2.*", "https://didcomm.org/messagepickup/3.0"));
        assert!(glob("*", "x"));
        assert!(glob("https://didcomm.org/routing/2.0", "https://didcomm.org/routing/2.0"));
    }

    #[test]
    fn ping_and_discover() {
        let ping = Message::new(format!("{TRUST_PING_2}/ping"), json!({"response_requested": false}));
        assert!(trust_ping(&ping).is_none());
        let ping = Message::new(format!("{TRUST_PING_2}/ping"), json!({})).from("did:ex:a");
        let pong = trust_ping(&ping).unwrap();
        assert_eq!(pong.thid.as_deref(), Some(ping.id.as_str()));
        assert_eq!(pong.to, Some(vec!["did:ex:a".to_owned()]));
        let q = Message::new(
            format!("{DISCOVER_2}/queries"),
            json!({"queries": [{"feature-type": "protocol", "match": "https://didcomm.org/coordinate-mediation/*"}]}),
        );
        let d = discover(&q);
        assert_eq!(d.body["disclosures"].as_array().unwrap().len(), 2);
    }
}
