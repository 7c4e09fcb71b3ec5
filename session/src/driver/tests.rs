//! Two drivers joined by channels: streams carried over I/O, attaching, resets.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::error::Error;
use crate::handshake::{respond, Initiator, Params, NOISE_PARAMS};
use crate::Config;

fn keys() -> (crate::Keys, crate::Keys) {
    let gen = || snow::Builder::new(NOISE_PARAMS.parse().unwrap()).generate_keypair().unwrap();
    let (a, b) = (gen(), gen());
    let arr = |v: Vec<u8>| -> [u8; 32] { v.try_into().unwrap() };
    let (a_sk, a_pk, b_sk, b_pk) = (arr(a.private), arr(a.public), arr(b.private), arr(b.public));
    let d = [5u8; 32];
    let p = |l, r| Params {
        session_id: b"io",
        roster_digest: &d,
        initiator_did: "did:ex:a",
        responder_did: "did:ex:b",
        local_static: l,
        remote_static: r,
    };
    let (i, m1) = Initiator::start(&p(&a_sk, &b_pk)).unwrap();
    let (kb, m2) = respond(&p(&b_sk, &a_pk), &m1).unwrap();
    (i.finish(&m2).unwrap(), kb)
}

/// Two drivers joined by channels.
fn pair() -> (Handle, Incoming, Handle, Incoming) {
    fn wire(mut rx: mpsc::Receiver<Bytes>, tx: mpsc::Sender<LinkEvent>) {
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                if tx.send(LinkEvent::Packet(p)).await.is_err() {
                    return;
                }
            }
        });
    }
    let (ka, kb) = keys();
    let (a_out, a_out_rx) = mpsc::channel(64);
    let (b_out, b_out_rx) = mpsc::channel(64);
    let (a_in_tx, a_in) = mpsc::channel(64);
    let (b_in_tx, b_in) = mpsc::channel(64);
    wire(a_out_rx, b_in_tx);
    wire(b_out_rx, a_in_tx);
    let now = Instant::now();
    let (ha, ia) = spawn(Session::new(ka, Config::default(), now), Link { tx: a_out, rx: a_in });
    let (hb, ib) = spawn(Session::new(kb, Config::default(), now), Link { tx: b_out, rx: b_in });
    (ha, ia, hb, ib)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_io_carries_bytes_and_fin_both_ways() {
    let (ha, _ia, _hb, mut ib) = pair();
    let (io, mut app) = tokio::io::duplex(1024);
    ha.open_io(io).await.unwrap();
    let mut peer = ib.accept().await.unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    app.write_all(&data).await.unwrap();
    app.shutdown().await.unwrap(); // FIN towards the peer
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    assert!(got == data);
    peer.write_all(b"answer").await.unwrap();
    peer.shutdown().await.unwrap(); // FIN towards the I/O
    let mut back = Vec::new();
    app.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_keeps_unread_and_unsent_bytes_in_order() {
    let (ha, _ia, hb, mut ib) = pair();
    let mut a = ha.open().await.unwrap();
    a.write_all(b"pi").await.unwrap();
    a.write_all(b"-first-part").await.unwrap();
    let mut b = ib.accept().await.unwrap();
    let mut pid = [0u8; 2];
    b.read_exact(&mut pid).await.unwrap();
    assert_eq!(&pid, b"pi");
    // Let the rest reach b's driver (13 bytes read from the session: in its pipe or
    // its buffer), unread by b, and b write something the driver may not have taken yet.
    while hb.stats().bytes_read < 13 {
        tokio::task::yield_now().await;
    }
    b.write_all(b"hello").await.unwrap();
    let (io, mut app) = tokio::io::duplex(64 * 1024);
    hb.attach(b, io).await.unwrap();
    a.write_all(b"-second").await.unwrap();
    a.shutdown().await.unwrap();
    let mut got = Vec::new();
    app.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"-first-part-second");
    app.write_all(b" world").await.unwrap();
    app.shutdown().await.unwrap();
    let mut back = Vec::new();
    a.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_after_reset_fails_and_a_reset_closes_the_io() {
    let (ha, _ia, hb, mut ib) = pair();
    let a = ha.open().await.unwrap();
    let mut a2 = ha.open().await.unwrap();
    a2.write_all(b"x").await.unwrap();
    let b = ib.accept().await.unwrap();
    let mut b2 = ib.accept().await.unwrap();
    ha.reset(a.id(), 7);
    // Once the reset reached b's driver (b's reads fail), attaching fails.
    let mut b = b;
    assert!(b.read(&mut [0u8; 1]).await.is_err());
    let (io, _app) = tokio::io::duplex(1024);
    assert!(matches!(hb.attach(b, io).await, Err(Error::StreamReset(_, 7))));
    // An attached stream the peer resets drops its I/O.
    b2.read_exact(&mut [0u8; 1]).await.unwrap();
    let (io, mut app) = tokio::io::duplex(1024);
    hb.attach(b2, io).await.unwrap();
    ha.reset(a2.id(), 8);
    let mut rest = Vec::new();
    let n = app.read_to_end(&mut rest).await.unwrap();
    assert_eq!(n, 0);
}

/// A TCP connection that fails (reset) resets its stream: the peer sees an error, not
/// a FIN that would pass a cut-off stream for a whole one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_error_resets_the_stream_instead_of_finishing_it() {
    let (ha, _ia, _hb, mut ib) = pair();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ours = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (mut theirs, _) = l.accept().await.unwrap();
    ha.open_io(ours).await.unwrap();
    theirs.write_all(b"partial").await.unwrap();
    let mut peer = ib.accept().await.unwrap();
    let mut got = [0u8; 7];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"partial");
    // Closing with SO_LINGER 0 sends a RST.
    theirs.set_zero_linger().unwrap();
    drop(theirs);
    let mut rest = Vec::new();
    let e = peer.read_to_end(&mut rest).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(rest.is_empty());
}
