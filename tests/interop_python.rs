//! Interop with the reference Python implementation (PyPI didcomm 0.3.2), both ways:
//! what we pack, Python unpacks; what Python packs, we unpack. Plaintexts and the
//! unpack metadata are compared on both sides.
//!
//! The oracle lives in `tests/interop/python/` (see its README). These tests never
//! skip: without the venv they fail and say how to set it up.
//!
//! Known, deliberate differences in metadata (asserted, so a change shows up):
//! - Python's `encrypted_to` lists every recipient kid of the (innermost) envelope,
//!   whichever secrets it holds; our `encrypted_to_kids` lists only the kids of ours
//!   the layers were addressed to.

#[path = "support/python.rs"]
mod python;

use did_core::didcomm::{self, parse_forward, Message, PackOptions, ServiceTarget, UnpackMetadata, UnpackOptions};
use did_core::jose::content::ContentEnc;
use did_core::keystore::derived_document;
use did_core::method::{key, peer};
use did_core::{DidCommEndpoint, DidDocument, Identity, Jwk, KeyKind, KeyRing, Relationship, Resolver, SecretKey};
use python::Oracle;
use serde_json::{json, Value};

const AUTH_ALG: &str = "ECDH-1PU+A256KW/A256CBC-HS512";
const MEDIATOR_URI: &str = "https://mediator.didmpc.invalid/didcomm";

// ---------------------------------------------------------------------------
// parties

/// A DID with its document (as we emit it) and secrets, for both implementations.
struct Party {
    label: String,
    did: String,
    /// `DidDocument::to_value()`, handed to Python in `dids`.
    doc: Value,
    /// Private JWKs with absolute kids, handed to Python in `secrets`.
    secrets: Value,
    /// The same secrets for our side.
    ring: KeyRing,
}

impl Party {
    fn from_identity(label: &str, id: &Identity) -> Party {
        let doc = derived_document(&id.did).expect("a did:key/did:peer document");
        let mut ring = KeyRing::new();
        ring.add_identity(id);
        Party {
            label: label.to_owned(),
            did: id.did.to_string(),
            doc: doc.to_value(),
            secrets: serde_json::to_value(id.to_jwks()).expect("JWKs serialize"),
            ring,
        }
    }

    fn from_jwks(label: &str, doc: &DidDocument, jwks: &[Jwk]) -> Party {
        let mut ring = KeyRing::new();
        ring.add_jwks(jwks).expect("valid JWKs");
        Party {
            label: label.to_owned(),
            did: doc.id.to_string(),
            doc: doc.to_value(),
            secrets: serde_json::to_value(jwks).expect("JWKs serialize"),
            ring,
        }
    }

    /// The first keyAgreement key id of the document.
    fn ka_kid(&self) -> String {
        DidDocument::from_value(&self.doc)
            .expect("our own document parses")
            .methods(Relationship::KeyAgreement)
            .next()
            .expect("a keyAgreement key")
            .id
            .clone()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Key,
    Peer,
}

fn party(method: Method, label: &str) -> Party {
    let id = match method {
        Method::Key => Identity::generate_key(),
        Method::Peer => Identity::generate_peer(&[DidCommEndpoint {
            uri: format!("https://{label}.didmpc.invalid/didcomm"),
            accept: vec!["didcomm/v2".into()],
            routing_keys: vec![],
        }])
        .expect("a did:peer:2"),
    };
    Party::from_identity(&format!("{label}({method:?})"), &id)
}

fn dids(parties: &[&Party]) -> Value {
    Value::Array(parties.iter().map(|p| p.doc.clone()).collect())
}

/// Our resolver, knowing every party's document (did:key/did:peer resolve anyway;
/// inserting the emitted documents makes both sides read the very same JSON).
fn resolver(parties: &[&Party]) -> Resolver {
    let r = Resolver::default();
    for p in parties {
        r.insert(DidDocument::from_value(&p.doc).expect("document parses"));
    }
    r
}

// ---------------------------------------------------------------------------
// cases

/// One way of protecting a message.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    sign: bool,
    /// Authcrypt from the sender (else anoncrypt when `encrypt`).
    auth: bool,
    encrypt: bool,
    protect_sender: bool,
    /// Content cipher of the anoncrypt layer.
    anon_enc: ContentEnc,
}

const fn case(name: &'static str, sign: bool, auth: bool, encrypt: bool, protect: bool) -> Case {
    Case { name, sign, auth, encrypt, protect_sender: protect, anon_enc: ContentEnc::A256CbcHs512 }
}

const fn anon(name: &'static str, enc: ContentEnc) -> Case {
    Case { name, sign: false, auth: false, encrypt: true, protect_sender: false, anon_enc: enc }
}

const CASES: [Case; 11] = [
    case("plaintext", false, false, false, false),
    case("signed", true, false, false, false),
    anon("anoncrypt/A256CBC-HS512", ContentEnc::A256CbcHs512),
    anon("anoncrypt/A256GCM", ContentEnc::A256Gcm),
    anon("anoncrypt/XC20P", ContentEnc::Xc20p),
    case("authcrypt", false, true, true, false),
    case("authcrypt+protect_sender", false, true, true, true),
    Case { anon_enc: ContentEnc::Xc20p, ..case("authcrypt+protect_sender/XC20P", false, true, true, true) },
    case("signed+authcrypt", true, true, true, false),
    case("anoncrypt(signed)", true, false, true, false),
    Case { anon_enc: ContentEnc::A256Gcm, ..case("anoncrypt(signed)/A256GCM", true, false, true, false) },
];

/// What both sides must report after unpacking.
struct Expect {
    encrypted: bool,
    /// Authcrypt authenticated the sender (both sides also report `authenticated` for signatures).
    authcrypt: bool,
    non_repudiation: bool,
    anonymous_sender: bool,
    enc_alg_anon: Option<String>,
    enc_alg_auth: Option<String>,
    sign_alg: Option<&'static str>,
}

impl Case {
    fn expect(&self, sign_alg: &'static str) -> Expect {
        let anon_layer = self.encrypt && (!self.auth || self.protect_sender);
        Expect {
            encrypted: self.encrypt,
            authcrypt: self.auth,
            non_repudiation: self.sign,
            anonymous_sender: anon_layer,
            enc_alg_anon: anon_layer.then(|| format!("ECDH-ES+A256KW/{}", self.anon_enc.name())),
            enc_alg_auth: self.auth.then(|| AUTH_ALG.to_owned()),
            sign_alg: self.sign.then_some(sign_alg),
        }
    }
}

fn sample_message(case: &Case, from: &str, to: &str) -> Message {
    let mut m = Message::new(
        "https://didmpc.invalid/interop/1.0/ping",
        json!({
            "case": case.name,
            "content": "grüße, 你好, ✓ \"quoted\" \\ back",
            "n": 42,
            "nested": {"list": [1, 2.5, null, true], "empty": {}},
        }),
    )
    .to(to)
    .thid("thread-1");
    if case.sign || case.auth {
        m = m.from(from);
    }
    m.expires_time = m.created_time.map(|t| t + 3600);
    m
}

/// Python's `{"alg": .., "enc": ..}` as our `alg/enc`.
fn py_alg(v: &Value) -> Option<String> {
    if v.is_null() {
        return None;
    }
    Some(format!("{}/{}", v["alg"].as_str().expect("alg"), v["enc"].as_str().expect("enc")))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

fn check_python_meta(what: &str, m: &Value, e: &Expect) {
    assert_eq!(m["encrypted"], e.encrypted, "{what}: Python encrypted; {m}");
    assert_eq!(m["authenticated"], e.authcrypt || e.non_repudiation, "{what}: Python authenticated; {m}");
    assert_eq!(m["non_repudiation"], e.non_repudiation, "{what}: Python non_repudiation; {m}");
    assert_eq!(m["anonymous_sender"], e.anonymous_sender, "{what}: Python anonymous_sender; {m}");
    assert_eq!(py_alg(&m["enc_alg_anon"]), e.enc_alg_anon, "{what}: Python enc_alg_anon; {m}");
    assert_eq!(py_alg(&m["enc_alg_auth"]), e.enc_alg_auth, "{what}: Python enc_alg_auth; {m}");
    assert_eq!(m["sign_alg"].as_str(), e.sign_alg, "{what}: Python sign_alg; {m}");
}

fn check_our_meta(what: &str, m: &UnpackMetadata, e: &Expect) {
    assert_eq!(m.encrypted, e.encrypted, "{what}: our encrypted; {m:?}");
    assert_eq!(m.authenticated, e.authcrypt || e.non_repudiation, "{what}: our authenticated; {m:?}");
    assert_eq!(m.encrypted_from_kid.is_some(), e.authcrypt, "{what}: our authcrypt sender; {m:?}");
    assert_eq!(m.non_repudiation, e.non_repudiation, "{what}: our non_repudiation; {m:?}");
    assert_eq!(m.anonymous_sender, e.anonymous_sender, "{what}: our anonymous_sender; {m:?}");
    assert_eq!(m.sender_protected, e.authcrypt && e.anonymous_sender, "{what}: our sender_protected; {m:?}");
    assert_eq!(m.enc_alg_anon, e.enc_alg_anon, "{what}: our enc_alg_anon");
    assert_eq!(m.enc_alg_auth, e.enc_alg_auth, "{what}: our enc_alg_auth");
    assert_eq!(m.sign_alg.as_deref(), e.sign_alg, "{what}: our sign_alg");
    assert_eq!(m.signed_message.is_some(), e.non_repudiation, "{what}: our signed_message");
}

/// Our `unpack` with default options.
async fn our_unpack(what: &str, packed: &str, resolver: &Resolver, ring: &KeyRing) -> (Message, UnpackMetadata) {
    didcomm::unpack(packed, resolver, ring, &UnpackOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{what}: our unpack of Python's message failed: {e}\n{packed}"))
}

/// What our packing used.
struct OurPacked {
    text: String,
    from_kid: Option<String>,
    sign_kid: Option<String>,
    to_kids: Vec<String>,
}

async fn we_pack(case: &Case, msg: &Message, s: &Party, r: &Party, res: &Resolver) -> OurPacked {
    let what = format!("{} {}→{}", case.name, s.label, r.label);
    if !case.encrypt {
        if !case.sign {
            return OurPacked { text: didcomm::pack_plaintext(msg), from_kid: None, sign_kid: None, to_kids: vec![] };
        }
        let (text, kid) = didcomm::pack_signed(msg, &s.did, res, &s.ring)
            .await
            .unwrap_or_else(|e| panic!("{what}: pack_signed: {e}"));
        return OurPacked { text, from_kid: None, sign_kid: Some(kid), to_kids: vec![] };
    }
    let opts = PackOptions { protect_sender: case.protect_sender, anon_enc: case.anon_enc, ..PackOptions::default() };
    let p = didcomm::pack_encrypted(
        msg,
        &r.did,
        case.auth.then_some(s.did.as_str()),
        case.sign.then_some(s.did.as_str()),
        res,
        &s.ring,
        &opts,
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: pack_encrypted: {e}"));
    OurPacked { text: p.message, from_kid: p.from_kid, sign_kid: p.sign_by_kid, to_kids: p.to_kids }
}

/// We pack, Python unpacks.
async fn rust_to_python(o: &mut Oracle, case: &Case, s: &Party, r: &Party) {
    let what = format!("[we pack → Python unpacks] {} {}→{}", case.name, s.label, r.label);
    let res = resolver(&[s, r]);
    let msg = sample_message(case, &s.did, &r.did);
    let packed = we_pack(case, &msg, s, r, &res).await;
    let resp = o.ok(json!({
        "op": "unpack",
        "packed": packed.text,
        "dids": dids(&[s, r]),
        "secrets": r.secrets,
    }));
    assert_eq!(resp["message"], msg.to_value(), "{what}: plaintext");
    let m = &resp["metadata"];
    check_python_meta(&what, m, &case.expect("EdDSA"));
    assert_eq!(m["encrypted_from"].as_str(), packed.from_kid.as_deref(), "{what}: sender kid");
    assert_eq!(m["sign_from"].as_str(), packed.sign_kid.as_deref(), "{what}: signer kid");
    if case.encrypt {
        assert_eq!(strings(&m["encrypted_to"]), packed.to_kids, "{what}: recipient kids");
    } else {
        assert!(m["encrypted_to"].is_null(), "{what}: {m}");
    }
    if case.sign {
        assert!(m["signed_message"].is_string(), "{what}: Python keeps the JWS");
    }
}

/// Python packs, we unpack.
async fn python_to_rust(o: &mut Oracle, case: &Case, s: &Party, r: &Party) {
    let what = format!("[Python packs → we unpack] {} {}→{}", case.name, s.label, r.label);
    let res = resolver(&[s, r]);
    let msg = sample_message(case, &s.did, &r.did);
    let base = json!({"message": msg.to_value(), "dids": dids(&[s, r]), "secrets": s.secrets});
    let req = |mut extra: Value| {
        let obj = extra.as_object_mut().expect("object");
        for (k, v) in base.as_object().expect("object") {
            obj.insert(k.clone(), v.clone());
        }
        extra
    };
    let resp = if !case.encrypt && !case.sign {
        o.ok(req(json!({"op": "pack_plaintext"})))
    } else if !case.encrypt {
        o.ok(req(json!({"op": "pack_signed", "sign_by": s.did})))
    } else {
        o.ok(req(json!({
            "op": "pack_encrypted",
            "to": r.did,
            "from": case.auth.then_some(&s.did),
            "sign_by": case.sign.then_some(&s.did),
            "protect_sender": case.protect_sender,
            "forward": true,
            "enc_alg_anon": case.anon_enc.name(),
        })))
    };
    let packed = resp["packed"].as_str().unwrap_or_else(|| panic!("{what}: no packed text in {resp}"));
    let pm = &resp["metadata"];
    let (got, meta) = our_unpack(&what, packed, &res, &r.ring).await;
    assert_eq!(got, msg, "{what}: plaintext");
    check_our_meta(&what, &meta, &case.expect("EdDSA"));
    let py_from = pm.get("from_kid").and_then(Value::as_str);
    let py_sign = pm.get("sign_from_kid").and_then(Value::as_str);
    assert_eq!(meta.encrypted_from_kid.as_deref(), py_from, "{what}: sender kid");
    assert_eq!(meta.sign_from.as_deref(), py_sign, "{what}: signer kid");
    if case.sign || case.auth {
        assert_eq!(meta.sender.as_deref(), Some(s.did.as_str()), "{what}: sender DID");
    }
    if case.encrypt {
        let to = strings(&pm["to_kids"]);
        assert!(
            !meta.encrypted_to_kids.is_empty() && meta.encrypted_to_kids.iter().all(|k| to.contains(k)),
            "{what}: we decrypted with {:?}, Python encrypted for {to:?}",
            meta.encrypted_to_kids
        );
        let endpoint = DidDocument::from_value(&r.doc)
            .expect("our own document parses")
            .didcomm_endpoints()
            .next()
            .map(|e| e.uri.clone());
        assert_eq!(
            pm["service_metadata"]["service_endpoint"].as_str(),
            endpoint.as_deref(),
            "{what}: Python's service choice; {pm}"
        );
    }
}

async fn matrix(pairs: &[(Method, Method)]) {
    let mut o = Oracle::start();
    for &(sm, rm) in pairs {
        let s = party(sm, "alice");
        let r = party(rm, "bob");
        for case in &CASES {
            rust_to_python(&mut o, case, &s, &r).await;
            python_to_rust(&mut o, case, &s, &r).await;
        }
    }
}

#[tokio::test]
async fn did_key_both_ways() {
    matrix(&[(Method::Key, Method::Key)]).await;
}

#[tokio::test]
async fn did_peer2_both_ways() {
    matrix(&[(Method::Peer, Method::Peer)]).await;
}

#[tokio::test]
async fn mixed_did_key_and_did_peer2_both_ways() {
    matrix(&[(Method::Key, Method::Peer), (Method::Peer, Method::Key)]).await;
}

// ---------------------------------------------------------------------------
// a recipient with two X25519 keyAgreement keys

#[tokio::test]
async fn recipient_with_two_x25519_keys() {
    let mut o = Oracle::start();
    let ed = SecretKey::generate(KeyKind::Ed25519);
    let x1 = SecretKey::generate(KeyKind::X25519);
    let x2 = SecretKey::generate(KeyKind::X25519);
    let did = peer::create(&[ed.public_key()], &[x1.public_key(), x2.public_key()], &[]).expect("did:peer:2");
    let doc = peer::resolve(&did).expect("resolves");
    let kids: Vec<String> = (1..=3).map(|n| format!("{did}#key-{n}")).collect();
    let jwks: Vec<Jwk> = [&ed, &x1, &x2].iter().zip(&kids).map(|(k, kid)| Jwk::from_secret(k).with_kid(kid)).collect();
    Identity::from_jwks(&doc, &jwks).expect("the keys match the document");
    let bob = Party::from_jwks("bob(2×X25519)", &doc, &jwks);
    let bob_second_only = Party::from_jwks("bob(#key-3 only)", &doc, &jwks[2..]);
    let agreement: Vec<String> = doc.methods(Relationship::KeyAgreement).map(|vm| vm.id.clone()).collect();
    assert_eq!(agreement, kids[1..], "did:peer:2 key ids");

    for sender in [party(Method::Key, "alice"), party(Method::Peer, "alice")] {
        let res = resolver(&[&sender, &bob]);
        for case in [CASES[2], CASES[5], CASES[6], anon("anoncrypt/XC20P", ContentEnc::Xc20p)] {
            let what = format!("2 keys: {} from {}", case.name, sender.label);
            // The whole matrix, unchanged, with this recipient.
            rust_to_python(&mut o, &case, &sender, &bob).await;
            python_to_rust(&mut o, &case, &sender, &bob).await;

            // We pack for both keys; Python decrypts with each and with all.
            let msg = sample_message(&case, &sender.did, &bob.did);
            let packed = we_pack(&case, &msg, &sender, &bob, &res).await;
            assert_eq!(packed.to_kids, agreement, "{what}: we encrypt for both keys");
            let all = o.ok(json!({
                "op": "unpack", "packed": packed.text, "dids": dids(&[&sender, &bob]),
                "secrets": bob.secrets, "expect_decrypt_by_all_keys": true,
            }));
            assert_eq!(all["message"], msg.to_value(), "{what}");
            let mut to = strings(&all["metadata"]["encrypted_to"]);
            to.sort();
            assert_eq!(to, agreement, "{what}: Python decrypts with both keys");
            for single in &jwks[1..] {
                let one = o.ok(json!({
                    "op": "unpack", "packed": packed.text, "dids": dids(&[&sender, &bob]),
                    "secrets": [single], "expect_decrypt_by_all_keys": true,
                }));
                assert_eq!(one["message"], msg.to_value(), "{what}: {:?}", single.kid);
                assert_eq!(
                    strings(&one["metadata"]["encrypted_to"]),
                    agreement,
                    "{what}: Python lists the envelope's kids"
                );
            }
            let e = o.err(json!({
                "op": "unpack", "packed": packed.text, "dids": dids(&[&sender, &bob]),
                "secrets": [&jwks[0]],
            }));
            assert!(!e.is_empty(), "{what}");

            // Python packs for both keys; we decrypt with either.
            let resp = o.ok(json!({
                "op": "pack_encrypted", "message": msg.to_value(), "to": bob.did,
                "from": case.auth.then_some(&sender.did), "protect_sender": case.protect_sender,
                "enc_alg_anon": case.anon_enc.name(),
                "dids": dids(&[&sender, &bob]), "secrets": sender.secrets,
            }));
            assert_eq!(strings(&resp["metadata"]["to_kids"]), agreement, "{what}: Python encrypts for both keys");
            let text = resp["packed"].as_str().expect("packed");
            let (got, meta) = our_unpack(&what, text, &res, &bob.ring).await;
            assert_eq!(got, msg, "{what}");
            assert!(meta.encrypted_to_kids.iter().all(|k| agreement.contains(k)));
            let (got, meta) = our_unpack(&what, text, &res, &bob_second_only.ring).await;
            assert_eq!(got, msg, "{what}: second key only");
            assert!(meta.encrypted_to_kids.iter().all(|k| *k == kids[2]), "{what}: {:?}", meta.encrypted_to_kids);
            // Holding only the signing key is not enough.
            let mut ed_only = KeyRing::new();
            ed_only.add_jwks(&jwks[..1]).expect("jwk");
            assert!(
                didcomm::unpack(text, &res, &ed_only, &UnpackOptions::default()).await.is_err(),
                "{what}: decrypted without a keyAgreement secret"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Forward through a mediator key

struct Routed {
    mediator: Party,
    mediator_kid: String,
    recipient: Party,
}

/// A mediator did:key and a did:peer:2 recipient whose service routes through the
/// mediator's X25519 key (`did:key:z6Mk…#z6LS…`).
fn routed() -> Routed {
    let mediator = party(Method::Key, "mediator");
    let mediator_kid = mediator.ka_kid();
    assert!(mediator_kid.starts_with(&format!("{}#z6LS", mediator.did)), "{mediator_kid}");
    let id = Identity::generate_peer(&[DidCommEndpoint {
        uri: MEDIATOR_URI.into(),
        accept: vec!["didcomm/v2".into()],
        routing_keys: vec![mediator_kid.clone()],
    }])
    .expect("did:peer:2");
    Routed { recipient: Party::from_identity("bob(routed)", &id), mediator, mediator_kid }
}

const FORWARD_CASES: [Case; 4] = [
    case("authcrypt", false, true, true, false),
    anon("anoncrypt/A256GCM", ContentEnc::A256Gcm),
    case("signed+authcrypt", true, true, true, false),
    Case { anon_enc: ContentEnc::Xc20p, ..case("authcrypt+protect_sender", false, true, true, true) },
];

/// Python packs with `forward = true`; we unwrap as the mediator, then as the recipient.
#[tokio::test]
async fn forward_python_packs_we_mediate_and_receive() {
    let mut o = Oracle::start();
    let Routed { mediator, mediator_kid, recipient } = routed();
    for sender in [party(Method::Key, "alice"), party(Method::Peer, "alice")] {
        let all = [&sender, &recipient, &mediator];
        let res = resolver(&all);
        for case in FORWARD_CASES {
            for fwd_enc in [ContentEnc::Xc20p, ContentEnc::A256CbcHs512] {
                let what = format!(
                    "forward (Python packs, forward layer {}) {} from {}",
                    fwd_enc.name(),
                    case.name,
                    sender.label
                );
                let msg = sample_message(&case, &sender.did, &recipient.did);
                // The oracle uses one enc_alg_anon for both the message and the forward
                // layer; for authcrypt only the forward layer is anoncrypt.
                let enc = if case.auth && !case.protect_sender { fwd_enc } else { case.anon_enc };
                let resp = o.ok(json!({
                    "op": "pack_encrypted", "message": msg.to_value(), "to": recipient.did,
                    "from": case.auth.then_some(&sender.did), "sign_by": case.sign.then_some(&sender.did),
                    "protect_sender": case.protect_sender, "forward": true, "enc_alg_anon": enc.name(),
                    "dids": dids(&all), "secrets": sender.secrets,
                }));
                let pm = &resp["metadata"];
                assert_eq!(
                    pm["service_metadata"],
                    json!({"id": format!("{}#service", recipient.did), "service_endpoint": MEDIATOR_URI}),
                    "{what}"
                );
                let packed = resp["packed"].as_str().expect("packed");

                // As the mediator.
                let (fwd, fmeta) = our_unpack(&what, packed, &res, &mediator.ring).await;
                assert!(
                    fwd.type_.starts_with("https://didcomm.org/routing/2.") && fwd.type_.ends_with("/forward"),
                    "{what}: {}",
                    fwd.type_
                );
                assert!(fmeta.encrypted && fmeta.anonymous_sender && !fmeta.authenticated);
                assert_eq!(fmeta.encrypted_to_kids, vec![mediator_kid.clone()], "{what}");
                assert_eq!(fmeta.enc_alg_anon, Some(format!("ECDH-ES+A256KW/{}", enc.name())), "{what}");
                let f = parse_forward(&fwd).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(f.next, recipient.did, "{what}: next hop");
                assert_eq!(f.payloads.len(), 1, "{what}");
                // The mediator cannot read what it forwards.
                assert!(
                    didcomm::unpack(&f.payloads[0], &res, &mediator.ring, &UnpackOptions::default()).await.is_err(),
                    "{what}: the mediator read the inner message"
                );

                // As the recipient.
                let (got, meta) = our_unpack(&what, &f.payloads[0], &res, &recipient.ring).await;
                assert_eq!(got, msg, "{what}: plaintext");
                check_our_meta(&what, &meta, &Case { anon_enc: enc, ..case }.expect("EdDSA"));
                assert_eq!(meta.encrypted_from_kid.as_deref(), pm["from_kid"].as_str(), "{what}");
                assert_eq!(meta.sign_from.as_deref(), pm["sign_from_kid"].as_str(), "{what}");
                // The whole routed envelope straight to the recipient is not for it.
                assert!(
                    didcomm::unpack(packed, &res, &recipient.ring, &UnpackOptions::default()).await.is_err(),
                    "{what}: the recipient opened the mediator's layer"
                );
            }
        }
    }
}

/// We pack with the default options (which forward); Python unwraps as the mediator
/// with `unpack_forward`, then unpacks as the recipient.
#[tokio::test]
async fn forward_we_pack_python_mediates_and_receives() {
    let mut o = Oracle::start();
    let Routed { mediator, mediator_kid, recipient } = routed();
    for sender in [party(Method::Key, "alice"), party(Method::Peer, "alice")] {
        let all = [&sender, &recipient, &mediator];
        let res = resolver(&all);
        for case in FORWARD_CASES {
            let what = format!("forward (we pack) {} from {}", case.name, sender.label);
            let msg = sample_message(&case, &sender.did, &recipient.did);
            let opts =
                PackOptions { protect_sender: case.protect_sender, anon_enc: case.anon_enc, ..PackOptions::default() };
            assert!(opts.forward, "forwarding is the default");
            let p = didcomm::pack_encrypted(
                &msg,
                &recipient.did,
                case.auth.then_some(sender.did.as_str()),
                case.sign.then_some(sender.did.as_str()),
                &res,
                &sender.ring,
                &opts,
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                p.service,
                Some(ServiceTarget { uri: MEDIATOR_URI.into(), routing_keys: vec![mediator_kid.clone()] }),
                "{what}"
            );

            let f = o.ok(json!({
                "op": "unpack_forward", "packed": p.message,
                "dids": dids(&all), "secrets": mediator.secrets,
            }));
            assert_eq!(f["next"], recipient.did, "{what}: next hop");
            assert_eq!(f["metadata"]["encrypted_to"], json!([mediator_kid]), "{what}");
            // Python's plain unpack as the mediator stops at the forward message
            // (it holds no key for `next`).
            let as_mediator = o.ok(json!({
                "op": "unpack", "packed": p.message,
                "dids": dids(&all), "secrets": mediator.secrets,
            }));
            assert_eq!(as_mediator["message"]["type"], didcomm::FORWARD, "{what}: {as_mediator}");
            assert_eq!(as_mediator["message"]["body"]["next"], recipient.did, "{what}");
            assert_eq!(as_mediator["metadata"]["re_wrapped_in_forward"], false);

            let inner = f["forwarded_packed"].as_str().expect("forwarded_packed");
            let resp = o.ok(json!({
                "op": "unpack", "packed": inner,
                "dids": dids(&all), "secrets": recipient.secrets,
            }));
            assert_eq!(resp["message"], msg.to_value(), "{what}: plaintext");
            let m = &resp["metadata"];
            check_python_meta(&what, m, &case.expect("EdDSA"));
            assert_eq!(m["encrypted_from"].as_str(), p.from_kid.as_deref(), "{what}");
            assert_eq!(m["sign_from"].as_str(), p.sign_by_kid.as_deref(), "{what}");
            assert_eq!(m["re_wrapped_in_forward"], false, "{what}");

            // The mediator's secrets do not open the inner envelope in Python either.
            let e = o.err(json!({
                "op": "unpack", "packed": inner,
                "dids": dids(&all), "secrets": mediator.secrets,
            }));
            assert!(!e.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// the spec's Alice and Bob on P-256 and P-521

fn spec_party(keys: &Value, who: &str) -> Party {
    let doc = DidDocument::from_value(&keys[who]["did_doc"]).expect("spec DID doc parses");
    let jwks: Vec<Jwk> = serde_json::from_value(keys[who]["secrets"].clone()).expect("spec JWKs");
    Party::from_jwks(who, &doc, &jwks)
}

/// We pack with the published Alice/Bob keys (DIDComm v2.1 Appendix A/B) on P-256
/// and P-521: anoncrypt and authcrypt for one key and for all of Bob's keys on the
/// curve, and an ES256 signature. didcomm-python 0.3.2 (Authlib 1.x ECDH-ES/1PU)
/// supports both curves for encryption, so every case must unpack there, and Python's
/// own packing on those curves must unpack here. Python cannot *sign* with P-521
/// (`extract_sign_alg` knows only Ed25519, P-256 and secp256k1), and neither can the
/// spec's Alice (she has no P-521 authentication key), so there is no ES512 case.
#[tokio::test]
async fn spec_keys_p256_and_p521() {
    let path = python::repo_root().join("specs/vectors/didcomm/keys.json");
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            .expect("keys.json");
    let alice = spec_party(&keys, "alice");
    let bob = spec_party(&keys, "bob");
    let res = resolver(&[&alice, &bob]);
    let mut o = Oracle::start();
    let docs = dids(&[&alice, &bob]);

    for curve in ["p256", "p521"] {
        let alice_kid = format!("{}#key-{curve}-1", alice.did);
        let bob_kids: Vec<String> = (1..=2).map(|n| format!("{}#key-{curve}-{n}", bob.did)).collect();
        // (to, from): one key anoncrypt, one key authcrypt, all of Bob's keys on the
        // curve authcrypt (our sender key picks the curve).
        let variants: [(String, Option<String>, ContentEnc); 4] = [
            (bob_kids[0].clone(), None, ContentEnc::A256CbcHs512),
            (bob_kids[1].clone(), None, ContentEnc::Xc20p),
            (bob_kids[0].clone(), Some(alice_kid.clone()), ContentEnc::A256CbcHs512),
            (bob.did.clone(), Some(alice_kid.clone()), ContentEnc::A256Gcm),
        ];
        for (to, from, enc) in variants {
            let case = Case {
                name: "spec keys",
                sign: false,
                auth: from.is_some(),
                encrypt: true,
                protect_sender: false,
                anon_enc: enc,
            };
            let what = format!("{curve}: to {to} from {from:?} ({})", enc.name());
            let msg = sample_message(&case, &alice.did, &bob.did);
            let opts = PackOptions { anon_enc: enc, ..PackOptions::default() };
            let p = didcomm::pack_encrypted(&msg, &to, from.as_deref(), None, &res, &alice.ring, &opts)
                .await
                .unwrap_or_else(|e| panic!("{what}: we cannot pack: {e}"));
            let want_to: Vec<String> = if to == bob.did { bob_kids.clone() } else { vec![to.clone()] };
            assert_eq!(p.to_kids, want_to, "{what}");
            let jwe: Value = serde_json::from_str(&p.message).expect("JSON");
            let crv = match curve {
                "p256" => "P-256",
                _ => "P-521",
            };
            let protected: Value = serde_json::from_slice(
                &did_core::jose::b64d(jwe["protected"].as_str().expect("protected"), "p").expect("b64"),
            )
            .expect("header");
            assert_eq!(protected["epk"]["crv"], crv, "{what}");

            let resp = o.ok(json!({
                "op": "unpack", "packed": p.message, "dids": docs, "secrets": bob.secrets,
                "expect_decrypt_by_all_keys": true,
            }));
            assert_eq!(resp["message"], msg.to_value(), "{what}: plaintext");
            let m = &resp["metadata"];
            check_python_meta(&what, m, &case.expect("EdDSA"));
            assert_eq!(m["encrypted_from"].as_str(), from.as_deref(), "{what}");
            let mut got_to = strings(&m["encrypted_to"]);
            got_to.sort();
            assert_eq!(got_to, want_to, "{what}: Python decrypts for every key");

            // And the other way: Python packs on the same curve, we unpack.
            let resp = o.ok(json!({
                "op": "pack_encrypted", "message": msg.to_value(), "to": to, "from": from,
                "enc_alg_anon": enc.name(), "forward": false, "dids": docs, "secrets": alice.secrets,
            }));
            assert_eq!(strings(&resp["metadata"]["to_kids"]), want_to, "{what}");
            let text = resp["packed"].as_str().expect("packed");
            let (got, meta) = our_unpack(&what, text, &res, &bob.ring).await;
            assert_eq!(got, msg, "{what}: plaintext");
            check_our_meta(&what, &meta, &case.expect("EdDSA"));
            assert_eq!(meta.encrypted_from_kid, from, "{what}");
        }
    }

    // ES256: Alice's P-256 authentication key (#key-2), alone and inside authcrypt.
    for (case, from) in [
        (case("signed ES256", true, false, false, false), None),
        (case("signed ES256 + authcrypt P-256", true, true, true, false), Some(format!("{}#key-p256-1", alice.did))),
    ] {
        let what = case.name;
        let sign_kid = format!("{}#key-2", alice.did);
        let msg = sample_message(&case, &alice.did, &bob.did);
        let text = if case.encrypt {
            didcomm::pack_encrypted(
                &msg,
                &bob.did,
                from.as_deref(),
                Some(&sign_kid),
                &res,
                &alice.ring,
                &PackOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .message
        } else {
            didcomm::pack_signed(&msg, &sign_kid, &res, &alice.ring).await.unwrap_or_else(|e| panic!("{what}: {e}")).0
        };
        let resp = o.ok(json!({
            "op": "unpack", "packed": text, "dids": docs, "secrets": bob.secrets,
        }));
        assert_eq!(resp["message"], msg.to_value(), "{what}");
        check_python_meta(what, &resp["metadata"], &case.expect("ES256"));
        assert_eq!(resp["metadata"]["sign_from"], sign_kid, "{what}");

        let resp = o.ok(json!({
            "op": if case.encrypt { "pack_encrypted" } else { "pack_signed" },
            "message": msg.to_value(), "to": bob.did, "from": from, "sign_by": sign_kid,
            "forward": false, "dids": docs, "secrets": alice.secrets,
        }));
        let (got, meta) = our_unpack(what, resp["packed"].as_str().expect("packed"), &res, &bob.ring).await;
        assert_eq!(got, msg, "{what}");
        check_our_meta(what, &meta, &case.expect("ES256"));
        assert_eq!(meta.sign_from.as_deref(), Some(sign_kid.as_str()), "{what}");
    }

    // ES512 (P-521 signatures) is where didcomm-python 0.3.2 stops: its
    // `extract_sign_alg` knows only EdDSA, ES256 and ES256K. Assert that it says so
    // (both ways) rather than leaving the case out silently. We sign and verify ES512.
    let sk = SecretKey::generate(KeyKind::P521);
    let did = key::did_for(&sk.public_key());
    let doc = key::resolve(&did).expect("a P-521 did:key");
    let kid = doc.methods(Relationship::Authentication).next().expect("an authentication key").id.clone();
    let carol = Party::from_jwks("carol(P-521 did:key)", &doc, &[Jwk::from_secret(&sk).with_kid(&kid)]);
    let res = resolver(&[&carol, &bob]);
    let case = case("signed ES512", true, false, false, false);
    let msg = sample_message(&case, &carol.did, &bob.did);
    let (text, used) = didcomm::pack_signed(&msg, &carol.did, &res, &carol.ring).await.expect("we sign ES512");
    assert_eq!(used, kid);
    let (got, meta) = our_unpack("ES512", &text, &res, &bob.ring).await;
    assert_eq!(got, msg);
    assert_eq!(meta.sign_alg.as_deref(), Some("ES512"));
    let docs = dids(&[&carol, &bob]);
    let e = o.err(json!({"op": "unpack", "packed": text, "dids": docs}));
    assert!(e.contains("P-521"), "Python's refusal of ES512: {e}");
    let e = o.err(json!({
        "op": "pack_signed", "message": msg.to_value(), "sign_by": carol.did,
        "dids": docs, "secrets": carol.secrets,
    }));
    assert!(e.contains("P-521"), "Python's refusal to sign ES512: {e}");
}
