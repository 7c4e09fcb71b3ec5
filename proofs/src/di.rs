//! Credentials with an embedded Data Integrity proof (JSON-LD: `Ed25519Signature2020`,
//! `Ed25519Signature2018`, `eddsa-rdfc-2022`, `JsonWebSignature2020`, ... as issued by
//! Digital Bazaar's `vc`, DIDKit and others), verified with SpruceID's `ssi`. JSON-LD
//! contexts come only from `ssi`'s bundled set (the W3C credentials, security and suite
//! contexts) or inline: nothing is fetched.

use std::panic::AssertUnwindSafe;

use chrono::DateTime;
use did_core::{Did, DidDocument, DidResolver, KeyKind, Relationship};
use futures_util::FutureExt;
use serde_json::{Map, Value};
use ssi_claims::{Invalid, InvalidClaims, VerificationParameters};
use ssi_dids_core::{resolution::Output, StaticDIDResolver, VerificationMethodDIDResolver};
use ssi_verification_methods::AnyMethod;

use super::jwt::malformed;
use super::siwe::CLOCK_SKEW_SECS;
use super::vc::{check_dates, id_of, prop_date, types_of, Credential};
use crate::error::{Error, ProofReason, Result};

fn object(v: &Value) -> Result<&Map<String, Value>> {
    v.as_object().ok_or_else(|| malformed("the credential is neither a JWT nor a JSON object"))
}

/// The issuer and types of an embedded-proof credential, unchecked (to decide trust
/// before resolving anything).
pub fn peek_issuer(v: &Value) -> Result<(String, Vec<String>)> {
    let obj = object(v)?;
    let issuer = id_of(obj.get("issuer")).ok_or_else(|| malformed("the credential names no issuer"))?;
    Ok((issuer.to_owned(), types_of(obj, "VerifiableCredential", "credential")?))
}

/// The issuer's document as `ssi` should see it. did:key and did:peer documents are
/// derived, and a derived Ed25519 key may be written as an `Ed25519VerificationKey2018`
/// (`publicKeyBase58`) as well as a 2020 key; the 2018 suite only takes the former.
fn for_ssi(doc: &DidDocument, proof_type: &str) -> Value {
    let derived = matches!(doc.id.method(), "key" | "peer");
    if !(derived && proof_type == "Ed25519Signature2018") {
        return doc.to_value();
    }
    let mut d = doc.clone();
    for m in d.verification_method.iter_mut().filter(|m| m.key.kind() == KeyKind::Ed25519) {
        m.type_ = "Ed25519VerificationKey2018".into();
        m.format = did_core::doc::KeyFormat::Base58;
    }
    let mut v = d.to_value();
    v["@context"] = Value::Array(vec![
        "https://www.w3.org/ns/did/v1".into(),
        "https://w3id.org/security/suites/ed25519-2018/v1".into(),
    ]);
    v
}

fn refused(e: Invalid) -> Error {
    match e {
        Invalid::Claims(InvalidClaims::Expired { .. }) => {
            Error::proof(ProofReason::Expired, "the credential has expired".to_owned())
        }
        Invalid::Claims(InvalidClaims::Premature { .. }) => {
            Error::proof(ProofReason::NotYetValid, "the credential is not valid yet".to_owned())
        }
        Invalid::Claims(c) => malformed(format!("the credential is invalid: {c}")),
        Invalid::Proof(p) => Error::proof(
            ProofReason::BadSignature,
            format!("the credential's Data Integrity proof does not verify: {p}"),
        ),
    }
}

/// True if every `%XX` sequence in every string of `v` decodes to UTF-8 (the JSON-LD
/// stack under `ssi` panics on IRIs that do not).
fn percent_encoding_is_utf8(v: &Value) -> bool {
    fn text_ok(s: &str) -> bool {
        if !s.contains('%') {
            return true;
        }
        let (b, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
        let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
        while i < b.len() {
            match (b[i], hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (c, _, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        std::str::from_utf8(&out).is_ok()
    }
    match v {
        Value::String(s) => text_ok(s),
        Value::Array(a) => a.iter().all(percent_encoding_is_utf8),
        Value::Object(o) => o.iter().all(|(k, v)| text_ok(k) && percent_encoding_is_utf8(v)),
        _ => true,
    }
}

/// Verifies an embedded-proof credential: form, dates, that the proof is the issuer's
/// (`assertionMethod`), then the proof itself with `ssi`.
pub async fn verify_credential(v: &Value, resolver: &dyn DidResolver, now: u64) -> Result<Credential> {
    let obj = object(v)?;
    let types = types_of(obj, "VerifiableCredential", "credential")?;
    let issuer = id_of(obj.get("issuer")).ok_or_else(|| malformed("the credential names no issuer"))?.to_owned();
    let subject = match obj.get("credentialSubject") {
        Some(s @ Value::Object(_)) => id_of(Some(s)),
        _ => None,
    }
    .ok_or_else(|| malformed("the credential must have one credentialSubject with an id"))?
    .to_owned();
    let id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
    let from = prop_date(obj, &["issuanceDate", "validFrom"])?;
    let until = prop_date(obj, &["expirationDate", "validUntil"])?;
    let proof = match obj.get("proof") {
        Some(Value::Object(p)) => p,
        Some(Value::Array(_)) => return Err(malformed("credentials with several proofs are not accepted")),
        _ => return Err(malformed("the credential has neither a JWT form nor an embedded proof")),
    };
    let proof_type = proof.get("type").and_then(Value::as_str).unwrap_or_default();
    let vm = proof.get("verificationMethod").and_then(Value::as_str).unwrap_or_default().to_owned();
    if vm.split('#').next() != Some(issuer.as_str()) {
        return Err(Error::proof(
            ProofReason::BadSignature,
            format!("the proof is by {vm:?}, not by the issuer {issuer}"),
        ));
    }
    if proof.get("proofPurpose").and_then(Value::as_str) != Some("assertionMethod") {
        return Err(Error::proof(ProofReason::BadSignature, "the proof's purpose is not assertionMethod"));
    }
    let did = Did::parse(&issuer).map_err(|e| malformed(format!("the issuer {issuer:?} is not a DID: {e}")))?;
    let doc = resolver.resolve(&did).await.map_err(|e| {
        Error::proof(ProofReason::BadSignature, format!("cannot resolve {issuer} to check the proof: {e}"))
    })?;
    if !doc.has(Relationship::AssertionMethod, &vm) {
        return Err(Error::proof(ProofReason::BadSignature, format!("{vm} is not an assertionMethod key of {issuer}")));
    }
    check_dates(from, until, now as i64, "credential")?;
    if !percent_encoding_is_utf8(v) {
        return Err(malformed("the credential holds a percent-encoded string that is not UTF-8"));
    }

    let parsed = ssi_claims::vc::v1::data_integrity::any_credential_from_json_str(&v.to_string())
        .map_err(|e| malformed(format!("not a Data Integrity credential: {e}")))?;
    let doc_json = serde_json::to_vec(&for_ssi(&doc, proof_type)).map_err(|e| Error::State(e.to_string()))?;
    let mut dids = StaticDIDResolver::new();
    let ssi_did = issuer.parse().map_err(|_| malformed(format!("the issuer {issuer:?} is not a DID")))?;
    dids.insert(ssi_did, Output::from_content(doc_json, Some("application/did+json".to_owned())));
    let mut params = VerificationParameters::from_resolver(VerificationMethodDIDResolver::<_, AnyMethod>::new(dids));
    // Our dates (with clock skew) already held; check ssi's at a time inside the period.
    let at = from.map_or(now as i64, |f| f.clamp(now as i64, now as i64 + CLOCK_SKEW_SECS));
    params.date_time = DateTime::from_timestamp(at, 0);
    // Whatever else in the JSON-LD stack panics on hostile input refuses the credential
    // instead of taking the host down.
    match AssertUnwindSafe(parsed.verify(&params)).catch_unwind().await {
        Ok(Ok(Ok(()))) => Ok(Credential { issuer, subject, types, id, signed_by: vm }),
        Ok(Ok(Err(e))) => Err(refused(e)),
        Ok(Err(e)) => {
            Err(Error::proof(ProofReason::BadSignature, format!("the credential's proof cannot be checked: {e}")))
        }
        Err(_) => Err(malformed("the credential cannot be processed as JSON-LD")),
    }
}
