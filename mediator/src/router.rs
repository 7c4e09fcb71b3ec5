//! The message router: unpacks what arrives on any transport, queues forwards, and
//! answers the mediator protocols. Transport-independent: HTTP and WebSocket handlers
//! call [`Mediator::handle`] and send back what it returns.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use did_core::didcomm::{self, message::now, parse_forward, Message, PackOptions, UnpackOptions};
use did_core::Error as DidError;

use crate::live::{OutFrame, Outbound};
use crate::metrics::Metrics;
use crate::protocols::{self, codes, misc, pickup, problem, problem_reply, split_type};
use crate::quota::{Held, Refusal};
use crate::resolution::Gate;
use crate::state::Mediator;
use crate::store::{source_bucket, GrantState, NewMessage, QueueLimits, Refused};

/// Where a message came from, and so where answers can go.
pub enum Channel<'a> {
    /// An HTTP POST: one answer, in the response.
    Http,
    /// A WebSocket: answers and live deliveries go back on it.
    Ws {
        /// Connection id.
        conn: u64,
        /// Sender for frames to this connection.
        tx: &'a Outbound,
    },
}

/// What to send back on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// HTTP status to use (WebSocket ignores it).
    pub status: u16,
    /// A DIDComm message (packed, or a plaintext problem report) to send back.
    pub body: Option<String>,
    /// Memory the answer holds against the budget until it is written (pickup deliveries).
    pub held: Held,
}

impl Outcome {
    fn accepted() -> Outcome {
        Outcome { status: 202, body: None, held: Held::default() }
    }

    /// An unencrypted problem report (for senders we cannot or need not authenticate).
    pub fn plain_problem(status: u16, code: &str, comment: &str) -> Outcome {
        Outcome { status, body: Some(problem(None, code, comment).to_json()), held: Held::default() }
    }

    /// An unencrypted problem report about a message we could read: in its thread
    /// (`pthid`, which Problem Report 2.0 requires) and acknowledging it (`ack`).
    fn plain_problem_for(req: &Message, status: u16, code: &str, comment: &str) -> Outcome {
        Outcome { status, body: Some(problem_reply(req, code, comment).to_json()), held: Held::default() }
    }
}

/// Most forwards addressed to the mediator itself unwrapped inside one another.
const MAX_FORWARDS_TO_SELF: u8 = 4;

impl Mediator {
    /// Handles one inbound DIDComm message from an unknown source.
    pub async fn handle(self: &Arc<Self>, text: &str, ch: Channel<'_>) -> Outcome {
        self.handle_from(text, ch, None).await
    }

    /// Handles one inbound DIDComm message that came from `peer` (what per-source quotas
    /// count by; `None` puts it in one shared bucket).
    pub async fn handle_from(self: &Arc<Self>, text: &str, ch: Channel<'_>, peer: Option<IpAddr>) -> Outcome {
        let counter = if matches!(ch, Channel::Http) { &self.metrics.received_http } else { &self.metrics.received_ws };
        Metrics::inc(counter);
        self.handle_at(text, &ch, &source_bucket(peer), 0).await
    }

    /// [`Mediator::handle_at`] behind a pointer, for the forward-to-self recursion.
    fn handle_boxed<'a>(
        self: &'a Arc<Self>,
        text: &'a str,
        ch: &'a Channel<'a>,
        source: &'a str,
        depth: u8,
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> {
        Box::pin(self.handle_at(text, ch, source, depth))
    }

    /// Handles a message found `depth` forwards-to-self deep.
    async fn handle_at(self: &Arc<Self>, text: &str, ch: &Channel<'_>, source: &str, depth: u8) -> Outcome {
        let opts = UnpackOptions { max_bytes: self.config.limits.max_message_bytes };
        let gate = Gate { m: self };
        let (msg, meta) = match didcomm::unpack(text, &gate, &self.keys, &opts).await {
            Ok(ok) => ok,
            Err(e) => {
                Metrics::inc(&self.metrics.problems);
                tracing::debug!(error = %e, "refused inbound message");
                let (status, code) = unpack_problem(&e);
                return Outcome::plain_problem(status, code, &e.to_string());
            }
        };
        if split_type(&msg.type_).0 == protocols::ROUTING_2 {
            return self.forward(&msg, ch, source, depth).await;
        }
        let Some(sender) = meta.sender.clone() else {
            Metrics::inc(&self.metrics.problems);
            return Outcome::plain_problem_for(
                &msg,
                401,
                codes::ANONYMOUS,
                "mediator protocols need an authcrypted or signed message from your DID",
            );
        };
        let ttl = self.config.limits.grant_ttl_secs;
        match self.store.touch_grant(&sender, now(), ttl).await {
            Ok(GrantState::Expired) => {
                self.metrics.refused.inc(Refusal::GrantExpired);
                let (proto, name) = split_type(&msg.type_);
                let renewing = matches!(proto, protocols::COORD_2 | protocols::COORD_3) && name == "mediate-request";
                if !renewing {
                    let comment = format!(
                        "your mediation grant expired after {ttl} s without use, with your recipient DIDs and \
                         their queue; send mediate-request again"
                    );
                    let answer = problem_reply(&msg, codes::NOT_GRANTED, &comment);
                    return self.answer(&msg, &sender, Some(answer), Held::default()).await;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot refresh a grant"),
        }
        if let Some(fp) = &meta.from_prior {
            match self.store.rotate_client(&fp.iss, &fp.sub).await {
                Ok(true) => tracing::info!(old = %fp.iss, new = %fp.sub, "client rotated its DID"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "rotation failed"),
            }
        }
        let mut held = Held::default();
        let answer = match self.dispatch(&msg, &sender, ch, &mut held).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "internal error handling {}", msg.type_);
                Some(problem_reply(&msg, codes::INTERNAL, "internal error; try again later"))
            }
        };
        self.answer(&msg, &sender, answer, held).await
    }

    /// Packs `answer` to the authenticated `sender` of `msg` (unless it asked for none).
    async fn answer(&self, msg: &Message, sender: &str, answer: Option<Message>, held: Held) -> Outcome {
        let wants_reply = msg.extra.get("return_route").and_then(|v| v.as_str()) != Some("none");
        match answer {
            Some(a) if wants_reply => {
                if a.type_.ends_with("/problem-report") {
                    Metrics::inc(&self.metrics.problems);
                }
                match self.pack_for(&a, sender).await {
                    Ok(packed) => Outcome { status: 200, body: Some(packed), held },
                    Err(e) => {
                        tracing::warn!(error = %e, client = %sender, "cannot encrypt the answer");
                        Outcome::plain_problem_for(msg, 400, codes::DID, &format!("cannot encrypt to your DID: {e}"))
                    }
                }
            }
            _ => Outcome::accepted(),
        }
    }

    async fn dispatch(
        &self,
        msg: &Message,
        sender: &str,
        ch: &Channel<'_>,
        held: &mut Held,
    ) -> crate::error::Result<Option<Message>> {
        let (proto, name) = split_type(&msg.type_);
        Ok(match proto {
            protocols::COORD_2 | protocols::COORD_3 => {
                Some(protocols::coordinate::handle(self, proto, name, msg, sender).await?)
            }
            protocols::PICKUP_3 => Some(pickup::handle(self, name, msg, sender, ch, held).await?),
            protocols::TRUST_PING_2 if name == "ping" => misc::trust_ping(msg),
            protocols::DISCOVER_2 if name == "queries" => Some(misc::discover(msg)),
            protocols::OOB_LINK_1 => Some(misc::oob_link(self, name, msg, sender).await?),
            protocols::RELAY_1 => Some(protocols::relay::handle(self, name, msg, sender).await?),
            relay::reflex::PROTOCOL => Some(protocols::reflex::handle(self, name, msg, sender).await?),
            protocols::PROBLEM_2 => {
                tracing::info!(client = %sender, body = %msg.body, "problem report received");
                None
            }
            _ => Some(problem_reply(msg, codes::UNSUPPORTED, &format!("this mediator does not handle {}", msg.type_))),
        })
    }

    /// Authcrypts `msg` from the mediator to `to` for direct delivery (no forward wrapping).
    pub(crate) async fn pack_for(&self, msg: &Message, to: &str) -> did_core::Result<String> {
        let opts = PackOptions { forward: false, ..Default::default() };
        let mut msg = msg.clone();
        msg.from = Some(self.identity.did.to_string());
        msg.to.get_or_insert_with(|| vec![to.to_owned()]);
        let packed = didcomm::pack_encrypted(
            &msg,
            to,
            Some(self.identity.did.as_str()),
            None,
            &self.resolver,
            &self.keys,
            &opts,
        )
        .await?;
        Ok(packed.message)
    }

    async fn forward(self: &Arc<Self>, msg: &Message, ch: &Channel<'_>, source: &str, depth: u8) -> Outcome {
        let refuse = |status, code, comment: &str| {
            Metrics::inc(&self.metrics.forwards_refused);
            Metrics::inc(&self.metrics.problems);
            Outcome::plain_problem_for(msg, status, code, comment)
        };
        let fwd = match parse_forward(msg) {
            Ok(f) => f,
            Err(e) => return refuse(400, codes::MALFORMED, &e.to_string()),
        };
        let t = now();
        let ttl = self.config.limits.default_message_ttl_secs;
        if fwd.expires_time.is_some_and(|e| e <= t) {
            return refuse(400, codes::EXPIRED, "the forward message has expired");
        }
        if self.is_own(&fwd.next) {
            // `next` is this mediator: a re-wrapped forward (DIDComm v2, Routing) or a route
            // through our DID as endpoint that also lists our key in `routingKeys` (senders
            // prepend the mediator's keys, so the inner forward is for us too). Unwrap it.
            if depth >= MAX_FORWARDS_TO_SELF {
                return refuse(
                    400,
                    codes::MALFORMED,
                    "too many forwards addressed to this mediator inside one another",
                );
            }
            let mut outcome = Outcome::accepted();
            for payload in &fwd.payloads {
                outcome = self.handle_boxed(payload, ch, source, depth + 1).await;
                if outcome.status >= 400 {
                    break;
                }
            }
            return outcome;
        }
        let expires_at = fwd.expires_time.unwrap_or(t + ttl).min(t + ttl);
        let limits = self.config.limits.queue_limits();
        for payload in fwd.payloads {
            let new = NewMessage {
                recipient: fwd.next.clone(),
                body: payload.as_bytes().to_vec(),
                received_at: t,
                expires_at,
                source: source.to_owned(),
            };
            // A key id as `next` falls back to its DID.
            let result = match fwd.next.split_once('#') {
                None => self.store.enqueue(new, limits).await,
                Some((did, _)) => match self.store.enqueue(new.clone(), limits).await {
                    Ok(Err(Refused::UnknownRecipient)) => {
                        self.store.enqueue(NewMessage { recipient: did.to_owned(), ..new }, limits).await
                    }
                    other => other,
                },
            };
            match result {
                Ok(Ok(q)) => {
                    Metrics::inc(&self.metrics.forwards_queued);
                    self.push_live(&q.client, q.id, payload.as_bytes()).await;
                }
                Ok(Err(r)) => {
                    let (status, code, why, comment) = refusal(&r, &limits, &fwd.next);
                    if let Some(why) = why {
                        self.metrics.refused.inc(why);
                    }
                    return refuse(status, code, &comment);
                }
                Err(e) => {
                    tracing::error!(error = %e, "store refused a forward");
                    return refuse(503, codes::INTERNAL, "the mediator cannot store messages right now");
                }
            }
        }
        Outcome::accepted()
    }

    /// Whether `next` (a DID or key id) names this mediator (its current or an earlier DID).
    fn is_own(&self, next: &str) -> bool {
        let did = next.split_once('#').map_or(next, |(d, _)| d);
        self.own_dids.iter().any(|d| d == did)
    }

    /// Pushes a just-queued message to the client's live connections (it stays queued
    /// until the client acknowledges it with `messages-received`).
    pub(crate) async fn push_live(&self, client: &str, id: String, body: &[u8]) {
        let targets = self.live.targets(client);
        if targets.is_empty() {
            return;
        }
        let delivery = pickup::live_delivery(client, id, body);
        match self.pack_for(&delivery, client).await {
            Ok(packed) => {
                for tx in targets {
                    // Over the memory budget the message just waits for pickup.
                    let Some(held) = self.memory.try_reserve(packed.len()) else {
                        self.metrics.refused.inc(Refusal::Memory);
                        continue;
                    };
                    if tx.try_send(OutFrame { text: packed.clone(), held: Some(held) }).is_ok() {
                        self.metrics.delivered_live.fetch_add(1, Relaxed);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, client = %client, "cannot encrypt a live delivery")
            }
        }
    }
}

/// HTTP status, problem code, metrics reason and comment for a refused forward.
fn refusal(r: &Refused, l: &QueueLimits, next: &str) -> (u16, &'static str, Option<Refusal>, String) {
    let (status, code, why, comment) = match r {
        Refused::UnknownRecipient => {
            return (404, codes::UNKNOWN_RECIPIENT, None, format!("no party here registered {}", crate::clip(next)))
        }
        Refused::QueueFullMessages => (
            429,
            codes::QUEUE_FULL,
            Refusal::QueueMessages,
            format!("the recipient's queue holds its limit of {} messages; try later", l.max_messages),
        ),
        Refused::QueueFullBytes => (
            429,
            codes::QUEUE_FULL,
            Refusal::QueueBytes,
            format!("the recipient's queue holds its limit of {} bytes; try later", l.max_bytes),
        ),
        Refused::ClientQueueBytes => (
            429,
            codes::CLIENT_QUOTA,
            Refusal::ClientQueueBytes,
            format!("the recipient's queues together hold their limit of {} bytes; try later", l.max_client_bytes),
        ),
        Refused::TotalQueueBytes => {
            (507, codes::STORE_FULL, Refusal::TotalQueueBytes, "the mediator's store is full; try later".into())
        }
        Refused::SourceBudget => (
            429,
            codes::SENDER_QUOTA,
            Refusal::SourceBudget,
            format!(
                "your address already has as much queued for this recipient as one sender may ({} messages, \
                 {} bytes); try again after the recipient picks it up",
                l.max_source_messages, l.max_source_bytes
            ),
        ),
    };
    (status, code, Some(why), comment)
}

/// HTTP status and problem code for an unpack failure.
fn unpack_problem(e: &DidError) -> (u16, &'static str) {
    match e {
        DidError::TooLarge { .. } => (413, codes::TOO_BIG),
        DidError::Malformed(_) | DidError::UnsupportedAlgorithm(_) => (400, codes::MALFORMED),
        DidError::Resolution { .. }
        | DidError::UnsupportedMethod(_)
        | DidError::InvalidDid { .. }
        | DidError::InvalidDidUrl { .. } => (400, codes::DID),
        _ => (400, codes::CRYPTO),
    }
}
