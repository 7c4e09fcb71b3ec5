//! Unit tests of the key types.

use super::*;

#[test]
fn varint_roundtrip() {
    for v in [0u64, 0x7f, 0xed, 0xec, 0x1200, 0x1302, u32::MAX as u64] {
        let mut buf = Vec::new();
        write_varint(v, &mut buf);
        assert_eq!(read_varint(&buf), Some((v, &[][..])));
    }
    let mut buf = Vec::new();
    write_varint(0xed, &mut buf);
    assert_eq!(buf, [0xed, 0x01]);
}

#[test]
fn multibase_roundtrip_all_kinds() {
    for kind in [KeyKind::Ed25519, KeyKind::X25519, KeyKind::P256, KeyKind::P384, KeyKind::P521, KeyKind::Secp256k1] {
        let pk = SecretKey::generate(kind).public_key();
        assert_eq!(PublicKey::from_multibase(&pk.to_multibase()).unwrap(), pk);
    }
    let ed = SecretKey::generate(KeyKind::Ed25519).public_key().to_multibase();
    assert!(ed.starts_with("z6Mk"));
    let x = SecretKey::generate(KeyKind::X25519).public_key().to_multibase();
    assert!(x.starts_with("z6LS"));
}

#[test]
fn converted_keys_agree() {
    let ed = SecretKey::generate(KeyKind::Ed25519);
    let x_secret = ed.ed25519_to_x25519().unwrap();
    let x_public = ed.public_key().ed25519_to_x25519().unwrap();
    assert_eq!(x_secret.public_key(), x_public);
    let other = SecretKey::generate(KeyKind::X25519);
    assert_eq!(*x_secret.ecdh(&other.public_key()).unwrap(), *other.ecdh(&x_public).unwrap());
}

#[test]
fn sign_verify() {
    for kind in [KeyKind::Ed25519, KeyKind::P256, KeyKind::P384, KeyKind::P521, KeyKind::Secp256k1] {
        let sk = SecretKey::generate(kind);
        let alg = sk.jws_alg().unwrap();
        let sig = sk.sign(b"hello").unwrap();
        assert!(sk.public_key().verify(alg, b"hello", &sig).unwrap());
        assert!(!sk.public_key().verify(alg, b"hellO", &sig).unwrap());
    }
}

#[test]
fn low_order_x25519_rejected() {
    let sk = SecretKey::generate(KeyKind::X25519);
    let zero = PublicKey::from_bytes(KeyKind::X25519, &[0u8; 32]).unwrap();
    assert!(sk.ecdh(&zero).is_err());
}

#[test]
fn debug_redacts() {
    let sk = SecretKey::generate(KeyKind::Ed25519);
    let hex: String = sk.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let dbg = format!("{sk:?}");
    assert!(!dbg.contains(&hex) && dbg.contains("redacted"));
}

/// AWS-LC and curve25519-dalek agree on random keys, and on which points have low order.
#[test]
fn x25519_agrees_with_dalek() {
    for _ in 0..64 {
        let ours = SecretKey::generate(KeyKind::X25519);
        let bytes: [u8; 32] = ours.to_bytes()[..].try_into().unwrap();
        let dalek = x25519_dalek::StaticSecret::from(bytes);
        assert_eq!(ours.public_key().to_bytes(), x25519_dalek::PublicKey::from(&dalek).to_bytes());
        let peer = SecretKey::generate(KeyKind::X25519).public_key();
        let peer_bytes: [u8; 32] = peer.to_bytes().try_into().unwrap();
        let theirs = dalek.diffie_hellman(&x25519_dalek::PublicKey::from(peer_bytes));
        assert_eq!(&ours.ecdh(&peer).unwrap()[..], theirs.as_bytes());
    }
    // The points of order 1, 2, 4 and 8 (and their non-canonical encodings).
    let p_minus_1 = {
        let mut b = [0xffu8; 32];
        b[0] = 0xec;
        b[31] = 0x7f;
        b
    };
    let mut low = vec![[0u8; 32], p_minus_1];
    let mut one = [0u8; 32];
    one[0] = 1;
    low.push(one);
    for add in [1u8, 2] {
        let mut b = p_minus_1;
        b[0] += add; // p, p + 1
        low.push(b);
    }
    let sk = SecretKey::generate(KeyKind::X25519);
    let bytes: [u8; 32] = sk.to_bytes()[..].try_into().unwrap();
    for point in low {
        let dalek = x25519_dalek::StaticSecret::from(bytes).diffie_hellman(&x25519_dalek::PublicKey::from(point));
        assert!(!dalek.was_contributory());
        let pk = PublicKey::from_bytes(KeyKind::X25519, &point).unwrap();
        let err = sk.ecdh(&pk).unwrap_err();
        assert!(err.to_string().contains("low order"), "{err}");
    }
}
