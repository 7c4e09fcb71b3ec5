//! The message router: unpacks what arrives on any transport, queues forwards, and
//! answers the mediator protocols. Transport-independent: HTTP and WebSocket handlers
//! call [`Mediator::handle`] and send back what it returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use did_core::didcomm::{self, message::now, parse_forward, Message, PackOptions, UnpackOptions};
use did_core::Error as DidError;

use crate::live::Outbound;
use crate::metrics::Metrics;
use crate::protocols::{self, codes, misc, pickup, problem, problem_reply, split_type};
use crate::state::Mediator;
use crate::store::{NewMessage, QueueLimits, Refused};

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
}

impl Outcome {
    fn accepted() -> Outcome {
        Outcome { status: 202, body: None }
    }

    /// An unencrypted problem report (for senders we cannot or need not authenticate).
    pub fn plain_problem(status: u16, code: &str, comment: &str) -> Outcome {
        Outcome { status, body: Some(problem(None, code, comment).to_json()) }
    }

    /// An unencrypted problem report about a message we could read: in its thread
    /// (`pthid`, which Problem Report 2.0 requires) and acknowledging it (`ack`).
    fn plain_problem_for(req: &Message, status: u16, code: &str, comment: &str) -> Outcome {
        Outcome { status, body: Some(problem_reply(req, code, comment).to_json()) }
    }
}

/// Most forwards addressed to the mediator itself unwrapped inside one another.
const MAX_FORWARDS_TO_SELF: u8 = 4;

impl Mediator {
    /// Handles one inbound DIDComm message.
    pub async fn handle(self: &Arc<Self>, text: &str, ch: Channel<'_>) -> Outcome {
        let counter = if matches!(ch, Channel::Http) { &self.metrics.received_http } else { &self.metrics.received_ws };
        Metrics::inc(counter);
        self.handle_at(text, &ch, 0).await
    }

    /// [`Mediator::handle_at`] behind a pointer, for the forward-to-self recursion.
    fn handle_boxed<'a>(
        self: &'a Arc<Self>,
        text: &'a str,
        ch: &'a Channel<'a>,
        depth: u8,
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>> {
        Box::pin(self.handle_at(text, ch, depth))
    }

    /// Handles a message found `depth` forwards-to-self deep.
    async fn handle_at(self: &Arc<Self>, text: &str, ch: &Channel<'_>, depth: u8) -> Outcome {
        let opts = UnpackOptions { max_bytes: self.config.limits.max_message_bytes };
        let (msg, meta) = match didcomm::unpack(text, &self.resolver, &self.keys, &opts).await {
            Ok(ok) => ok,
            Err(e) => {
                Metrics::inc(&self.metrics.problems);
                tracing::debug!(error = %e, "refused inbound message");
                let (status, code) = unpack_problem(&e);
                return Outcome::plain_problem(status, code, &e.to_string());
            }
        };
        if split_type(&msg.type_).0 == protocols::ROUTING_2 {
            return self.forward(&msg, ch, depth).await;
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
        if let Some(fp) = &meta.from_prior {
            match self.store.rotate_client(&fp.iss, &fp.sub).await {
                Ok(true) => tracing::info!(old = %fp.iss, new = %fp.sub, "client rotated its DID"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "rotation failed"),
            }
        }
        let answer = match self.dispatch(&msg, &sender, ch).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "internal error handling {}", msg.type_);
                Some(problem_reply(&msg, codes::INTERNAL, "internal error; try again later"))
            }
        };
        let wants_reply = msg.extra.get("return_route").and_then(|v| v.as_str()) != Some("none");
        match answer {
            Some(a) if wants_reply => {
                if a.type_.ends_with("/problem-report") {
                    Metrics::inc(&self.metrics.problems);
                }
                match self.pack_for(&a, &sender).await {
                    Ok(packed) => Outcome { status: 200, body: Some(packed) },
                    Err(e) => {
                        tracing::warn!(error = %e, client = %sender, "cannot encrypt the answer");
                        Outcome::plain_problem_for(&msg, 400, codes::DID, &format!("cannot encrypt to your DID: {e}"))
                    }
                }
            }
            _ => Outcome::accepted(),
        }
    }

    async fn dispatch(&self, msg: &Message, sender: &str, ch: &Channel<'_>) -> crate::error::Result<Option<Message>> {
        let (proto, name) = split_type(&msg.type_);
        Ok(match proto {
            protocols::COORD_2 | protocols::COORD_3 => {
                Some(protocols::coordinate::handle(self, proto, name, msg, sender).await?)
            }
            protocols::PICKUP_3 => Some(pickup::handle(self, name, msg, sender, ch).await?),
            protocols::TRUST_PING_2 if name == "ping" => misc::trust_ping(msg),
            protocols::DISCOVER_2 if name == "queries" => Some(misc::discover(msg)),
            protocols::OOB_LINK_1 => Some(misc::oob_link(self, name, msg, sender).await?),
            protocols::RELAY_1 => Some(protocols::relay::handle(self, name, msg, sender).await?),
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

    async fn forward(self: &Arc<Self>, msg: &Message, ch: &Channel<'_>, depth: u8) -> Outcome {
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
                outcome = self.handle_boxed(payload, ch, depth + 1).await;
                if outcome.status >= 400 {
                    break;
                }
            }
            return outcome;
        }
        let expires_at = fwd.expires_time.unwrap_or(t + ttl).min(t + ttl);
        let limits = QueueLimits {
            max_messages: self.config.limits.max_queue_messages,
            max_bytes: self.config.limits.max_queue_bytes,
        };
        for payload in fwd.payloads {
            let mut recipient = fwd.next.clone();
            let mut result = self.enqueue(&recipient, &payload, t, expires_at, limits).await;
            if matches!(result, Ok(Err(Refused::UnknownRecipient))) {
                if let Some((did, _)) = fwd.next.split_once('#') {
                    recipient = did.to_owned();
                    result = self.enqueue(&recipient, &payload, t, expires_at, limits).await;
                }
            }
            match result {
                Ok(Ok(q)) => {
                    Metrics::inc(&self.metrics.forwards_queued);
                    self.push_live(&q.client, q.id, payload.as_bytes()).await;
                }
                Ok(Err(Refused::UnknownRecipient)) => {
                    return refuse(
                        404,
                        codes::UNKNOWN_RECIPIENT,
                        &format!("no party here registered {}", crate::clip(&fwd.next)),
                    )
                }
                Ok(Err(r)) => {
                    return refuse(429, codes::QUEUE_FULL, &format!("the recipient's queue is full ({r:?}); try later"))
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

    async fn enqueue(
        &self,
        recipient: &str,
        payload: &str,
        t: u64,
        expires_at: u64,
        limits: QueueLimits,
    ) -> crate::error::Result<Result<crate::store::Enqueued, Refused>> {
        let new = NewMessage {
            recipient: recipient.to_owned(),
            body: payload.as_bytes().to_vec(),
            received_at: t,
            expires_at,
        };
        self.store.enqueue(new, limits).await
    }

    /// Pushes a just-queued message to the client's live connections (it stays queued
    /// until the client acknowledges it with `messages-received`).
    async fn push_live(&self, client: &str, id: String, body: &[u8]) {
        let targets = self.live.targets(client);
        if targets.is_empty() {
            return;
        }
        let delivery = pickup::live_delivery(client, id, body);
        match self.pack_for(&delivery, client).await {
            Ok(packed) => {
                for tx in targets {
                    if tx.try_send(packed.clone()).is_ok() {
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
