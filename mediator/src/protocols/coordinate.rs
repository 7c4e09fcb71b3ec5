//! Coordinate Mediation 2.0 and 3.0 (mediator side).

use did_core::didcomm::Message;
use serde_json::{json, Value};

use super::{codes, reply, COORD_2};
use crate::config::Admission;
use crate::error::Result;
use crate::state::Mediator;
use crate::store::UpdateResult;

/// Handles `name` of Coordinate Mediation `proto` (2.0 or 3.0) from `sender`.
pub async fn handle(m: &Mediator, proto: &str, name: &str, msg: &Message, sender: &str) -> Result<Message> {
    let v2 = proto == COORD_2;
    let now = did_core::didcomm::message::now();
    match name {
        "mediate-request" => {
            let allowed = match m.config.policy.admission {
                Admission::Open => true,
                Admission::Allowlist => m.config.policy.allowlist.iter().any(|d| d == sender),
            };
            if !allowed {
                tracing::info!(client = %sender, "mediation denied by policy");
                return Ok(reply(msg, format!("{proto}/mediate-deny"), json!({})));
            }
            m.store.grant(sender, now).await?;
            let did = m.routing_did.to_string();
            let routing = if v2 { Value::from(did) } else { json!([did]) };
            Ok(reply(msg, format!("{proto}/mediate-grant"), json!({ "routing_did": routing })))
        }
        "keylist-update" | "recipient-update" if (name == "keylist-update") == v2 => {
            if !m.store.is_granted(sender).await? {
                return Ok(not_granted(msg));
            }
            let Some(updates) = msg.body.get("updates").and_then(Value::as_array) else {
                return Ok(bad_request(msg, "`updates` must be a list"));
            };
            if updates.len() > 1000 {
                return Ok(bad_request(msg, "at most 1000 updates per message"));
            }
            let mut updated = Vec::with_capacity(updates.len());
            for u in updates {
                let did = u.get("recipient_did").and_then(Value::as_str).unwrap_or_default();
                let action = u.get("action").and_then(Value::as_str).unwrap_or_default();
                let result = match (did_core::DidUrl::parse(did), action) {
                    (Ok(_), "add" | "remove") => {
                        let max = m.config.limits.max_recipients_per_client;
                        m.store.update_recipient(sender, did, action == "add", max).await?
                    }
                    _ => UpdateResult::ClientError,
                };
                let mut entry = json!({"recipient_did": did, "action": action, "result": result.as_str()});
                if result == UpdateResult::LimitReached {
                    m.metrics.refused.inc(crate::quota::Refusal::Recipients);
                    let max = m.config.limits.max_recipients_per_client;
                    entry["reason"] = json!(format!("at most {max} recipient DIDs per client"));
                }
                updated.push(entry);
            }
            let name = if v2 { "keylist-update-response" } else { "recipient-update-response" };
            Ok(reply(msg, format!("{proto}/{name}"), json!({ "updated": updated })))
        }
        "keylist-query" | "recipient-query" if (name == "keylist-query") == v2 => {
            if !m.store.is_granted(sender).await? {
                return Ok(not_granted(msg));
            }
            let page = msg.body.get("paginate");
            let num = |k: &str, d: u64| page.and_then(|p| p.get(k)).and_then(Value::as_u64).unwrap_or(d);
            let (limit, offset) = (num("limit", 100).min(1000), num("offset", 0));
            let (dids, total) = m.store.recipients(sender, offset, limit).await?;
            let count = dids.len() as u64;
            let list: Vec<Value> = dids.into_iter().map(|d| json!({ "recipient_did": d })).collect();
            let pagination =
                json!({"count": count, "offset": offset, "remaining": total.saturating_sub(offset + count)});
            Ok(if v2 {
                reply(msg, format!("{proto}/keylist"), json!({"keys": list, "pagination": pagination}))
            } else {
                reply(msg, format!("{proto}/recipient"), json!({"dids": list, "pagination": pagination}))
            })
        }
        _ => Ok(super::problem_reply(
            msg,
            codes::UNSUPPORTED,
            &format!("{proto}/{name} is not a message a mediator handles"),
        )),
    }
}

fn not_granted(msg: &Message) -> Message {
    super::problem_reply(
        msg,
        codes::NOT_GRANTED,
        "mediation has not been granted to this DID; send mediate-request first",
    )
}

fn bad_request(msg: &Message, what: &str) -> Message {
    super::problem_reply(msg, codes::BAD_REQUEST, what)
}
