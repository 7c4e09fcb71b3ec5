//! Private key material: identities (a DID plus its private keys) and lookup by key id.

use std::collections::HashMap;

use crate::did::{Did, DidUrl};
use crate::doc::{DidCommEndpoint, DidDocument, Relationship};
use crate::error::{clip, Error, Result};
use crate::jwk::Jwk;
use crate::keys::{KeyKind, PublicKey, SecretKey};
use crate::method::{key, peer};

/// Finds private keys by absolute key id.
pub trait SecretStore: Send + Sync {
    /// The private key for `kid`, if held.
    fn secret(&self, kid: &str) -> Option<&SecretKey>;
}

/// A set of private keys by key id.
#[derive(Default, Debug, Clone)]
pub struct KeyRing {
    keys: HashMap<String, SecretKey>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key under `kid`.
    pub fn insert(&mut self, kid: impl Into<String>, key: SecretKey) {
        self.keys.insert(kid.into(), key);
    }

    /// Adds every key of an identity.
    pub fn add_identity(&mut self, id: &Identity) {
        for (kid, k) in &id.keys {
            self.keys.insert(kid.clone(), k.clone());
        }
    }

    /// Adds private JWKs; each must carry its `kid`.
    pub fn add_jwks(&mut self, jwks: &[Jwk]) -> Result<()> {
        for jwk in jwks {
            let kid = jwk.kid.clone().ok_or_else(|| Error::key("private JWK without `kid`"))?;
            self.keys.insert(kid, jwk.secret_key()?);
        }
        Ok(())
    }
}

impl SecretStore for KeyRing {
    fn secret(&self, kid: &str) -> Option<&SecretKey> {
        self.keys.get(kid)
    }
}

/// A DID with the private keys behind its document.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The DID.
    pub did: Did,
    /// (absolute key id, private key), in document order.
    keys: Vec<(String, SecretKey)>,
    /// The document, for methods whose document cannot be derived from the DID (did:web).
    pub document: Option<DidDocument>,
}

impl SecretStore for Identity {
    fn secret(&self, kid: &str) -> Option<&SecretKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, s)| s)
    }
}

impl<S: SecretStore> SecretStore for [S] {
    fn secret(&self, kid: &str) -> Option<&SecretKey> {
        self.iter().find_map(|s| s.secret(kid))
    }
}

impl<S: SecretStore> SecretStore for Vec<S> {
    fn secret(&self, kid: &str) -> Option<&SecretKey> {
        self.as_slice().secret(kid)
    }
}

impl Identity {
    /// A fresh did:key (Ed25519, with its derived X25519 key-agreement key).
    pub fn generate_key() -> Identity {
        let ed = SecretKey::generate(KeyKind::Ed25519);
        let did = key::did_for(&ed.public_key());
        let x = ed.ed25519_to_x25519().expect("an Ed25519 key converts to X25519");
        let keys = vec![
            (format!("{did}#{}", ed.public_key().to_multibase()), ed),
            (format!("{did}#{}", x.public_key().to_multibase()), x),
        ];
        Identity { did, keys, document: None }
    }

    /// A fresh did:peer:2 with one Ed25519 (`#key-1`) and one X25519 (`#key-2`) key
    /// and the given DIDComm endpoints.
    pub fn generate_peer(endpoints: &[DidCommEndpoint]) -> Result<Identity> {
        let ed = SecretKey::generate(KeyKind::Ed25519);
        let x = SecretKey::generate(KeyKind::X25519);
        Identity::peer_from_keys(ed, x, endpoints)
    }

    /// A did:peer:2 over existing keys (used to change endpoints and keep keys).
    pub fn peer_from_keys(ed: SecretKey, x: SecretKey, endpoints: &[DidCommEndpoint]) -> Result<Identity> {
        let did = peer::create(&[ed.public_key()], &[x.public_key()], endpoints)?;
        let keys = vec![(format!("{did}#key-1"), ed), (format!("{did}#key-2"), x)];
        Ok(Identity { did, keys, document: None })
    }

    /// Builds an identity from private JWKs, refusing keys that are not in `doc`
    /// under the JWK's `kid` (or, without a kid, under any method with that key).
    pub fn from_jwks(doc: &DidDocument, jwks: &[Jwk]) -> Result<Identity> {
        let mut keys = Vec::with_capacity(jwks.len());
        for jwk in jwks {
            let sk = jwk.secret_key()?;
            let pk = sk.public_key();
            let kid =
                match &jwk.kid {
                    Some(kid) => {
                        let kid = DidUrl::resolve_ref(&doc.id, kid)?.to_string();
                        let vm = doc.method(&kid).ok_or_else(|| Error::KeyNotFound(clip(&kid)))?;
                        if vm.key != pk {
                            return Err(Error::key(format!("private key does not match {kid} in the DID document")));
                        }
                        kid
                    }
                    None => doc.verification_method.iter().find(|vm| vm.key == pk).map(|vm| vm.id.clone()).ok_or_else(
                        || Error::key(format!("the {} key is not in {}'s DID document", pk.kind().crv(), doc.id)),
                    )?,
                };
            keys.push((kid, sk));
        }
        if keys.is_empty() {
            return Err(Error::key("no keys given"));
        }
        Ok(Identity { did: doc.id.clone(), keys, document: None })
    }

    /// Private JWKs of every key, each with its `kid`.
    pub fn to_jwks(&self) -> Vec<Jwk> {
        self.keys.iter().map(|(kid, k)| Jwk::from_secret(k).with_kid(kid)).collect()
    }

    /// (kid, key) pairs.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &SecretKey)> {
        self.keys.iter().map(|(k, s)| (k.as_str(), s))
    }

    /// The first held key listed under `rel` in `doc`.
    pub fn key_for(&self, doc: &DidDocument, rel: Relationship) -> Option<(&str, &SecretKey)> {
        doc.methods(rel).find_map(|vm| self.keys.iter().find(|(k, _)| *k == vm.id).map(|(k, s)| (k.as_str(), s)))
    }

    /// Public keys of every held key.
    pub fn public_keys(&self) -> impl Iterator<Item = (&str, PublicKey)> {
        self.keys.iter().map(|(k, s)| (k.as_str(), s.public_key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identities_match_their_documents() {
        let k = Identity::generate_key();
        let doc = key::resolve(&k.did).unwrap();
        for (kid, pk) in k.public_keys() {
            assert_eq!(doc.method(kid).unwrap().key, pk);
        }
        let ep = DidCommEndpoint { uri: "http://127.0.0.1:1".into(), accept: vec![], routing_keys: vec![] };
        let p = Identity::generate_peer(&[ep]).unwrap();
        let doc = peer::resolve(&p.did).unwrap();
        assert!(p.key_for(&doc, Relationship::KeyAgreement).is_some());
        assert!(p.key_for(&doc, Relationship::Authentication).is_some());
        // JWK export/import round-trips and is checked against the document
        let back = Identity::from_jwks(&doc, &p.to_jwks()).unwrap();
        assert_eq!(back.keys().count(), 2);
        let stranger = Identity::generate_key().to_jwks();
        assert!(Identity::from_jwks(&doc, &stranger).is_err());
        let mut relabelled = p.to_jwks();
        relabelled[0].kid = Some(format!("{}#key-2", p.did));
        assert!(Identity::from_jwks(&doc, &relabelled).is_err());
    }
}
