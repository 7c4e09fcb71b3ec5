//! DID documents: parsing every verification-method and service shape in use,
//! emitting the DID Core / DIDComm v2.1 shapes.

use serde_json::{json, Map, Value};

use crate::did::{Did, DidUrl};
use crate::error::{clip, Error, Result};

mod service;
mod verification_method;

pub use service::{DidCommEndpoint, Service};
pub use verification_method::{KeyFormat, VerificationMethod};

/// Most verification methods or services accepted in one document.
pub const MAX_ENTRIES: usize = 256;

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
