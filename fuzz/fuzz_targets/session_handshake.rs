//! The Noise KK handshake on arbitrary messages, with fixed static keys. Input: a mode
//! byte, then bytes. Even mode: the bytes are msg1 for `respond` and msg2 for a fresh
//! initiator's `finish` (which can only accept the answer to its own random ephemeral
//! key, so must refuse). Odd mode: the bytes are an XOR mask (longer: appended) over a
//! genuine msg1 and msg2; each must be accepted exactly when it is unchanged.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use session::handshake::{respond, Initiator, Params, MESSAGE_LEN};
use x25519_dalek::{x25519, X25519_BASEPOINT_BYTES};

const A: [u8; 32] = [0x11; 32];
const B: [u8; 32] = [0x22; 32];
const DIGEST: [u8; 32] = [7; 32];
/// The X25519 public keys of `A` and `B`.
static PUBLIC: LazyLock<([u8; 32], [u8; 32])> =
    LazyLock::new(|| (x25519(A, X25519_BASEPOINT_BYTES), x25519(B, X25519_BASEPOINT_BYTES)));

fn params<'a>(local: &'a [u8; 32], remote: &'a [u8; 32]) -> Params<'a> {
    let (initiator_did, responder_did) = ("did:example:alice", "did:example:bob");
    Params {
        session_id: b"fuzz",
        roster_digest: &DIGEST,
        initiator_did,
        responder_did,
        local_static: local,
        remote_static: remote,
    }
}

fn masked(genuine: &[u8], mask: &[u8]) -> Vec<u8> {
    let mut m = genuine.to_vec();
    m.iter_mut().zip(mask).for_each(|(b, x)| *b ^= x);
    m.extend_from_slice(mask.get(genuine.len()..).unwrap_or_default());
    m
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let (a_pub, b_pub) = &*PUBLIC;
    let (pa, pb) = (params(&A, b_pub), params(&B, a_pub));
    let (init, m1) = Initiator::start(&pa).expect("start");
    if mode % 2 == 0 {
        // A genuine msg1 of an earlier run (a seed) authenticates; nothing else can.
        if let Ok((keys, m2)) = respond(&pb, bytes) {
            assert_eq!((bytes.len(), m2.len()), (MESSAGE_LEN, MESSAGE_LEN));
            assert_ne!(*keys.send, *keys.recv);
        }
        assert!(init.finish(bytes).is_err(), "a message not made for this initiator was accepted");
        return;
    }
    let (kb, m2) = respond(&pb, &m1).expect("genuine msg1");
    let m1x = masked(&m1, bytes);
    assert_eq!(respond(&pb, &m1x).is_ok(), m1x == m1, "msg1 {m1x:02x?}");
    let m2x = masked(&m2, bytes);
    match init.finish(&m2x) {
        Ok(ka) => {
            assert_eq!(m2x, m2);
            assert_eq!((*ka.send, *ka.recv, ka.handshake_hash), (*kb.recv, *kb.send, kb.handshake_hash));
        }
        Err(_) => assert_ne!(m2x, m2, "the genuine msg2 was refused"),
    }
});
