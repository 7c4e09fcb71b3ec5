//! The MPC session protocol (`https://didmpc.dev/protocols/mpc/1.0`): the messages the
//! host and the invitees exchange through their mediators before anything runs.
//!
//! `invitation` (host → invitee: the signed descriptor), `join` / `decline` (invitee →
//! host), `start` (host → everyone: the roster is final) and `abort` (host → everyone).

use did_core::didcomm::message::Message;
use serde_json::Value;

use crate::agent::Agent;
use crate::descriptor::Signed;
use crate::error::{Error, Result};

/// The protocol.
pub const MPC_1: &str = "https://didmpc.dev/protocols/mpc/1.0";
/// OOB goal code of an MPC invitation.
pub const GOAL_CODE: &str = "didmpc.mpc.join";

/// A message type of the protocol.
pub fn msg_type(name: &str) -> String {
    format!("{MPC_1}/{name}")
}

/// `name` with `body` plus the session id.
pub fn message(name: &str, signed: &Signed, mut body: Value) -> Message {
    if let Value::Object(m) = &mut body {
        m.insert("session".into(), signed.descriptor.id.clone().into());
    }
    Message::new(msg_type(name), body)
}

/// True if `m` is `name` for session `id`.
pub fn is(m: &Message, name: &str, id: &str) -> bool {
    m.type_ == msg_type(name) && m.body.get("session").and_then(Value::as_str) == Some(id)
}

/// Sends `name` to every roster member except us; failures are returned per DID.
pub async fn broadcast(agent: &Agent, signed: &Signed, name: &str, body: Value) -> Vec<(String, Result<()>)> {
    let me = agent.file.party.as_str();
    let mut out = Vec::new();
    for did in signed.descriptor.roster.iter().filter(|d| d.as_str() != me) {
        let r = agent.send(message(name, signed, body.clone()), did).await.map(|_| ());
        out.push((did.clone(), r));
    }
    out
}

/// The descriptor JWS inside an invitation message or OOB invitation.
pub fn descriptor_of(m: &Message) -> Result<Value> {
    if let Some(d) = m.body.get("descriptor") {
        return Ok(d.clone());
    }
    m.attachments
        .iter()
        .flatten()
        .find_map(|a| a.data.json.clone())
        .ok_or_else(|| Error::Protocol("the invitation carries no session descriptor".into()))
}
