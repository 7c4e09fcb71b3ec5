//! Message Pickup 3.0 (mediator side), including live mode.

use did_core::didcomm::{message::now, Attachment, AttachmentData, Message};
use did_core::jose::b64e;
use serde_json::{json, Map, Value};

use super::{codes, problem_reply, reply, PICKUP_3};
use crate::error::Result;
use crate::quota::{Held, Refusal};
use crate::router::Channel;
use crate::state::Mediator;

/// Most bytes of queued messages put into one delivery (at least one message is always sent).
pub const MAX_DELIVERY_BYTES: usize = 8 * 1024 * 1024;

/// What a delivery of `bytes` queued bytes holds in memory until it is written: the bodies,
/// their base64 in the attachments, and the encrypted answer.
fn delivery_cost(bytes: usize) -> usize {
    bytes.saturating_mul(4)
}

/// Handles Pickup 3.0 message `name` from client `sender`; a delivery's memory is put in `held`.
pub async fn handle(
    m: &Mediator,
    name: &str,
    msg: &Message,
    sender: &str,
    ch: &Channel<'_>,
    held: &mut Held,
) -> Result<Message> {
    if !m.store.is_granted(sender).await? {
        return Ok(problem_reply(
            msg,
            codes::NOT_GRANTED,
            "pickup is for parties this mediator serves; send mediate-request first",
        ));
    }
    let recipient = msg.body.get("recipient_did").and_then(Value::as_str);
    match name {
        "status-request" => status(m, msg, sender, recipient, ch).await,
        "delivery-request" => {
            let Some(limit) = msg.body.get("limit").and_then(Value::as_u64).filter(|l| *l > 0) else {
                return Ok(problem_reply(msg, codes::BAD_REQUEST, "delivery-request needs a positive `limit`"));
            };
            let limit = (limit as usize).min(m.config.limits.max_delivery_batch);
            let mut queued = m.store.fetch(sender, recipient, limit, MAX_DELIVERY_BYTES, now()).await?;
            if queued.is_empty() {
                return status(m, msg, sender, recipient, ch).await;
            }
            let bytes: usize = queued.iter().map(|q| q.body.len()).sum();
            let reserved = match m.memory.try_reserve(delivery_cost(bytes)) {
                Some(r) => Some(r),
                None => {
                    queued.truncate(1);
                    m.memory.try_reserve(delivery_cost(queued[0].body.len()))
                }
            };
            let Some(reserved) = reserved else {
                m.metrics.refused.inc(Refusal::Memory);
                return Ok(problem_reply(
                    msg,
                    codes::MEMORY,
                    "the mediator is short of memory for deliveries right now; send the delivery-request again shortly",
                ));
            };
            *held = Held(Some(std::sync::Arc::new(reserved)));
            let attachments: Vec<Attachment> = queued.into_iter().map(|q| attachment(q.id, &q.body)).collect();
            m.metrics.delivered.fetch_add(attachments.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let body = recipient.map_or_else(|| json!({}), |r| json!({ "recipient_did": r }));
            let mut d = reply(msg, format!("{PICKUP_3}/delivery"), body);
            d.attachments = Some(attachments);
            Ok(d)
        }
        "messages-received" => {
            let Some(ids) = msg.body.get("message_id_list").and_then(Value::as_array) else {
                return Ok(problem_reply(msg, codes::BAD_REQUEST, "messages-received needs `message_id_list`"));
            };
            let ids: Vec<String> = ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).take(10_000).collect();
            let n = m.store.ack(sender, &ids).await?;
            m.metrics.acked.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            status(m, msg, sender, None, ch).await
        }
        "live-delivery-change" => {
            let Some(on) = msg.body.get("live_delivery").and_then(Value::as_bool) else {
                return Ok(problem_reply(
                    msg,
                    codes::BAD_REQUEST,
                    "live-delivery-change needs boolean `live_delivery`",
                ));
            };
            match ch {
                Channel::Ws { conn, tx } => m.set_live(sender, *conn, tx, on).await,
                Channel::Http if on => {
                    return Ok(problem_reply(msg, codes::LIVE_UNSUPPORTED, "Connection does not support Live Delivery"))
                }
                Channel::Http => {}
            }
            status(m, msg, sender, None, ch).await
        }
        _ => Ok(problem_reply(
            msg,
            codes::UNSUPPORTED,
            &format!("{PICKUP_3}/{name} is not a message a mediator handles"),
        )),
    }
}

/// A queued message as a delivery attachment (id = queue id, base64url data).
pub fn attachment(id: String, body: &[u8]) -> Attachment {
    let mut a = Attachment::json(Value::Null);
    a.id = Some(id);
    a.data = AttachmentData { base64: Some(b64e(body)), ..Default::default() };
    a
}

async fn status(
    m: &Mediator,
    req: &Message,
    sender: &str,
    recipient: Option<&str>,
    ch: &Channel<'_>,
) -> Result<Message> {
    let t = now();
    let s = m.store.status(sender, recipient, t).await?;
    let mut body = Map::new();
    if let Some(r) = recipient {
        body.insert("recipient_did".into(), r.into());
    }
    body.insert("message_count".into(), s.message_count.into());
    body.insert("total_bytes".into(), s.total_bytes.into());
    if let (Some(old), Some(new)) = (s.oldest_received_time, s.newest_received_time) {
        body.insert("longest_waited_seconds".into(), t.saturating_sub(old).into());
        body.insert("oldest_received_time".into(), old.into());
        body.insert("newest_received_time".into(), new.into());
    }
    let live = matches!(ch, Channel::Ws { conn, .. } if m.live.is_live(sender, *conn));
    body.insert("live_delivery".into(), live.into());
    Ok(reply(req, format!("{PICKUP_3}/status"), Value::Object(body)))
}

/// A delivery of one message pushed in live mode.
pub fn live_delivery(client: &str, id: String, body: &[u8]) -> Message {
    let mut d = Message::new(format!("{PICKUP_3}/delivery"), json!({}));
    d.to = Some(vec![client.to_owned()]);
    d.attachments = Some(vec![attachment(id, body)]);
    d
}
