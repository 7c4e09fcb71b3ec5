//! The full mesh of pairwise sessions for one MPC session: every pair of roster members
//! runs one Noise session; the lower pid initiates (as MPyC's lower pid dials), all
//! handshakes run at once, and `init`s from anyone off the roster are refused and logged.

use std::collections::HashMap;
use std::time::Duration;

use did_core::jose::b64e;
use did_core::Did;
use session::driver::{Handle, Incoming};
use session::Config;

use crate::agent::Agent;
use crate::descriptor::Signed;
use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::pairing::{self, PairSpec, Pending, SESSION_1};
use crate::relay_client::RelayClient;

/// One peer of the mesh with its running session.
pub struct Peer {
    /// Its pid.
    pub pid: usize,
    /// Its DID.
    pub did: Did,
    /// Session control.
    pub handle: Handle,
    /// Streams it opens.
    pub incoming: Incoming,
    /// Noise handshake hash (hex).
    pub handshake_hash: String,
}

/// Session id bytes of a descriptor (its id as text).
pub fn session_id(signed: &Signed) -> Vec<u8> {
    signed.descriptor.id.as_bytes().to_vec()
}

/// Establishes sessions with every other roster member within `timeout`; the result
/// holds one entry per pid (`None` at our own).
pub async fn establish(
    agent: &Agent,
    mailbox: &mut Mailbox,
    relay: &RelayClient,
    signed: &Signed,
    cfg: Config,
    timeout: Duration,
) -> Result<Vec<Option<Peer>>> {
    let d = &signed.descriptor;
    let me = d
        .pid_of(agent.file.party.as_str())
        .ok_or_else(|| Error::State("we are not on this session's roster".into()))?;
    let sid = session_id(signed);
    let spec = |did: &str| -> Result<PairSpec> {
        Ok(PairSpec { session_id: sid.clone(), roster_digest: signed.digest, peer: Did::parse(did)? })
    };
    let mut peers: Vec<Option<Peer>> = (0..d.roster.len()).map(|_| None).collect();
    let mut pending: HashMap<String, (usize, Pending)> = HashMap::new();
    for (j, did) in d.roster.iter().enumerate().skip(me + 1) {
        let p = pairing::initiate(agent, &spec(did)?).await?;
        pending.insert(p.init_id.clone(), (j, p));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let sid_b64 = b64e(&sid);
    let (init_t, accept_t, reject_t) =
        (format!("{SESSION_1}/init"), format!("{SESSION_1}/accept"), format!("{SESSION_1}/reject"));
    while peers.iter().enumerate().any(|(j, p)| j != me && p.is_none()) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = mailbox
            .recv_matching(left, |(m, _)| {
                (m.type_ == init_t && m.body["session_id"] == sid_b64.as_str())
                    || ((m.type_ == accept_t || m.type_ == reject_t)
                        && m.thid.as_deref().is_some_and(|t| pending.contains_key(t)))
            })
            .await;
        let (msg, meta) = match got {
            Ok(x) => x,
            Err(Error::Timeout(_)) => {
                let missing: Vec<String> = (0..d.roster.len())
                    .filter(|&j| j != me && peers[j].is_none())
                    .map(|j| format!("pid {j} ({})", d.roster[j]))
                    .collect();
                return Err(Error::Timeout(format!("sessions with {}", missing.join(", "))));
            }
            Err(e) => return Err(e),
        };
        let sender = meta.sender.unwrap_or_default();
        if msg.type_ == init_t {
            let j = match d.pid_of(&sender) {
                Some(j) if j < me && peers[j].is_none() => j,
                Some(j) if j < me => continue, // a repeated init: the first one won
                other => {
                    let why = match other {
                        None => "not on the roster",
                        Some(_) => "the lower pid initiates",
                    };
                    tracing::warn!(from = %sender, session = %d.id, "refused a session init: {why}");
                    pairing::reject(agent, &msg, why).await;
                    continue;
                }
            };
            let p = pairing::accept(agent, relay, &msg, &spec(&sender)?, cfg.clone()).await?;
            tracing::info!(pid = j, peer = %sender, "session up (we answered)");
            peers[j] = Some(Peer {
                pid: j,
                did: Did::parse(&sender)?,
                handle: p.handle,
                incoming: p.incoming,
                handshake_hash: p.handshake_hash,
            });
        } else {
            let Some(thid) = msg.thid.clone() else { continue };
            let Some((j, p)) = pending.remove(&thid) else { continue };
            if sender != p.peer.as_str() {
                tracing::warn!(from = %sender, "an answer to our session init from someone else; ignored");
                pending.insert(thid, (j, p));
                continue;
            }
            let did = p.peer.clone();
            let paired = p.complete(&msg, relay, cfg.clone())?;
            tracing::info!(pid = j, peer = %did, "session up (we initiated)");
            peers[j] = Some(Peer {
                pid: j,
                did,
                handle: paired.handle,
                incoming: paired.incoming,
                handshake_hash: paired.handshake_hash,
            });
        }
    }
    Ok(peers)
}
