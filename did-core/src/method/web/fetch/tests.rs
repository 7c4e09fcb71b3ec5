//! Real HTTP against local sinks: what a policy forbids is never requested, redirects are not
//! followed, failures all read the same.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::did::Did;
use crate::resolver::{DidResolver, Resolver};

/// A loopback HTTP server that counts connections and answers each with `response(port)`.
async fn sink(response: impl FnOnce(u16) -> Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bytes = response(port);
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, SeqCst);
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(&bytes).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, hits)
}

fn http(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}", body.len())
        .into_bytes()
}

fn doc_for(did: &str) -> String {
    format!(r#"{{"id": "{did}"}}"#)
}

fn resolver(reach: Reach) -> Resolver {
    Resolver::with_http_policy(ResolverPolicy::with_reach(reach)).unwrap()
}

async fn resolve_err(r: &Resolver, did: &str) -> String {
    r.resolve(&Did::parse(did).unwrap()).await.unwrap_err().to_string()
}

#[tokio::test]
async fn forbidden_hosts_are_never_contacted() {
    let (port, hits) = sink(|p| http("200 OK", "", &doc_for(&format!("did:web:127.0.0.1%3A{p}")))).await;
    let strict = resolver(Reach::PublicOnly);
    // every spelling of this machine the URL parser accepts
    for host in ["127.0.0.1", "localhost", "2130706433", "127.1", "0x7f.0.0.1", "sub.localhost", "0.0.0.0"] {
        let e = resolve_err(&strict, &format!("did:web:{host}%3A{port}:internal:admin")).await;
        assert!(e.contains(super::super::FORBIDDEN), "{host}: {e}");
    }
    // a private network is as forbidden as loopback when only loopback is allowed
    let e = resolve_err(&resolver(Reach::Loopback), "did:web:10.255.255.1%3A9").await;
    assert!(e.contains(super::super::FORBIDDEN), "{e}");
    assert_eq!(hits.load(SeqCst), 0, "nothing may reach the sink");
    // positive control: with loopback allowed the same sink is reached and serves the document
    let did = format!("did:web:127.0.0.1%3A{port}");
    let doc = resolver(Reach::Loopback).resolve(&Did::parse(&did).unwrap()).await.unwrap();
    assert_eq!(doc.id.as_str(), did);
    assert_eq!(hits.load(SeqCst), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (target, target_hits) = sink(|p| http("200 OK", "", &doc_for(&format!("did:web:127.0.0.1%3A{p}")))).await;
    let location = format!("location: http://127.0.0.1:{target}/.well-known/did.json\r\n");
    let (port, hits) = sink(|_| http("302 Found", &location, "")).await;
    let e = resolve_err(&resolver(Reach::Loopback), &format!("did:web:127.0.0.1%3A{port}")).await;
    assert!(e.ends_with(super::super::UNREACHABLE), "{e}");
    assert_eq!((hits.load(SeqCst), target_hits.load(SeqCst)), (1, 0));
}

#[tokio::test]
async fn failures_read_the_same_and_are_remembered() {
    let (notfound, _) = sink(|_| http("404 Not Found", "", "internal secret: hunter2")).await;
    let (garbage, _) = sink(|_| http("200 OK", "", "internal secret: hunter2")).await;
    let (other_id, _) = sink(|_| http("200 OK", "", &doc_for("did:web:evil.example"))).await;
    let (huge, _) = sink(|p| {
        let pad = " ".repeat(super::super::MAX_DOC_BYTES);
        http("200 OK", "", &format!(r#"{{"id": "did:web:127.0.0.1%3A{p}", "x": "{pad}"}}"#))
    })
    .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = resolver(Reach::Loopback);
    let mut seen = Vec::new();
    for port in [notfound, garbage, other_id, huge, closed] {
        let did = format!("did:web:127.0.0.1%3A{port}:x");
        // Without the DID: its random port may contain "404".
        let e = resolve_err(&r, &did).await.replace(&did, "DID");
        assert!(!e.contains("hunter2") && !e.contains("evil") && !e.contains("404"), "{e}");
        seen.push(e);
    }
    assert!(seen.iter().all(|e| *e == seen[0]), "{seen:#?}");
    assert_eq!(seen[0], format!("cannot resolve DID: {}", super::super::UNREACHABLE));

    // a failure is answered from memory for a while, without a request
    let (port, hits) = sink(|_| http("500 Internal Server Error", "", "")).await;
    let did = Did::parse(&format!("did:web:127.0.0.1%3A{port}")).unwrap();
    assert!(r.resolve(&did).await.is_err());
    assert!(r.resolve(&did).await.is_err());
    assert_eq!(hits.load(SeqCst), 1);
    r.invalidate(&did);
    assert!(r.resolve(&did).await.is_err());
    assert_eq!(hits.load(SeqCst), 2);
}

#[tokio::test]
async fn dns_answers_are_filtered() {
    let strict = FilteringDns { reach: Reach::PublicOnly };
    assert!(strict.resolve("localhost".parse().unwrap()).await.is_err());
    let local = FilteringDns { reach: Reach::Loopback };
    let addrs: Vec<SocketAddr> = local.resolve("localhost".parse().unwrap()).await.unwrap().collect();
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
}
