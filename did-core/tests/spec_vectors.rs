//! The published test vectors under `specs/vectors/`: DIDComm v2.1 Appendix C
//! messages, did:key test vectors and examples, did:peer:2 examples.

use std::path::PathBuf;

use did_core::didcomm::{self, Message, PackOptions, UnpackOptions};
use did_core::jose::content::ContentEnc;
use did_core::method::{key, peer};
use did_core::{Did, DidDocument, Jwk, KeyRing, PublicKey, Relationship, Resolver, SecretKey};
use serde_json::Value;

fn vectors(path: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors").join(path);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

struct Parties {
    resolver: Resolver,
    alice: KeyRing,
    bob: KeyRing,
}

fn parties() -> Parties {
    let keys = vectors("didcomm/keys.json");
    let resolver = Resolver::default();
    let ring = |who: &str| {
        resolver.insert(DidDocument::from_value(&keys[who]["did_doc"]).unwrap());
        let jwks: Vec<Jwk> = serde_json::from_value(keys[who]["secrets"].clone()).unwrap();
        let mut r = KeyRing::new();
        r.add_jwks(&jwks).unwrap();
        r
    };
    let alice = ring("alice");
    let bob = ring("bob");
    Parties { resolver, alice, bob }
}

#[tokio::test]
async fn didcomm_appendix_c_messages_unpack() {
    let p = parties();
    let cases = vectors("didcomm/messages.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let packed = case["message"].to_string();
        let expected = &case["expected"];
        if case["kind"] == "plaintext" {
            let msg = Message::from_value(case["message"].clone()).unwrap();
            assert_eq!(msg.to_value()["body"], case["expected_plaintext"]["body"], "{name}");
            continue;
        }
        let (msg, meta) = didcomm::unpack(&packed, &p.resolver, &p.bob, &UnpackOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut want = case["expected_plaintext"].clone();
        want.as_object_mut().unwrap().insert("typ".into(), "application/didcomm-plain+json".into());
        assert_eq!(msg.to_value(), want, "{name}: plaintext");
        match case["kind"].as_str().unwrap() {
            "signed" => {
                assert!(meta.non_repudiation && !meta.encrypted, "{name}");
                assert_eq!(meta.sign_from.as_deref(), expected["sign_kid"].as_str(), "{name}");
                assert_eq!(meta.sign_alg.as_deref(), expected["sign_alg"].as_str(), "{name}");
            }
            "anoncrypt" => {
                assert!(meta.encrypted && meta.anonymous_sender && !meta.authenticated, "{name}");
                let alg = format!("{}/{}", expected["alg"].as_str().unwrap(), expected["enc"].as_str().unwrap());
                assert_eq!(meta.enc_alg_anon.as_deref(), Some(alg.as_str()), "{name}");
            }
            "authcrypt" => {
                assert!(meta.encrypted && meta.authenticated, "{name}");
                assert_eq!(meta.encrypted_from_kid.as_deref(), expected["sender_kid"].as_str(), "{name}");
                assert_eq!(meta.sender.as_deref(), Some("did:example:alice"), "{name}");
                assert_eq!(meta.sender_protected, expected["sender_protected"] == true, "{name}");
                assert_eq!(meta.non_repudiation, expected.get("sign_kid").is_some(), "{name}");
            }
            other => panic!("unknown kind {other}"),
        }
        for kid in &meta.encrypted_to_kids {
            assert!(expected["recipient_kids"].as_array().unwrap().iter().any(|k| k == kid.as_str()), "{name}: {kid}");
        }
    }
}

/// Packing with the appendix keys on every curve the parties share, then unpacking.
#[tokio::test]
async fn pack_with_appendix_keys_on_every_curve() {
    let p = parties();
    let msg = Message::new(
        "https://example.com/protocols/lets_do_lunch/1.0/proposal",
        serde_json::json!({"messagespecificattribute": "and its value"}),
    )
    .from("did:example:alice")
    .to("did:example:bob");
    for (to, from) in [
        ("did:example:bob#key-x25519-1", Some("did:example:alice#key-x25519-1")),
        ("did:example:bob#key-p256-2", Some("did:example:alice#key-p256-1")),
        ("did:example:bob#key-p521-1", Some("did:example:alice#key-p521-1")),
        ("did:example:bob#key-p384-1", None),
        ("did:example:bob", Some("did:example:alice")),
        ("did:example:bob", None),
    ] {
        for enc in [ContentEnc::A256CbcHs512, ContentEnc::A256Gcm, ContentEnc::Xc20p] {
            let opts = PackOptions { anon_enc: enc, protect_sender: from.is_some(), ..Default::default() };
            let packed =
                didcomm::pack_encrypted(&msg, to, from, Some("did:example:alice"), &p.resolver, &p.alice, &opts)
                    .await
                    .unwrap_or_else(|e| panic!("{to} {from:?}: {e}"));
            let (got, meta) = didcomm::unpack(&packed.message, &p.resolver, &p.bob, &Default::default()).await.unwrap();
            assert_eq!(got, msg);
            assert_eq!(meta.encrypted_from_kid.is_some(), from.is_some());
            assert!(meta.authenticated, "signed, so authenticated either way");
            assert!(meta.non_repudiation && meta.anonymous_sender);
        }
    }
}

#[test]
fn did_key_spec_example_document() {
    let ex = vectors("did-key/index-html-examples.json");
    let example = ex["examples"].as_array().unwrap().iter().find(|e| e.get("document").is_some()).unwrap();
    let published = DidDocument::from_value(&example["document"]).unwrap();
    let ours = key::resolve(&published.id).unwrap();
    assert_eq!(ours, published);
}

/// Every published did:key vector: same ids, same keys, same relationships; private keys derive.
#[test]
fn did_key_test_vectors() {
    let mut checked = 0;
    for file in ["ed25519-x25519.json", "x25519.json", "nist-curves.json", "secp256k1.json"] {
        let v = vectors(&format!("did-key/{file}"));
        let entries: Vec<(&String, &Value)> = match v.get("didDocument") {
            Some(Value::Object(m)) => m.iter().collect(),
            _ => v.as_object().unwrap().iter().collect(),
        };
        for (did, entry) in entries {
            let doc_json = entry.get("didDocument").unwrap_or(entry);
            let Ok(published) = DidDocument::from_value(doc_json) else {
                continue;
            };
            let ours = key::resolve(&Did::parse(did).unwrap()).unwrap_or_else(|e| panic!("{did}: {e}"));
            for vm in &published.verification_method {
                assert_eq!(ours.method(&vm.id).map(|m| &m.key), Some(&vm.key), "{did}: {}", vm.id);
            }
            for rel in Relationship::ALL {
                let theirs: Vec<_> = published.methods(rel).map(|m| m.id.clone()).collect();
                if !theirs.is_empty() {
                    assert_eq!(
                        ours.methods(rel).map(|m| m.id.clone()).collect::<Vec<_>>(),
                        theirs,
                        "{did} {}",
                        rel.name()
                    );
                }
            }
            if let Some(seed) = entry.get("seed").and_then(Value::as_str).filter(|_| file.starts_with("ed25519")) {
                let seed: Vec<u8> =
                    (0..seed.len()).step_by(2).map(|i| u8::from_str_radix(&seed[i..i + 2], 16).unwrap()).collect();
                let sk = SecretKey::from_bytes(did_core::KeyKind::Ed25519, &seed).unwrap();
                assert_eq!(key::did_for(&sk.public_key()).as_str(), did);
                if let Some(x_priv) = entry["keyAgreementKeyPair"]["privateKeyBase58"].as_str() {
                    let x = sk.ed25519_to_x25519().unwrap();
                    assert_eq!(bs58::encode(&*x.to_bytes()).into_string(), x_priv, "{did}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} did:key vectors were checked");
}

#[test]
fn did_peer_2_spec_example() {
    let v = vectors("did-peer/peer2.json");
    let ex = &v["peer2"][0];
    let did = Did::parse(ex["did"].as_str().unwrap()).unwrap();
    let published = DidDocument::from_value(&ex["document"]).unwrap();
    let ours = peer::resolve(&did).unwrap();
    assert_eq!(ours, published);
    // and the second example resolves with key-1 being its first (E) key
    let did2 = Did::parse(v["peer2"][1]["did"].as_str().unwrap()).unwrap();
    let doc2 = peer::resolve(&did2).unwrap();
    assert_eq!(doc2.methods(Relationship::KeyAgreement).next().unwrap().id, format!("{did2}#key-1"));
    // did:peer:0 is did:key's document under another DID
    let p0 = Did::parse(v["peer0"][0]["did"].as_str().unwrap()).unwrap();
    let d0 = peer::resolve(&p0).unwrap();
    let k = PublicKey::from_multibase(&p0.method_specific_id()[1..]).unwrap();
    assert_eq!(d0.methods(Relationship::Authentication).next().unwrap().key, k);
}

#[test]
fn did_peer_2_creation_matches_spec_encoding() {
    let v = vectors("did-peer/peer2.json");
    let ex = &v["peer2"][0];
    let doc = DidDocument::from_value(&ex["document"]).unwrap();
    let signing: Vec<PublicKey> = doc.methods(Relationship::Authentication).map(|m| m.key.clone()).collect();
    let agreement: Vec<PublicKey> = doc.methods(Relationship::KeyAgreement).map(|m| m.key.clone()).collect();
    let endpoints: Vec<_> = doc.didcomm_endpoints().cloned().collect();
    assert_eq!(peer::create(&signing, &agreement, &endpoints).unwrap().as_str(), ex["did"].as_str().unwrap());
}

fn hex32(v: &Value) -> [u8; 32] {
    let s = v.as_str().unwrap();
    let bytes: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    bytes.try_into().unwrap()
}

/// RFC 7748 §5.2 and §6.1 through `SecretKey` (AWS-LC), with curve25519-dalek as a second
/// opinion on the same inputs.
#[test]
fn x25519_rfc7748_vectors() {
    use did_core::KeyKind;
    let v = vectors("x25519/rfc7748.json");
    for case in v["functions"].as_array().unwrap() {
        let (scalar, u, output) = (hex32(&case["scalar"]), hex32(&case["u"]), hex32(&case["output"]));
        let sk = SecretKey::from_bytes(KeyKind::X25519, &scalar).unwrap();
        let pk = PublicKey::from_bytes(KeyKind::X25519, &u).unwrap();
        assert_eq!(*sk.ecdh(&pk).unwrap(), output);
        assert_eq!(x25519_dalek::x25519(scalar, u), output);
    }
    let dh = &v["diffie_hellman"];
    let alice = SecretKey::from_bytes(KeyKind::X25519, &hex32(&dh["alice_private"])).unwrap();
    let bob = SecretKey::from_bytes(KeyKind::X25519, &hex32(&dh["bob_private"])).unwrap();
    assert_eq!(alice.public_key().to_bytes(), hex32(&dh["alice_public"]));
    assert_eq!(bob.public_key().to_bytes(), hex32(&dh["bob_public"]));
    assert_eq!(*alice.ecdh(&bob.public_key()).unwrap(), hex32(&dh["shared"]));
    assert_eq!(*bob.ecdh(&alice.public_key()).unwrap(), hex32(&dh["shared"]));
    assert_eq!(&alice.to_bytes()[..], &hex32(&dh["alice_private"]), "the bytes come back unclamped");
}
