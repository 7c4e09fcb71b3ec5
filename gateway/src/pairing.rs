//! Pairwise sessions between parties: the Noise KK handshake carried in DIDComm messages
//! of `https://didmpc.dev/protocols/session/1.0`, then the data plane over the responder's
//! mediator relay (see `specs/session.md`).

use std::time::Duration;

use did_core::didcomm::Message;
use did_core::jose::{b64d, b64e};
use did_core::{Did, DidResolver, KeyKind, Relationship};
use rand_core::RngCore;
use relay::auth::{RouteKey, SlotSecret};
use serde_json::json;
use session::driver::{self, Handle, Incoming};
use session::handshake::{self, Initiator, Params};
use session::{Config, Session};

use crate::agent::Agent;
use crate::direct::endpoint::Registration;
use crate::direct::LocalDirect;
use crate::error::{Error, Result};
use crate::link::Link as MediatorLink;
use crate::mailbox::Mailbox;
use crate::relay_client::{Membership, RelayClient, RouteId, ROUTE_LEN};
use crate::wire::{Accept, DirectOffer, Init, Reject, RelayOffer};

pub use crate::wire::SESSION_1;
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
    /// The peer's route, when its DID publishes no endpoint.
    pub route: Option<did_core::didcomm::ServiceTarget>,
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
    direct: Option<&LocalDirect>,
) -> Result<Paired> {
    let pending = initiate(agent, spec, direct).await?;
    let peer = spec.peer.to_string();
    let id = pending.init_id.clone();
    let (answer, _) = mailbox
        .recv_matching(timeout, |(m, meta)| {
            m.thid.as_deref() == Some(id.as_str()) && meta.sender.as_deref() == Some(peer.as_str())
        })
        .await
        .map_err(|_| Error::Timeout(format!("the session answer of {}", spec.peer.fmt_short())))?;
    pending.complete(&answer, relay, cfg, direct)
}

/// A sent `init` waiting for its answer.
pub struct Pending {
    init: Initiator,
    /// Id of the `init` message (answers carry it as `thid`).
    pub init_id: String,
    /// Whom it went to.
    pub peer: Did,
    /// Our place at the UDP endpoint, if we offered direct paths.
    reg: Option<Registration>,
}

/// Sends an `init` to `spec.peer`, with our direct-path candidates when `direct` is given.
pub async fn initiate(agent: &Agent, spec: &PairSpec, direct: Option<&LocalDirect>) -> Result<Pending> {
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
    let reg = direct.map(LocalDirect::register);
    let offer = direct.zip(reg.as_ref()).map(|(d, r)| DirectOffer::new(r.id, &d.offer));
    let msg = Message::typed(&Init {
        session_id: b64e(&spec.session_id),
        roster_digest: b64e(spec.roster_digest),
        noise: b64e(&m1),
        direct: offer,
    });
    let init_id = msg.id.clone();
    agent.send_via(msg, spec.peer.as_str(), spec.route.as_ref()).await?;
    Ok(Pending { init, init_id, peer: spec.peer.clone(), reg })
}

impl Pending {
    /// Finishes the handshake with the peer's answer (`accept` or `reject`) and starts
    /// the session over the relay route the peer reserved, punching direct paths when both
    /// sides offered candidates.
    pub fn complete(
        self,
        answer: &Message,
        relay: &RelayClient,
        cfg: Config,
        direct: Option<&LocalDirect>,
    ) -> Result<Paired> {
        let accept = match answer.parse::<Accept>() {
            Ok(a) => a,
            Err(_) => {
                let why = answer.parse::<Reject>().map(|r| r.reason).unwrap_or_else(|_| "no reason given".into());
                return Err(Error::Refused { who: self.peer.fmt_short(), code: "session-reject".into(), comment: why });
            }
        };
        let noise = b64d(&accept.noise, "noise")?;
        let keys = self.init.finish(&noise).map_err(|e| Error::Protocol(e.to_string()))?;
        let route = route_field(&accept.relay.route)?;
        let secret = slot_secret_field(&accept.relay.secret)?;
        let hash = hex(&keys.handshake_hash);
        let link = relay.link(&accept.relay.url, Membership { route: RouteId(route), slot: 0, secret })?;
        let span = tracing::info_span!("session", peer = %self.peer.fmt_short(), role = "initiator");
        let mut session = Session::new(keys, cfg, std::time::Instant::now());
        let paths = match (direct, self.reg, accept.direct.as_ref()) {
            (Some(d), Some(reg), Some(theirs)) => Some(d.start(&mut session, reg, theirs)),
            _ => None,
        };
        let (handle, incoming) = span.in_scope(|| driver::spawn_with(session, link, paths));
        Ok(Paired { handle, incoming, handshake_hash: hash })
    }
}

/// Answers an `init` (already received and authenticated from `spec.peer`): reserves a
/// route at our mediator, joins it, and sends `accept` (with our direct-path candidates
/// when the initiator offered its own and `direct` is given).
pub async fn accept(
    agent: &Agent,
    relay: &RelayClient,
    init: &Message,
    spec: &PairSpec,
    cfg: Config,
    direct: Option<&LocalDirect>,
) -> Result<Paired> {
    if init.from.as_deref() != Some(spec.peer.as_str()) {
        return Err(Error::Protocol("session init is not from the expected peer".into()));
    }
    let body = init.parse::<Init>()?;
    if b64d(&body.session_id, "session_id")? != spec.session_id
        || b64d(&body.roster_digest, "roster_digest")? != spec.roster_digest
    {
        reject(agent, init, spec.route.as_ref(), "session id or roster does not match ours").await;
        return Err(Error::Protocol(
            "session init for another session or roster (did the host tell us different rosters?)".into(),
        ));
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
    let (keys, m2) = match handshake::respond(&params, &b64d(&body.noise, "noise")?) {
        Ok(x) => x,
        Err(e) => {
            reject(agent, init, spec.route.as_ref(), "handshake failed").await;
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
    let span = tracing::info_span!("session", peer = %spec.peer.fmt_short(), role = "responder");
    let mut session = Session::new(keys, cfg, std::time::Instant::now());
    let (paths, offer) = match (direct, body.direct.as_ref()) {
        (Some(d), Some(theirs)) => {
            let reg = d.register();
            let offer = DirectOffer::new(reg.id, &d.offer);
            (Some(d.start(&mut session, reg, theirs)), Some(offer))
        }
        _ => (None, None),
    };
    let (handle, incoming) = span.in_scope(|| driver::spawn_with(session, plink, paths));
    // The initiator gets its own slot's secret only (inside this authcrypted message).
    let secret = b64e(route_key.slot_secret(0).as_bytes());
    let mut answer = Message::typed(&Accept {
        noise: b64e(&m2),
        relay: RelayOffer { url, route: b64e(route), secret },
        direct: offer,
    });
    answer.thid = Some(init.id.clone());
    agent.send_via(answer, spec.peer.as_str(), spec.route.as_ref()).await?;
    Ok(Paired { handle, incoming, handshake_hash: hash })
}

/// Answers an `init` with `reject` (best effort).
pub async fn reject(agent: &Agent, init: &Message, via: Option<&did_core::didcomm::ServiceTarget>, reason: &str) {
    let mut m = Message::typed(&Reject { reason: reason.to_owned() });
    m.thid = Some(init.id.clone());
    if let Some(from) = &init.from {
        let _ = agent.send_via(m, from, via).await;
    }
}

/// Reserves `route` at our mediator with `key` (slot secrets derive from it); returns the
/// relay URL.
pub async fn reserve(link: &MediatorLink<'_>, route: &[u8; ROUTE_LEN], key: &RouteKey) -> Result<String> {
    let body = json!({"route": b64e(route), "key": b64e(key.as_bytes()), "ttl_secs": 24 * 3600});
    let answer = link.request(Message::new(format!("{RELAY_1}/reserve"), body)).await?;
    answer.body["url"].as_str().map(str::to_owned).ok_or_else(|| Error::Protocol("reserved without url".into()))
}

fn route_field(v: &str) -> Result<[u8; ROUTE_LEN]> {
    let b = b64d(v, "route")?;
    b.try_into().map_err(|_| Error::Protocol("relay route is not 16 bytes".into()))
}

fn slot_secret_field(v: &str) -> Result<SlotSecret> {
    let b = zeroize::Zeroizing::new(b64d(v, "secret")?);
    SlotSecret::from_slice(&b).ok_or_else(|| Error::Protocol("accept without a 32-byte relay slot secret".into()))
}

/// Waits for an `init` from `peer` for `session_id`.
pub async fn wait_init(mailbox: &mut Mailbox, peer: &Did, session_id: &[u8], timeout: Duration) -> Result<Message> {
    let sid = b64e(session_id);
    let peer = peer.to_string();
    let (m, _) = mailbox
        .recv_matching(timeout, |(m, meta)| {
            meta.sender.as_deref() == Some(peer.as_str()) && m.parse::<Init>().is_ok_and(|i| i.session_id == sid)
        })
        .await?;
    Ok(m)
}
