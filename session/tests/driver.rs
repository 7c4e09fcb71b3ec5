//! The tokio driver over an in-memory link: streams, FIN, reset, a cut link that comes
//! back, and the peer deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use session::driver::{self, Link, LinkEvent};
use session::handshake::{respond, Initiator, Params, NOISE_PARAMS};
use session::{CloseReason, Config, Keys, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

fn keys() -> (Keys, Keys) {
    let gen = || snow::Builder::new(NOISE_PARAMS.parse().unwrap()).generate_keypair().unwrap();
    let (a, b) = (gen(), gen());
    let (a_sk, a_pk): ([u8; 32], [u8; 32]) = (a.private.try_into().unwrap(), a.public.try_into().unwrap());
    let (b_sk, b_pk): ([u8; 32], [u8; 32]) = (b.private.try_into().unwrap(), b.public.try_into().unwrap());
    let d = [3u8; 32];
    let p = |l, r| Params {
        session_id: b"drv",
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

/// Two links wired together through a forwarding task that can drop everything
/// (`cut`) and announce a path reset to both sides when restored.
struct Wire {
    cut: Arc<AtomicBool>,
    reset_a: mpsc::Sender<LinkEvent>,
    reset_b: mpsc::Sender<LinkEvent>,
}

fn forward(mut rx: mpsc::Receiver<Bytes>, tx: mpsc::Sender<LinkEvent>, cut: Arc<AtomicBool>) {
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if !cut.load(Ordering::Relaxed) && tx.send(LinkEvent::Packet(p)).await.is_err() {
                return;
            }
        }
    });
}

fn wire() -> (Link, Link, Wire) {
    let (a_out_tx, a_out_rx) = mpsc::channel::<Bytes>(256);
    let (b_out_tx, b_out_rx) = mpsc::channel::<Bytes>(256);
    let (a_in_tx, a_in_rx) = mpsc::channel::<LinkEvent>(256);
    let (b_in_tx, b_in_rx) = mpsc::channel::<LinkEvent>(256);
    let cut = Arc::new(AtomicBool::new(false));
    forward(a_out_rx, b_in_tx.clone(), cut.clone());
    forward(b_out_rx, a_in_tx.clone(), cut.clone());
    (
        Link { tx: a_out_tx, rx: a_in_rx },
        Link { tx: b_out_tx, rx: b_in_rx },
        Wire { cut, reset_a: a_in_tx, reset_b: b_in_tx },
    )
}

fn pair(cfg: Config) -> (session::Handle, session::Incoming, session::Handle, session::Incoming, Wire) {
    let (ka, kb) = keys();
    let (la, lb, w) = wire();
    let now = std::time::Instant::now();
    let (ha, ia) = driver::spawn(Session::new(ka, cfg.clone(), now), la);
    let (hb, ib) = driver::spawn(Session::new(kb, cfg, now), lb);
    (ha, ia, hb, ib, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_fin_and_reset() {
    let (ha, _ia, _hb, mut ib, _w) = pair(Config::default());
    let echo = tokio::spawn(async move {
        while let Some(mut s) = ib.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                match s.read_to_end(&mut buf).await {
                    Ok(_) => {
                        s.write_all(&buf).await.unwrap();
                        s.shutdown().await.unwrap();
                    }
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
                }
            });
        }
    });
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut s = ha.open().await.unwrap();
    let (mut r, mut w) = tokio::io::split(s);
    let d2 = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&d2).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data);
    // a reset reaches the other side as ConnectionReset
    s = ha.open().await.unwrap();
    s.write_all(b"partial").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    ha.reset(s.id(), 9);
    let err = s.read(&mut [0u8; 10]).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_link_resumes_without_loss() {
    let cfg =
        // A small window keeps data in flight when the link is cut.
        Config {
            rto_initial: Duration::from_millis(100),
            rto_min: Duration::from_millis(50),
            stream_window: 1 << 18,
            ..Config::default()
        };
    let (ha, _ia, _hb, mut ib, w) = pair(cfg);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d2 = data.clone();
    let sender = tokio::spawn(async move {
        let mut s = ha.open().await.unwrap();
        for chunk in d2.chunks(100_000) {
            s.write_all(chunk).await.unwrap();
        }
        s.shutdown().await.unwrap();
        ha
    });
    let mut s = ib.accept().await.unwrap();
    let mut got = vec![0u8; 500_000];
    s.read_exact(&mut got).await.unwrap();
    w.cut.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.cut.store(false, Ordering::Relaxed);
    w.reset_a.send(LinkEvent::PathReset).await.unwrap();
    w.reset_b.send(LinkEvent::PathReset).await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    got.extend(rest);
    assert!(
        got == data,
        "{} bytes, first difference at {:?}",
        got.len(),
        got.iter().zip(&data).position(|(a, b)| a != b)
    );
    let ha = sender.await.unwrap();
    assert!(ha.stats().retransmits > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_gone_ends_both_sessions_with_a_clear_reason() {
    let cfg = Config {
        peer_deadline: Duration::from_millis(600),
        keepalive: Duration::from_millis(100),
        ..Config::default()
    };
    let (ha, _ia, hb, _ib, w) = pair(cfg);
    let _s = ha.open().await.unwrap();
    w.cut.store(true, Ordering::Relaxed);
    let a = tokio::time::timeout(Duration::from_secs(5), ha.closed()).await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), hb.closed()).await.unwrap();
    assert_eq!((a, b), (CloseReason::PeerLost, CloseReason::PeerLost));
    assert!(ha.open().await.is_err());
}
