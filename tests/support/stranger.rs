//! What a stranger at a mediator has: hand-made envelopes sent from a chosen source address,
//! an identity of any DID method (a did:web whose document it never has to serve), and a
//! loopback HTTP sink that records whatever reaches it.

#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use did_core::didcomm::{self, forward, Message, PackOptions, UnpackOptions};
use did_core::doc::{KeyFormat, Relationship};
use did_core::{Did, DidDocument, Identity, Jwk, KeyKind, Resolver, SecretKey, VerificationMethod};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP client whose connections leave from `ip` (any 127.0.0.0/8 address works on Linux).
pub fn http_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().unwrap();
    reqwest::Client::builder().local_address(ip).timeout(Duration::from_secs(60)).build().unwrap()
}

/// The mediator's DID, from `GET /did`.
pub async fn mediator_did(url: &str) -> String {
    reqwest::get(format!("{url}/did")).await.unwrap().text().await.unwrap()
}

/// POSTs an envelope to `/didcomm`: the status and the body as JSON (Null when empty).
pub async fn post(client: &reqwest::Client, url: &str, ct: &str, body: String) -> (u16, Value) {
    let r = client.post(format!("{url}/didcomm")).header("content-type", ct).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Content type of encrypted envelopes.
pub const ENCRYPTED: &str = "application/didcomm-encrypted+json";
/// Content type of signed envelopes.
pub const SIGNED: &str = "application/didcomm-signed+json";

/// A party of its own making: an identity and a resolver that knows its document (and
/// resolves did:key and did:peer offline; it never fetches anything).
pub struct Stranger {
    /// Keys and DID.
    pub id: Identity,
    /// Its resolver.
    pub resolver: Resolver,
}

impl Stranger {
    /// A fresh did:key.
    pub fn key() -> Stranger {
        Stranger { id: Identity::generate_key(), resolver: Resolver::default() }
    }

    /// `did` (a did:web) with fresh Ed25519 (`#key-1`) and X25519 (`#key-2`) keys, its document
    /// known only to this stranger's resolver.
    pub fn web(did: &str) -> Stranger {
        let did = Did::parse(did).unwrap();
        let (ed, x) = (SecretKey::generate(KeyKind::Ed25519), SecretKey::generate(KeyKind::X25519));
        let mut doc = DidDocument::new(did.clone());
        let vm = |n: u8, key| VerificationMethod {
            id: format!("{did}#key-{n}"),
            type_: "JsonWebKey2020".into(),
            controller: did.to_string(),
            key,
            format: KeyFormat::Jwk,
        };
        doc.add_method(vm(1, ed.public_key()), &[Relationship::Authentication]).unwrap();
        doc.add_method(vm(2, x.public_key()), &[Relationship::KeyAgreement]).unwrap();
        let jwks = [
            Jwk::from_secret(&ed).with_kid(format!("{did}#key-1")),
            Jwk::from_secret(&x).with_kid(format!("{did}#key-2")),
        ];
        let mut id = Identity::from_jwks(&doc, &jwks).unwrap();
        id.document = Some(doc.clone());
        let resolver = Resolver::default();
        resolver.insert(doc);
        Stranger { id, resolver }
    }

    /// The DID.
    pub fn did(&self) -> &str {
        self.id.did.as_str()
    }

    /// `msg` from this stranger, authcrypted to `to` (wrapped in anoncrypt with `protect`).
    pub async fn authcrypt(&self, msg: Message, to: &str, protect: bool) -> String {
        let msg = msg.from(self.did()).to(to);
        let opts = PackOptions { forward: false, protect_sender: protect, ..Default::default() };
        didcomm::pack_encrypted(&msg, to, Some(self.did()), None, &self.resolver, &self.id, &opts)
            .await
            .unwrap()
            .message
    }

    /// `msg` from this stranger, signed (a JWS, not encrypted).
    pub async fn signed(&self, msg: Message) -> String {
        didcomm::pack_signed(&msg.from(self.did()), self.did(), &self.resolver, &self.id).await.unwrap().0
    }

    /// `msg` anoncrypted to `to` (`to` is resolved by this stranger, e.g. a did:peer).
    pub async fn anoncrypt(&self, msg: &Message, to: &str) -> String {
        let opts = PackOptions { forward: false, ..Default::default() };
        didcomm::pack_encrypted(msg, to, None, None, &self.resolver, &self.id, &opts).await.unwrap().message
    }

    /// A forward to `next` carrying `payload_bytes` bytes of junk, anoncrypted to the mediator.
    pub async fn forward(&self, mediator: &str, next: &str, payload_bytes: usize) -> String {
        let payload = serde_json::json!({"ciphertext": "x".repeat(payload_bytes), "protected": "e30"});
        self.anoncrypt(&forward::forward_message(next, payload, None), mediator).await
    }

    /// Opens an encrypted answer addressed to this stranger.
    pub async fn open(&self, text: &str) -> Message {
        didcomm::unpack(text, &self.resolver, &self.id, &UnpackOptions::default()).await.unwrap().0
    }

    /// Sends `msg` authcrypted to the mediator and returns its answer: the decrypted message
    /// for a 200, else the status and the plaintext problem report.
    pub async fn ask(&self, client: &reqwest::Client, url: &str, mediator: &str, msg: Message) -> (u16, Value) {
        let env = self.authcrypt(msg, mediator, false).await;
        let (status, body) = post(client, url, ENCRYPTED, env).await;
        if status == 200 {
            (200, self.open(&body.to_string()).await.to_value())
        } else {
            (status, body)
        }
    }
}

/// What reached a [`sink`]: connections and request lines.
#[derive(Default, Debug)]
pub struct Seen {
    /// Connections accepted.
    pub connections: usize,
    /// First lines of requests (`GET /x/did.json HTTP/1.1`).
    pub requests: Vec<String>,
}

/// A loopback HTTP server standing in for an internal service: it records everything that
/// reaches it and answers `200` with a body that is no DID document.
pub async fn sink() -> (u16, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, serve(listener, "admin console: secret=hunter2".into()))
}

/// A did:web party `did:web:127.0.0.1%3A<port>:<path>` whose document a loopback server
/// really serves (at `/<path>/did.json`, and the same body at every other path).
pub async fn served_web_party(path: &str) -> (Stranger, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let party = Stranger::web(&format!("did:web:127.0.0.1%3A{port}:{path}"));
    let doc = party.id.document.as_ref().unwrap().to_value().to_string();
    (party, serve(listener, doc))
}

fn serve(listener: tokio::net::TcpListener, body: String) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            record.lock().unwrap().connections += 1;
            let (record, body) = (record.clone(), body.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
                record.lock().unwrap().requests.push(line);
                let resp =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    seen
}

/// The value of a counter line `name{labels} N` in a Prometheus text, if present.
pub fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
