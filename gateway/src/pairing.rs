//! Pairwise sessions between parties: the Noise KK handshake carried in DIDComm messages
//! of `https://didmpc.dev/protocols/session/1.0`, then the data plane over the responder's
//! mediator relay (see `specs/session.md`).

use std::time::Duration;

use did_core::didcomm::Message;
use did_core::jose::{b64d, b64e};
use did_core::{Did, DidResolver, KeyKind, Relationship};
use rand_core::RngCore;
use relay::auth::{RouteKey, SlotSecret};
use serde_json::{json, Value};
use session::driver::{self, Handle, Incoming};
use session::handshake::{self, Initiator, Params};
use session::{Config, Session};

use crate::agent::Agent;
use crate::error::{Error, Result};
use crate::link::Link as MediatorLink;
use crate::mailbox::Mailbox;
use crate::relay_client::{Membership, RelayClient, RouteId, ROUTE_LEN};

/// The session protocol.
pub const SESSION_1: &str = "https://didmpc.dev/protocols/session/1.0";
/// The relay reservation protocol.
pub const RELAY_1: &str = "https://didmpc.dev/protocols/relay/1.0";

/// What a pairwise session is bound to.
#[derive(Debug, Clone)]
pub struct PairSpec {
    /// The (MPC) session id.
    pub session_id: Vec<u8>,
    /// Digest of the roster both sides accepted.
    pub roster_digest: [u8; 32],
    /// The peer's DID.
    pub peer: Did,
}

/// A running pairwise session.
pub struct Paired {
    /// Control.
    pub handle: Handle,
    /// Streams the peer opens.
    pub incoming: Incoming,
    /// Noise handshake hash (hex), for logs.
    pub handshake_hash: String,
}

/// The X25519 key-agreement public key of `did`.
async fn peer_static(agent: &Agent, did: &Did) -> Result<[u8; 32]> {
    let doc = agent.resolver().resolve(did).await?;
    let key =
        doc.methods(Relationship::KeyAgreement).find(|m| m.key.kind() == KeyKind::X25519).map(|m| m.key.to_bytes());
    key.and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Protocol(format!("{} has no X25519 key-agreement key", did.fmt_short())))
}

/// Our X25519 secret for the party DID.
async fn own_static(agent: &Agent) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let doc = agent.resolver().resolve(&agent.file.party).await?;
    let kid = doc
        .methods(Relationship::KeyAgreement)
        .find(|m| m.key.kind() == KeyKind::X25519)
        .map(|m| m.id.clone())
        .ok_or_else(|| Error::State("our DID has no X25519 key-agreement key".into()))?;
    let sk = agent.secret(&kid).ok_or_else(|| Error::State(format!("no private key for {kid}")))?;
    let bytes = sk.to_bytes();
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::State("bad X25519 key".into()))?;
    Ok(zeroize::Zeroizing::new(arr))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Initiates a session with `spec.peer`: sends `init`, waits for `accept` in `mailbox`.
pub async fn connect(
    agent: &Agent,
    mailbox: &mut Mailbox,
    relay: &RelayClient,
    spec: &PairSpec,
    cfg: Config,
    timeout: Duration,
) -> Result<Paired> {
    let pending = initiate(agent, spec).await?;
    let peer = spec.peer.to_string();
    let id = pending.init_id.clone();
    let (answer, _) = mailbox
        .recv_matching(timeout, |(m, meta)| {
            m.thid.as_deref() == Some(id.as_str()) && meta.sender.as_deref() == Some(peer.as_str())
        })
        .await
        .map_err(|_| Error::Timeout(format!("the session answer of {}", spec.peer.fmt_short())))?;
    pending.complete(&answer, relay, cfg)
}

/// A sent `init` waiting for its answer.
pub struct Pending {
    init: Initiator,
    /// Id of the `init` message (answers carry it as `thid`).
    pub init_id: String,
    /// Whom it went to.
    pub peer: Did,
}

/// Sends an `init` to `spec.peer`.
pub async fn initiate(agent: &Agent, spec: &PairSpec) -> Result<Pending> {
    let me = agent.file.party.to_string();
    let local = own_static(agent).await?;
    let remote = peer_static(agent, &spec.peer).await?;
    let params = Params {
        session_id: &spec.session_id,
        roster_digest: &spec.roster_digest,
        initiator_did: &me,
        responder_did: spec.peer.as_str(),
        local_static: &local,
        remote_static: &remote,
    };
    let (init, m1) = Initiator::start(&params).map_err(|e| Error::Protocol(e.to_string()))?;
    let msg = Message::new(
        format!("{SESSION_1}/init"),
        json!({"session_id": b64e(&spec.session_id), "roster_digest": b64e(spec.roster_digest), "noise": b64e(&m1)}),
    );
    let init_id = msg.id.clone();
    agent.send(msg, spec.peer.as_str()).await?;
    Ok(Pending { init, init_id, peer: spec.peer.clone() })
}

impl Pending {
    /// Finishes the handshake with the peer's answer (`accept` or `reject`) and starts
    /// the session over the relay route the peer reserved.
    pub fn complete(self, answer: &Message, relay: &RelayClient, cfg: Config) -> Result<Paired> {
        if answer.type_ != format!("{SESSION_1}/accept") {
            let why = answer.body.get("reason").and_then(Value::as_str).unwrap_or("no reason given");
            return Err(Error::Refused {
                who: self.peer.fmt_short(),
                code: "session-reject".into(),
                comment: why.into(),
            });
        }
        let noise = field(answer, "noise")?;
        let keys = self.init.finish(&noise).map_err(|e| Error::Protocol(e.to_string()))?;
        let url =
            answer.body["relay"]["url"].as_str().ok_or_else(|| Error::Protocol("accept without relay url".into()))?;
        let route = route_field(&answer.body["relay"]["route"])?;
        let secret = slot_secret_field(&answer.body["relay"]["secret"])?;
        let hash = hex(&keys.handshake_hash);
        let link = relay.link(url, Membership { route: RouteId(route), slot: 0, secret })?;
        let (handle, incoming) = driver::spawn(Session::new(keys, cfg, std::time::Instant::now()), link);
        Ok(Paired { handle, incoming, handshake_hash: hash })
    }
}

/// Answers an `init` (already received and authenticated from `spec.peer`): reserves a
/// route at our mediator, joins it, and sends `accept`.
pub async fn accept(
    agent: &Agent,
    relay: &RelayClient,
    init: &Message,
    spec: &PairSpec,
    cfg: Config,
) -> Result<Paired> {
    if init.from.as_deref() != Some(spec.peer.as_str()) {
        return Err(Error::Protocol("session init is not from the expected peer".into()));
    }
    if field(init, "session_id")? != spec.session_id || field(init, "roster_digest")? != spec.roster_digest {
        reject(agent, init, "session id or roster does not match ours").await;
        return Err(Error::Protocol("session init for another session or roster".into()));
    }
    let me = agent.file.party.to_string();
    let local = own_static(agent).await?;
    let remote = peer_static(agent, &spec.peer).await?;
    let params = Params {
        session_id: &spec.session_id,
        roster_digest: &spec.roster_digest,
        initiator_did: spec.peer.as_str(),
        responder_did: &me,
        local_static: &local,
        remote_static: &remote,
    };
    let (keys, m2) = match handshake::respond(&params, &field(init, "noise")?) {
        Ok(x) => x,
        Err(e) => {
            reject(agent, init, "handshake failed").await;
            return Err(Error::Protocol(e.to_string()));
        }
    };
    let mut route = [0u8; ROUTE_LEN];
    rand_core::OsRng.fill_bytes(&mut route);
    let route_key = RouteKey::generate();
    let link = agent.link();
    let url = reserve(&link, &route, &route_key).await?;
    let hash = hex(&keys.handshake_hash);
    let plink = relay.link(&url, Membership::with_key(RouteId(route), 1, &route_key))?;
    let (handle, incoming) = driver::spawn(Session::new(keys, cfg, std::time::Instant::now()), plink);
    // The initiator gets its own slot's secret only (inside this authcrypted message).
    let initiator_secret = b64e(route_key.slot_secret(0).as_bytes());
    let mut answer = Message::new(
        format!("{SESSION_1}/accept"),
        json!({"noise": b64e(&m2), "relay": {"url": url, "route": b64e(route), "secret": initiator_secret}}),
    );
    answer.thid = Some(init.id.clone());
    agent.send(answer, spec.peer.as_str()).await?;
    Ok(Paired { handle, incoming, handshake_hash: hash })
}

/// Answers an `init` with `reject` (best effort).
pub async fn reject(agent: &Agent, init: &Message, reason: &str) {
    let mut m = Message::new(format!("{SESSION_1}/reject"), json!({ "reason": reason }));
    m.thid = Some(init.id.clone());
    if let Some(from) = &init.from {
        let _ = agent.send(m, from).await;
    }
}

/// Reserves `route` at our mediator with `key` (slot secrets derive from it); returns the
/// relay URL.
pub async fn reserve(link: &MediatorLink<'_>, route: &[u8; ROUTE_LEN], key: &RouteKey) -> Result<String> {
    let body = json!({"route": b64e(route), "key": b64e(key.as_bytes()), "ttl_secs": 24 * 3600});
    let answer = link.request(Message::new(format!("{RELAY_1}/reserve"), body)).await?;
    answer.body["url"].as_str().map(str::to_owned).ok_or_else(|| Error::Protocol("reserved without url".into()))
}

fn field(m: &Message, name: &str) -> Result<Vec<u8>> {
    let v = m
        .body
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Protocol(format!("session message without `{name}`")))?;
    Ok(b64d(v, name)?)
}

fn route_field(v: &Value) -> Result<[u8; ROUTE_LEN]> {
    let b = b64d(v.as_str().unwrap_or_default(), "route")?;
    b.try_into().map_err(|_| Error::Protocol("relay route is not 16 bytes".into()))
}

fn slot_secret_field(v: &Value) -> Result<SlotSecret> {
    let b = zeroize::Zeroizing::new(b64d(v.as_str().unwrap_or_default(), "secret")?);
    SlotSecret::from_slice(&b).ok_or_else(|| Error::Protocol("accept without a 32-byte relay slot secret".into()))
}

/// Waits for an `init` from `peer` for `session_id`.
pub async fn wait_init(mailbox: &mut Mailbox, peer: &Did, session_id: &[u8], timeout: Duration) -> Result<Message> {
    let sid = b64e(session_id);
    let peer = peer.to_string();
    let want = format!("{SESSION_1}/init");
    let (m, _) = mailbox
        .recv_matching(timeout, |(m, meta)| {
            m.type_ == want && meta.sender.as_deref() == Some(peer.as_str()) && m.body["session_id"] == sid.as_str()
        })
        .await?;
    Ok(m)
}
