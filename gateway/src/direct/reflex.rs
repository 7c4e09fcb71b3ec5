//! Our reflexive address and NAT kind, from the mediator's probe service: a key granted
//! over the authenticated link, then a probe to each advertised UDP address. Two answers
//! with the same external port mean an endpoint-independent mapping (easy); different
//! ports a symmetric one (hard).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use did_core::didcomm::Message;
use did_core::jose::b64d;
use relay::reflex::{ProbeKey, KEY_ID_LEN, PROTOCOL};
use serde_json::{json, Value};
use session::Nat;

use super::endpoint::Endpoint;
use crate::agent::Agent;
use crate::error::{Error, Result};

/// Most probe addresses used from a grant.
const MAX_ADDRS: usize = 2;
/// Tries per address, and how long each waits.
const TRIES: u32 = 3;
const WAIT: Duration = Duration::from_millis(400);

/// A probe key and where to probe.
pub struct Grant {
    /// The key id.
    pub key_id: [u8; KEY_ID_LEN],
    /// The key.
    pub key: ProbeKey,
    /// The probe servers.
    pub addrs: Vec<SocketAddr>,
}

/// Asks our mediator for a probe key.
pub async fn grant(agent: &Agent) -> Result<Grant> {
    let answer = agent.link().request(Message::new(format!("{PROTOCOL}/request"), json!({}))).await?;
    let field = |name: &str| answer.body.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let key_id: [u8; KEY_ID_LEN] = b64d(&field("key_id"), "key_id")?
        .try_into()
        .map_err(|_| Error::Protocol("probe grant: key_id is not 16 bytes".into()))?;
    let key = ProbeKey::from_slice(&zeroize::Zeroizing::new(b64d(&field("key"), "key")?))
        .ok_or_else(|| Error::Protocol("probe grant: key is not 32 bytes".into()))?;
    let mut addrs = Vec::new();
    for a in answer.body.get("udp").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if addrs.len() == MAX_ADDRS {
            break;
        }
        // A name is resolved (the grant comes from our own mediator, authenticated).
        if let Ok(mut found) = tokio::net::lookup_host(a).await {
            if let Some(sa) = found.find(SocketAddr::is_ipv4) {
                addrs.push(sa);
            }
        }
    }
    if addrs.is_empty() {
        return Err(Error::Protocol("probe grant without a usable UDP address".into()));
    }
    Ok(Grant { key_id, key, addrs })
}

/// Probes every address of `grant`: our reflexive address (the first answer) and the NAT
/// kind the answers show.
pub async fn discover(ep: &Endpoint, grant: &Grant) -> (Option<SocketAddr>, Nat) {
    let mut seen = Vec::new();
    for to in &grant.addrs {
        for _ in 0..TRIES {
            if let Some(a) = ep.probe(*to, &grant.key_id, &grant.key, WAIT).await {
                seen.push(a);
                break;
            }
        }
    }
    let nat = match seen.as_slice() {
        [a, b, ..] if a == b => Nat::Easy,
        [_, _, ..] => Nat::Hard,
        _ => Nat::Unknown,
    };
    (seen.first().copied(), nat)
}

/// The address of the interface that routes towards `to` (no packet is sent).
pub fn local_ip_towards(to: SocketAddr) -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect(to).ok()?;
    s.local_addr().ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified())
}
