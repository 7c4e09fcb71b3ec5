//! Verifiable Presentation admission: a good VC-JWT in a VP-JWT is admitted, and each
//! reason a presentation is refused is reported as that reason.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use did_core::method::key;
use did_core::{KeyKind, SecretKey};
use serde_json::{json, Map, Value};

use super::tests::{admit, reason, session_with, NOW};
use super::*;

const EMPLOYEE: &str = "EmployeeCredential";

/// A did:key identity with its (kid, secret).
struct Party {
    did: String,
    kid: String,
    key: SecretKey,
}

fn party() -> Party {
    let key = SecretKey::generate(KeyKind::Ed25519);
    let did = key::did_for(&key.public_key()).to_string();
    let kid = format!("{did}#{}", &did["did:key:".len()..]);
    Party { did, kid, key }
}

fn credential(issuer: &Party, subject: &str, types: &[&str], from: u64, until: Option<u64>) -> String {
    let c = vc::Claims {
        issuer: issuer.did.clone(),
        subject: subject.to_owned(),
        types: types.iter().map(|t| t.to_string()).collect(),
        subject_claims: Map::from_iter([("employeeOf".to_owned(), json!("ACME"))]),
        valid_from: from,
        valid_until: until,
        id: Some("urn:uuid:6c2a0f1e-1111-4222-8333-944455556666".into()),
    };
    vc::issue(&c, &issuer.kid, &issuer.key).unwrap()
}

fn vp(s: &Session, holder: &Party, creds: &[String], now: u64) -> Value {
    let creds: Vec<Value> = creds.iter().map(|c| json!(c)).collect();
    serde_json::to_value(vp_present(s, &holder.did, &creds, &holder.kid, &holder.key, now).unwrap()).unwrap()
}

fn policy(issuer: &str, types: &[&str]) -> Value {
    let mut p = Policy::default();
    p.trust_issuer(None, issuer, &types.iter().map(|t| t.to_string()).collect::<Vec<_>>());
    p.to_value()
}

/// Re-signs a JWT's (edited) claims with `by`, keeping its header.
fn resign(compact: &str, by: &Party, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = compact.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    let input = format!("{}.{}", parts[0], B64.encode(claims.to_string()));
    format!("{input}.{}", B64.encode(by.key.sign(input.as_bytes()).unwrap()))
}

#[test]
fn a_presentation_of_a_trusted_credential_is_admitted() {
    let (acme, alice) = (party(), party());
    let s = session_with("s1", policy(&acme.did, &[EMPLOYEE]), &[&alice.did]);
    let c = credential(&acme, &alice.did, &[EMPLOYEE], NOW - 86_400, Some(NOW + 86_400));
    let id = admit(&s, &alice.did, Some(&vp(&s, &alice, std::slice::from_ref(&c), NOW)), NOW + 5).unwrap().unwrap();
    assert_eq!(id, Identity { kind: Kind::Vp, id: acme.did.clone(), credential_type: Some(EMPLOYEE.into()) });
    assert_eq!(id.to_string(), format!("{EMPLOYEE} from {}", acme.did));
    // Any type from an issuer trusted for any type; a credential that never expires.
    let s = session_with("s2", policy(&acme.did, &[]), &[&alice.did]);
    let forever = credential(&acme, &alice.did, &["MemberCredential"], NOW, None);
    let id = admit(&s, &alice.did, Some(&vp(&s, &alice, &[forever], NOW)), NOW).unwrap().unwrap();
    assert_eq!(id.credential_type.as_deref(), Some("MemberCredential"));
    // The credential verifies on its own, and names who signed it.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let v = rt.block_on(vc::verify_credential(&c, &did_core::Resolver::default(), NOW)).unwrap();
    assert_eq!((v.issuer, v.subject, v.signed_by), (acme.did.clone(), alice.did.clone(), acme.kid.clone()));
}

#[test]
fn untrusted_issuers_and_types_are_refused_without_resolving_them() {
    let (acme, mallory, alice) = (party(), party(), party());
    let s = session_with("s1", policy(&acme.did, &[EMPLOYEE]), &[&alice.did]);
    let other = credential(&mallory, &alice.did, &[EMPLOYEE], NOW, None);
    assert_eq!(reason(admit(&s, &alice.did, Some(&vp(&s, &alice, &[other], NOW)), NOW)), ProofReason::UntrustedIssuer);
    let wrong_type = credential(&acme, &alice.did, &["VisitorCredential"], NOW, None);
    assert_eq!(
        reason(admit(&s, &alice.did, Some(&vp(&s, &alice, std::slice::from_ref(&wrong_type), NOW)), NOW)),
        ProofReason::UntrustedIssuer
    );
    // One good credential among others is enough.
    let good = credential(&acme, &alice.did, &[EMPLOYEE], NOW, None);
    assert!(admit(&s, &alice.did, Some(&vp(&s, &alice, &[wrong_type, good], NOW)), NOW).unwrap().is_some());
    // An issuer whose DID cannot be resolved is still just untrusted (it is never fetched).
    let web = Party { did: "did:web:evil.invalid".into(), kid: "did:web:evil.invalid#k".into(), key: party().key };
    let from_web = credential(&web, &alice.did, &[EMPLOYEE], NOW, None);
    assert_eq!(
        reason(admit(&s, &alice.did, Some(&vp(&s, &alice, &[from_web], NOW)), NOW)),
        ProofReason::UntrustedIssuer
    );
}

#[test]
fn subjects_and_holders_must_be_the_party() {
    let (acme, alice, bob) = (party(), party(), party());
    let s = session_with("s1", policy(&acme.did, &[]), &[&alice.did, &bob.did]);
    // Bob's credential presented by Alice.
    let bobs = credential(&acme, &bob.did, &[EMPLOYEE], NOW, None);
    assert_eq!(
        reason(admit(&s, &alice.did, Some(&vp(&s, &alice, std::slice::from_ref(&bobs), NOW)), NOW)),
        ProofReason::SubjectMismatch
    );
    // Bob's own presentation sent by Alice.
    assert_eq!(reason(admit(&s, &alice.did, Some(&vp(&s, &bob, &[bobs], NOW)), NOW)), ProofReason::SubjectMismatch);
}

#[test]
fn expired_and_premature_credentials_and_presentations_are_refused() {
    let (acme, alice) = (party(), party());
    let s = session_with("s1", policy(&acme.did, &[]), &[&alice.did]);
    let old = credential(&acme, &alice.did, &[EMPLOYEE], NOW - 1000, Some(NOW - 1));
    assert_eq!(reason(admit(&s, &alice.did, Some(&vp(&s, &alice, &[old], NOW)), NOW)), ProofReason::Expired);
    let future = credential(&acme, &alice.did, &[EMPLOYEE], NOW + 3600, None);
    assert_eq!(reason(admit(&s, &alice.did, Some(&vp(&s, &alice, &[future], NOW)), NOW)), ProofReason::NotYetValid);
    let good = credential(&acme, &alice.did, &[EMPLOYEE], NOW, None);
    let p = vp(&s, &alice, std::slice::from_ref(&good), NOW);
    // The presentation is valid until the session's join deadline (NOW + 600).
    assert_eq!(reason(admit(&s, &alice.did, Some(&p), NOW + 601)), ProofReason::Expired);
    // A presentation valid for longer than the policy allows.
    let Presented::Vp { presentation: Value::String(jwt) } = serde_json::from_value(p).unwrap() else { panic!() };
    let long = resign(&jwt, &alice, |c| c["exp"] = json!(NOW + 10 * 86_400));
    let long = json!({"kind": "vp", "presentation": long});
    assert_eq!(reason(admit(&s, &alice.did, Some(&long), NOW)), ProofReason::Expired);
}

#[test]
fn presentations_for_another_session_are_refused() {
    let (acme, alice) = (party(), party());
    let s = session_with("s1", policy(&acme.did, &[]), &[&alice.did]);
    let other = session_with("s2", policy(&acme.did, &[]), &[&alice.did]);
    let c = credential(&acme, &alice.did, &[EMPLOYEE], NOW, None);
    let p = vp(&other, &alice, std::slice::from_ref(&c), NOW);
    assert_eq!(reason(admit(&s, &alice.did, Some(&p), NOW)), ProofReason::NonceReused);
    // Same session id, another descriptor (another challenge).
    let mut same_id = session_with("s1", policy(&acme.did, &[]), &[&alice.did]);
    same_id.digest[0] ^= 1;
    assert_eq!(reason(admit(&same_id, &alice.did, Some(&vp(&s, &alice, &[c], NOW)), NOW)), ProofReason::NonceReused);
}

#[test]
fn forged_signatures_are_refused() {
    let (acme, alice, mallory) = (party(), party(), party());
    let s = session_with("s1", policy(&acme.did, &[]), &[&alice.did]);
    let c = credential(&acme, &alice.did, &[EMPLOYEE], NOW, None);
    // A credential "from" the trusted issuer, signed by someone else.
    let forged = resign(&c, &mallory, |_| {});
    assert_eq!(reason(admit(&s, &alice.did, Some(&vp(&s, &alice, &[forged], NOW)), NOW)), ProofReason::BadSignature);
    // A credential edited after signing (subject swapped in, signature kept).
    let parts: Vec<&str> = c.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["vc"]["type"] = json!(["VerifiableCredential", "AdminCredential"]);
    let edited = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
    assert_eq!(reason(admit(&s, &alice.did, Some(&vp(&s, &alice, &[edited], NOW)), NOW)), ProofReason::BadSignature);
    // Alice's presentation signed by Mallory's key.
    let Presented::Vp { presentation: Value::String(jwt) } = serde_json::from_value(vp(&s, &alice, &[c], NOW)).unwrap()
    else {
        panic!()
    };
    let p = json!({"kind": "vp", "presentation": resign(&jwt, &mallory, |_| {})});
    assert_eq!(reason(admit(&s, &alice.did, Some(&p), NOW)), ProofReason::BadSignature);
}

#[test]
fn malformed_and_unaccepted_presentations_are_refused() {
    let (acme, alice) = (party(), party());
    let s = session_with("s1", policy(&acme.did, &[]), &[&alice.did]);
    let bad = |p: Value| reason(admit(&s, &alice.did, Some(&json!({"kind": "vp", "presentation": p})), NOW));
    assert_eq!(bad(json!({"type": ["VerifiablePresentation"], "proof": {}})), ProofReason::Malformed);
    assert_eq!(bad(json!("not.a.jwt")), ProofReason::Malformed);
    assert_eq!(bad(json!("onlyonepart")), ProofReason::Malformed);
    let none_alg = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), B64.encode(r#"{"iss":"x"}"#));
    assert_eq!(bad(json!(none_alg)), ProofReason::Malformed);
    // SIWE-only sessions do not take presentations, and vice versa.
    let siwe_only = session_with(
        "s3",
        json!({"v":1,"accept":["siwe"],"all":{"any_account":true},"max_validity_secs":600}),
        &[&alice.did],
    );
    let c = credential(&acme, &alice.did, &[EMPLOYEE], NOW, None);
    assert_eq!(
        reason(admit(&siwe_only, &alice.did, Some(&vp(&siwe_only, &alice, &[c], NOW)), NOW)),
        ProofReason::KindNotAccepted
    );
}

/// A credential issued by Digital Bazaar's `@digitalbazaar/vc` 7.3.0 (Ed25519Signature2020,
/// did:key issuer, subject ALICE of the SIWE tests, issued 2026-01-01, no expiry).
const DBVC: &str = include_str!("fixtures/dbvc_employee.json");
const LATER: u64 = 1_800_000_000; // 2027-01-15

fn di(v: &Value, now: u64) -> Result<vc::Credential> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(di::verify_credential(v, &did_core::Resolver::default(), now))
}

fn di_reason(v: &Value, now: u64) -> ProofReason {
    di(v, now).expect_err("must be refused").proof_reason().expect("a proof refusal")
}

#[test]
fn a_data_integrity_credential_from_another_implementation_verifies_with_ssi() {
    let c: Value = serde_json::from_str(DBVC).unwrap();
    let v = di(&c, LATER).unwrap();
    assert_eq!(v.issuer, c["issuer"].as_str().unwrap());
    assert_eq!(v.subject, "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK");
    assert_eq!(v.types, vec!["VerifiableCredential".to_owned(), EMPLOYEE.to_owned()]);
    assert_eq!(v.signed_by, c["proof"]["verificationMethod"].as_str().unwrap());
    assert_eq!(di::peek_issuer(&c).unwrap().0, v.issuer);
}

#[test]
fn edited_misattributed_and_premature_data_integrity_credentials_are_refused() {
    let c: Value = serde_json::from_str(DBVC).unwrap();
    let mut edited = c.clone();
    edited["credentialSubject"]["employeeOf"] = json!("Mallory Inc.");
    assert_eq!(di_reason(&edited, LATER), ProofReason::BadSignature);
    let mut added = c.clone();
    added["type"] = json!(["VerifiableCredential", EMPLOYEE, "AdminCredential"]);
    assert_eq!(di_reason(&added, LATER), ProofReason::BadSignature);
    // The proof names a key of another DID than the issuer.
    let mut other = c.clone();
    other["issuer"] = json!(party().did);
    assert_eq!(di_reason(&other, LATER), ProofReason::BadSignature);
    let mut purpose = c.clone();
    purpose["proof"]["proofPurpose"] = json!("authentication");
    assert_eq!(di_reason(&purpose, LATER), ProofReason::BadSignature);
    // Before its issuance date (2026-01-01).
    assert_eq!(di_reason(&c, 1_767_225_600 - 3600), ProofReason::NotYetValid);
    let mut expired = c.clone();
    expired["expirationDate"] = json!("2026-06-01T00:00:00Z");
    assert_eq!(di_reason(&expired, LATER), ProofReason::Expired);
    // Shapes that are not one object with one proof.
    let mut two = c.clone();
    two["proof"] = json!([c["proof"], c["proof"]]);
    assert_eq!(di_reason(&two, LATER), ProofReason::Malformed);
    let mut none = c.clone();
    none.as_object_mut().unwrap().remove("proof");
    assert_eq!(di_reason(&none, LATER), ProofReason::Malformed);
    assert_eq!(di_reason(&json!([1, 2]), LATER), ProofReason::Malformed);
    // Found by fuzzing: a context IRI whose %-escapes are not UTF-8 made the JSON-LD stack
    // under ssi panic; it is refused instead.
    let hostile: Value = serde_json::from_str(include_str!("fixtures/fuzz_crash_context.json")).unwrap();
    assert_eq!(di_reason(&hostile, LATER), ProofReason::Malformed);
}
