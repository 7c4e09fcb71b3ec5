//! The invitee's side: find and verify the invitation, compare the local program with
//! the descriptor (refusing before anything runs if it differs), join, and wait for the
//! host's `start`.

use std::path::Path;
use std::time::Duration;

use did_core::didcomm::message::now;
use did_core::didcomm::oob::{self, OobRef};
use did_core::didcomm::Message;
use serde_json::Value;

use crate::agent::Agent;
use crate::core::joiner::{JoinCore, JoinIn, JoinOut};
use crate::descriptor::{self, program_mismatch, Program, Signed};
use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::wire::{of_session, Abort, Decline, Invitation as InvitationBody, Join, Member, Start};

/// Directory (in the home) of received invitations.
pub const INVITATIONS_DIR: &str = "invitations";

/// Finds the invitation `reference` names: an OOB URL (`_oob` or `_oobid`), a session id
/// of a saved invitation, or `next` (the next invitation to arrive in the inbox for which
/// `accept` holds: `join next` takes invitations only from hosts the user knows or agrees
/// to). The descriptor's signature is checked; [`place`] then finds our pid.
pub async fn find(
    agent: &Agent,
    mailbox: &mut Mailbox,
    reference: &str,
    wait: Duration,
    accept: &(dyn Fn(&Signed) -> bool + Sync),
) -> Result<Signed> {
    let reference = reference.trim();
    if reference.contains("_oob") || reference.starts_with('{') {
        let inv = match oob::from_url(reference)? {
            OobRef::Invitation(m) => *m,
            OobRef::ShortLink(_) => {
                let text = agent.transport().get(reference).await?;
                match oob::from_url(&text)? {
                    OobRef::Invitation(m) => *m,
                    OobRef::ShortLink(_) => {
                        return Err(Error::Protocol("a short link pointing to a short link".into()))
                    }
                }
            }
        };
        return descriptor::verify(&descriptor_of(&inv)?, agent.resolver(), now()).await;
    }
    if let Some(saved) = load_saved(agent, reference)? {
        return descriptor::verify(&saved, agent.resolver(), now()).await;
    }
    let want = (reference != "next").then(|| reference.to_owned());
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (m, _) = mailbox
            .recv_matching(left, |(m, _)| {
                m.parse::<InvitationBody>().is_ok_and(|b| want.as_deref().is_none_or(|w| b.session == w))
            })
            .await
            .map_err(|_| Error::Timeout(format!("an invitation ({reference}) in the inbox")))?;
        let signed = match descriptor::verify(&descriptor_of(&m)?, agent.resolver(), now()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "ignored an invitation that does not verify");
                continue;
            }
        };
        if want.is_some() || accept(&signed) {
            return Ok(signed);
        }
        // Kept for `didmpc sessions` / `didmpc join <id>`: the user may still choose it.
        tracing::info!(host = %signed.descriptor.host, "skipped an invitation from a host you did not accept");
        if let Err(e) = save(agent, &signed) {
            tracing::warn!(error = %e, "cannot keep the skipped invitation");
        }
    }
}

/// Our place in a session: the pid and, when we take a wallet's place (did:pkh), that DID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Our pid.
    pub pid: usize,
    /// The roster DID we join as when it is not our own DID.
    pub member: Option<String>,
}

/// Where we stand on the roster: at our own DID, or at one of `wallets` (did:pkh
/// accounts we can sign in with).
pub fn place(agent: &Agent, signed: &Signed, wallets: &[String]) -> Result<Place> {
    let d = &signed.descriptor;
    if let Some(pid) = d.pid_of(agent.file.party.as_str()) {
        return Ok(Place { pid, member: None });
    }
    let same = |a: &str, b: &str| {
        let parse = proofs::eth::Account::parse;
        matches!((parse(a), parse(b)), (Ok(x), Ok(y)) if x == y)
    };
    for (pid, did) in d.roster.iter().enumerate().filter(|(_, d)| d.starts_with("did:pkh:")) {
        if wallets.iter().any(|w| same(w, did)) {
            return Ok(Place { pid, member: Some(did.clone()) });
        }
    }
    let wallet_places: Vec<&str> = d.roster.iter().filter(|r| r.starts_with("did:pkh:")).map(String::as_str).collect();
    let hint = if wallet_places.is_empty() {
        String::new()
    } else {
        format!(
            "; to take a wallet's place ({}), join with its key (--siwe-key) or signature",
            wallet_places.join(", ")
        )
    };
    Err(Error::Refused {
        who: d.host.clone(),
        code: "not-invited".into(),
        comment: format!("{} is not on this session's roster{hint}", agent.file.party),
    })
}

/// The descriptor JWS inside an invitation message or OOB invitation.
pub fn descriptor_of(m: &Message) -> Result<Value> {
    if let Ok(b) = m.parse::<InvitationBody>() {
        return Ok(b.descriptor);
    }
    m.attachments
        .iter()
        .flatten()
        .find_map(|a| a.data.json.clone())
        .ok_or_else(|| Error::Protocol("the invitation carries no session descriptor".into()))
}

fn load_saved(agent: &Agent, id: &str) -> Result<Option<Value>> {
    if id.contains(['/', '\\', '.']) {
        return Ok(None);
    }
    let p = agent.home.join(INVITATIONS_DIR).join(format!("{id}.json"));
    match std::fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| Error::State(format!("{}: {e}", p.display()))),
        Err(_) => Ok(None),
    }
}

/// Saves an invitation's descriptor JWS under its session id.
pub fn save(agent: &Agent, signed: &Signed) -> Result<()> {
    let dir = agent.home.join(INVITATIONS_DIR);
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string(&signed.jws).map_err(|e| Error::State(e.to_string()))?;
    std::fs::write(dir.join(format!("{}.json", signed.descriptor.id)), text)?;
    Ok(())
}

/// Every saved invitation that still verifies and has not expired.
pub async fn saved(agent: &Agent) -> Vec<Signed> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(agent.home.join(INVITATIONS_DIR)) else { return out };
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        if let Ok(s) = descriptor::verify(&v, agent.resolver(), now()).await {
            out.push(s);
        }
    }
    out.sort_by_key(|s| s.descriptor.created);
    out
}

/// Checks the local program against the descriptor. On a mismatch the host is told
/// (`decline`) and the error says what differs.
pub async fn check_program(agent: &Agent, signed: &Signed, local: &Program) -> Result<()> {
    if let Some(why) = program_mismatch(&signed.descriptor.program, local) {
        decline(agent, signed, &why).await;
        return Err(Error::Refused { who: "this party".into(), code: "program-mismatch".into(), comment: why });
    }
    Ok(())
}

/// Tells the host we will not join.
pub async fn decline(agent: &Agent, signed: &Signed, reason: &str) {
    let d = &signed.descriptor;
    let m = Message::typed(&Decline { session: d.id.clone(), reason: reason.to_owned() });
    if let Err(e) = agent.send_via(m, &d.host, d.host_route.as_ref()).await {
        tracing::warn!(error = %e, "could not tell the host we decline");
    }
}

/// Joins at `place` (presenting `proof` if the policy asks for one) and waits for the
/// final roster (until the descriptor expires, plus a minute for stragglers). A refused
/// proof comes back as a problem report: [`Error::Refused`] with its code
/// (`e.p.req.proof.<reason>`).
pub async fn join_and_wait(
    agent: &Agent,
    mailbox: &mut Mailbox,
    signed: &Signed,
    place: &Place,
    proof: Option<&proofs::Presented>,
) -> Result<Vec<Member>> {
    let d = &signed.descriptor;
    let proof = proof.map(serde_json::to_value).transpose().map_err(|e| Error::State(e.to_string()))?;
    let body = Join { session: d.id.clone(), member: place.member.clone(), route: agent.file.route.clone(), proof };
    let join = Message::typed(&body);
    let join_id = join.id.clone();
    agent.send_via(join, &d.host, d.host_route.as_ref()).await?;
    let mut core = JoinCore::new(d.clone(), place.pid, agent.file.party.as_str(), &join_id);
    let until = tokio::time::Instant::now() + Duration::from_secs(core.until().saturating_sub(now()));
    let host = d.host.clone();
    loop {
        let got = tokio::time::timeout_at(
            until,
            mailbox.recv_matching(Duration::from_secs(3600), |(m, meta)| {
                meta.sender.as_deref() == Some(host.as_str())
                    && (of_session::<Start>(m, &d.id).is_some()
                        || of_session::<Abort>(m, &d.id).is_some()
                        || m.pthid.as_deref() == Some(join_id.as_str()))
            }),
        )
        .await;
        let out = match got {
            Ok(Ok((m, meta))) => {
                let sender = meta.sender.unwrap_or_default();
                match core.handle(JoinIn::Message { msg: &m, sender: &sender }) {
                    Some(out) => out,
                    None => continue,
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => match core.handle(JoinIn::Tick(now().max(core.until()))) {
                Some(out) => out,
                None => continue,
            },
        };
        return match out {
            JoinOut::Started(members) => Ok(members),
            JoinOut::Failed(e) => Err(e),
        };
    }
}

/// The program file for `signed` here: `explicit`, else the descriptor's file name in `dir`.
pub fn program_path(signed: &Signed, explicit: Option<&Path>, dir: &Path) -> std::path::PathBuf {
    // Only the file name counts: a descriptor cannot point outside `dir`.
    let name = Path::new(&signed.descriptor.program.name).file_name().unwrap_or_default();
    explicit.map(Path::to_path_buf).unwrap_or_else(|| dir.join(name))
}
