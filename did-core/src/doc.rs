//! DID documents: parsing every verification-method and service shape in use,
//! emitting the DID Core / DIDComm v2.1 shapes.

use serde_json::{json, Map, Value};

use crate::did::{Did, DidUrl};
use crate::error::{clip, Error, Result};
use crate::jwk::Jwk;
use crate::keys::{KeyKind, PublicKey};

/// Most verification methods or services accepted in one document.
pub const MAX_ENTRIES: usize = 256;

/// How a verification method's key is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// `publicKeyMultibase` with a multicodec prefix.
    Multibase,
    /// `publicKeyJwk`.
    Jwk,
    /// `publicKeyBase58` (raw key bytes).
    Base58,
}

/// A verification method with its key decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationMethod {
    /// Absolute DID URL of the method.
    pub id: String,
    /// The `type` (`Multikey`, `JsonWebKey2020`, `X25519KeyAgreementKey2020`, …).
    pub type_: String,
    /// The controller DID.
    pub controller: String,
    /// The decoded public key.
    pub key: PublicKey,
    /// How the key is written when serialized.
    pub format: KeyFormat,
}

impl VerificationMethod {
    /// A `Multikey` method.
    pub fn multikey(id: String, controller: &Did, key: PublicKey) -> Self {
        VerificationMethod {
            id,
            type_: "Multikey".into(),
            controller: controller.to_string(),
            key,
            format: KeyFormat::Multibase,
        }
    }

    fn parse(v: &Value, doc_id: &Did) -> Result<Option<VerificationMethod>> {
        let obj = v.as_object().ok_or_else(|| Error::doc("verification method is not an object"))?;
        let id = obj.get("id").and_then(Value::as_str).ok_or_else(|| Error::doc("verification method without `id`"))?;
        let id = DidUrl::resolve_ref(doc_id, id)?.to_string();
        let type_ =
            obj.get("type").and_then(Value::as_str).ok_or_else(|| Error::doc(format!("{id}: no `type`")))?.to_owned();
        let controller = obj.get("controller").and_then(Value::as_str).unwrap_or(doc_id.as_str()).to_owned();
        let implied = implied_kind(&type_);
        let (key, format) = if let Some(jwk) = obj.get("publicKeyJwk") {
            if jwk.get("d").is_some() {
                return Err(Error::doc(format!("{id}: publicKeyJwk contains a private key")));
            }
            // RSA and other key types this crate does not decode: keep the method verbatim.
            if !matches!(jwk.get("kty").and_then(Value::as_str), Some("OKP" | "EC")) {
                return Ok(None);
            }
            let jwk: Jwk =
                serde_json::from_value(jwk.clone()).map_err(|e| Error::doc(format!("{id}: bad publicKeyJwk: {e}")))?;
            if jwk.d.is_some() {
                return Err(Error::doc(format!("{id}: publicKeyJwk contains a private key")));
            }
            match jwk.public_key() {
                Ok(k) => (k, KeyFormat::Jwk),
                Err(Error::UnsupportedAlgorithm(_)) => return Ok(None),
                Err(e) => return Err(Error::doc(format!("{id}: {e}"))),
            }
        } else if let Some(mb) = obj.get("publicKeyMultibase").and_then(Value::as_str) {
            match PublicKey::from_multibase(mb) {
                Ok(k) => (k, KeyFormat::Multibase),
                Err(Error::UnsupportedAlgorithm(_)) => return Ok(None),
                Err(e) => {
                    // Some 2018/2019 documents put the raw key in publicKeyMultibase.
                    let raw = multibase::decode(mb).map(|(_, b)| b).ok();
                    match (implied, raw) {
                        (Some(kind), Some(raw)) => (PublicKey::from_bytes(kind, &raw)?, KeyFormat::Multibase),
                        _ => return Err(Error::doc(format!("{id}: {e}"))),
                    }
                }
            }
        } else if let Some(b58) = obj.get("publicKeyBase58").and_then(Value::as_str) {
            let Some(kind) = implied else { return Ok(None) };
            let raw =
                bs58::decode(b58).into_vec().map_err(|_| Error::doc(format!("{id}: publicKeyBase58 is not base58")))?;
            (PublicKey::from_bytes(kind, &raw).map_err(|e| Error::doc(format!("{id}: {e}")))?, KeyFormat::Base58)
        } else {
            // RSA, blockchainAccountId, … : keep the document usable, skip the method.
            return Ok(None);
        };
        if let Some(kind) = implied {
            if kind != key.kind() {
                return Err(Error::doc(format!("{id}: type {type_} holds a {} key", key.kind().crv())));
            }
        }
        Ok(Some(VerificationMethod { id, type_, controller, key, format }))
    }

    /// The JSON form.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("type".into(), self.type_.clone().into());
        m.insert("controller".into(), self.controller.clone().into());
        match self.format {
            KeyFormat::Multibase => m.insert("publicKeyMultibase".into(), self.key.to_multibase().into()),
            KeyFormat::Jwk => m.insert("publicKeyJwk".into(), json!(Jwk::from_public(&self.key))),
            KeyFormat::Base58 => {
                m.insert("publicKeyBase58".into(), bs58::encode(self.key.to_bytes()).into_string().into())
            }
        };
        Value::Object(m)
    }
}

fn implied_kind(type_: &str) -> Option<KeyKind> {
    match type_ {
        "X25519KeyAgreementKey2019" | "X25519KeyAgreementKey2020" => Some(KeyKind::X25519),
        "Ed25519VerificationKey2018" | "Ed25519VerificationKey2020" => Some(KeyKind::Ed25519),
        "EcdsaSecp256k1VerificationKey2019" => Some(KeyKind::Secp256k1),
        _ => None,
    }
}

/// One DIDComm endpoint of a `DIDCommMessaging` service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DidCommEndpoint {
    /// Transport URI (http(s)://, ws(s)://) or a mediator DID.
    pub uri: String,
    /// Accepted media types/profiles, e.g. `didcomm/v2`.
    pub accept: Vec<String>,
    /// Keys (DID URLs) or DIDs to wrap Forward messages for; the first one's layer is outermost.
    pub routing_keys: Vec<String>,
}

/// A service entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Service {
    /// A `DIDCommMessaging` service.
    DidComm {
        /// Absolute service id.
        id: String,
        /// Endpoints in order of preference.
        endpoints: Vec<DidCommEndpoint>,
    },
    /// Any other service, kept verbatim.
    Other(Value),
}

impl Service {
    /// Parses one service entry (relative ids resolved against `doc_id`).
    pub fn parse_value(v: &Value, doc_id: &Did) -> Result<Service> {
        let obj = v.as_object().ok_or_else(|| Error::doc("service is not an object"))?;
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Err(Error::doc("service without `type`")),
        };
        if !types.iter().any(|t| *t == "DIDCommMessaging" || *t == "DIDComm") {
            return Ok(Service::Other(v.clone()));
        }
        let raw_id = obj.get("id").and_then(Value::as_str).ok_or_else(|| Error::doc("service without `id`"))?;
        let id = DidUrl::resolve_ref(doc_id, raw_id)?.to_string();
        let strings = |v: Option<&Value>| -> Result<Vec<String>> {
            match v {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str().map(str::to_owned).ok_or_else(|| Error::doc(format!("{id}: non-string in list")))
                    })
                    .collect(),
                Some(_) => Err(Error::doc(format!("{id}: expected a list of strings"))),
            }
        };
        let endpoint = |e: &Value| -> Result<DidCommEndpoint> {
            let o = e.as_object().ok_or_else(|| Error::doc(format!("{id}: endpoint is not an object")))?;
            let uri = o
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::doc(format!("{id}: endpoint without `uri`")))?;
            Ok(DidCommEndpoint {
                uri: uri.to_owned(),
                accept: strings(o.get("accept"))?,
                routing_keys: strings(o.get("routingKeys"))?,
            })
        };
        let endpoints = match obj.get("serviceEndpoint") {
            Some(Value::String(uri)) => vec![DidCommEndpoint {
                uri: uri.clone(),
                accept: strings(obj.get("accept"))?,
                routing_keys: strings(obj.get("routingKeys"))?,
            }],
            Some(e @ Value::Object(_)) => vec![endpoint(e)?],
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|e| match e {
                    Value::String(uri) => {
                        Ok(DidCommEndpoint { uri: uri.clone(), accept: vec![], routing_keys: vec![] })
                    }
                    e => endpoint(e),
                })
                .collect::<Result<_>>()?,
            _ => return Err(Error::doc(format!("{id}: missing or empty serviceEndpoint"))),
        };
        Ok(Service::DidComm { id, endpoints })
    }

    /// The JSON form (DIDComm v2.1 shape for DIDComm services).
    pub fn to_value(&self) -> Value {
        match self {
            Service::Other(v) => v.clone(),
            Service::DidComm { id, endpoints } => {
                let eps: Vec<Value> = endpoints
                    .iter()
                    .map(|e| {
                        let mut m = Map::new();
                        m.insert("uri".into(), e.uri.clone().into());
                        if !e.accept.is_empty() {
                            m.insert("accept".into(), json!(e.accept));
                        }
                        if !e.routing_keys.is_empty() {
                            m.insert("routingKeys".into(), json!(e.routing_keys));
                        }
                        Value::Object(m)
                    })
                    .collect();
                let ep = if eps.len() == 1 { eps.into_iter().next().unwrap_or(Value::Null) } else { Value::Array(eps) };
                json!({"id": id, "type": "DIDCommMessaging", "serviceEndpoint": ep})
            }
        }
    }
}

/// The verification relationships of a DID document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relationship {
    /// `authentication`
    Authentication,
    /// `assertionMethod`
    AssertionMethod,
    /// `keyAgreement`
    KeyAgreement,
    /// `capabilityInvocation`
    CapabilityInvocation,
    /// `capabilityDelegation`
    CapabilityDelegation,
}

impl Relationship {
    /// All relationships, in the order they are serialized.
    pub const ALL: [Relationship; 5] = [
        Relationship::Authentication,
        Relationship::AssertionMethod,
        Relationship::KeyAgreement,
        Relationship::CapabilityInvocation,
        Relationship::CapabilityDelegation,
    ];

    /// The JSON property name.
    pub fn name(self) -> &'static str {
        match self {
            Relationship::Authentication => "authentication",
            Relationship::AssertionMethod => "assertionMethod",
            Relationship::KeyAgreement => "keyAgreement",
            Relationship::CapabilityInvocation => "capabilityInvocation",
            Relationship::CapabilityDelegation => "capabilityDelegation",
        }
    }
}

/// A DID document, normalized: every verification method lives in
/// `verification_method` with an absolute id; relationships hold ids.
#[derive(Clone, Debug, PartialEq)]
pub struct DidDocument {
    /// `@context` as given (emitted as is).
    pub context: Value,
    /// The DID.
    pub id: Did,
    /// `alsoKnownAs`.
    pub also_known_as: Vec<String>,
    /// All verification methods with a supported key.
    pub verification_method: Vec<VerificationMethod>,
    /// Relationship → absolute method ids, in document order.
    pub relationships: [Vec<String>; 5],
    /// Services.
    pub service: Vec<Service>,
    /// Verification methods whose key material this crate does not decode
    /// (RSA, `blockchainAccountId`, …), kept verbatim with absolute ids.
    pub other_methods: Vec<Value>,
}

impl DidDocument {
    /// An empty document for `id` with the DID v1 and Multikey contexts.
    pub fn new(id: Did) -> DidDocument {
        DidDocument {
            context: json!(["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]),
            id,
            also_known_as: vec![],
            verification_method: vec![],
            relationships: Default::default(),
            service: vec![],
            other_methods: vec![],
        }
    }

    /// Parses a document from JSON text.
    pub fn from_json(text: &str) -> Result<DidDocument> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::doc(format!("not JSON: {e}")))?;
        DidDocument::from_value(&v)
    }

    /// Parses a document from a JSON value, accepting embedded and referenced methods,
    /// relative ids, all key formats and both DIDComm service shapes.
    pub fn from_value(v: &Value) -> Result<DidDocument> {
        let obj = v.as_object().ok_or_else(|| Error::doc("not a JSON object"))?;
        let id_str = obj.get("id").and_then(Value::as_str).ok_or_else(|| Error::doc("no `id`"))?;
        let id = Did::parse(id_str)?;
        let mut doc = DidDocument::new(id.clone());
        doc.context = obj.get("@context").cloned().unwrap_or(Value::Null);
        doc.also_known_as = list(obj, "alsoKnownAs")?.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        for vm in list(obj, "verificationMethod")? {
            match VerificationMethod::parse(vm, &id)? {
                Some(vm) => doc.push_method(vm)?,
                None => {
                    doc.push_other(vm)?;
                }
            }
        }
        for (i, rel) in Relationship::ALL.iter().enumerate() {
            for entry in list(obj, rel.name())? {
                let kid = match entry {
                    Value::String(s) => DidUrl::resolve_ref(&id, s)?.to_string(),
                    Value::Object(_) => match VerificationMethod::parse(entry, &id)? {
                        Some(vm) => {
                            let kid = vm.id.clone();
                            doc.push_method(vm)?;
                            kid
                        }
                        None => doc.push_other(entry)?,
                    },
                    _ => return Err(Error::doc(format!("{}: entry is neither id nor method", rel.name()))),
                };
                doc.relationships[i].push(kid);
            }
        }
        for s in list(obj, "service")? {
            if doc.service.len() >= MAX_ENTRIES {
                return Err(Error::doc("too many services"));
            }
            doc.service.push(Service::parse_value(s, &id)?);
        }
        Ok(doc)
    }

    fn push_method(&mut self, vm: VerificationMethod) -> Result<()> {
        match self.verification_method.iter().find(|m| m.id == vm.id) {
            Some(existing) if existing.key != vm.key => {
                Err(Error::doc(format!("{} is defined twice with different keys", clip(&vm.id))))
            }
            Some(_) => Ok(()),
            None if self.method_count() >= MAX_ENTRIES => Err(Error::doc("too many verification methods")),
            None => {
                self.verification_method.push(vm);
                Ok(())
            }
        }
    }

    /// Decoded plus verbatim methods: `to_value` writes them all into one
    /// `verificationMethod` list, so together they must stay within [`MAX_ENTRIES`]
    /// for the document's own JSON to parse again.
    fn method_count(&self) -> usize {
        self.verification_method.len() + self.other_methods.len()
    }

    /// Keeps an undecodable method verbatim (with an absolute id) and returns its id.
    fn push_other(&mut self, vm: &Value) -> Result<String> {
        let mut vm = vm.clone();
        let raw = vm.get("id").and_then(Value::as_str).ok_or_else(|| Error::doc("verification method without `id`"))?;
        let kid = DidUrl::resolve_ref(&self.id, raw)?.to_string();
        vm["id"] = kid.clone().into();
        if !self.other_methods.iter().any(|m| m["id"] == vm["id"]) {
            if self.method_count() >= MAX_ENTRIES {
                return Err(Error::doc("too many verification methods"));
            }
            self.other_methods.push(vm);
        }
        Ok(kid)
    }

    /// Adds a method and lists it under the given relationships.
    pub fn add_method(&mut self, vm: VerificationMethod, rels: &[Relationship]) -> Result<()> {
        for rel in rels {
            self.relationships[*rel as usize].push(vm.id.clone());
        }
        self.push_method(vm)
    }

    /// The JSON form.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        if !self.context.is_null() {
            m.insert("@context".into(), self.context.clone());
        }
        m.insert("id".into(), self.id.to_string().into());
        if !self.also_known_as.is_empty() {
            m.insert("alsoKnownAs".into(), json!(self.also_known_as));
        }
        let vms = self.verification_method.iter().map(VerificationMethod::to_value);
        m.insert("verificationMethod".into(), vms.chain(self.other_methods.iter().cloned()).collect());
        for (i, rel) in Relationship::ALL.iter().enumerate() {
            if !self.relationships[i].is_empty() {
                m.insert(rel.name().into(), json!(self.relationships[i]));
            }
        }
        if !self.service.is_empty() {
            m.insert("service".into(), self.service.iter().map(Service::to_value).collect());
        }
        Value::Object(m)
    }

    /// The verification method with this absolute id.
    pub fn method(&self, kid: &str) -> Option<&VerificationMethod> {
        self.verification_method.iter().find(|m| m.id == kid)
    }

    /// The methods listed under a relationship (unknown ids are skipped).
    pub fn methods(&self, rel: Relationship) -> impl Iterator<Item = &VerificationMethod> {
        self.relationships[rel as usize].iter().filter_map(|kid| self.method(kid))
    }

    /// Whether `kid` is listed under `rel`.
    pub fn has(&self, rel: Relationship, kid: &str) -> bool {
        self.relationships[rel as usize].iter().any(|k| k == kid)
    }

    /// All DIDComm endpoints, services in document order.
    pub fn didcomm_endpoints(&self) -> impl Iterator<Item = &DidCommEndpoint> {
        self.service.iter().flat_map(|s| match s {
            Service::DidComm { endpoints, .. } => endpoints.as_slice(),
            Service::Other(_) => &[],
        })
    }
}

fn list<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a [Value]> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) if a.len() <= MAX_ENTRIES => Ok(a.as_slice()),
        Some(Value::Array(_)) => Err(Error::doc(format!("`{key}` has too many entries"))),
        Some(v @ Value::Object(_)) if key == "service" => Ok(std::slice::from_ref(v)),
        Some(_) => Err(Error::doc(format!("`{key}` must be a list"))),
    }
}

#[cfg(test)]
mod tests;
