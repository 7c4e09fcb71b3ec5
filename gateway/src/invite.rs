//! The host's side: build and sign the descriptor, reach every invitee through its
//! mediator, publish an Out-of-Band invitation, and wait until everyone joined.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use did_core::didcomm::message::{now, Attachment};
use did_core::didcomm::{oob, Message};
use did_core::Did;
use rand_core::RngCore;
use serde_json::Value;

use crate::agent::Agent;
use crate::background::Background;
use crate::core::host::{HostCore, HostIn, HostOut};
use crate::core::Refusal;
use crate::descriptor::{Descriptor, MpcOptions, Program, Signed, VERSION};
use crate::error::Result;
use crate::mailbox::Mailbox;
use crate::wire::{
    of_session, Decline, Invitation as InvitationBody, Join, Member, ShortLinkCreate, ShortLinkCreated, GOAL_CODE,
};

/// What the host asks for.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The invitees (pids 1.. in this order; the host is pid 0).
    pub invitees: Vec<Did>,
    /// The program.
    pub program: Program,
    /// MPyC options.
    pub options: MpcOptions,
    /// How long joining stays open.
    pub ttl: Duration,
    /// A peer silent this long ends the run.
    pub peer_deadline: Duration,
    /// Proof policy (null: none).
    pub proofs: Value,
}

/// A published session.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// The signed descriptor.
    pub signed: Signed,
    /// The OOB invitation URL (`?_oob=`: the whole invitation).
    pub url: String,
    /// A short link at the host's mediator (`?_oobid=`), if it gave one.
    pub short_url: Option<String>,
}

pub use crate::core::host::Progress;

/// A fresh session id: 16 random bytes in base64url that never start with `-`, since the id
/// is typed as an argument (`didmpc join <id>`), where a leading `-` reads as an option.
pub fn session_id() -> String {
    loop {
        let mut id = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut id);
        let id = did_core::jose::b64e(id);
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Builds and signs the session and makes its invitation links (then
/// [`send_invitations`]).
pub async fn create(host: &Agent, s: NewSession) -> Result<Invitation> {
    let me = host.file.party.to_string();
    let mut roster = vec![me.clone()];
    roster.extend(s.invitees.iter().map(|d| d.to_string()));
    let created = now();
    let d = Descriptor {
        v: VERSION,
        id: session_id(),
        host: me.clone(),
        host_route: host.file.route.clone(),
        roster,
        program: s.program,
        mpyc: s.options,
        proofs: with_wallet_rules(s.proofs, &s.invitees)?,
        created,
        expires: created + s.ttl.as_secs().max(1),
        peer_deadline_secs: s.peer_deadline.as_secs().max(1),
    };
    d.check(created)?;
    for did in &d.roster {
        host.expect(did);
    }
    let signed = d.sign(host).await?;
    let inv = oob::invitation(
        &me,
        GOAL_CODE,
        &format!("run {} with {} parties", d.program.name, d.roster.len()),
        vec![Attachment::json(signed.jws.clone())],
    );
    let base = host.file.mediator.http.clone().unwrap_or_else(|| "https://didmpc.dev/join".into());
    let url = oob::to_url(&inv, &base);
    let short_url = shorten(host, &inv, s.ttl).await;
    Ok(Invitation { signed, url, short_url })
}

/// Sends the invitation to every invitee that can be reached (a DID with an endpoint, or
/// one registered at our mediator), all at once; the others join by the link.
pub async fn send_invitations(host: &Agent, inv: &Invitation, progress: &(dyn Fn(Progress) + Sync)) {
    let d = &inv.signed.descriptor;
    let body = InvitationBody { session: d.id.clone(), descriptor: inv.signed.jws.clone() };
    let sends = d.roster.iter().filter(|did| **did != d.host).map(|did| {
        let m = Message::typed(&body);
        async move {
            if did.starts_with("did:pkh:") {
                let why = "a wallet account has no inbox: it joins by the link".to_owned();
                return Progress::Unreachable { did: did.clone(), why };
            }
            match host.send(m, did).await {
                Ok(t) => Progress::Reached { did: did.clone(), via: t.uri },
                Err(e) => Progress::Unreachable { did: did.clone(), why: format!("{e} (it can join by the link)") },
            }
        }
    });
    for p in futures_util::future::join_all(sends).await {
        progress(p);
    }
}

/// Every did:pkh on the roster is a wallet account: its place is taken only with a Sign-In
/// with Ethereum by that account (added to the policy unless it has a rule already).
fn with_wallet_rules(proofs: Value, invitees: &[Did]) -> Result<Value> {
    let wallets: Vec<&Did> = invitees.iter().filter(|d| d.method() == "pkh").collect();
    if wallets.is_empty() {
        return Ok(proofs);
    }
    let mut p = proofs::Policy::from_value(&proofs)?.unwrap_or_default();
    for d in wallets {
        if !p.parties.get(d.as_str()).is_some_and(|r| r.wants_account()) {
            p.require_account(Some(d.as_str()), &proofs::eth::Account::parse(d.as_str())?);
        }
    }
    p.check()?;
    Ok(p.to_value())
}

/// A `_oobid` link from our mediator (None if it declines; the long URL still works).
async fn shorten(host: &Agent, inv: &Message, ttl: Duration) -> Option<String> {
    let req = Message::typed(&ShortLinkCreate { invitation: inv.to_value(), ttl_secs: ttl.as_secs() });
    match host.link().request(req).await.and_then(|a| Ok(a.parse::<ShortLinkCreated>()?)) {
        Ok(a) => Some(a.url),
        Err(e) => {
            tracing::info!(error = %e, "no short link from the mediator");
            None
        }
    }
}

/// Most proof checks run at once on the host.
const VERIFY_AT_ONCE: usize = 4;

/// The host's word while it waits (from a lobby page): see [`await_joins_steered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Everyone joined: send the final roster and run.
    Start,
    /// Call the session off (everyone gets `abort` with this reason).
    Cancel(String),
}

/// Waits until every invitee joined (or one declined, or the session expired), then
/// sends `start` with the final roster. On failure everyone gets `abort`. Refusals of
/// strangers and failed proofs go out in the background, never delaying the session.
pub async fn await_joins(
    host: &Arc<Agent>,
    mailbox: &mut Mailbox,
    signed: &Signed,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<Member>> {
    await_joins_steered(host, mailbox, signed, progress, None).await
}

/// [`await_joins`], steered by the host: with `commands`, the final roster waits for
/// [`Command::Start`] once everyone joined ([`Progress::Ready`]), and [`Command::Cancel`]
/// aborts the session at any time before that. A closed channel steers no more (the
/// session then ends at its expiry unless started).
pub async fn await_joins_steered(
    host: &Arc<Agent>,
    mailbox: &mut Mailbox,
    signed: &Signed,
    progress: &(dyn Fn(Progress) + Sync),
    mut commands: Option<&mut tokio::sync::mpsc::UnboundedReceiver<Command>>,
) -> Result<Vec<Member>> {
    let d = &signed.descriptor;
    let own = Member { did: d.host.clone(), agent: d.host.clone(), route: host.file.route.clone(), identity: None };
    let mut core = HostCore::new(d.clone(), own);
    if commands.is_some() {
        core = core.manual_start();
    }
    let background = Background::new(host.clone());
    let mut checks = FuturesUnordered::new();
    let mut queued: VecDeque<HostOut> = VecDeque::from([core.waiting()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(d.expires.saturating_sub(now()));
    let id = d.id.clone();
    loop {
        while let Some(action) = queued.pop_front() {
            match action {
                HostOut::Send(s) if s.background => background.send(s),
                HostOut::Send(s) => {
                    if let Err(e) = host.send_via(s.msg, &s.to, s.via.as_ref()).await {
                        tracing::warn!(to = %s.to, error = %e, "could not send");
                    }
                }
                HostOut::Verify { pid, sender, join, join_id } => {
                    let (agent, signed) = (host.clone(), signed.clone());
                    checks.push(async move {
                        let result = check_proof(&agent, &signed, pid, &sender, &join).await;
                        (pid, sender, join, join_id, result)
                    });
                }
                HostOut::Progress(p) => progress(p),
                HostOut::Started(members) => return Ok(members),
                HostOut::Failed(e) => return Err(e),
            }
        }
        let input_outs = tokio::select! {
            got = mailbox.recv_matching(Duration::from_secs(3600), |(m, _)| {
                of_session::<Join>(m, &id).is_some() || of_session::<Decline>(m, &id).is_some()
            }) => {
                let (m, meta) = got?;
                let sender = meta.sender.unwrap_or_default();
                core.handle(HostIn::Message { msg: &m, sender: &sender })
            }
            Some((pid, sender, join, join_id, result)) = checks.next(), if checks.len() <= VERIFY_AT_ONCE => {
                core.handle(HostIn::Verdict { pid, sender, join, join_id, result })
            }
            _ = tokio::time::sleep_until(deadline) => core.handle(HostIn::Tick(now().max(d.expires))),
            command = async { commands.as_mut().expect("guarded by the branch condition").recv().await },
                if commands.is_some() => match command {
                    Some(Command::Start) => core.handle(HostIn::Start),
                    Some(Command::Cancel(why)) => core.handle(HostIn::Cancel(why)),
                    None => {
                        commands = None;
                        Vec::new()
                    }
                },
        };
        queued.extend(input_outs);
    }
}

/// The host's check of a join's proof (and, for a did:pkh roster place, that the wallet
/// signed for the sender).
async fn check_proof(
    host: &Agent,
    signed: &Signed,
    pid: usize,
    sender: &str,
    join: &Join,
) -> std::result::Result<Option<String>, Refusal> {
    let member = &signed.descriptor.roster[pid];
    let admitted = Box::pin(proofs::admit_as(
        &signed.proof_session(),
        member,
        sender,
        join.proof.as_ref(),
        host.resolver(),
        now(),
    ))
    .await;
    let refusal = |e: proofs::Error| {
        let reason = e.proof_reason().map_or("malformed", |r| r.code());
        Refusal { code: format!("e.p.req.proof.{reason}"), why: e.to_string() }
    };
    let identity = admitted.map_err(refusal)?;
    if member.starts_with("did:pkh:") {
        use proofs::eth::Account;
        let account = identity.as_ref().filter(|i| i.kind == proofs::Kind::Siwe).map(|i| Account::parse(&i.id));
        let wanted = Account::parse(member).ok();
        if wanted.is_none() || account.and_then(|a| a.ok()) != wanted {
            return Err(Refusal {
                code: "e.p.req.proof.wrong-account".into(),
                why: format!("pid {pid} is the wallet {member}: sign in with that account"),
            });
        }
    }
    Ok(identity.map(|i| i.to_string()))
}

#[cfg(test)]
mod tests {
    /// One in 64 base64url ids starts with `-`; none of ours may (4,096 draws would meet ~64).
    #[test]
    fn session_ids_never_start_with_a_hyphen() {
        for _ in 0..4096 {
            let id = super::session_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'), "{id}");
        }
    }
}
