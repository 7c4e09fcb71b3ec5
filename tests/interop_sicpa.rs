//! Interop of did-core's DIDComm v2 with SICPA's `didcomm` crate 0.4.1, in both directions,
//! for did:key and did:peer:2 parties: plaintext, signed, anoncrypt (three content ciphers),
//! authcrypt, sender protection, signed-then-encrypted, several recipient keys, and Routing
//! 2.0 forward through a mediator. Also: a SICPA-made authcrypt (or signed) message whose
//! plaintext `from` names another DID than the key that authenticated it is refused by us.

#[path = "support/sicpa.rs"]
mod sicpa;

use ::didcomm::algorithms::{AnonCryptAlg, AuthCryptAlg, SignAlg};
use ::didcomm::protocols::routing::try_parse_forward;
use ::didcomm::{
    Message as SMessage, PackEncryptedOptions, UnpackMetadata as SUnpackMetadata, UnpackOptions as SUnpackOptions,
};
use did_core::didcomm::{self, parse_forward, Message, PackOptions, ServiceTarget, UnpackMetadata, UnpackOptions};
use did_core::jose::content::ContentEnc;
use did_core::keystore::derived_document;
use did_core::method::peer;
use did_core::{DidCommEndpoint, Error, Identity, Jwk, KeyKind, KeyRing, Relationship, Resolver, SecretKey};
use serde_json::{json, Value};
use sicpa::{Dids, Secrets};

const BASIC: &str = "https://didcomm.org/basicmessage/2.0/message";
const PLAIN: &str = "application/didcomm-plain+json";

#[derive(Clone, Copy, Debug)]
enum Method {
    Key,
    Peer,
}

const PAIRS: [(Method, Method); 4] = [
    (Method::Key, Method::Key),
    (Method::Peer, Method::Peer),
    (Method::Key, Method::Peer),
    (Method::Peer, Method::Key),
];

fn generate(m: Method, name: &str) -> Identity {
    match m {
        Method::Key => Identity::generate_key(),
        // A service without routing keys: no forward, but the service shape is exercised.
        Method::Peer => Identity::generate_peer(&[DidCommEndpoint {
            uri: format!("https://{name}.example/didcomm"),
            accept: vec!["didcomm/v2".into()],
            routing_keys: vec![],
        }])
        .unwrap(),
    }
}

/// The kid of an identity's first key of `kind`.
fn kid_of(id: &Identity, kind: KeyKind) -> String {
    id.keys().find(|(_, k)| k.kind() == kind).map(|(kid, _)| kid.to_owned()).unwrap()
}

fn ka(id: &Identity) -> String {
    kid_of(id, KeyKind::X25519)
}

fn auth(id: &Identity) -> String {
    kid_of(id, KeyKind::Ed25519)
}

/// Two parties known to both implementations' resolvers.
struct World {
    ours: Resolver,
    theirs: Dids,
    alice: Identity,
    bob: Identity,
    alice_s: Secrets,
    bob_s: Secrets,
}

impl World {
    fn new(a: Method, b: Method) -> World {
        let alice = generate(a, "alice");
        let bob = generate(b, "bob");
        World {
            ours: Resolver::default(),
            theirs: Dids::of([&alice.did, &bob.did]),
            alice_s: Secrets::of(&alice),
            bob_s: Secrets::of(&bob),
            alice,
            bob,
        }
    }

    /// The same message in both libraries' types, and its expected JSON.
    fn message(&self, tag: &str) -> (Message, SMessage, Value) {
        message_between(self.alice.did.as_str(), self.bob.did.as_str(), tag)
    }
}

fn message_between(from: &str, to: &str, tag: &str) -> (Message, SMessage, Value) {
    let v = json!({
        "id": format!("msg-{tag}-{}", uuid_like()),
        "typ": PLAIN,
        "type": BASIC,
        "from": from,
        "to": [to],
        "thid": "thread-1",
        "created_time": 1_700_000_000u64,
        "expires_time": 4_000_000_000u64,
        "lang": "en",
        "body": {"content": format!("hello from the {tag} test, ünïcødé ✓"), "n": [1, 2, 3]},
        "attachments": [{"id": "a1", "media_type": "application/json", "data": {"json": {"k": "v"}}}],
    });
    let ours = Message::from_value(v.clone()).unwrap();
    let theirs: SMessage = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(ours.to_value(), v, "our Message round-trips the test JSON");
    assert_eq!(serde_json::to_value(&theirs).unwrap(), v, "so does SICPA's");
    (ours, theirs, v)
}

fn uuid_like() -> String {
    let k = SecretKey::generate(KeyKind::X25519).public_key().to_bytes();
    k[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn no_forward() -> PackOptions {
    PackOptions { forward: false, ..PackOptions::default() }
}

fn s_opts(protect_sender: bool, anon: AnonCryptAlg) -> PackEncryptedOptions {
    PackEncryptedOptions { protect_sender, forward: false, enc_alg_anon: anon, ..PackEncryptedOptions::default() }
}

fn anon_name(enc: ContentEnc) -> String {
    format!("ECDH-ES+A256KW/{}", enc.name())
}

fn sicpa_anon(enc: ContentEnc) -> AnonCryptAlg {
    match enc {
        ContentEnc::A256CbcHs512 => AnonCryptAlg::A256cbcHs512EcdhEsA256kw,
        ContentEnc::A256Gcm => AnonCryptAlg::A256gcmEcdhEsA256kw,
        ContentEnc::Xc20p => AnonCryptAlg::Xc20pEcdhEsA256kw,
    }
}

const AUTH: &str = "ECDH-1PU+A256KW/A256CBC-HS512";
const ENCS: [ContentEnc; 3] = [ContentEnc::A256CbcHs512, ContentEnc::A256Gcm, ContentEnc::Xc20p];

/// What both sides should report about an unpacked message.
#[derive(Debug, Default, Clone)]
struct Expect {
    encrypted: bool,
    /// Authcrypt sender key.
    from_kid: Option<String>,
    /// Signer key.
    sign_kid: Option<String>,
    anonymous_sender: bool,
    anon: Option<ContentEnc>,
    to_kids: Vec<String>,
}

fn check_ours(meta: &UnpackMetadata, e: &Expect, sender_did: &str) {
    assert_eq!(meta.encrypted, e.encrypted, "{meta:?}");
    // Authenticated by authcrypt or by a signature (as SICPA counts it too).
    assert_eq!(meta.authenticated, e.from_kid.is_some() || e.sign_kid.is_some(), "{meta:?}");
    assert_eq!(meta.non_repudiation, e.sign_kid.is_some(), "{meta:?}");
    assert_eq!(meta.anonymous_sender, e.anonymous_sender, "{meta:?}");
    assert_eq!(meta.sender_protected, e.anonymous_sender && e.from_kid.is_some(), "{meta:?}");
    assert_eq!(meta.encrypted_from_kid, e.from_kid, "{meta:?}");
    assert_eq!(meta.sign_from, e.sign_kid, "{meta:?}");
    assert_eq!(meta.sign_alg.as_deref(), e.sign_kid.as_ref().map(|_| "EdDSA"));
    assert_eq!(meta.enc_alg_anon, e.anon.map(anon_name), "{meta:?}");
    assert_eq!(meta.enc_alg_auth.as_deref(), e.from_kid.as_ref().map(|_| AUTH), "{meta:?}");
    let mut got = meta.encrypted_to_kids.clone();
    got.dedup(); // one entry per layer or per key, depending on the version
    assert_eq!(got, e.to_kids, "{meta:?}");
    let authenticated = e.from_kid.is_some() || e.sign_kid.is_some();
    assert_eq!(meta.sender.as_deref(), authenticated.then_some(sender_did), "{meta:?}");
    assert_eq!(meta.signed_message.is_some(), e.sign_kid.is_some());
}

fn check_theirs(meta: &SUnpackMetadata, e: &Expect) {
    assert_eq!(meta.encrypted, e.encrypted, "{meta:?}");
    assert_eq!(meta.authenticated, e.from_kid.is_some() || e.sign_kid.is_some(), "{meta:?}");
    assert_eq!(meta.non_repudiation, e.sign_kid.is_some(), "{meta:?}");
    assert_eq!(meta.anonymous_sender, e.anonymous_sender, "{meta:?}");
    assert!(!meta.re_wrapped_in_forward);
    assert_eq!(meta.encrypted_from_kid, e.from_kid, "{meta:?}");
    assert_eq!(meta.sign_from, e.sign_kid, "{meta:?}");
    assert_eq!(meta.sign_alg, e.sign_kid.as_ref().map(|_| SignAlg::EdDSA), "{meta:?}");
    assert_eq!(meta.enc_alg_anon, e.anon.map(sicpa_anon), "{meta:?}");
    assert_eq!(meta.enc_alg_auth, e.from_kid.as_ref().map(|_| AuthCryptAlg::A256cbcHs512Ecdh1puA256kw), "{meta:?}");
    let to = (!e.to_kids.is_empty()).then(|| e.to_kids.clone());
    assert_eq!(meta.encrypted_to_kids, to, "{meta:?}");
    assert_eq!(meta.signed_message.is_some(), e.sign_kid.is_some());
}

fn envelope_header(packed: &str) -> Value {
    let v: Value = serde_json::from_str(packed).unwrap();
    let p = v["protected"].as_str().unwrap();
    let bytes = did_core::jose::b64d(p, "protected").unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn ours_unpacks(w: &World, packed: &str, expected: &Value, e: &Expect) {
    let (got, meta) = didcomm::unpack(packed, &w.ours, &w.bob, &UnpackOptions::default())
        .await
        .unwrap_or_else(|err| panic!("our unpack of SICPA output failed: {err}\n{packed}"));
    assert_eq!(&got.to_value(), expected);
    check_ours(&meta, e, w.alice.did.as_str());
}

async fn theirs_unpacks(w: &World, packed: &str, expected: &Value, e: &Expect) {
    let (got, meta) = SMessage::unpack(packed, &w.theirs, &w.bob_s, &SUnpackOptions::default())
        .await
        .unwrap_or_else(|err| panic!("SICPA unpack of our output failed: {err}\n{packed}"));
    assert_eq!(&serde_json::to_value(&got).unwrap(), expected);
    check_theirs(&meta, e);
}

#[tokio::test(flavor = "current_thread")]
async fn plaintext_both_ways() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        let (ours, theirs, v) = w.message("plain");
        let e = Expect::default();

        let packed = theirs.pack_plaintext(&w.theirs).await.unwrap();
        ours_unpacks(&w, &packed, &v, &e).await;

        let packed = didcomm::pack_plaintext(&ours);
        theirs_unpacks(&w, &packed, &v, &e).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn signed_both_ways() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        let (ours, theirs, v) = w.message("signed");
        let e = Expect { sign_kid: Some(auth(&w.alice)), ..Expect::default() };

        let (packed, meta) = theirs.pack_signed(w.alice.did.as_str(), &w.theirs, &w.alice_s).await.unwrap();
        assert_eq!(meta.sign_by_kid, auth(&w.alice));
        ours_unpacks(&w, &packed, &v, &e).await;

        let (packed, kid) = didcomm::pack_signed(&ours, w.alice.did.as_str(), &w.ours, &w.alice).await.unwrap();
        assert_eq!(kid, auth(&w.alice));
        theirs_unpacks(&w, &packed, &v, &e).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn anoncrypt_three_ciphers_both_ways() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        for enc in ENCS {
            let (ours, theirs, v) = w.message("anoncrypt");
            let e = Expect {
                encrypted: true,
                anonymous_sender: true,
                anon: Some(enc),
                to_kids: vec![ka(&w.bob)],
                ..Expect::default()
            };

            let (packed, meta) = theirs
                .pack_encrypted(w.bob.did.as_str(), None, None, &w.theirs, &w.alice_s, &s_opts(false, sicpa_anon(enc)))
                .await
                .unwrap();
            assert_eq!(meta.to_kids, vec![ka(&w.bob)]);
            assert_eq!(meta.from_kid, None);
            assert_eq!(envelope_header(&packed)["enc"], enc.name());
            ours_unpacks(&w, &packed, &v, &e).await;

            let opts = PackOptions { anon_enc: enc, ..no_forward() };
            let packed =
                didcomm::pack_encrypted(&ours, w.bob.did.as_str(), None, None, &w.ours, &w.alice, &opts).await.unwrap();
            assert_eq!(packed.to_kids, vec![ka(&w.bob)]);
            let h = envelope_header(&packed.message);
            assert_eq!(h["enc"], enc.name());
            assert_eq!(h["alg"], "ECDH-ES+A256KW");
            assert!(h.get("apu").is_none() && h.get("skid").is_none());
            theirs_unpacks(&w, &packed.message, &v, &e).await;
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn authcrypt_both_ways() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        let (ours, theirs, v) = w.message("authcrypt");
        let e =
            Expect { encrypted: true, from_kid: Some(ka(&w.alice)), to_kids: vec![ka(&w.bob)], ..Expect::default() };

        let (packed, meta) = theirs
            .pack_encrypted(
                w.bob.did.as_str(),
                Some(w.alice.did.as_str()),
                None,
                &w.theirs,
                &w.alice_s,
                &s_opts(false, AnonCryptAlg::default()),
            )
            .await
            .unwrap();
        assert_eq!(meta.from_kid, Some(ka(&w.alice)));
        assert_eq!(meta.messaging_service, None);
        ours_unpacks(&w, &packed, &v, &e).await;

        let packed = didcomm::pack_encrypted(
            &ours,
            w.bob.did.as_str(),
            Some(w.alice.did.as_str()),
            None,
            &w.ours,
            &w.alice,
            &no_forward(),
        )
        .await
        .unwrap();
        assert_eq!(packed.from_kid, Some(ka(&w.alice)));
        let h = envelope_header(&packed.message);
        assert_eq!(h["alg"], "ECDH-1PU+A256KW");
        assert_eq!(h["enc"], "A256CBC-HS512");
        assert_eq!(h["skid"], ka(&w.alice).as_str());
        theirs_unpacks(&w, &packed.message, &v, &e).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn authcrypt_with_protected_sender_both_ways() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        for enc in ENCS {
            let (ours, theirs, v) = w.message("protect-sender");
            let e = Expect {
                encrypted: true,
                from_kid: Some(ka(&w.alice)),
                anonymous_sender: true,
                anon: Some(enc),
                to_kids: vec![ka(&w.bob)],
                ..Expect::default()
            };

            let (packed, _) = theirs
                .pack_encrypted(
                    w.bob.did.as_str(),
                    Some(w.alice.did.as_str()),
                    None,
                    &w.theirs,
                    &w.alice_s,
                    &s_opts(true, sicpa_anon(enc)),
                )
                .await
                .unwrap();
            let outer = envelope_header(&packed);
            assert_eq!(outer["alg"], "ECDH-ES+A256KW");
            assert!(!packed.contains(w.alice.did.as_str()), "sender is hidden");
            ours_unpacks(&w, &packed, &v, &e).await;

            let opts = PackOptions { protect_sender: true, anon_enc: enc, ..no_forward() };
            let packed = didcomm::pack_encrypted(
                &ours,
                w.bob.did.as_str(),
                Some(w.alice.did.as_str()),
                None,
                &w.ours,
                &w.alice,
                &opts,
            )
            .await
            .unwrap();
            assert_eq!(envelope_header(&packed.message)["alg"], "ECDH-ES+A256KW");
            assert!(!packed.message.contains(w.alice.did.as_str()));
            theirs_unpacks(&w, &packed.message, &v, &e).await;
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn anoncrypt_of_signed_both_ways() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        let (ours, theirs, v) = w.message("anon-signed");
        let e = Expect {
            encrypted: true,
            sign_kid: Some(auth(&w.alice)),
            anonymous_sender: true,
            anon: Some(ContentEnc::A256CbcHs512),
            to_kids: vec![ka(&w.bob)],
            ..Expect::default()
        };

        let (packed, meta) = theirs
            .pack_encrypted(
                w.bob.did.as_str(),
                None,
                Some(w.alice.did.as_str()),
                &w.theirs,
                &w.alice_s,
                &s_opts(false, AnonCryptAlg::A256cbcHs512EcdhEsA256kw),
            )
            .await
            .unwrap();
        assert_eq!(meta.sign_by_kid, Some(auth(&w.alice)));
        ours_unpacks(&w, &packed, &v, &e).await;

        let packed = didcomm::pack_encrypted(
            &ours,
            w.bob.did.as_str(),
            None,
            Some(w.alice.did.as_str()),
            &w.ours,
            &w.alice,
            &no_forward(),
        )
        .await
        .unwrap();
        assert_eq!(packed.sign_by_kid, Some(auth(&w.alice)));
        theirs_unpacks(&w, &packed.message, &v, &e).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn authcrypt_of_signed_both_ways() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        let (ours, theirs, v) = w.message("auth-signed");
        let e = Expect {
            encrypted: true,
            from_kid: Some(ka(&w.alice)),
            sign_kid: Some(auth(&w.alice)),
            to_kids: vec![ka(&w.bob)],
            ..Expect::default()
        };

        let (packed, meta) = theirs
            .pack_encrypted(
                w.bob.did.as_str(),
                Some(w.alice.did.as_str()),
                Some(w.alice.did.as_str()),
                &w.theirs,
                &w.alice_s,
                &s_opts(false, AnonCryptAlg::default()),
            )
            .await
            .unwrap();
        assert_eq!(meta.sign_by_kid, Some(auth(&w.alice)));
        assert_eq!(meta.from_kid, Some(ka(&w.alice)));
        ours_unpacks(&w, &packed, &v, &e).await;

        let packed = didcomm::pack_encrypted(
            &ours,
            w.bob.did.as_str(),
            Some(w.alice.did.as_str()),
            Some(w.alice.did.as_str()),
            &w.ours,
            &w.alice,
            &no_forward(),
        )
        .await
        .unwrap();
        theirs_unpacks(&w, &packed.message, &v, &e).await;
    }
}

/// A did:peer:2 with one Ed25519 and two X25519 keys (`#key-1`, `#key-2`, `#key-3`).
fn two_key_peer() -> (Identity, Vec<(String, SecretKey)>) {
    let ed = SecretKey::generate(KeyKind::Ed25519);
    let x1 = SecretKey::generate(KeyKind::X25519);
    let x2 = SecretKey::generate(KeyKind::X25519);
    let did = peer::create(&[ed.public_key()], &[x1.public_key(), x2.public_key()], &[]).unwrap();
    let keys = vec![(format!("{did}#key-1"), ed), (format!("{did}#key-2"), x1), (format!("{did}#key-3"), x2)];
    let doc = derived_document(&did).unwrap();
    assert_eq!(doc.relationships[Relationship::KeyAgreement as usize], vec![keys[1].0.clone(), keys[2].0.clone()]);
    let jwks: Vec<Jwk> = keys.iter().map(|(kid, k)| Jwk::from_secret(k).with_kid(kid.as_str())).collect();
    (Identity::from_jwks(&doc, &jwks).unwrap(), keys)
}

#[tokio::test(flavor = "current_thread")]
async fn several_recipient_keys_both_ways() {
    for sender in [Method::Key, Method::Peer] {
        let alice = generate(sender, "alice");
        let (bob, keys) = two_key_peer();
        let both = vec![keys[1].0.clone(), keys[2].0.clone()];
        let w = World {
            ours: Resolver::default(),
            theirs: Dids::of([&alice.did, &bob.did]),
            alice_s: Secrets::of(&alice),
            bob_s: Secrets::of(&bob),
            alice,
            bob,
        };
        // Only the second key-agreement key, as a KeyRing and as SICPA secrets.
        let mut second_only = KeyRing::new();
        second_only.insert(keys[2].0.clone(), keys[2].1.clone());
        let second_only_s = Secrets(sicpa::secrets_from_keys([(keys[2].0.as_str(), &keys[2].1)]));

        for from in [false, true] {
            let (ours, theirs, v) = w.message("multi");
            let from_did = from.then(|| w.alice.did.to_string());
            let e = Expect {
                encrypted: true,
                from_kid: from.then(|| ka(&w.alice)),
                anonymous_sender: !from,
                anon: (!from).then_some(ContentEnc::A256CbcHs512),
                to_kids: both.clone(),
                ..Expect::default()
            };

            // SICPA → us
            let (packed, meta) = theirs
                .pack_encrypted(
                    w.bob.did.as_str(),
                    from_did.as_deref(),
                    None,
                    &w.theirs,
                    &w.alice_s,
                    &s_opts(false, AnonCryptAlg::A256cbcHs512EcdhEsA256kw),
                )
                .await
                .unwrap();
            assert_eq!(meta.to_kids, both);
            ours_unpacks(&w, &packed, &v, &e).await;
            let (got, meta) = didcomm::unpack(&packed, &w.ours, &second_only, &UnpackOptions::default()).await.unwrap();
            assert_eq!(got.to_value(), v);
            assert_eq!(meta.encrypted_to_kids, vec![keys[2].0.clone()]);

            // us → SICPA
            let packed = didcomm::pack_encrypted(
                &ours,
                w.bob.did.as_str(),
                from_did.as_deref(),
                None,
                &w.ours,
                &w.alice,
                &no_forward(),
            )
            .await
            .unwrap();
            assert_eq!(packed.to_kids, both);
            theirs_unpacks(&w, &packed.message, &v, &e).await;
            // every recipient key decrypts it
            let all = SUnpackOptions { expect_decrypt_by_all_keys: true, ..SUnpackOptions::default() };
            let (got, _) = SMessage::unpack(&packed.message, &w.theirs, &w.bob_s, &all).await.unwrap();
            assert_eq!(serde_json::to_value(&got).unwrap(), v);
            let (got, _) =
                SMessage::unpack(&packed.message, &w.theirs, &second_only_s, &SUnpackOptions::default()).await.unwrap();
            assert_eq!(serde_json::to_value(&got).unwrap(), v);
        }
    }
}

/// A recipient behind a mediator: `routingKeys` = [the mediator did:key's X25519 key].
struct Routed {
    w: World,
    mediator_kid: String,
    mediator_ring: KeyRing,
    mediator_s: Secrets,
    uri: String,
}

fn routed(sender: Method) -> Routed {
    let mediator = Identity::generate_key();
    let mediator_kid = ka(&mediator);
    assert!(mediator_kid.starts_with(&format!("{}#z6LS", mediator.did)));
    let uri = "https://mediator.example/didcomm".to_owned();
    let bob = Identity::generate_peer(&[DidCommEndpoint {
        uri: uri.clone(),
        accept: vec!["didcomm/v2".into()],
        routing_keys: vec![mediator_kid.clone()],
    }])
    .unwrap();
    let alice = generate(sender, "alice");
    let mut mediator_ring = KeyRing::new();
    mediator_ring.add_identity(&mediator);
    let mediator_s = Secrets(sicpa::secrets_from_keys(mediator.keys()));
    Routed {
        w: World {
            ours: Resolver::default(),
            theirs: Dids::of([&alice.did, &bob.did, &mediator.did]),
            alice_s: Secrets::of(&alice),
            bob_s: Secrets::of(&bob),
            alice,
            bob,
        },
        mediator_kid,
        mediator_ring,
        mediator_s,
        uri,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn forward_packed_by_sicpa_unwrapped_by_us() {
    for sender in [Method::Key, Method::Peer] {
        let r = routed(sender);
        let w = &r.w;
        let (_, theirs, v) = w.message("forward-a");
        let (packed, meta) = theirs
            .pack_encrypted(
                w.bob.did.as_str(),
                Some(w.alice.did.as_str()),
                None,
                &w.theirs,
                &w.alice_s,
                &PackEncryptedOptions::default(),
            )
            .await
            .unwrap();
        let svc = meta.messaging_service.expect("SICPA forwarded");
        assert_eq!(svc.service_endpoint, r.uri);
        assert_eq!(svc.id, format!("{}#service", w.bob.did));

        // The recipient cannot open the mediator's layer.
        assert!(matches!(
            didcomm::unpack(&packed, &w.ours, &w.bob, &UnpackOptions::default()).await,
            Err(Error::NotForUs(_))
        ));

        // Our mediator (a KeyRing with the mediator's keys) opens the forward.
        let (fwd, m) = didcomm::unpack(&packed, &w.ours, &r.mediator_ring, &UnpackOptions::default()).await.unwrap();
        assert!(m.encrypted && m.anonymous_sender && !m.authenticated && !m.non_repudiation);
        assert_eq!(m.encrypted_to_kids, vec![r.mediator_kid.clone()]);
        assert_eq!(m.enc_alg_anon, Some(anon_name(ContentEnc::Xc20p)));
        assert_eq!(fwd.type_, didcomm::FORWARD);
        let f = parse_forward(&fwd).unwrap();
        assert_eq!(f.next, w.bob.did.as_str());
        assert_eq!(f.payloads.len(), 1);

        // The recipient opens the payload.
        let e =
            Expect { encrypted: true, from_kid: Some(ka(&w.alice)), to_kids: vec![ka(&w.bob)], ..Expect::default() };
        ours_unpacks(w, &f.payloads[0], &v, &e).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn forward_packed_by_us_unwrapped_by_sicpa() {
    for sender in [Method::Key, Method::Peer] {
        let r = routed(sender);
        let w = &r.w;
        let (ours, _, v) = w.message("forward-b");
        let packed = didcomm::pack_encrypted(
            &ours,
            w.bob.did.as_str(),
            Some(w.alice.did.as_str()),
            None,
            &w.ours,
            &w.alice,
            &PackOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            packed.service,
            Some(ServiceTarget { uri: r.uri.clone(), routing_keys: vec![r.mediator_kid.clone()] })
        );
        assert_eq!(packed.to_kids, vec![ka(&w.bob)]);

        // SICPA as the mediator.
        let mediator_opts = SUnpackOptions { unwrap_re_wrapping_forward: false, ..SUnpackOptions::default() };
        let (fwd, m) = SMessage::unpack(&packed.message, &w.theirs, &r.mediator_s, &mediator_opts).await.unwrap();
        assert!(m.encrypted && m.anonymous_sender && !m.authenticated);
        assert_eq!(m.encrypted_to_kids, Some(vec![r.mediator_kid.clone()]));
        assert_eq!(m.enc_alg_anon, Some(AnonCryptAlg::A256cbcHs512EcdhEsA256kw));
        let parsed = try_parse_forward(&fwd).expect("a forward message");
        assert_eq!(parsed.next, w.bob.did.as_str());
        let inner = serde_json::to_string(&parsed.forwarded_msg).unwrap();

        // SICPA as the recipient.
        let e =
            Expect { encrypted: true, from_kid: Some(ka(&w.alice)), to_kids: vec![ka(&w.bob)], ..Expect::default() };
        theirs_unpacks(w, &inner, &v, &e).await;
        // and the mediator's key never decrypts the inner envelope
        assert!(SMessage::unpack(&inner, &w.theirs, &r.mediator_s, &mediator_opts).await.is_err());
    }
}

/// Error messages clip long DIDs (did:peer:2) to 120 characters and an ellipsis.
fn assert_clipped(got: &str, full: &str) {
    match got.strip_suffix('…') {
        Some(prefix) => assert!(prefix.len() >= 100 && full.starts_with(prefix), "{got} vs {full}"),
        None => assert_eq!(got, full),
    }
}

/// The plaintext of a SICPA-made envelope may name any `from`: SICPA checks `from` against
/// the sender only when `Message::from` is set, so put it among the extra headers.
fn lying_message(w: &World, liar_from: &str) -> SMessage {
    let (_, mut theirs, _) = w.message("liar");
    theirs.from = None;
    theirs.extra_headers.insert("from".into(), Value::String(liar_from.to_owned()));
    let v = serde_json::to_value(&theirs).unwrap();
    assert_eq!(v["from"], liar_from, "the plaintext carries the lying `from`");
    theirs
}

#[tokio::test(flavor = "current_thread")]
async fn we_reject_sicpa_authcrypt_with_another_from() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        let carol = Identity::generate_key();
        let liar = lying_message(&w, carol.did.as_str());

        let (packed, meta) = liar
            .pack_encrypted(
                w.bob.did.as_str(),
                Some(w.alice.did.as_str()),
                None,
                &w.theirs,
                &w.alice_s,
                &s_opts(false, AnonCryptAlg::default()),
            )
            .await
            .unwrap();
        assert_eq!(meta.from_kid, Some(ka(&w.alice)));
        // The envelope is otherwise sound: SICPA itself opens it (and does not check `from`).
        let (got, m) = SMessage::unpack(&packed, &w.theirs, &w.bob_s, &SUnpackOptions::default()).await.unwrap();
        assert_eq!(got.from.as_deref(), Some(carol.did.as_str()));
        assert_eq!(m.encrypted_from_kid, Some(ka(&w.alice)));

        match didcomm::unpack(&packed, &w.ours, &w.bob, &UnpackOptions::default()).await {
            Err(Error::SenderMismatch { claimed, actual, how }) => {
                assert_clipped(&claimed, carol.did.as_str());
                assert_clipped(&actual, w.alice.did.as_str());
                assert_eq!(how, "encrypted");
            }
            other => panic!("expected SenderMismatch, got {other:?}"),
        }

        // Same with sender protection (the mismatch is found under the anoncrypt layer).
        let (packed, _) = liar
            .pack_encrypted(
                w.bob.did.as_str(),
                Some(w.alice.did.as_str()),
                None,
                &w.theirs,
                &w.alice_s,
                &s_opts(true, AnonCryptAlg::default()),
            )
            .await
            .unwrap();
        assert!(matches!(
            didcomm::unpack(&packed, &w.ours, &w.bob, &UnpackOptions::default()).await,
            Err(Error::SenderMismatch { how: "encrypted", .. })
        ));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn we_reject_sicpa_signed_with_another_from() {
    for (a, b) in PAIRS {
        let w = World::new(a, b);
        let carol = Identity::generate_key();
        let (_, mut theirs, _) = w.message("signed-liar");
        // SICPA's pack_signed does not compare `from` with the signer at all.
        theirs.from = Some(carol.did.to_string());
        let (packed, _) = theirs.pack_signed(w.alice.did.as_str(), &w.theirs, &w.alice_s).await.unwrap();
        match didcomm::unpack(&packed, &w.ours, &w.bob, &UnpackOptions::default()).await {
            Err(Error::SenderMismatch { claimed, actual, how }) => {
                assert_clipped(&claimed, carol.did.as_str());
                assert_clipped(&actual, w.alice.did.as_str());
                assert_eq!(how, "signed");
            }
            other => panic!("expected SenderMismatch, got {other:?}"),
        }
    }
}
