//! The host's side: build and sign the descriptor, reach every invitee through its
//! mediator, publish an Out-of-Band invitation, and wait until everyone joined.

use std::collections::BTreeSet;
use std::time::Duration;

use did_core::didcomm::message::{now, Attachment};
use did_core::didcomm::{oob, Message};
use did_core::Did;
use rand_core::RngCore;
use serde_json::{json, Value};

use crate::agent::Agent;
use crate::descriptor::{Descriptor, MpcOptions, Program, Signed, VERSION};
use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::mpc::{self, GOAL_CODE};

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

/// What happens while the host waits.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The invitation was handed to the invitee's mediator.
    Reached {
        /// Invitee.
        did: String,
        /// Its endpoint.
        via: String,
    },
    /// The invitee's mediator could not be reached.
    Unreachable {
        /// Invitee.
        did: String,
        /// Why.
        why: String,
    },
    /// An invitee joined (its proof, if the policy asks for one, verified).
    Joined {
        /// Invitee.
        did: String,
        /// Its pid.
        pid: usize,
        /// The identity its proof established (None: the session asks for no proof).
        identity: Option<proofs::Identity>,
    },
    /// An invitee's join was refused because its identity proof failed; it may retry
    /// until the session expires.
    Refused {
        /// Invitee.
        did: String,
        /// Its pid.
        pid: usize,
        /// The problem report code sent back.
        code: String,
        /// Why.
        why: String,
    },
    /// Who is still missing.
    Waiting {
        /// Missing DIDs.
        missing: Vec<String>,
    },
}

/// Builds, signs and publishes the session; sends the invitation to every invitee.
pub async fn create(host: &Agent, s: NewSession, progress: &(dyn Fn(Progress) + Sync)) -> Result<Invitation> {
    let mut id = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut id);
    let me = host.file.party.to_string();
    let mut roster = vec![me.clone()];
    roster.extend(s.invitees.iter().map(|d| d.to_string()));
    let created = now();
    let d = Descriptor {
        v: VERSION,
        id: did_core::jose::b64e(id),
        host: me.clone(),
        roster,
        program: s.program,
        mpyc: s.options,
        proofs: s.proofs,
        created,
        expires: created + s.ttl.as_secs().max(1),
        peer_deadline_secs: s.peer_deadline.as_secs().max(1),
    };
    d.check(created)?;
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
    for did in &s.invitees {
        let m = mpc::message("invitation", &signed, json!({ "descriptor": signed.jws }));
        match host.send(m, did.as_str()).await {
            Ok(t) => progress(Progress::Reached { did: did.to_string(), via: t.uri }),
            Err(e) => progress(Progress::Unreachable { did: did.to_string(), why: e.to_string() }),
        }
    }
    Ok(Invitation { signed, url, short_url })
}

/// A `_oobid` link from our mediator (None if it declines; the long URL still works).
async fn shorten(host: &Agent, inv: &Message, ttl: Duration) -> Option<String> {
    let req = Message::new(
        "https://didmpc.dev/protocols/oob-shortlink/1.0/create",
        json!({"invitation": inv.to_value(), "ttl_secs": ttl.as_secs()}),
    );
    match host.link().request(req).await {
        Ok(a) => a.body.get("url").and_then(Value::as_str).map(str::to_owned),
        Err(e) => {
            tracing::info!(error = %e, "no short link from the mediator");
            None
        }
    }
}

/// Waits until every invitee joined (or one declined, or `expires` passed); then sends
/// `start` to everyone. On failure everyone who joined gets `abort`.
pub async fn await_joins(
    host: &Agent,
    mailbox: &mut Mailbox,
    signed: &Signed,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<Option<String>>> {
    let d = &signed.descriptor;
    let session = signed.proof_session();
    let mut identities: Vec<Option<String>> = vec![None; d.roster.len()];
    let mut missing: BTreeSet<usize> = (0..d.roster.len()).filter(|&j| d.roster[j] != d.host).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(d.expires.saturating_sub(now()));
    progress(Progress::Waiting { missing: missing.iter().map(|&j| d.roster[j].clone()).collect() });
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let got = mailbox.recv_matching(left, |(m, _)| mpc::is(m, "join", &d.id) || mpc::is(m, "decline", &d.id)).await;
        let (m, meta) = match got {
            Ok(x) => x,
            Err(Error::Timeout(_)) => {
                let names: Vec<String> = missing.iter().map(|&j| format!("pid {j} ({})", d.roster[j])).collect();
                let why = format!("these invitees never joined: {}", names.join(", "));
                abort(host, signed, &why).await;
                return Err(Error::Timeout(why));
            }
            Err(e) => return Err(e),
        };
        let sender = meta.sender.unwrap_or_default();
        let Some(pid) = d.pid_of(&sender) else {
            tracing::warn!(from = %sender, session = %d.id, "a join from a DID not on the roster; refused");
            let _ =
                host.send(problem(&m, "e.p.req.not-invited", "you are not on this session's roster"), &sender).await;
            continue;
        };
        if m.type_ == mpc::msg_type("decline") {
            let reason = m.body.get("reason").and_then(Value::as_str).unwrap_or("no reason given").to_owned();
            let why = format!("pid {pid} ({sender}) declined: {reason}");
            abort(host, signed, &why).await;
            return Err(Error::Refused { who: sender, code: "declined".into(), comment: reason });
        }
        if !missing.contains(&pid) {
            continue;
        }
        let identity =
            match Box::pin(proofs::admit(&session, &sender, m.body.get("proof"), host.resolver(), now())).await {
                Ok(id) => id,
                Err(e) => {
                    let reason = e.proof_reason().map_or("malformed", |r| r.code());
                    let code = format!("e.p.req.proof.{reason}");
                    let why = e.to_string();
                    tracing::warn!(from = %sender, session = %d.id, %why, "identity proof refused");
                    if let Err(e) = host.send(problem(&m, &code, &why), &sender).await {
                        tracing::warn!(to = %sender, error = %e, "could not send the refusal");
                    }
                    progress(Progress::Refused { did: sender.clone(), pid, code, why });
                    continue;
                }
            };
        if missing.remove(&pid) {
            identities[pid] = identity.as_ref().map(ToString::to_string);
            progress(Progress::Joined { did: sender.clone(), pid, identity });
            if !missing.is_empty() {
                progress(Progress::Waiting { missing: missing.iter().map(|&j| d.roster[j].clone()).collect() });
            }
        }
    }
    // Everyone learns which identity each party proved (null where no proof was asked).
    for (did, r) in mpc::broadcast(host, signed, "start", json!({ "identities": identities })).await {
        r.map_err(|e| Error::Transport { uri: did, reason: format!("cannot send start: {e}") })?;
    }
    Ok(identities)
}

/// Tells everyone the session is off.
pub async fn abort(host: &Agent, signed: &Signed, reason: &str) {
    for (did, r) in mpc::broadcast(host, signed, "abort", json!({ "reason": reason })).await {
        if let Err(e) = r {
            tracing::warn!(to = %did, error = %e, "could not send abort");
        }
    }
}

/// A Problem Report 2.0 answering `m`.
pub fn problem(m: &Message, code: &str, comment: &str) -> Message {
    let mut p = Message::new(
        "https://didcomm.org/report-problem/2.0/problem-report",
        json!({"code": code, "comment": comment}),
    );
    p.pthid = Some(m.thid.clone().unwrap_or_else(|| m.id.clone()));
    p
}
