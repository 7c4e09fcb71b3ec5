//! did:key (W3C CCG did:key spec): the DID is the multibase public key; Ed25519
//! DIDs get a derived X25519 key-agreement method.

use serde_json::json;

use crate::did::Did;
use crate::doc::{DidDocument, KeyFormat, Relationship, VerificationMethod};
use crate::error::{Error, Result};
use crate::keys::{KeyKind, PublicKey};

/// The did:key for a public key.
pub fn did_for(key: &PublicKey) -> Did {
    Did::parse(&format!("did:key:{}", key.to_multibase())).expect("a multibase key is a valid method-specific id")
}

/// Resolves a did:key (the document is derived from the DID alone).
pub fn resolve(did: &Did) -> Result<DidDocument> {
    if did.method() != "key" {
        return Err(Error::UnsupportedMethod(did.method().to_owned()));
    }
    let mb = did.method_specific_id();
    if !mb.starts_with('z') {
        return Err(Error::Resolution {
            did: did.to_string(),
            reason: "did:key must be base58btc multibase (start with `z`)".into(),
        });
    }
    document_for(did, mb)
}

/// The did:key document for the multibase key `mb`, with ids under `did`
/// (shared with did:peer:0, whose document is the same).
pub(crate) fn document_for(did: &Did, mb: &str) -> Result<DidDocument> {
    let key =
        PublicKey::from_multibase(mb).map_err(|e| Error::Resolution { did: did.to_string(), reason: e.to_string() })?;
    let mut doc = DidDocument::new(did.clone());
    let vm = |key: PublicKey| {
        let type_ = match key.kind() {
            KeyKind::Ed25519 => "Ed25519VerificationKey2020",
            KeyKind::X25519 => "X25519KeyAgreementKey2020",
            _ => "Multikey",
        };
        VerificationMethod {
            id: format!("{did}#{}", key.to_multibase()),
            type_: type_.into(),
            controller: did.to_string(),
            key,
            format: KeyFormat::Multibase,
        }
    };
    use Relationship::*;
    match key.kind() {
        KeyKind::Ed25519 => {
            doc.context = json!([
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/suites/ed25519-2020/v1",
                "https://w3id.org/security/suites/x25519-2020/v1"
            ]);
            let x = key.ed25519_to_x25519()?;
            doc.add_method(vm(key), &[Authentication, AssertionMethod, CapabilityDelegation, CapabilityInvocation])?;
            doc.add_method(vm(x), &[KeyAgreement])?;
        }
        KeyKind::X25519 => {
            doc.context = json!(["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/x25519-2020/v1"]);
            doc.add_method(vm(key), &[KeyAgreement])?;
        }
        _ => {
            doc.add_method(
                vm(key),
                &[Authentication, AssertionMethod, CapabilityDelegation, CapabilityInvocation, KeyAgreement],
            )?;
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_document() {
        let did = Did::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").unwrap();
        let doc = resolve(&did).unwrap();
        let ka: Vec<_> = doc.methods(Relationship::KeyAgreement).collect();
        assert_eq!(ka.len(), 1);
        assert_eq!(ka[0].id, format!("{did}#z6LSj72tK8brWgZja8NLRwPigth2T9QRiG1uH9oKZuKjdh9p"));
    }

    #[test]
    fn rejects_garbage() {
        for s in ["did:key:zzzz", "did:key:z6Mk", "did:key:abc"] {
            assert!(resolve(&Did::parse(s).unwrap()).is_err(), "{s}");
        }
    }
}
