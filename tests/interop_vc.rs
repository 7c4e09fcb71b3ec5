//! Verifiable Credentials against software no one here wrote: SpruceID's DIDKit (PyPI
//! `didkit` 0.3.3, offline: did:key and JWT proofs need no network or JSON-LD contexts).
//! - credentials DIDKit issues to a party are admitted in the party's presentation, or
//!   refused for the right reason (untrusted issuer, expired, subject mismatch);
//! - presentations DIDKit makes as the holder, over our session challenge and domain, are
//!   admitted; one made for another session is refused (nonce reused);
//! - credentials and presentations we make pass DIDKit's own verifier, and tampered ones
//!   do not.
//!
//! The pinned venv comes from `tests/interop/didkit/setup-venv.sh`; this test never skips.

#[path = "support/oracle.rs"]
mod oracle;

use std::path::PathBuf;
use std::sync::OnceLock;

use did_core::didcomm::message::now;
use did_core::method::key;
use did_core::{KeyKind, SecretKey};
use gateway::error::ProofReason;
use gateway::proof::{self, vc, Kind, Policy, Presented};
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
        "@context": [vc::CONTEXT_V1],
        "id": "urn:uuid:0b7e4f8e-49a3-4c38-9d39-2f8a9e7d1c55",
        "type": ["VerifiableCredential", EMPLOYEE],
        "issuer": issuer,
        "issuanceDate": proof::time::format(from),
        "expirationDate": proof::time::format(until),
        "credentialSubject": {"id": subject, "employeeOf": "ACME"},
    })
}

fn reason(r: gateway::Result<Option<proof::Identity>>) -> ProofReason {
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
        serde_json::to_value(proof::vp_present(&s, &alice.did, creds, &alice.kid, &alice.key, t).unwrap()).unwrap()
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
    let ask = |sess: &gateway::descriptor::Signed| {
        json!({"op": "present", "jwk": holder["jwk"], "presentation": pres,
               "challenge": proof::challenge(sess), "domain": proof::domain(sess).unwrap()})
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
    let vp = jwt_of(&proof::vp_present(&s, &alice.did, std::slice::from_ref(&c), &alice.kid, &alice.key, t).unwrap());
    let (challenge, domain) = (proof::challenge(&s), proof::domain(&s).unwrap());
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
