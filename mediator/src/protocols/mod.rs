//! The DIDComm protocols the mediator speaks, and problem reports.

pub mod coordinate;
pub mod misc;
pub mod pickup;
pub mod reflex;
pub mod relay;

use did_core::didcomm::Message;
use serde_json::{json, Value};

/// Base of the protocol URIs didmpc defines itself (see `specs/mediator.md`).
pub const DIDMPC_BASE: &str = "https://didmpc.dev/protocols";
/// Routing 2.0.
pub const ROUTING_2: &str = "https://didcomm.org/routing/2.0";
/// Coordinate Mediation 2.0.
pub const COORD_2: &str = "https://didcomm.org/coordinate-mediation/2.0";
/// Coordinate Mediation 3.0.
pub const COORD_3: &str = "https://didcomm.org/coordinate-mediation/3.0";
/// Message Pickup 3.0.
pub const PICKUP_3: &str = "https://didcomm.org/messagepickup/3.0";
/// Trust Ping 2.0.
pub const TRUST_PING_2: &str = "https://didcomm.org/trust-ping/2.0";
/// Discover Features 2.0.
pub const DISCOVER_2: &str = "https://didcomm.org/discover-features/2.0";
/// Report Problem 2.0.
pub const PROBLEM_2: &str = "https://didcomm.org/report-problem/2.0";
/// Session relay route reservations (didmpc).
pub const RELAY_1: &str = "https://didmpc.dev/protocols/relay/1.0";
/// Out-of-Band short links (didmpc).
pub const OOB_LINK_1: &str = "https://didmpc.dev/protocols/oob-shortlink/1.0";

/// Protocols disclosed by Discover Features, with our role in each.
pub const DISCLOSED: &[(&str, &str)] = &[
    (ROUTING_2, "mediator"),
    (COORD_2, "mediator"),
    (COORD_3, "mediator"),
    (PICKUP_3, "mediator"),
    (TRUST_PING_2, "receiver"),
    (DISCOVER_2, "responder"),
    (PROBLEM_2, "notified"),
    (OOB_LINK_1, "host"),
    (RELAY_1, "relay"),
    (::relay::reflex::PROTOCOL, "responder"),
];

/// Splits a message type into (protocol URI, message name).
pub fn split_type(t: &str) -> (&str, &str) {
    t.rsplit_once('/').unwrap_or((t, ""))
}

/// A reply to `to` in the thread of `req`.
pub fn reply(req: &Message, type_: String, body: Value) -> Message {
    let mut m = Message::new(type_, body);
    m.thid = Some(req.thread_id().to_owned());
    if let Some(from) = &req.from {
        m.to = Some(vec![from.clone()]);
    }
    m
}

/// A Problem Report 2.0 message (`code` like `e.p.xfer.unknown-recipient`).
pub fn problem(pthid: Option<&str>, code: &str, comment: &str) -> Message {
    let mut m = Message::new(format!("{PROBLEM_2}/problem-report"), json!({"code": code, "comment": comment}));
    m.pthid = pthid.map(str::to_owned);
    m
}

/// A problem report answering `req` (in its thread, addressed to its sender, and
/// acknowledging it: Problem Report 2.0 says `ack` SHOULD name the triggering message).
pub fn problem_reply(req: &Message, code: &str, comment: &str) -> Message {
    let mut m = problem(Some(req.thread_id()), code, comment);
    m.to = req.from.clone().map(|f| vec![f]);
    m.extra.insert("ack".into(), json!([req.id]));
    m
}

/// Problem codes the mediator uses (documented in `specs/mediator.md`).
pub mod codes {
    /// Not JSON, not DIDComm, or fails a structural check.
    pub const MALFORMED: &str = "e.m.msg.malformed";
    /// Decryption or signature verification failed, or the message is not for us.
    pub const CRYPTO: &str = "e.m.trust.crypto";
    /// The sender DID cannot be resolved.
    pub const DID: &str = "e.m.did.unresolvable";
    /// An unauthenticated (anoncrypt/plaintext) message where a known sender is needed.
    pub const ANONYMOUS: &str = "e.m.trust.sender-unknown";
    /// A message type we do not implement.
    pub const UNSUPPORTED: &str = "e.m.msg.unsupported-type";
    /// A forward to a DID nobody registered here.
    pub const UNKNOWN_RECIPIENT: &str = "e.p.xfer.unknown-recipient";
    /// The recipient's queue is full.
    pub const QUEUE_FULL: &str = "e.p.me.res.storage.queue-full";
    /// The recipient's client holds its limit of queued bytes over all its recipients.
    pub const CLIENT_QUOTA: &str = "e.p.me.res.storage.client-quota";
    /// This sender (source address) has queued as much for the recipient as one sender may.
    pub const SENDER_QUOTA: &str = "e.p.me.res.storage.sender-quota";
    /// The mediator's store is full.
    pub const STORE_FULL: &str = "e.p.me.res.storage.full";
    /// The mediator's memory budget is spent; retry later.
    pub const MEMORY: &str = "e.p.me.res.memory";
    /// The client holds its limit of short links.
    pub const LINK_QUOTA: &str = "e.p.me.res.quota.links";
    /// The message has expired.
    pub const EXPIRED: &str = "e.m.req.time.expired";
    /// Mediation not granted to this DID, or denied by policy.
    pub const NOT_GRANTED: &str = "e.p.req.not-granted";
    /// A field is missing or wrong in a protocol message.
    pub const BAD_REQUEST: &str = "e.m.msg.bad-request";
    /// Live delivery needs a WebSocket.
    pub const LIVE_UNSUPPORTED: &str = "e.m.live-mode-not-supported";
    /// Too big.
    pub const TOO_BIG: &str = "e.m.msg.too-big";
    /// Too many requests.
    pub const RATE: &str = "e.m.me.res.rate-limited";
    /// Internal error.
    pub const INTERNAL: &str = "e.p.me";
}
