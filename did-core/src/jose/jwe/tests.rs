use super::*;
use crate::keys::KeyKind;

fn keypair(kind: KeyKind) -> (SecretKey, PublicKey) {
    let s = SecretKey::generate(kind);
    let p = s.public_key();
    (s, p)
}

#[test]
fn anoncrypt_roundtrip_every_curve_and_enc() {
    for kind in [KeyKind::X25519, KeyKind::P256, KeyKind::P384, KeyKind::Secp256k1] {
        for enc in [ContentEnc::A256CbcHs512, ContentEnc::A256Gcm, ContentEnc::Xc20p] {
            let (b1, b1p) = keypair(kind);
            let (b2, b2p) = keypair(kind);
            let jwe = encrypt(
                b"secret",
                "application/didcomm-encrypted+json",
                enc,
                None,
                &[("did:ex:b#1", &b1p), ("did:ex:b#2", &b2p)],
            )
            .unwrap();
            let parsed = ParsedJwe::parse(serde_json::to_value(&jwe).unwrap()).unwrap();
            assert_eq!(parsed.alg, KeyAlg::EcdhEsA256kw);
            assert_eq!(*parsed.decrypt("did:ex:b#1", &b1, None).unwrap(), b"secret");
            assert_eq!(*parsed.decrypt("did:ex:b#2", &b2, None).unwrap(), b"secret");
            assert!(matches!(parsed.decrypt("did:ex:b#1", &b2, None), Err(Error::DecryptionFailed)));
        }
    }
}

#[test]
fn authcrypt_roundtrip_and_wrong_sender() {
    let (a, ap) = keypair(KeyKind::X25519);
    let (b, bp) = keypair(KeyKind::X25519);
    let (_, mallory) = keypair(KeyKind::X25519);
    let jwe = encrypt(
        b"hi",
        "t",
        ContentEnc::A256CbcHs512,
        Some(Sender { kid: "did:ex:a#x", key: &a }),
        &[("did:ex:b#x", &bp)],
    )
    .unwrap();
    let parsed = ParsedJwe::parse(serde_json::to_value(&jwe).unwrap()).unwrap();
    assert_eq!(parsed.sender_kid().unwrap().as_deref(), Some("did:ex:a#x"));
    assert_eq!(*parsed.decrypt("did:ex:b#x", &b, Some(&ap)).unwrap(), b"hi");
    assert!(matches!(parsed.decrypt("did:ex:b#x", &b, Some(&mallory)), Err(Error::DecryptionFailed)));
    assert!(parsed.decrypt("did:ex:b#y", &b, Some(&ap)).is_err());
}

#[test]
fn authcrypt_requires_cbc_hs() {
    let (a, _) = keypair(KeyKind::X25519);
    let (_, bp) = keypair(KeyKind::X25519);
    let r = encrypt(b"hi", "t", ContentEnc::A256Gcm, Some(Sender { kid: "k", key: &a }), &[("b", &bp)]);
    assert!(matches!(r, Err(Error::UnsupportedAlgorithm(_))));
}

#[test]
fn tampering_detected() {
    let (b, bp) = keypair(KeyKind::X25519);
    let jwe = encrypt(b"hello", "t", ContentEnc::Xc20p, None, &[("did:ex:b#x", &bp)]).unwrap();
    let v = serde_json::to_value(&jwe).unwrap();
    // apv bound to recipient list
    let mut w = v.clone();
    w["recipients"][0]["header"]["kid"] = "did:ex:b#other".into();
    assert!(matches!(ParsedJwe::parse(w), Err(Error::Protocol(_))));
    // tag, ciphertext, iv, encrypted key
    for field in ["tag", "ciphertext", "iv"] {
        let mut w = v.clone();
        let mut bytes = b64d(w[field].as_str().unwrap(), field).unwrap();
        bytes[0] ^= 0x80;
        w[field] = b64e(bytes).into();
        let p = ParsedJwe::parse(w).unwrap();
        assert!(matches!(p.decrypt("did:ex:b#x", &b, None), Err(Error::DecryptionFailed)), "{field}");
    }
    let mut w = v.clone();
    let mut ek = b64d(w["recipients"][0]["encrypted_key"].as_str().unwrap(), "ek").unwrap();
    ek[5] ^= 1;
    w["recipients"][0]["encrypted_key"] = b64e(ek).into();
    assert!(matches!(ParsedJwe::parse(w).unwrap().decrypt("did:ex:b#x", &b, None), Err(Error::DecryptionFailed)));
    // unsupported algorithms are named
    let mut header: Value = serde_json::from_slice(&b64d(v["protected"].as_str().unwrap(), "p").unwrap()).unwrap();
    header["enc"] = "A128GCM".into();
    let mut w = v.clone();
    w["protected"] = b64e(serde_json::to_vec(&header).unwrap()).into();
    assert!(matches!(ParsedJwe::parse(w), Err(Error::UnsupportedAlgorithm(_))));
}

#[test]
fn mixed_curves_refused() {
    let (_, x) = keypair(KeyKind::X25519);
    let (_, p) = keypair(KeyKind::P256);
    assert!(encrypt(b"", "t", ContentEnc::A256Gcm, None, &[("a", &x), ("b", &p)]).is_err());
}

/// The `Zs` cache is transparent: the second envelope for the same pair is packed (and
/// unpacked) with cached `Zs` values, and both decrypt through `ParsedJwe::decrypt` and
/// with a KEK derived from freshly computed ECDH results.
#[test]
fn authcrypt_with_zs_cache_equals_without() {
    let (a, ap) = keypair(KeyKind::X25519);
    let (b, bp) = keypair(KeyKind::X25519);
    for _ in 0..2 {
        let sender = Sender { kid: "did:ex:a#x", key: &a };
        let jwe = encrypt(b"same pair", "t", ContentEnc::A256CbcHs512, Some(sender), &[("did:ex:b#x", &bp)]).unwrap();
        let p = ParsedJwe::parse(serde_json::to_value(&jwe).unwrap()).unwrap();
        assert_eq!(*p.decrypt("did:ex:b#x", &b, Some(&ap)).unwrap(), b"same pair");
        let mut z = b.ecdh(&p.epk).unwrap();
        z.extend_from_slice(&b.ecdh(&ap).unwrap());
        let kek = kdf::concat_kdf(&z, p.alg.name(), &p.apu, &p.apv, Some(&p.tag));
        let ek = b64d(&jwe.recipients[0].encrypted_key, "ek").unwrap();
        let cek = kdf::unwrap(&kek, &ek).unwrap();
        let aad = jwe.protected.as_bytes();
        let pt = p.enc.decrypt(&cek, aad, &p.iv, &p.ciphertext, &p.tag).unwrap();
        assert_eq!(*pt, b"same pair");
    }
    assert_eq!(*zs_cache::static_z(&a, &bp).unwrap(), *a.ecdh(&bp).unwrap());
    assert_eq!(*zs_cache::static_z(&b, &ap).unwrap(), *b.ecdh(&ap).unwrap());
}

/// The cache is keyed by key material, not key ids: a rotated key under the same kid
/// (sender or recipient side) never reuses the old key's `Zs`.
#[test]
fn same_kid_different_keys_never_share_zs() {
    let (b, bp) = keypair(KeyKind::X25519);
    let (a1, a1p) = keypair(KeyKind::X25519);
    let (a2, a2p) = keypair(KeyKind::X25519);
    let pack = |key: &SecretKey, to: &PublicKey| {
        let sender = Sender { kid: "did:ex:a#same", key };
        let jwe = encrypt(b"m", "t", ContentEnc::A256CbcHs512, Some(sender), &[("did:ex:b#same", to)]).unwrap();
        ParsedJwe::parse(serde_json::to_value(&jwe).unwrap()).unwrap()
    };
    for _ in 0..2 {
        let (p1, p2) = (pack(&a1, &bp), pack(&a2, &bp));
        assert!(p1.decrypt("did:ex:b#same", &b, Some(&a1p)).is_ok());
        assert!(p2.decrypt("did:ex:b#same", &b, Some(&a2p)).is_ok());
        assert!(matches!(p2.decrypt("did:ex:b#same", &b, Some(&a1p)), Err(Error::DecryptionFailed)));
        assert!(matches!(p1.decrypt("did:ex:b#same", &b, Some(&a2p)), Err(Error::DecryptionFailed)));
    }
    // Recipient side: another recipient key under the same kid cannot decrypt.
    let (b2, b2p) = keypair(KeyKind::X25519);
    let p = pack(&a1, &b2p);
    assert!(p.decrypt("did:ex:b#same", &b2, Some(&a1p)).is_ok());
    assert!(matches!(p.decrypt("did:ex:b#same", &b, Some(&a1p)), Err(Error::DecryptionFailed)));
}
