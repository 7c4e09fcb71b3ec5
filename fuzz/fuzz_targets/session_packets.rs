//! A `Session` (the initiator, A) fed packets that authenticate as its peer's: the input
//! is a list of steps `flags seq ack len body` (len 255: the rest of the input). Each body
//! gets a plaintext header (`seq`, `ack`; byte 255 means u64::MAX) and is sealed with the
//! peer's send key, so the fuzzer's bytes reach record parsing; flag 1 feeds the body
//! raw instead, 2 rekeys the forger first, 4 delivers the packet twice, 8 signals a path
//! reset, and the high nibble advances the clock by 2^(n-1) ms. After each step A's
//! timers run, its events are handled (opened and readable streams are read) and its
//! packets go to an honest B, which must never see a protocol violation. No panics.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use session::crypto::Sealer;
use session::handshake::{respond, Initiator, Params};
use session::{CloseReason, Config, Event, Keys, Read, Role, Session};
use x25519_dalek::{x25519, X25519_BASEPOINT_BYTES};

fn params<'a>(local: &'a [u8; 32], remote: &'a [u8; 32]) -> Params<'a> {
    let (initiator_did, responder_did) = ("did:example:alice", "did:example:bob");
    Params {
        session_id: b"fuzz",
        roster_digest: &[7; 32],
        initiator_did,
        responder_did,
        local_static: local,
        remote_static: remote,
    }
}

/// (A's send key, A's receive key) of one real handshake between fixed static keys.
static KEYS: LazyLock<([u8; 32], [u8; 32])> = LazyLock::new(|| {
    let (a, b) = ([0x11; 32], [0x22; 32]);
    let (init, m1) = Initiator::start(&params(&a, &x25519(b, X25519_BASEPOINT_BYTES))).expect("start");
    let (_, m2) = respond(&params(&b, &x25519(a, X25519_BASEPOINT_BYTES)), &m1).expect("respond");
    let k = init.finish(&m2).expect("finish");
    (*k.send, *k.recv)
});

fn byte_u64(b: u8) -> u64 {
    if b == 0xff {
        u64::MAX
    } else {
        b.into()
    }
}

fuzz_target!(|data: &[u8]| {
    let (a_send, a_recv) = *KEYS;
    let keys = |role, send: [u8; 32], recv: [u8; 32]| Keys {
        role,
        send: send.into(),
        recv: recv.into(),
        handshake_hash: [0; 32],
    };
    let mut now = Instant::now();
    let mut a = Session::new(keys(Role::Initiator, a_send, a_recv), Config::default(), now);
    let mut b = Session::new(keys(Role::Responder, a_recv, a_send), Config::default(), now);
    let mut forger = Sealer::new(a_recv.into());
    let id = a.open_stream().expect("open");
    assert_eq!(a.write(id, &[0x5a; 3000]), Ok(3000));
    a.finish(id).expect("finish");
    let (mut rest, mut plain, mut pkt, mut buf) = (data, Vec::new(), Vec::new(), [0u8; 1024]);
    while let [flags, seq, ack, len, tail @ ..] = rest {
        let n = if *len == 0xff { tail.len() } else { tail.len().min(*len as usize) };
        let (body, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis((1u64 << (flags >> 4)) >> 1);
        if flags & 1 != 0 {
            pkt = body.to_vec();
        } else {
            if flags & 2 != 0 {
                forger.rekey();
            }
            plain.clear();
            session::frame::plain_header(byte_u64(*seq), byte_u64(*ack), &mut plain);
            plain.extend_from_slice(body);
            forger.seal(&plain, &mut pkt);
        }
        for _ in 0..1 + (flags >> 2 & 1) {
            a.handle_packet(now, &pkt);
        }
        if flags & 8 != 0 {
            a.on_path_reset(now);
        }
        a.handle_timeout(now);
        while let Some(ev) = a.poll_event() {
            if let Event::StreamOpened(id) | Event::Readable(id) = ev {
                while let Ok(Read::Data(_)) = a.read(id, &mut buf) {}
            }
        }
        while let Some(p) = a.next_packet(now) {
            b.handle_packet(now, &p);
        }
        while b.next_packet(now).is_some() {}
        assert!(!matches!(b.closed(), Some(CloseReason::Protocol(_))), "A sent B a bad packet: {:?}", b.closed());
    }
    a.handle_timeout(now + Duration::from_secs(61));
    assert!(a.closed().is_some() && a.next_packet(now).is_none());
});
