//! The messages of didmpc's own protocols, as typed bodies (see `specs/mpc-session.md`
//! and `specs/session.md`). Byte strings travel as base64url without padding.
//!
//! - `https://didmpc.dev/protocols/mpc/1.0`: `invitation` (host → invitee), `join` /
//!   `decline` (invitee → host), `start` (host → every member: the final roster) and
//!   `abort` (host → every member).
//! - `https://didmpc.dev/protocols/session/1.0`: `init` / `accept` / `reject`, the Noise
//!   handshake of one pairwise session.
//! - `https://didmpc.dev/protocols/oob-shortlink/1.0`: `create` / `created` at our mediator.

use did_core::didcomm::{ServiceTarget, Typed};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The MPC session protocol.
pub const MPC_1: &str = "https://didmpc.dev/protocols/mpc/1.0";
/// The pairwise session protocol.
pub const SESSION_1: &str = "https://didmpc.dev/protocols/session/1.0";
/// OOB goal code of an MPC invitation.
pub const GOAL_CODE: &str = "didmpc.mpc.join";

macro_rules! typed {
    ($t:ty, $uri:expr) => {
        impl Typed for $t {
            const TYPE: &'static str = $uri;
        }
    };
}

/// `invitation`: the signed session descriptor (a General JSON JWS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// Session id.
    pub session: String,
    /// The descriptor JWS.
    pub descriptor: Value,
}
typed!(Invitation, "https://didmpc.dev/protocols/mpc/1.0/invitation");

/// `join`: the sender takes its place on the roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// Session id.
    pub session: String,
    /// The roster DID the sender joins as, when it is not the sender's own DID (a did:pkh
    /// wallet account, proven by the Sign-In with Ethereum in `proof`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Where the sender is reached when its DID publishes no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ServiceTarget>,
    /// The identity proof the session's policy asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Value>,
}
typed!(Join, "https://didmpc.dev/protocols/mpc/1.0/join");

/// `decline`: the sender will not take part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decline {
    /// Session id.
    pub session: String,
    /// Why.
    pub reason: String,
}
typed!(Decline, "https://didmpc.dev/protocols/mpc/1.0/decline");

/// One roster member once it joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its roster DID (its identity).
    pub did: String,
    /// The DID it messages and binds its Noise session with: the roster DID itself, or
    /// for a did:pkh member the DID its Sign-In with Ethereum named.
    pub agent: String,
    /// Where `agent` is reached when its DID publishes no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ServiceTarget>,
    /// The identity its proof established (account or credential issuer), if one was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// `start`: everyone joined; the final roster, one member per pid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// Session id.
    pub session: String,
    /// The members in pid order.
    pub members: Vec<Member>,
}
typed!(Start, "https://didmpc.dev/protocols/mpc/1.0/start");

/// `abort`: the session is off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Abort {
    /// Session id.
    pub session: String,
    /// Why.
    pub reason: String,
}
typed!(Abort, "https://didmpc.dev/protocols/mpc/1.0/abort");

/// `init`: the first Noise KK message of a pairwise session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Init {
    /// The MPC session id bytes (base64url).
    pub session_id: String,
    /// The final roster digest both sides bind (base64url).
    pub roster_digest: String,
    /// Noise message 1 (base64url).
    pub noise: String,
    /// How the initiator may be reached directly (absent: relay only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<DirectOffer>,
}
typed!(Init, "https://didmpc.dev/protocols/session/1.0/init");

/// Direct-path candidates of one side of a session (`specs/session.md` §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectOffer {
    /// The connection id to put in front of UDP datagrams for this session.
    pub id: u32,
    /// Addresses of the sender's interfaces (`ip:port`).
    #[serde(default)]
    pub host: Vec<String>,
    /// The address its mediator saw its UDP socket come from (`ip:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflexive: Option<String>,
    /// Its NAT's mapping: `easy` (endpoint-independent), `hard` (symmetric), `unknown`.
    #[serde(default)]
    pub nat: String,
}

impl DirectOffer {
    /// The offer of a party with candidates `o`, for connection `id`.
    pub fn new(id: u32, o: &session::Offer) -> DirectOffer {
        DirectOffer {
            id,
            host: o.host.iter().map(ToString::to_string).collect(),
            reflexive: o.reflexive.map(|r| r.to_string()),
            nat: o.nat.as_str().to_owned(),
        }
    }

    /// The candidates as the session takes them: unparsable entries are skipped, at most
    /// `session::path::punch::MAX_CANDIDATES`.
    pub fn offer(&self) -> session::Offer {
        let parse = |s: &String| s.parse::<std::net::SocketAddr>().ok();
        session::Offer {
            host: self.host.iter().take(session::path::punch::MAX_CANDIDATES).filter_map(parse).collect(),
            reflexive: self.reflexive.as_ref().and_then(parse),
            nat: session::Nat::parse(&self.nat),
        }
    }
}

/// Where the data plane of a pairwise session meets: a relay route at the responder's mediator.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayOffer {
    /// The relay WebSocket URL.
    pub url: String,
    /// The route id (base64url, 16 bytes).
    pub route: String,
    /// The initiator's relay slot secret (base64url, 32 bytes; `specs/session.md` §2).
    pub secret: String,
}

impl std::fmt::Debug for RelayOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayOffer").field("url", &self.url).field("route", &self.route).finish_non_exhaustive()
    }
}

/// `accept`: Noise message 2 and where to meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    /// Noise message 2 (base64url).
    pub noise: String,
    /// The relay route.
    pub relay: RelayOffer,
    /// How the responder may be reached directly (absent: relay only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<DirectOffer>,
}
typed!(Accept, "https://didmpc.dev/protocols/session/1.0/accept");

/// `reject`: no session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    /// Why.
    pub reason: String,
}
typed!(Reject, "https://didmpc.dev/protocols/session/1.0/reject");

/// `create` at our mediator: a short link for an invitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortLinkCreate {
    /// The OOB invitation message.
    pub invitation: Value,
    /// Lifetime.
    pub ttl_secs: u64,
}
typed!(ShortLinkCreate, "https://didmpc.dev/protocols/oob-shortlink/1.0/create");

/// `created`: the short link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortLinkCreated {
    /// The `?_oobid=` URL.
    pub url: String,
}
typed!(ShortLinkCreated, "https://didmpc.dev/protocols/oob-shortlink/1.0/created");

/// The session a body of the MPC protocol belongs to.
pub trait InSession {
    /// Its session id.
    fn session(&self) -> &str;
}

macro_rules! in_session {
    ($($t:ty),*) => {$(
        impl InSession for $t {
            fn session(&self) -> &str {
                &self.session
            }
        }
    )*};
}
in_session!(Invitation, Join, Decline, Start, Abort);

/// `m` as a `T` of session `id`, if it is one.
pub fn of_session<T: Typed + InSession>(m: &did_core::didcomm::Message, id: &str) -> Option<T> {
    m.parse::<T>().ok().filter(|b| b.session() == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use did_core::didcomm::Message;
    use serde_json::json;

    #[test]
    fn bodies_have_the_documented_shape() {
        let m = Message::typed(&Join { session: "s".into(), member: None, route: None, proof: None });
        assert_eq!(m.type_, "https://didmpc.dev/protocols/mpc/1.0/join");
        assert_eq!(m.body, json!({"session": "s"}));
        assert!(of_session::<Join>(&m, "s").is_some());
        assert!(of_session::<Join>(&m, "t").is_none());
        assert!(of_session::<Start>(&m, "s").is_none());
        let bad = Message::new(Start::TYPE, json!({"session": "s", "members": "nope"}));
        assert!(of_session::<Start>(&bad, "s").is_none());
    }
}
