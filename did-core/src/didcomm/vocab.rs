//! Typed message bodies: every protocol message is a serde struct that knows its type URI
//! ([`Typed`]), built with [`Message::typed`] and read with [`Message::parse`]. This module
//! holds the standard DIDComm vocabulary the party agent and the mediator speak; protocols
//! of our own define their bodies next to their code.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::Message;
use crate::error::{Error, Result};

/// A message body with a fixed type URI.
pub trait Typed: Serialize + DeserializeOwned {
    /// The message type URI.
    const TYPE: &'static str;
}

impl Message {
    /// A new message carrying `body` (its type from [`Typed::TYPE`]).
    pub fn typed<T: Typed>(body: &T) -> Message {
        // A derived Serialize of a struct cannot fail to become a JSON value.
        let v = serde_json::to_value(body).unwrap_or(Value::Object(Default::default()));
        Message::new(T::TYPE, v)
    }

    /// Whether this message is of `T`'s type.
    pub fn is<T: Typed>(&self) -> bool {
        self.type_ == T::TYPE
    }

    /// The body as `T`, if the type matches and the body has `T`'s shape.
    pub fn parse<T: Typed>(&self) -> Result<T> {
        if self.type_ != T::TYPE {
            return Err(Error::Protocol(format!("expected a {} message, got {}", T::TYPE, self.type_)));
        }
        serde_json::from_value(self.body.clone()).map_err(|e| Error::Protocol(format!("{}: {e}", T::TYPE)))
    }
}

macro_rules! typed {
    ($t:ty, $uri:expr) => {
        impl Typed for $t {
            const TYPE: &'static str = $uri;
        }
    };
}

/// Problem Report 2.0.
pub const REPORT_PROBLEM_2: &str = "https://didcomm.org/report-problem/2.0";
/// Basic Message 2.0.
pub const BASIC_MESSAGE_2: &str = "https://didcomm.org/basicmessage/2.0";
/// Message Pickup 3.0.
pub const PICKUP_3: &str = "https://didcomm.org/messagepickup/3.0";
/// Coordinate Mediation 3.0.
pub const COORDINATE_3: &str = "https://didcomm.org/coordinate-mediation/3.0";
/// Trust Ping 2.0.
pub const TRUST_PING_2: &str = "https://didcomm.org/trust-ping/2.0";

/// `problem-report`: something went wrong (`code` is a dotted descriptor, `e.p.…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemReport {
    /// The problem code.
    pub code: String,
    /// Human-readable explanation (may hold `{1}`-style placeholders for `args`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Values for the comment's placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Where to escalate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<String>,
}
typed!(ProblemReport, "https://didcomm.org/report-problem/2.0/problem-report");

impl ProblemReport {
    /// A problem report answering `to` (its thread becomes our `pthid`).
    pub fn answering(to: &Message, code: &str, comment: &str) -> Message {
        let mut m = Message::typed(&ProblemReport {
            code: code.to_owned(),
            comment: Some(comment.to_owned()),
            args: None,
            escalate_to: None,
        });
        m.pthid = Some(to.thread_id().to_owned());
        m
    }
}

/// Basic Message 2.0 `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BasicMessage {
    /// The text.
    pub content: String,
}
typed!(BasicMessage, "https://didcomm.org/basicmessage/2.0/message");

/// Pickup 3.0 `status-request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// Only this recipient's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_did: Option<String>,
}
typed!(StatusRequest, "https://didcomm.org/messagepickup/3.0/status-request");

/// Pickup 3.0 `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Messages waiting.
    pub message_count: u64,
    /// The recipient it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_did: Option<String>,
    /// Whether live delivery is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_delivery: Option<bool>,
}
typed!(Status, "https://didcomm.org/messagepickup/3.0/status");

/// Pickup 3.0 `delivery-request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    /// Most messages to deliver.
    pub limit: u32,
    /// Only this recipient's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_did: Option<String>,
}
typed!(DeliveryRequest, "https://didcomm.org/messagepickup/3.0/delivery-request");

/// Pickup 3.0 `delivery` (the messages are its attachments).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The recipient the messages were queued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_did: Option<String>,
}
typed!(Delivery, "https://didcomm.org/messagepickup/3.0/delivery");

/// Pickup 3.0 `messages-received`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesReceived {
    /// The queue ids (attachment ids) received.
    pub message_id_list: Vec<String>,
}
typed!(MessagesReceived, "https://didcomm.org/messagepickup/3.0/messages-received");

/// Pickup 3.0 `live-delivery-change`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveDeliveryChange {
    /// On or off.
    pub live_delivery: bool,
}
typed!(LiveDeliveryChange, "https://didcomm.org/messagepickup/3.0/live-delivery-change");

/// Coordinate Mediation 3.0 `mediate-request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediateRequest {}
typed!(MediateRequest, "https://didcomm.org/coordinate-mediation/3.0/mediate-request");

/// Coordinate Mediation 3.0 `mediate-grant` (`routing_did` is a list in 3.0; some
/// mediators send one string, which is accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediateGrant {
    /// The routing DIDs.
    #[serde(deserialize_with = "one_or_many")]
    pub routing_did: Vec<String>,
}
typed!(MediateGrant, "https://didcomm.org/coordinate-mediation/3.0/mediate-grant");

/// Coordinate Mediation 3.0 `mediate-deny`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediateDeny {}
typed!(MediateDeny, "https://didcomm.org/coordinate-mediation/3.0/mediate-deny");

/// One change of a `recipient-update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientChange {
    /// The recipient DID.
    pub recipient_did: String,
    /// `add` or `remove`.
    pub action: String,
    /// In answers: `success`, `no_change`, `client_error`, `server_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// Coordinate Mediation 3.0 `recipient-update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientUpdate {
    /// The changes.
    pub updates: Vec<RecipientChange>,
}
typed!(RecipientUpdate, "https://didcomm.org/coordinate-mediation/3.0/recipient-update");

/// Coordinate Mediation 3.0 `recipient-update-response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientUpdateResponse {
    /// The changes with their results.
    pub updated: Vec<RecipientChange>,
}
typed!(RecipientUpdateResponse, "https://didcomm.org/coordinate-mediation/3.0/recipient-update-response");

/// Trust Ping 2.0 `ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    /// Whether a `ping-response` is wanted.
    #[serde(default = "yes")]
    pub response_requested: bool,
}
typed!(Ping, "https://didcomm.org/trust-ping/2.0/ping");

fn yes() -> bool {
    true
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_messages_round_trip_and_check_their_type() {
        let m = Message::typed(&DeliveryRequest { limit: 50, recipient_did: None });
        assert_eq!(m.type_, "https://didcomm.org/messagepickup/3.0/delivery-request");
        assert_eq!(m.body, json!({"limit": 50}));
        assert_eq!(m.parse::<DeliveryRequest>().unwrap().limit, 50);
        assert!(m.parse::<MessagesReceived>().is_err());
        let grant = Message::new(MediateGrant::TYPE, json!({"routing_did": "did:key:z6Mk"}));
        assert_eq!(grant.parse::<MediateGrant>().unwrap().routing_did, vec!["did:key:z6Mk"]);
        let bad = Message::new(MediateGrant::TYPE, json!({"routing_did": 7}));
        assert!(bad.parse::<MediateGrant>().is_err());
    }

    #[test]
    fn a_problem_report_threads_under_what_it_answers() {
        let asked = Message::typed(&Ping { response_requested: true });
        let p = ProblemReport::answering(&asked, "e.p.req", "no");
        assert_eq!(p.pthid.as_deref(), Some(asked.id.as_str()));
        assert_eq!(p.parse::<ProblemReport>().unwrap().comment.as_deref(), Some("no"));
    }
}
