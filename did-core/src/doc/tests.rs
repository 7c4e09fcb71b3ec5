use super::*;
use crate::keys::KeyKind;

#[test]
fn accepts_every_vm_and_service_shape() {
    let doc = DidDocument::from_json(
        r##"{
        "@context": "https://www.w3.org/ns/did/v1",
        "id": "did:example:bob",
        "verificationMethod": [
            {"id": "#k1", "type": "Multikey", "controller": "did:example:bob",
             "publicKeyMultibase": "z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc"},
            {"id": "did:example:bob#k2", "type": "JsonWebKey2020", "controller": "did:example:bob",
             "publicKeyJwk": {"kty": "OKP", "crv": "X25519", "x": "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08"}},
            {"id": "#k3", "type": "Ed25519VerificationKey2018", "controller": "did:example:bob",
             "publicKeyBase58": "B12NYF8RrR3h41TDCTJojY59usg3mbtbjnFs7Eud1Y6u"},
            {"id": "#rsa", "type": "RsaVerificationKey2018", "controller": "did:example:bob",
             "publicKeyPem": "-----BEGIN PUBLIC KEY..."}
        ],
        "authentication": ["#k3"],
        "keyAgreement": [
            "#k1", "did:example:bob#k2",
            {"id": "#k4", "type": "X25519KeyAgreementKey2019", "controller": "did:example:bob",
             "publicKeyBase58": "JhNWeSVLMYccCk7iopQW4guaSJTojqpMEELgSLhKwRr"}
        ],
        "service": [
            {"id": "#didcomm", "type": "DIDCommMessaging",
             "serviceEndpoint": {"uri": "https://m.example/", "accept": ["didcomm/v2"], "routingKeys": ["did:example:m#key-1"]}},
            {"id": "#old", "type": "DIDCommMessaging", "serviceEndpoint": "ws://old.example",
             "accept": ["didcomm/v2"], "routingKeys": ["did:example:m2#key-1"]},
            {"id": "#arr", "type": "DIDCommMessaging", "serviceEndpoint": [{"uri": "did:example:m"}]},
            {"id": "#lw", "type": "LinkedDomains", "serviceEndpoint": "https://bob.example"}
        ]
    }"##,
    )
    .unwrap();
    assert_eq!(doc.verification_method.len(), 4, "embedded k4 added");
    assert_eq!(doc.other_methods.len(), 1, "RSA kept verbatim");
    let ka: Vec<_> = doc.methods(Relationship::KeyAgreement).map(|m| m.id.as_str()).collect();
    assert_eq!(ka, ["did:example:bob#k1", "did:example:bob#k2", "did:example:bob#k4"]);
    assert!(doc.methods(Relationship::KeyAgreement).all(|m| m.key.kind() == KeyKind::X25519));
    assert_eq!(doc.methods(Relationship::Authentication).next().unwrap().key.kind(), KeyKind::Ed25519);
    let eps: Vec<_> = doc.didcomm_endpoints().collect();
    assert_eq!(eps.len(), 3);
    assert_eq!(eps[1].uri, "ws://old.example");
    assert_eq!(eps[1].routing_keys, ["did:example:m2#key-1"]);
    assert_eq!(eps[2].uri, "did:example:m");
    assert!(matches!(doc.service[3], Service::Other(_)));

    // Emitting and re-parsing gives the same document, services in the v2.1 shape.
    let v = doc.to_value();
    assert_eq!(v["service"][1]["serviceEndpoint"]["uri"], "ws://old.example");
    assert_eq!(DidDocument::from_value(&v).unwrap(), doc);
}

#[test]
fn rejects_broken_documents() {
    for (bad, why) in [
        (r##"[]"##, "not an object"),
        (r##"{"id": "nope"}"##, "bad id"),
        (
            r##"{"id": "did:ex:a", "verificationMethod": [{"id": "#k", "type": "Multikey", "publicKeyMultibase": "z0OIl"}]}"##,
            "bad multibase",
        ),
        (r##"{"id": "did:ex:a", "verificationMethod": {"id": "#k"}}"##, "not a list"),
        (r##"{"id": "did:ex:a", "service": [{"id": "#s", "type": "DIDCommMessaging"}]}"##, "no endpoint"),
        (
            r##"{"id": "did:ex:a", "verificationMethod": [{"id": "#k", "type": "JsonWebKey2020",
                "publicKeyJwk": {"kty": "OKP", "crv": "X25519", "x": "AAAA", "d": "AAAA"}}]}"##,
            "private key",
        ),
        (
            r##"{"id": "did:ex:a", "verificationMethod": [{"id": "#k", "type": "X25519KeyAgreementKey2020",
                "publicKeyMultibase": "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"}]}"##,
            "type/key mismatch",
        ),
    ] {
        assert!(DidDocument::from_json(bad).is_err(), "{why}");
    }
}

#[test]
fn duplicate_ids_with_different_keys_rejected() {
    let doc = r##"{"id": "did:ex:a",
        "verificationMethod": [{"id": "#k", "type": "Multikey", "publicKeyMultibase": "z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc"}],
        "keyAgreement": [{"id": "#k", "type": "Multikey", "publicKeyMultibase": "z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F"}]}"##;
    assert!(DidDocument::from_json(doc).is_err());
}

/// Found by fuzz/did_document: 256 undecodable methods plus one embedded in a
/// relationship were accepted, but `to_value` wrote all 257 into `verificationMethod`,
/// which `from_value` then refused. The limit now counts both kinds of method.
#[test]
fn method_limit_counts_verbatim_methods_too() {
    let others: Vec<Value> = (0..MAX_ENTRIES).map(|i| json!({"id": format!("#o{i}"), "type": "X"})).collect();
    let embedded = json!({"id": "#k", "type": "Multikey",
        "publicKeyMultibase": "z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc"});
    let too_many = json!({"id": "did:example:a", "verificationMethod": others,
        "authentication": [embedded]});
    assert!(DidDocument::from_value(&too_many).is_err());

    let mut others = others;
    others.pop();
    let at_limit = json!({"id": "did:example:a", "verificationMethod": others,
        "authentication": [embedded]});
    let doc = DidDocument::from_value(&at_limit).unwrap();
    assert_eq!(DidDocument::from_value(&doc.to_value()).unwrap(), doc);
}
