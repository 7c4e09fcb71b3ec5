//! Verifiable Credentials against software no one here wrote: SpruceID's DIDKit (PyPI
//! `didkit` 0.3.3, offline: did:key and JWT proofs need no network or JSON-LD contexts).
//! - credentials DIDKit issues to a party are admitted in the party's presentation, or
//!   refused for the right reason (untrusted issuer, expired, subject mismatch);
//! - presentations DIDKit makes as the holder, over our session challenge and domain, are
//!   admitted; one made for another session is refused (nonce reused);
//! - credentials and presentations we make pass DIDKit's own verifier, and tampered ones
//!   do not;
//! - Data Integrity (JSON-LD) credentials issued by DIDKit (`Ed25519Signature2018`) and by
//!   Digital Bazaar's `@digitalbazaar/vc` 7.3.0 on node (`Ed25519Signature2020`, contexts
//!   loaded offline) are admitted inside our presentation; edited, expired or untrusted
//!   ones are refused for that reason.
//!
//! The pinned venv comes from `tests/interop/didkit/setup-venv.sh`, the pinned npm set
//! from `tests/interop/dbvc/setup.sh`; this test never skips.

#[path = "support/oracle.rs"]
mod oracle;

use std::path::PathBuf;
use std::sync::OnceLock;

use did_core::didcomm::message::now;
use did_core::method::key;
use did_core::{KeyKind, SecretKey};
use proofs::{vc, Kind, Policy, Presented, ProofReason};
use serde_json::{json, Value};

const HOST: &str = "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WXWSkDu8K4p";
const EMPLOYEE: &str = "EmployeeCredential";

fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| oracle::venv_python("didkit", "DIDKit (PyPI didkit)")).clone()
}

fn didkit(reqs: Value) -> Vec<Value> {
    let out = oracle::ask(&python(), "didkit", "didkit_oracle.py", reqs);
    for a in &out {
        assert!(a.get("error").is_none(), "DIDKit failed: {a}");
    }
    out
}

/// A party of ours: did:key with its secret.
struct Ours {
    did: String,
    kid: String,
    key: SecretKey,
}

fn ours() -> Ours {
    let key = SecretKey::generate(KeyKind::Ed25519);
    let did = key::did_for(&key.public_key()).to_string();
    let kid = format!("{did}#{}", &did["did:key:".len()..]);
    Ours { did, kid, key }
}

fn trusting(issuer: &str) -> Value {
    let mut p = Policy::default();
    p.trust_issuer(None, issuer, &[EMPLOYEE.to_owned()]);
    p.to_value()
}

fn credential_body(issuer: &str, subject: &str, from: u64, until: u64) -> Value {
    json!({
        // Types and claims outside the W3C context resolve through an inline vocabulary.
        "@context": [vc::CONTEXT_V1, {"@vocab": "https://didmpc.dev/credentials#"}],
        "id": "urn:uuid:0b7e4f8e-49a3-4c38-9d39-2f8a9e7d1c55",
        "type": ["VerifiableCredential", EMPLOYEE],
        "issuer": issuer,
        "issuanceDate": proofs::time::format(from),
        "expirationDate": proofs::time::format(until),
        "credentialSubject": {"id": subject, "employeeOf": "ACME"},
    })
}

fn reason(r: proofs::Result<Option<proofs::Identity>>) -> ProofReason {
    r.expect_err("must be refused").proof_reason().expect("a proof refusal")
}

fn jwt_of(p: &Presented) -> String {
    match p {
        Presented::Vp { presentation: Value::String(s) } => s.clone(),
        other => panic!("not a JWT presentation: {other:?}"),
    }
}

#[test]
fn didkit_issued_credentials_are_admitted_or_refused_for_the_right_reason() {
    let t = now();
    let alice = ours();
    let bob = ours();
    let keys = didkit(json!([{"op": "new_key"}, {"op": "new_key"}]));
    let (issuer, other_issuer) = (&keys[0], &keys[1]);
    let iss = issuer["did"].as_str().unwrap();
    let issue = |subject: &str, from: u64, until: u64| json!({"op": "issue", "jwk": issuer["jwk"], "credential": credential_body(iss, subject, from, until)});
    let got = didkit(json!([
        issue(&alice.did, t - 3600, t + 86_400),
        issue(&alice.did, t - 86_400, t - 60),
        issue(&bob.did, t - 3600, t + 86_400),
        {"op": "issue", "jwk": other_issuer["jwk"],
         "credential": credential_body(other_issuer["did"].as_str().unwrap(), &alice.did, t - 3600, t + 86_400)},
    ]));
    let jwt = |i: usize| got[i]["jwt"].as_str().unwrap().to_owned();
    let s = oracle::session("AAECAwQFBgcICQoLDA0ODw", HOST, &[&alice.did, &bob.did], trusting(iss), t);
    let present = |creds: &[String]| {
        let creds: Vec<Value> = creds.iter().map(|c| json!(c)).collect();
        serde_json::to_value(proofs::vp_present(&s, &alice.did, &creds, &alice.kid, &alice.key, t).unwrap()).unwrap()
    };

    let id = oracle::admit(&s, &alice.did, Some(&present(&[jwt(0)])), t).expect("DIDKit's credential admitted");
    let id = id.expect("an identity");
    assert_eq!((id.kind, id.id.as_str(), id.credential_type.as_deref()), (Kind::Vp, iss, Some(EMPLOYEE)));
    assert_eq!(reason(oracle::admit(&s, &alice.did, Some(&present(&[jwt(1)])), t)), ProofReason::Expired);
    assert_eq!(reason(oracle::admit(&s, &alice.did, Some(&present(&[jwt(2)])), t)), ProofReason::SubjectMismatch);
    assert_eq!(reason(oracle::admit(&s, &alice.did, Some(&present(&[jwt(3)])), t)), ProofReason::UntrustedIssuer);
}

#[test]
fn didkit_presentations_over_our_challenge_are_admitted_and_others_refused() {
    let t = now();
    let keys = didkit(json!([{"op": "new_key"}, {"op": "new_key"}]));
    let (issuer, holder) = (&keys[0], &keys[1]);
    let (iss, hold) = (issuer["did"].as_str().unwrap(), holder["did"].as_str().unwrap());
    let s = oracle::session("AAECAwQFBgcICQoLDA0ODw", HOST, &[hold], trusting(iss), t);
    let other = oracle::session("EBESExQVFhcYGRobHB0eHw", HOST, &[hold], trusting(iss), t);
    let c = didkit(json!([{"op": "issue", "jwk": issuer["jwk"],
                           "credential": credential_body(iss, hold, t - 3600, t + 86_400)}]))[0]["jwt"]
        .clone();
    let pres = json!({
        "@context": [vc::CONTEXT_V1],
        "type": ["VerifiablePresentation"],
        "holder": hold,
        "verifiableCredential": [c],
    });
    let ask = |sess: &proofs::Session| {
        json!({"op": "present", "jwk": holder["jwk"], "presentation": pres,
               "challenge": proofs::challenge(sess), "domain": proofs::domain(sess).unwrap()})
    };
    let got = didkit(json!([ask(&s), ask(&other)]));
    let as_proof = |i: usize| json!({"kind": "vp", "presentation": got[i]["jwt"]});
    let id = oracle::admit(&s, hold, Some(&as_proof(0)), t).expect("DIDKit's presentation admitted").unwrap();
    assert_eq!(id.id, iss);
    assert_eq!(reason(oracle::admit(&s, hold, Some(&as_proof(1)), t)), ProofReason::NonceReused);
    // Sent by someone else than its holder.
    assert_eq!(reason(oracle::admit(&s, HOST, Some(&as_proof(0)), t)), ProofReason::SubjectMismatch);
}

#[test]
fn our_credentials_and_presentations_pass_didkits_verifier() {
    let t = now();
    let (acme, alice) = (ours(), ours());
    let c = vc::issue(
        &vc::Claims {
            issuer: acme.did.clone(),
            subject: alice.did.clone(),
            types: vec![EMPLOYEE.into()],
            subject_claims: Default::default(),
            valid_from: t - 60,
            valid_until: Some(t + 86_400),
            id: Some("urn:uuid:5e1c0f52-9a65-4b0e-8d43-1f7c7c0a9b10".into()),
        },
        &acme.kid,
        &acme.key,
    )
    .unwrap();
    let s = oracle::session("AAECAwQFBgcICQoLDA0ODw", HOST, &[&alice.did], trusting(&acme.did), t);
    let vp = jwt_of(&proofs::vp_present(&s, &alice.did, &[json!(c)], &alice.kid, &alice.key, t).unwrap());
    let (challenge, domain) = (proofs::challenge(&s), proofs::domain(&s).unwrap());
    // A signature byte flipped.
    let mut tampered = c.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let got = didkit(json!([
        {"op": "verify_credential", "jwt": c},
        {"op": "verify_presentation", "jwt": vp, "challenge": challenge, "domain": domain},
        {"op": "verify_credential", "jwt": tampered},
        {"op": "verify_presentation", "jwt": vp, "challenge": "0".repeat(32), "domain": domain},
    ]));
    let errors = |i: usize| got[i]["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors(0).is_empty() && !got[0]["checks"].as_array().unwrap().is_empty(), "credential: {}", got[0]);
    assert!(errors(1).is_empty() && !got[1]["checks"].as_array().unwrap().is_empty(), "presentation: {}", got[1]);
    assert!(!errors(2).is_empty(), "DIDKit must refuse a tampered credential: {}", got[2]);
    assert!(!errors(3).is_empty(), "DIDKit must refuse another challenge: {}", got[3]);
}

/// Runs the Digital Bazaar oracle (node) on one batch of requests.
fn digital_bazaar(reqs: Value) -> Vec<Value> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let script = oracle::dir("dbvc").join("setup.sh");
        let out = std::process::Command::new("bash").arg(&script).output().expect("run setup.sh");
        assert!(
            out.status.success(),
            "the Digital Bazaar VC oracle (node + npm) is required; run `bash {}` and read its errors:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    });
    let mut child = std::process::Command::new("node")
        .arg("oracle.mjs")
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start node");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), reqs.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node oracle failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON answers");
    for a in &answers {
        assert!(a.get("error").is_none(), "Digital Bazaar oracle failed: {a}");
    }
    answers
}

/// Alice presents `credential` (an embedded-proof object) in a session trusting `issuer`.
fn present_object(issuer: &str, alice: &Ours, credential: &Value, t: u64) -> proofs::Result<Option<proofs::Identity>> {
    let s = oracle::session("AAECAwQFBgcICQoLDA0ODw", HOST, &[&alice.did], trusting(issuer), t);
    let p = proofs::vp_present(&s, &alice.did, std::slice::from_ref(credential), &alice.kid, &alice.key, t).unwrap();
    oracle::admit(&s, &alice.did, Some(&serde_json::to_value(p).unwrap()), t)
}

/// A signed credential with a subject claim changed after signing.
fn edited(c: &Value) -> Value {
    let mut c = c.clone();
    c["credentialSubject"]["employeeOf"] = json!("Mallory Inc.");
    c
}

#[test]
fn data_integrity_credentials_from_didkit_are_admitted_or_refused_for_the_right_reason() {
    let t = now();
    let alice = ours();
    let issuer = &didkit(json!([{"op": "new_key"}]))[0];
    let iss = issuer["did"].as_str().unwrap();
    let ldp = |from: u64, until: u64| {
        json!({"op": "issue", "jwk": issuer["jwk"], "format": "ldp",
               "credential": credential_body(iss, &alice.did, from, until)})
    };
    let got = didkit(json!([ldp(t - 3600, t + 86_400), ldp(t - 86_400, t - 60)]));
    let (good, old) = (&got[0]["credential"], &got[1]["credential"]);
    assert_eq!(good["proof"]["type"], "Ed25519Signature2018", "{good}");
    let id = present_object(iss, &alice, good, t).expect("DIDKit's Data Integrity credential admitted").unwrap();
    assert_eq!((id.id.as_str(), id.credential_type.as_deref()), (iss, Some(EMPLOYEE)));
    assert_eq!(reason(present_object(iss, &alice, &edited(good), t)), ProofReason::BadSignature);
    assert_eq!(reason(present_object(iss, &alice, old, t)), ProofReason::Expired);
    assert_eq!(reason(present_object(HOST, &alice, good, t)), ProofReason::UntrustedIssuer);
}

#[test]
fn data_integrity_credentials_from_digital_bazaar_are_admitted_or_refused_for_the_right_reason() {
    let t = now();
    let (alice, bob) = (ours(), ours());
    let ask = |subject: &str| {
        json!({"op": "issue", "subject": subject, "types": [EMPLOYEE],
               "issuanceDate": proofs::time::format(t - 3600), "expirationDate": proofs::time::format(t + 86_400)})
    };
    let got = digital_bazaar(json!([ask(&alice.did), ask(&bob.did)]));
    let (iss, good) = (got[0]["issuer"].as_str().unwrap(), &got[0]["credential"]);
    assert_eq!(good["proof"]["type"], "Ed25519Signature2020", "{good}");
    let id = present_object(iss, &alice, good, t).expect("Digital Bazaar's credential admitted").unwrap();
    assert_eq!((id.kind, id.id.as_str(), id.credential_type.as_deref()), (Kind::Vp, iss, Some(EMPLOYEE)));
    assert_eq!(reason(present_object(iss, &alice, &edited(good), t)), ProofReason::BadSignature);
    let (bob_iss, bobs) = (got[1]["issuer"].as_str().unwrap(), &got[1]["credential"]);
    assert_eq!(reason(present_object(bob_iss, &alice, bobs, t)), ProofReason::SubjectMismatch);
}
