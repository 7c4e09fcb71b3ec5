//! Adapters from did-core types to the SICPA `didcomm` 0.4.1 crate, used as a test oracle.
//!
//! * [`did_doc`]: our normalized [`DidDocument`] → SICPA `DIDDoc`: every key as
//!   `JsonWebKey2020` with a minimal public JWK (`kty`, `crv`, `x`[, `y`]: SICPA's JWK
//!   parser rejects any other member), relationships as absolute key ids, each DIDComm
//!   endpoint as one v2.1 `DIDCommMessaging` service. Non-DIDComm services are dropped
//!   (SICPA never looks at them).
//! * [`secret`], [`secrets_of`], [`secrets_from_keys`]: our private keys → SICPA `Secret`s
//!   (`JsonWebKey2020`, private JWK `kty`, `crv`, `x`[, `y`], `d`).
//! * [`Dids`] and [`Secrets`]: SICPA resolvers over in-memory lists. SICPA's resolver
//!   traits are `?Send`: drive them on a current-thread runtime.
//!
//! Include with `#[path = "support/sicpa.rs"] mod sicpa;`.
#![allow(dead_code)]

use async_trait::async_trait;
use did_core::keystore::derived_document;
use did_core::{Did, DidDocument, Identity, Jwk, PublicKey, Relationship, SecretKey, Service};
use didcomm::did::{
    DIDCommMessagingService, DIDDoc, DIDResolver, Service as SicpaService, ServiceKind, VerificationMaterial,
    VerificationMethod as SicpaMethod, VerificationMethodType,
};
use didcomm::error::Result as SicpaResult;
use didcomm::secrets::{Secret, SecretMaterial, SecretType, SecretsResolver};
use serde_json::{Map, Value};

/// The members of a JWK SICPA accepts, from one of ours; `with_private` keeps `d`.
fn minimal_jwk(jwk: &Jwk, with_private: bool) -> Value {
    let mut m = Map::new();
    m.insert("kty".into(), jwk.kty.clone().into());
    m.insert("crv".into(), jwk.crv.clone().into());
    m.insert("x".into(), jwk.x.clone().into());
    if let Some(y) = &jwk.y {
        m.insert("y".into(), y.clone().into());
    }
    if with_private {
        let d = jwk.d.as_ref().expect("a private JWK has `d`");
        m.insert("d".into(), d.as_str().into());
    }
    Value::Object(m)
}

/// The public JWK of a key in the shape SICPA accepts.
pub fn public_jwk(key: &PublicKey) -> Value {
    minimal_jwk(&Jwk::from_public(key), false)
}

/// Converts one of our documents to a SICPA `DIDDoc`.
pub fn did_doc(doc: &DidDocument) -> DIDDoc {
    let id = doc.id.to_string();
    let verification_method = doc
        .verification_method
        .iter()
        .map(|vm| SicpaMethod {
            id: vm.id.clone(),
            type_: VerificationMethodType::JsonWebKey2020,
            controller: vm.controller.clone(),
            verification_material: VerificationMaterial::JWK { public_key_jwk: public_jwk(&vm.key) },
        })
        .collect();
    let service = doc
        .service
        .iter()
        .flat_map(|s| match s {
            Service::DidComm { id, endpoints } => endpoints
                .iter()
                .map(|e| SicpaService {
                    id: id.clone(),
                    service_endpoint: ServiceKind::DIDCommMessaging {
                        value: DIDCommMessagingService {
                            uri: e.uri.clone(),
                            accept: (!e.accept.is_empty()).then(|| e.accept.clone()),
                            routing_keys: e.routing_keys.clone(),
                        },
                    },
                })
                .collect::<Vec<_>>(),
            Service::Other(_) => vec![],
        })
        .collect();
    DIDDoc {
        id,
        key_agreement: doc.relationships[Relationship::KeyAgreement as usize].clone(),
        authentication: doc.relationships[Relationship::Authentication as usize].clone(),
        verification_method,
        service,
    }
}

/// The SICPA `DIDDoc` of a DID whose document follows from the DID (did:key, did:peer).
pub fn derived_doc(did: &Did) -> DIDDoc {
    did_doc(&derived_document(did).expect("did:key / did:peer resolves offline"))
}

/// One private key as a SICPA secret under the absolute key id `kid`.
pub fn secret(kid: &str, key: &SecretKey) -> Secret {
    Secret {
        id: kid.to_owned(),
        type_: SecretType::JsonWebKey2020,
        secret_material: SecretMaterial::JWK { private_key_jwk: minimal_jwk(&Jwk::from_secret(key), true) },
    }
}

/// A private JWK that carries its `kid` (as from [`Identity::to_jwks`]) as a SICPA secret.
pub fn secret_from_jwk(jwk: &Jwk) -> Secret {
    Secret {
        id: jwk.kid.clone().expect("the private JWK has a `kid`"),
        type_: SecretType::JsonWebKey2020,
        secret_material: SecretMaterial::JWK { private_key_jwk: minimal_jwk(jwk, true) },
    }
}

/// Every private key of an identity, via its JWK export.
pub fn secrets_of(id: &Identity) -> Vec<Secret> {
    id.to_jwks().iter().map(secret_from_jwk).collect()
}

/// SICPA secrets from (kid, key) pairs, e.g. what a `KeyRing` was filled with.
pub fn secrets_from_keys<'a>(keys: impl IntoIterator<Item = (&'a str, &'a SecretKey)>) -> Vec<Secret> {
    keys.into_iter().map(|(kid, k)| secret(kid, k)).collect()
}

/// A SICPA DID resolver over documents built in advance.
#[derive(Clone, Debug, Default)]
pub struct Dids(pub Vec<DIDDoc>);

impl Dids {
    /// A resolver knowing the derived documents of `dids`.
    pub fn of<'a>(dids: impl IntoIterator<Item = &'a Did>) -> Dids {
        Dids(dids.into_iter().map(derived_doc).collect())
    }

    /// Adds a document.
    pub fn push(&mut self, doc: DIDDoc) {
        self.0.push(doc);
    }
}

#[async_trait(?Send)]
impl DIDResolver for Dids {
    async fn resolve(&self, did: &str) -> SicpaResult<Option<DIDDoc>> {
        Ok(self.0.iter().find(|d| d.id == did).cloned())
    }
}

/// A SICPA secrets resolver over a list of secrets.
#[derive(Clone, Debug, Default)]
pub struct Secrets(pub Vec<Secret>);

impl Secrets {
    /// The secrets of an identity.
    pub fn of(id: &Identity) -> Secrets {
        Secrets(secrets_of(id))
    }
}

#[async_trait(?Send)]
impl SecretsResolver for Secrets {
    async fn get_secret(&self, secret_id: &str) -> SicpaResult<Option<Secret>> {
        Ok(self.0.iter().find(|s| s.id == secret_id).cloned())
    }

    async fn find_secrets<'a>(&self, secret_ids: &'a [&'a str]) -> SicpaResult<Vec<&'a str>> {
        Ok(secret_ids.iter().copied().filter(|id| self.0.iter().any(|s| s.id == *id)).collect())
    }
}
