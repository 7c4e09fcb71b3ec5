//! did:peer numalgo 0 and 2, current spec (key ids `#key-N` in DID order,
//! services `#service`, `#service-1`, …, abbreviated service encoding).

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::key;
use crate::did::Did;
use crate::doc::{DidCommEndpoint, DidDocument, Relationship, Service, VerificationMethod};
use crate::error::{Error, Result};
use crate::jose::{b64d, b64e, to_json_string};
use crate::keys::{KeyKind, PublicKey};

/// Builds a did:peer:2 from signing (Ed25519) keys, key-agreement (X25519) keys and
/// DIDComm endpoints. Elements are written V…, E…, S… as in the spec's example.
pub fn create(signing: &[PublicKey], agreement: &[PublicKey], endpoints: &[DidCommEndpoint]) -> Result<Did> {
    let mut s = String::from("did:peer:2");
    for k in signing {
        if k.kind() == KeyKind::X25519 {
            return Err(Error::key("an X25519 key cannot be a verification key"));
        }
        s.push_str(".V");
        s.push_str(&k.to_multibase());
    }
    for k in agreement {
        if !k.kind().is_key_agreement() {
            return Err(Error::key(format!("a {} key cannot be a key-agreement key", k.kind().crv())));
        }
        s.push_str(".E");
        s.push_str(&k.to_multibase());
    }
    for e in endpoints {
        // Written by hand to keep the spec's member order: t, s{uri, a, r}.
        let mut svc = format!(r#"{{"t":"dm","s":{{"uri":{}"#, to_json_string(&e.uri)?);
        if !e.accept.is_empty() {
            svc.push_str(&format!(r#","a":{}"#, to_json_string(&e.accept)?));
        }
        if !e.routing_keys.is_empty() {
            svc.push_str(&format!(r#","r":{}"#, to_json_string(&e.routing_keys)?));
        }
        svc.push_str("}}");
        s.push_str(".S");
        s.push_str(&b64e(svc));
    }
    Did::parse(&s)
}

/// Resolves did:peer:0 and did:peer:2.
pub fn resolve(did: &Did) -> Result<DidDocument> {
    let msid = did.method_specific_id();
    let fail = |reason: String| Error::Resolution { did: crate::error::clip(did.as_str()), reason };
    if let Some(mb) = msid.strip_prefix('0') {
        return key::document_for(did, mb);
    }
    let Some(rest) = msid.strip_prefix("2.") else {
        return Err(fail("only did:peer numalgo 0 and 2 are supported".into()));
    };
    let mut doc = DidDocument::new(did.clone());
    let (mut nkeys, mut nservices) = (0usize, 0usize);
    for element in rest.split('.') {
        let mut chars = element.chars();
        let purpose = chars.next().ok_or_else(|| fail("empty element".into()))?;
        let value = chars.as_str();
        let rel = match purpose {
            'A' => Some(Relationship::AssertionMethod),
            'E' => Some(Relationship::KeyAgreement),
            'V' => Some(Relationship::Authentication),
            'I' => Some(Relationship::CapabilityInvocation),
            'D' => Some(Relationship::CapabilityDelegation),
            'S' => None,
            other => return Err(fail(format!("unknown purpose code `{other}`"))),
        };
        match rel {
            Some(rel) => {
                let key = PublicKey::from_multibase(value).map_err(|e| fail(format!("key {}: {e}", nkeys + 1)))?;
                let ok = match rel {
                    Relationship::KeyAgreement => key.kind().is_key_agreement(),
                    _ => key.kind() != KeyKind::X25519,
                };
                if !ok {
                    return Err(fail(format!("a {} key cannot serve as {}", key.kind().crv(), rel.name())));
                }
                nkeys += 1;
                let vm = VerificationMethod::multikey(format!("{did}#key-{nkeys}"), did, key);
                doc.add_method(vm, &[rel])?;
            }
            None => {
                let raw = b64d(value, "service")?;
                let abbreviated: Value =
                    serde_json::from_slice(&raw).map_err(|e| fail(format!("service is not JSON: {e}")))?;
                let mut svc = expand(abbreviated);
                let obj = svc.as_object_mut().ok_or_else(|| fail("service is not an object".into()))?;
                if !obj.contains_key("id") {
                    let id = if nservices == 0 { "#service".to_owned() } else { format!("#service-{nservices}") };
                    obj.insert("id".into(), id.into());
                }
                nservices += 1;
                let parsed = match Service::parse_value(&svc, did)? {
                    Service::Other(mut v) => {
                        // Keep ids absolute everywhere.
                        if let Some(id) = v.get("id").and_then(Value::as_str).filter(|i| i.starts_with('#')) {
                            v["id"] = format!("{did}{id}").into();
                        }
                        Service::Other(v)
                    }
                    s => s,
                };
                doc.service.push(parsed);
            }
        }
    }
    doc.also_known_as.push(peer3(did)?.to_string());
    Ok(doc)
}

/// The did:peer:3 short form of a did:peer:2 (SHA-256 multihash of the part after `did:peer:2`).
pub fn peer3(did: &Did) -> Result<Did> {
    let tail = did
        .method_specific_id()
        .strip_prefix('2')
        .ok_or_else(|| Error::Protocol("did:peer:3 is defined only for did:peer:2".into()))?;
    let mut mh = vec![0x12, 0x20];
    mh.extend_from_slice(&Sha256::digest(tail.as_bytes()));
    Did::parse(&format!("did:peer:3{}", multibase::encode(multibase::Base::Base58Btc, mh)))
}

/// Expands the did:peer:2 service abbreviations recursively; `dm` is expanded only
/// as a `type` value.
fn expand(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let k = match k.as_str() {
                        "t" => "type".to_owned(),
                        "s" => "serviceEndpoint".to_owned(),
                        "r" => "routingKeys".to_owned(),
                        "a" => "accept".to_owned(),
                        _ => k,
                    };
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) if t == "dm" => Value::String("DIDCommMessaging".into()),
                        (_, v) => expand(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(expand).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    #[test]
    fn create_resolve_roundtrip() {
        let ed = SecretKey::generate(KeyKind::Ed25519).public_key();
        let x = SecretKey::generate(KeyKind::X25519).public_key();
        let ep = DidCommEndpoint {
            uri: "ws://127.0.0.1:9/ws".into(),
            accept: vec!["didcomm/v2".into()],
            routing_keys: vec!["did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc".into()],
        };
        let did = create(std::slice::from_ref(&ed), std::slice::from_ref(&x), std::slice::from_ref(&ep)).unwrap();
        let doc = resolve(&did).unwrap();
        assert_eq!(doc.method(&format!("{did}#key-1")).unwrap().key, ed);
        assert_eq!(doc.methods(Relationship::KeyAgreement).next().unwrap().key, x);
        assert_eq!(doc.didcomm_endpoints().next().unwrap(), &ep);
        assert!(matches!(&doc.service[0], Service::DidComm { id, .. } if *id == format!("{did}#service")));
    }

    #[test]
    fn rejects_bad_elements() {
        let x = SecretKey::generate(KeyKind::X25519).public_key().to_multibase();
        let ed = SecretKey::generate(KeyKind::Ed25519).public_key().to_multibase();
        for s in [
            format!("did:peer:2.Q{x}"),
            format!("did:peer:2.V{x}"),
            format!("did:peer:2.E{ed}"),
            "did:peer:2.Sbm90LWpzb24".to_owned(),
            "did:peer:1zQmZ".to_owned(),
            format!("did:peer:2.E{x}..V{ed}"),
        ] {
            assert!(resolve(&Did::parse(&s).unwrap()).is_err(), "{s}");
        }
    }
}
