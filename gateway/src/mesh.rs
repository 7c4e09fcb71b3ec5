//! The full mesh of pairwise sessions for one MPC session: every pair of roster members
//! runs one Noise session; the lower pid initiates (as MPyC's lower pid dials), all
//! handshakes run at once, and `init`s from anyone off the roster are refused and logged.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use did_core::didcomm::Message;
use did_core::jose::b64e;
use did_core::Did;
use session::driver::{Handle, Incoming};
use session::Config;

use crate::agent::Agent;
use crate::background::Background;
use crate::core::mesh::{MeshCore, MeshIn, MeshOut};
use crate::descriptor::final_digest;
use crate::descriptor::Signed;
use crate::direct::LocalDirect;
use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::pairing::{self, PairSpec, Paired, Pending};
use crate::relay_client::RelayClient;
use crate::wire::{Accept, Init, Member, Reject};

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

/// Establishes sessions with every other member within `timeout`; the result holds one
/// entry per pid (`None` at our own). `members` is the final roster (with each member's
/// agent DID and route); every session binds its digest. With `direct`, every session
/// offers our direct-path candidates and punches towards a peer that offers its own.
#[allow(clippy::too_many_arguments)]
pub async fn establish(
    agent: &Arc<Agent>,
    mailbox: &mut Mailbox,
    relay: &RelayClient,
    signed: &Signed,
    members: &[Member],
    cfg: Config,
    timeout: Duration,
    direct: Option<&LocalDirect>,
) -> Result<Vec<Option<Peer>>> {
    let me_did = agent.file.party.to_string();
    let me = members
        .iter()
        .position(|m| m.agent == me_did)
        .ok_or_else(|| Error::State("we are not on this session's final roster".into()))?;
    let sid = session_id(signed);
    let digest = final_digest(signed, members);
    let spec = |j: usize| -> Result<PairSpec> {
        Ok(PairSpec {
            session_id: sid.clone(),
            roster_digest: digest,
            peer: Did::parse(&members[j].agent)?,
            route: members[j].route.clone(),
        })
    };
    let t0 = tokio::time::Instant::now();
    let mut core = MeshCore::new(me, members.iter().map(|m| m.agent.clone()).collect(), timeout.as_millis() as u64);
    let background = Background::new(agent.clone());
    let mut peers: Vec<Option<Peer>> = (0..members.len()).map(|_| None).collect();
    let mut pending: HashMap<usize, Pending> = HashMap::new();
    let sid_b64 = b64e(&sid);
    let mut queued: VecDeque<MeshOut> = core.start().into();
    let mut current: Option<Message> = None;
    loop {
        while let Some(action) = queued.pop_front() {
            let more = match action {
                MeshOut::Initiate(j) => {
                    let p = pairing::initiate(agent, &spec(j)?, direct).await?;
                    let init_id = p.init_id.clone();
                    pending.insert(j, p);
                    core.handle(MeshIn::Initiated { pid: j, init_id })
                }
                MeshOut::Respond(j) => {
                    let msg = current.take().ok_or_else(|| Error::State("no init to answer".into()))?;
                    let result =
                        pairing::accept(agent, relay, &msg, &spec(j)?, cfg.clone(), direct).await.and_then(|p| {
                            tracing::info!(pid = j, peer = %members[j].agent, "session up (we answered)");
                            peers[j] = Some(peer(j, &members[j].agent, p)?);
                            Ok(())
                        });
                    core.handle(MeshIn::Done { pid: j, result })
                }
                MeshOut::Complete(j) => {
                    let msg = current.take().ok_or_else(|| Error::State("no answer to complete".into()))?;
                    let p = pending.remove(&j).ok_or_else(|| Error::State(format!("no init to pid {j}")))?;
                    let result = p.complete(&msg, relay, cfg.clone(), direct).and_then(|p| {
                        tracing::info!(pid = j, peer = %members[j].agent, "session up (we initiated)");
                        peers[j] = Some(peer(j, &members[j].agent, p)?);
                        Ok(())
                    });
                    core.handle(MeshIn::Done { pid: j, result })
                }
                MeshOut::Send(s) => {
                    background.send(s);
                    Vec::new()
                }
                MeshOut::Up => return Ok(peers),
                MeshOut::Failed(e) => return Err(e),
            };
            queued.extend(more);
        }
        let left = (t0 + timeout).saturating_duration_since(tokio::time::Instant::now());
        let got = mailbox
            .recv_matching(left, |(m, _)| {
                m.parse::<Init>().is_ok_and(|i| i.session_id == sid_b64)
                    || ((m.is::<Accept>() || m.is::<Reject>())
                        && m.thid.as_deref().is_some_and(|t| core.initiated(t).is_some()))
            })
            .await;
        let outs = match got {
            Ok((m, meta)) => {
                let sender = meta.sender.unwrap_or_default();
                let outs = core.handle(MeshIn::Message { msg: &m, sender: &sender });
                current = Some(m);
                outs
            }
            Err(Error::Timeout(_)) => core.handle(MeshIn::Tick(u64::MAX)),
            Err(e) => return Err(e),
        };
        queued.extend(outs);
    }
}

fn peer(pid: usize, did: &str, p: Paired) -> Result<Peer> {
    Ok(Peer { pid, did: Did::parse(did)?, handle: p.handle, incoming: p.incoming, handshake_hash: p.handshake_hash })
}
