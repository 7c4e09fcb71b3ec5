//! The invitee's side: find and verify the invitation, compare the local program with
//! the descriptor (refusing before anything runs if it differs), join, and wait for the
//! host's `start`.

use std::path::Path;
use std::time::Duration;

use did_core::didcomm::message::now;
use did_core::didcomm::oob::{self, OobRef};
use did_core::didcomm::Message;
use serde_json::{json, Value};

use crate::agent::Agent;
use crate::descriptor::{self, program_mismatch, Program, Signed};
use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::mpc;

/// Directory (in the home) of received invitations.
pub const INVITATIONS_DIR: &str = "invitations";

/// Finds the invitation `reference` names: an OOB URL (`_oob` or `_oobid`), a session id
/// of a saved invitation, or `next` (the next invitation to arrive in the inbox).
pub async fn find(agent: &Agent, mailbox: &mut Mailbox, reference: &str, wait: Duration) -> Result<Signed> {
    let reference = reference.trim();
    let jws = if reference.contains("_oob") || reference.starts_with('{') {
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
        mpc::descriptor_of(&inv)?
    } else if let Some(saved) = load_saved(agent, reference)? {
        saved
    } else {
        let want = (reference != "next").then(|| reference.to_owned());
        let (m, _) = mailbox
            .recv_matching(wait, |(m, _)| {
                m.type_ == mpc::msg_type("invitation")
                    && want.as_deref().is_none_or(|w| m.body.get("session").and_then(Value::as_str) == Some(w))
            })
            .await
            .map_err(|_| Error::Timeout(format!("an invitation ({reference}) in the inbox")))?;
        mpc::descriptor_of(&m)?
    };
    let signed = descriptor::verify(&jws, agent.resolver(), now()).await?;
    if signed.descriptor.pid_of(agent.file.party.as_str()).is_none() {
        return Err(Error::Refused {
            who: signed.descriptor.host.clone(),
            code: "not-invited".into(),
            comment: format!("{} is not on this session's roster", agent.file.party),
        });
    }
    Ok(signed)
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
    let m = mpc::message("decline", signed, json!({ "reason": reason }));
    if let Err(e) = agent.send(m, &signed.descriptor.host).await {
        tracing::warn!(error = %e, "could not tell the host we decline");
    }
}

/// Joins (presenting `proof` if the policy asks for one) and waits for `start` (until the
/// descriptor expires, plus a minute for stragglers). A refused proof comes back as a
/// problem report: [`Error::Refused`] with its code (`e.p.req.proof.<reason>`).
pub async fn join_and_wait(
    agent: &Agent,
    mailbox: &mut Mailbox,
    signed: &Signed,
    proof: Option<&proofs::Presented>,
) -> Result<Vec<Option<String>>> {
    let d = &signed.descriptor;
    let body = match proof {
        Some(p) => json!({ "proof": serde_json::to_value(p).map_err(|e| Error::State(e.to_string()))? }),
        None => json!({}),
    };
    let join = mpc::message("join", signed, body);
    let join_id = join.id.clone();
    agent.send(join, &d.host).await?;
    let wait = Duration::from_secs(d.expires.saturating_sub(now()) + 60);
    let host = d.host.clone();
    let (m, _) = mailbox
        .recv_matching(wait, |(m, meta): &(Message, _)| {
            meta.sender.as_deref() == Some(host.as_str())
                && (mpc::is(m, "start", &d.id)
                    || mpc::is(m, "abort", &d.id)
                    || (m.type_.ends_with("/problem-report") && m.pthid.as_deref() == Some(join_id.as_str())))
        })
        .await
        .map_err(|_| Error::Timeout(format!("the start of session {} from the host", d.id)))?;
    if mpc::is(&m, "start", &d.id) {
        // The identities the host verified, per pid (absent or null: none).
        let ids = m.body.get("identities").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut out: Vec<Option<String>> = ids.iter().map(|v| v.as_str().map(str::to_owned)).collect();
        out.resize(d.roster.len(), None);
        return Ok(out);
    }
    let why = m.body.get("reason").or_else(|| m.body.get("comment")).and_then(Value::as_str).unwrap_or("no reason");
    let code = m.body.get("code").and_then(Value::as_str).unwrap_or("aborted");
    Err(Error::Refused { who: d.host.clone(), code: code.to_owned(), comment: why.to_owned() })
}

/// The program file for `signed` here: `explicit`, else the descriptor's file name in `dir`.
pub fn program_path(signed: &Signed, explicit: Option<&Path>, dir: &Path) -> std::path::PathBuf {
    // Only the file name counts: a descriptor cannot point outside `dir`.
    let name = Path::new(&signed.descriptor.program.name).file_name().unwrap_or_default();
    explicit.map(Path::to_path_buf).unwrap_or_else(|| dir.join(name))
}
