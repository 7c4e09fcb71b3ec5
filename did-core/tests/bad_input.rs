//! Bad input to `unpack`: every case is a distinct, clear error, never a panic.

use did_core::didcomm::{self, from_prior, Message, PackOptions, UnpackOptions};
use did_core::jose::{b64d, b64e};
use did_core::{Error, Identity, KeyRing, Resolver};
use serde_json::{json, Value};

struct World {
    resolver: Resolver,
    alice: Identity,
    bob: Identity,
    carol: Identity,
}

fn world() -> World {
    World {
        resolver: Resolver::default(),
        alice: Identity::generate_key(),
        bob: Identity::generate_key(),
        carol: Identity::generate_key(),
    }
}

fn msg(w: &World) -> Message {
    Message::new("https://didcomm.org/basicmessage/2.0/message", json!({"content": "hi"}))
        .from(w.alice.did.as_str())
        .to(w.bob.did.as_str())
}

async fn authcrypt(w: &World, m: &Message) -> String {
    let opts = PackOptions { forward: false, ..Default::default() };
    didcomm::pack_encrypted(m, w.bob.did.as_str(), Some(w.alice.did.as_str()), None, &w.resolver, &w.alice, &opts)
        .await
        .unwrap()
        .message
}

async fn unpack_as(w: &World, who: &Identity, text: &str) -> Result<(Message, didcomm::UnpackMetadata), Error> {
    didcomm::unpack(text, &w.resolver, who, &UnpackOptions::default()).await
}

fn edit_protected(env: &mut Value, f: impl FnOnce(&mut Value)) {
    let mut h: Value = serde_json::from_slice(&b64d(env["protected"].as_str().unwrap(), "p").unwrap()).unwrap();
    f(&mut h);
    env["protected"] = b64e(h.to_string()).into();
}

#[tokio::test]
async fn tampered_envelopes() {
    let w = world();
    let packed = authcrypt(&w, &msg(&w)).await;
    let env: Value = serde_json::from_str(&packed).unwrap();
    for field in ["ciphertext", "tag", "iv"] {
        let mut e = env.clone();
        let mut b = b64d(e[field].as_str().unwrap(), field).unwrap();
        b[0] ^= 1;
        e[field] = b64e(b).into();
        let err = unpack_as(&w, &w.bob, &e.to_string()).await.unwrap_err();
        assert!(matches!(err, Error::DecryptionFailed), "{field}: {err}");
    }
    // a changed protected header breaks the AAD
    let mut e = env.clone();
    edit_protected(&mut e, |h| h["typ"] = "application/didcomm-encrypted+json;x".into());
    assert!(matches!(unpack_as(&w, &w.bob, &e.to_string()).await.unwrap_err(), Error::DecryptionFailed));
}

#[tokio::test]
async fn wrong_recipient_unknown_key_and_sender_mismatch() {
    let w = world();
    let packed = authcrypt(&w, &msg(&w)).await;
    let err = unpack_as(&w, &w.carol, &packed).await.unwrap_err();
    assert!(matches!(err, Error::NotForUs(_)), "{err}");

    // the sender key id names a key the sender's document does not have
    let mut e: Value = serde_json::from_str(&packed).unwrap();
    let bad_kid = format!("{}#nope", w.alice.did);
    edit_protected(&mut e, |h| {
        h["skid"] = bad_kid.clone().into();
        h["apu"] = b64e(&bad_kid).into();
    });
    let err = unpack_as(&w, &w.bob, &e.to_string()).await.unwrap_err();
    assert!(matches!(err, Error::KeyNotFound(_)), "{err}");

    // skid and apu disagree
    let mut e: Value = serde_json::from_str(&packed).unwrap();
    edit_protected(&mut e, |h| h["skid"] = format!("{}#x", w.carol.did).into());
    assert!(matches!(unpack_as(&w, &w.bob, &e.to_string()).await.unwrap_err(), Error::Protocol(_)));

    // `from` says carol but alice's key authenticated it: we refuse to pack that, so
    // build the envelope by hand with the JOSE layer.
    let mut lie = msg(&w);
    lie.from = Some(w.carol.did.to_string());
    let doc = w.resolver.resolve_for_test(&w.bob.did).await;
    let (bob_kid, bob_key) = doc;
    let (alice_kid, alice_key) = w.alice.keys().find(|(_, k)| k.kind() == did_core::KeyKind::X25519).unwrap();
    let jwe = did_core::jose::jwe::encrypt(
        lie.to_json().as_bytes(),
        didcomm::message::ENCRYPTED,
        did_core::jose::content::ContentEnc::A256CbcHs512,
        Some(did_core::jose::jwe::Sender { kid: alice_kid, key: alice_key }),
        &[(bob_kid.as_str(), &bob_key)],
    )
    .unwrap();
    let err = unpack_as(&w, &w.bob, &serde_json::to_string(&jwe).unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::SenderMismatch { how: "encrypted", .. }), "{err}");
}

trait TestResolve {
    async fn resolve_for_test(&self, did: &did_core::Did) -> (String, did_core::PublicKey);
}

impl TestResolve for Resolver {
    async fn resolve_for_test(&self, did: &did_core::Did) -> (String, did_core::PublicKey) {
        use did_core::DidResolver;
        let doc = self.resolve(did).await.unwrap();
        let vm = doc.methods(did_core::Relationship::KeyAgreement).next().unwrap();
        (vm.id.clone(), vm.key.clone())
    }
}

#[tokio::test]
async fn unsupported_algorithms_and_headers() {
    let w = world();
    let packed = authcrypt(&w, &msg(&w)).await;
    for (mutate, what) in [
        (Box::new(|h: &mut Value| h["alg"] = "RSA-OAEP".into()) as Box<dyn Fn(&mut Value)>, "alg"),
        (Box::new(|h: &mut Value| h["enc"] = "A128CBC-HS256".into()), "enc"),
        (Box::new(|h: &mut Value| h["epk"]["crv"] = "X448".into()), "curve"),
        (Box::new(|h: &mut Value| h["crit"] = json!(["exp"])), "crit"),
    ] {
        let mut e: Value = serde_json::from_str(&packed).unwrap();
        edit_protected(&mut e, mutate);
        let err = unpack_as(&w, &w.bob, &e.to_string()).await.unwrap_err();
        assert!(matches!(err, Error::UnsupportedAlgorithm(_)), "{what}: {err}");
    }
    let mut e: Value = serde_json::from_str(&packed).unwrap();
    edit_protected(&mut e, |h| {
        h.as_object_mut().unwrap().remove("apv");
    });
    assert!(matches!(unpack_as(&w, &w.bob, &e.to_string()).await.unwrap_err(), Error::Malformed(_)));
}

#[tokio::test]
async fn truncated_oversized_and_garbage_json() {
    let w = world();
    let packed = authcrypt(&w, &msg(&w)).await;
    for cut in [0, 1, 10, packed.len() / 2, packed.len() - 1] {
        let err = unpack_as(&w, &w.bob, &packed[..cut]).await.unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "cut at {cut}: {err}");
    }
    let opts = UnpackOptions { max_bytes: 100 };
    let err = didcomm::unpack(&packed, &w.resolver, &w.bob, &opts).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 100, .. }), "{err}");
    let deep = "[".repeat(10_000);
    assert!(matches!(unpack_as(&w, &w.bob, &deep).await.unwrap_err(), Error::Malformed(_)));
    for junk in
        ["null", "42", "\"x\"", "{}", r#"{"ciphertext": 1, "protected": 2}"#, r#"{"payload": "x", "signatures": []}"#]
    {
        let err = unpack_as(&w, &w.bob, junk).await.unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "{junk}: {err}");
    }
}

#[tokio::test]
async fn replay_to_someone_else_is_refused() {
    let w = world();
    // alice signs a message to bob; mallory re-encrypts it for carol
    let m = msg(&w);
    let (jws, _) = didcomm::pack_signed(&m, w.alice.did.as_str(), &w.resolver, &w.alice).await.unwrap();
    let (ckid, ckey) = w.resolver.resolve_for_test(&w.carol.did).await;
    let jwe = did_core::jose::jwe::encrypt(
        jws.as_bytes(),
        didcomm::message::ENCRYPTED,
        did_core::jose::content::ContentEnc::Xc20p,
        None,
        &[(ckid.as_str(), &ckey)],
    )
    .unwrap();
    let err = unpack_as(&w, &w.carol, &serde_json::to_string(&jwe).unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
}

#[tokio::test]
async fn from_prior_rotation_is_verified() {
    let w = world();
    let old = Identity::generate_key();
    let mut ring = KeyRing::new();
    ring.add_identity(&old);
    ring.add_identity(&w.alice);
    let jwt = from_prior::issue(&old.did, &w.alice.did, &w.resolver, &ring).await.unwrap();
    let mut m = msg(&w);
    m.from_prior = Some(jwt.clone());
    let packed = authcrypt(&w, &m).await;
    let (_, meta) = unpack_as(&w, &w.bob, &packed).await.unwrap();
    assert_eq!(meta.from_prior.as_ref().unwrap().iss, old.did.as_str());
    assert!(meta.from_prior_issuer_kid.unwrap().starts_with(old.did.as_str()));
    // a JWT rotating to someone else is refused
    let other = from_prior::issue(&old.did, &w.carol.did, &w.resolver, &ring).await.unwrap();
    m.from_prior = Some(other);
    let packed = authcrypt(&w, &m).await;
    assert!(matches!(unpack_as(&w, &w.bob, &packed).await.unwrap_err(), Error::Protocol(_)));
    // a forged signature is refused
    let mut parts: Vec<&str> = jwt.split('.').collect();
    let forged = b64e([0u8; 64]);
    parts[2] = &forged;
    m.from_prior = Some(parts.join("."));
    let packed = authcrypt(&w, &m).await;
    assert!(matches!(unpack_as(&w, &w.bob, &packed).await.unwrap_err(), Error::InvalidSignature(_)));
}
