//! The loopback port map against a roster member who lies about its pid: a stream from the
//! authenticated peer j that announces another pid is reset and never reaches the local
//! MPyC; the truthful one is connected with its bytes intact.

use std::time::Duration;

use bytes::Bytes;
use gateway::tunnel::{self, TunnelEvent};
use session::driver::{self, Link, LinkEvent};
use session::handshake::{respond, Initiator, Params, NOISE_PARAMS};
use session::{Config, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Two sessions over an in-memory link.
fn pair() -> ((session::driver::Handle, session::driver::Incoming), (session::driver::Handle, session::driver::Incoming))
{
    let gen = || snow::Builder::new(NOISE_PARAMS.parse().unwrap()).generate_keypair().unwrap();
    let (a, b) = (gen(), gen());
    let (a_sk, a_pk): ([u8; 32], [u8; 32]) = (a.private.try_into().unwrap(), a.public.try_into().unwrap());
    let (b_sk, b_pk): ([u8; 32], [u8; 32]) = (b.private.try_into().unwrap(), b.public.try_into().unwrap());
    let d = [0u8; 32];
    let p = |l, r| Params {
        session_id: b"pid",
        roster_digest: &d,
        initiator_did: "did:ex:j",
        responder_did: "did:ex:me",
        local_static: l,
        remote_static: r,
    };
    let (i, m1) = Initiator::start(&p(&a_sk, &b_pk)).unwrap();
    let (kb, m2) = respond(&p(&b_sk, &a_pk), &m1).unwrap();
    let ka = i.finish(&m2).unwrap();
    let (a_tx, mut a_out) = mpsc::channel::<Bytes>(256);
    let (b_tx, mut b_out) = mpsc::channel::<Bytes>(256);
    let (a_in, a_rx) = mpsc::channel::<LinkEvent>(256);
    let (b_in, b_rx) = mpsc::channel::<LinkEvent>(256);
    tokio::spawn(async move {
        while let Some(p) = a_out.recv().await {
            let _ = b_in.send(LinkEvent::Packet(p)).await;
        }
    });
    tokio::spawn(async move {
        while let Some(p) = b_out.recv().await {
            let _ = a_in.send(LinkEvent::Packet(p)).await;
        }
    });
    let now = std::time::Instant::now();
    let a = driver::spawn(Session::new(ka, Config::default(), now), Link { tx: a_tx, rx: a_rx });
    let b = driver::spawn(Session::new(kb, Config::default(), now), Link { tx: b_tx, rx: b_rx });
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announcing_another_pid_is_reset_and_never_reaches_mpyc() {
    // We are pid 2; the peer is pid 1. Our "MPyC" listens on `own`.
    let ((peer, _), (ours, incoming)) = pair();
    let mpyc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own = mpyc.local_addr().unwrap().port();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    tunnel::serve_incoming(2, 1, incoming, ours.clone(), own, true, ev_tx);

    // The peer claims to be pid 0.
    let mut liar = peer.open().await.unwrap();
    liar.write_all(&[0, 0, 0xaa, 0xbb]).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), ev_rx.recv()).await.unwrap().unwrap();
    assert!(
        matches!(&ev, TunnelEvent::Refused { pid: 1, why } if why.contains("announced pid 0")),
        "refused with the reason: {ev:?}"
    );
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(10), liar.read(&mut buf)).await.unwrap();
    assert!(read.is_err(), "the liar's stream is reset: {read:?}");

    // The truthful stream reaches MPyC with its bytes.
    let mut honest = peer.open().await.unwrap();
    honest.write_all(&[1, 0, 0xcc]).await.unwrap();
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(10), mpyc.accept()).await.unwrap().unwrap();
    let mut got = [0u8; 3];
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(got, [1, 0, 0xcc], "only the truthful stream was connected, intact");
}
