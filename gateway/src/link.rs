//! The party's link to its mediator: finding it, talking Coordinate Mediation 3.0 and
//! Message Pickup 3.0 with it over HTTP (request/response) or a WebSocket.

use std::time::Duration;

use did_core::didcomm::{self, oob, Message, PackOptions, UnpackMetadata, UnpackOptions};
use did_core::{Did, DidResolver, KeyRing, Resolver};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::transport::{problem_in, Transport, WsConn};

use did_core::didcomm::vocab::{
    MediateDeny, MediateGrant, MediateRequest, RecipientChange, RecipientUpdate, RecipientUpdateResponse,
};
pub use did_core::didcomm::vocab::{COORDINATE_3 as COORD_3, PICKUP_3};

/// A mediator's DID and transport endpoints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MediatorInfo {
    /// The mediator DID.
    pub did: Did,
    /// Its HTTP(S) endpoint, if any.
    pub http: Option<String>,
    /// Its WebSocket endpoint, if any.
    pub ws: Option<String>,
}

impl MediatorInfo {
    /// Finds a mediator from a base URL (`GET <url>/invitation`), an invitation URL
    /// (`?_oob=`), or its DID.
    pub async fn discover(reference: &str, transport: &Transport, resolver: &Resolver) -> Result<MediatorInfo> {
        let did = if reference.starts_with("did:") {
            Did::parse(reference)?
        } else if reference.contains("_oob=") {
            invitation_from(oob::from_url(reference)?)?
        } else {
            let url = format!("{}/invitation", reference.trim_end_matches('/'));
            let text = transport.get(&url).await?;
            invitation_from(oob::from_url(&text)?)?
        };
        let doc = resolver.resolve(&did).await?;
        let mut info = MediatorInfo { did, http: None, ws: None };
        for ep in doc.didcomm_endpoints() {
            let u = &ep.uri;
            if (u.starts_with("http://") || u.starts_with("https://")) && info.http.is_none() {
                info.http = Some(u.clone());
            } else if (u.starts_with("ws://") || u.starts_with("wss://")) && info.ws.is_none() {
                info.ws = Some(u.clone());
            }
        }
        if info.http.is_none() && info.ws.is_none() {
            return Err(Error::Protocol(format!("{} publishes no http(s) or ws(s) endpoint", info.did.fmt_short())));
        }
        Ok(info)
    }
}

fn invitation_from(r: oob::OobRef) -> Result<Did> {
    match r {
        oob::OobRef::Invitation(m) => Ok(Did::parse(m.from.as_deref().unwrap_or_default())?),
        oob::OobRef::ShortLink(_) => {
            Err(Error::Protocol("a short link cannot name a mediator; give its base URL".into()))
        }
    }
}

/// A client DID talking to its mediator.
pub struct Link<'a> {
    /// The mediator.
    pub mediator: &'a MediatorInfo,
    /// The DID that holds (or requests) the mediation grant.
    pub client: &'a Did,
    /// Private keys: the client's and the party DIDs' (to open deliveries).
    pub keys: &'a KeyRing,
    /// DID resolution.
    pub resolver: &'a Resolver,
    /// HTTP/WS client.
    pub transport: &'a Transport,
}

impl Link<'_> {
    /// Authcrypts `msg` from the client to the mediator (return route requested).
    pub async fn seal(&self, mut msg: Message) -> Result<String> {
        msg.from = Some(self.client.to_string());
        msg.to = Some(vec![self.mediator.did.to_string()]);
        msg.extra.insert("return_route".into(), "all".into());
        let opts = PackOptions { forward: false, ..Default::default() };
        let packed = didcomm::pack_encrypted(
            &msg,
            self.mediator.did.as_str(),
            Some(self.client.as_str()),
            None,
            self.resolver,
            self.keys,
            &opts,
        )
        .await?;
        Ok(packed.message)
    }

    /// Opens an answer from the mediator (or a problem report) and checks who sent it.
    pub async fn open(&self, text: &str) -> Result<(Message, UnpackMetadata)> {
        if let Some(e) = problem_in(self.mediator.did.as_str(), text) {
            return Err(e);
        }
        let (m, meta) = didcomm::unpack(text, self.resolver, self.keys, &UnpackOptions::default()).await?;
        if meta.sender.as_deref() != Some(self.mediator.did.as_str()) {
            return Err(Error::Protocol(format!(
                "answer not authenticated by the mediator (sender {:?})",
                meta.sender
            )));
        }
        if m.type_.ends_with("/problem-report") {
            return Err(Error::Refused {
                who: self.mediator.did.fmt_short(),
                code: m.body.get("code").and_then(Value::as_str).unwrap_or("?").into(),
                comment: m.body.get("comment").and_then(Value::as_str).unwrap_or("").into(),
            });
        }
        Ok((m, meta))
    }

    /// One request/response over HTTP (or over a fresh WebSocket when there is no HTTP endpoint).
    pub async fn request(&self, msg: Message) -> Result<Message> {
        let sealed = self.seal(msg).await?;
        let answer = match (&self.mediator.http, &self.mediator.ws) {
            (Some(http), _) => self.transport.post(http, &sealed).await?,
            (None, Some(ws)) => {
                let mut c = self.transport.connect(ws).await?;
                c.send(&sealed).await?;
                let a = c.recv_timeout(crate::transport::TIMEOUT).await?;
                c.close().await;
                a
            }
            (None, None) => return Err(Error::State("mediator has no endpoint".into())),
        };
        let answer = answer.ok_or_else(|| Error::Protocol("the mediator sent no answer".into()))?;
        Ok(self.open(&answer).await?.0)
    }

    /// One request/response on an open WebSocket; frames that are not the answer
    /// (live deliveries) are passed to `other`.
    pub async fn request_ws(&self, ws: &mut WsConn, msg: Message, other: &mut Vec<Message>) -> Result<Message> {
        let id = msg.id.clone();
        ws.send(&self.seal(msg).await?).await?;
        loop {
            let frame = ws
                .recv_timeout(crate::transport::TIMEOUT)
                .await?
                .ok_or_else(|| Error::Protocol("the mediator closed the connection".into()))?;
            let (m, _) = self.open(&frame).await?;
            if m.thid.as_deref() == Some(id.as_str()) {
                return Ok(m);
            }
            other.push(m);
        }
    }

    /// Requests mediation; returns the routing DIDs of the grant.
    pub async fn mediate(&self) -> Result<Vec<String>> {
        let answer = self.request(Message::typed(&MediateRequest {})).await?;
        if answer.is::<MediateDeny>() {
            return Err(Error::Refused {
                who: self.mediator.did.fmt_short(),
                code: "mediate-deny".into(),
                comment: "the mediator's policy does not admit this DID".into(),
            });
        }
        let grant = answer.parse::<MediateGrant>()?;
        if grant.routing_did.is_empty() {
            return Err(Error::Protocol("mediate-grant without routing_did".into()));
        }
        Ok(grant.routing_did)
    }

    /// Registers (or removes) recipient DIDs; returns each one's result.
    pub async fn update_recipients(&self, dids: &[&str], add: bool) -> Result<Vec<(String, String)>> {
        let action = if add { "add" } else { "remove" };
        let updates = dids
            .iter()
            .map(|d| RecipientChange { recipient_did: (*d).to_owned(), action: action.into(), result: None })
            .collect();
        let answer = self.request(Message::typed(&RecipientUpdate { updates })).await?;
        let r = answer.parse::<RecipientUpdateResponse>()?;
        Ok(r.updated.into_iter().map(|u| (u.recipient_did, u.result.unwrap_or_default())).collect())
    }
}

/// A delivered message: its queue id and the envelope.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Queue id, for `messages-received`.
    pub id: String,
    /// The envelope as queued (usually encrypted for one of our party DIDs).
    pub envelope: String,
}

/// The attachments of a Pickup `delivery` message.
pub fn deliveries(m: &Message) -> Result<Vec<Delivered>> {
    let mut out = Vec::new();
    for a in m.attachments.as_deref().unwrap_or_default() {
        let id = a.id.clone().ok_or_else(|| Error::Protocol("delivery attachment without id".into()))?;
        let envelope = match (&a.data.base64, &a.data.json) {
            (Some(b), _) => String::from_utf8(did_core::jose::b64d(b, "attachment")?)
                .map_err(|_| Error::Protocol("attachment is not UTF-8".into()))?,
            (None, Some(v)) => v.to_string(),
            _ => return Err(Error::Protocol("delivery attachment without data".into())),
        };
        out.push(Delivered { id, envelope });
    }
    Ok(out)
}

/// Pause between reconnects, doubling up to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((500u64 << attempt.min(6)).min(30_000))
}
