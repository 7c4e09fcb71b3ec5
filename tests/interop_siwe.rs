//! Sign-In with Ethereum against software no one here wrote: messages built by PyPI
//! `siwe` 4.4.0 and signed by `eth-account` 0.13.7 are admitted (or refused for the right
//! reason) by our verifier, and the messages we build and sign pass `siwe`'s ABNF parser
//! and verifier. The pinned venv comes from `tests/interop/siwe/setup-venv.sh`; this test
//! never skips.

#[path = "support/oracle.rs"]
mod oracle;

use std::path::PathBuf;
use std::sync::OnceLock;

use did_core::didcomm::message::now;
use proofs::eth::{Account, LocalKey};
use proofs::{siwe, time, Policy, ProofReason, Session, SIWE_STATEMENT};
use serde_json::{json, Value};

const ALICE: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
const HOST: &str = "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WXWSkDu8K4p";

fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| oracle::venv_python("siwe", "SIWE (PyPI siwe + eth-account)")).clone()
}

/// One batch of requests to the oracle.
fn oracle(reqs: Value) -> Vec<Value> {
    oracle::ask(&python(), "siwe", "siwe_oracle.py", reqs)
}

fn session(id: &str, proofs: Value, at: u64) -> Session {
    oracle::session(id, HOST, &[ALICE], proofs, at)
}

fn policy(accounts: &[&str]) -> Value {
    let mut p = Policy::default();
    for a in accounts {
        p.require_account(None, &Account::parse(a).unwrap());
    }
    p.to_value()
}

fn siwe_proof(message: &Value, signature: &Value) -> Value {
    json!({"kind": "siwe", "message": message, "signature": signature})
}

fn refusal(r: proofs::Result<Option<proofs::Identity>>) -> ProofReason {
    r.expect_err("must be refused").proof_reason().expect("a proof refusal")
}

#[test]
fn proofs_signed_by_eth_account_and_built_by_siwe_are_verified_here() {
    let t = now();
    let keys = oracle(json!([{"op": "new_key"}, {"op": "new_key"}]));
    let (key, address) = (keys[0]["key"].as_str().unwrap(), keys[0]["address"].as_str().unwrap());
    let stranger_key = keys[1]["key"].as_str().unwrap();
    let s = session("AAECAwQFBgcICQoLDA0ODw", policy(&[address]), t);
    let (domain, nonce) = (proofs::domain(&s).unwrap(), proofs::challenge(&s));
    let fields = |nonce: &str, iat: u64, exp: u64| {
        json!({
            "domain": domain, "uri": ALICE, "version": "1", "chain_id": 1, "nonce": nonce,
            "issued_at": time::format(iat), "expiration_time": time::format(exp), "statement": SIWE_STATEMENT,
        })
    };
    let mut minimal = fields(&nonce, t, t + 300);
    minimal.as_object_mut().unwrap().remove("statement");
    minimal["not_before"] = json!(time::format(t - 60));
    minimal["request_id"] = json!(s.id);
    minimal["resources"] = json!(["https://example.com/policy.json", "urn:didmpc:session"]);
    let ours = proofs::siwe_message(&s, ALICE, &Account::parse(address).unwrap(), t).unwrap().to_string();
    let got = oracle(json!([
        {"op": "make", "key": key, "fields": fields(&nonce, t, t + 600)},
        {"op": "sign_text", "key": key, "text": ours},
        {"op": "make", "key": key, "fields": minimal},
        {"op": "make", "key": stranger_key, "fields": fields(&nonce, t, t + 300)},
        {"op": "make", "key": key, "fields": fields("0123456789abcdef0123456789abcdef", t, t + 300)},
        {"op": "make", "key": key, "fields": fields(&nonce, t - 900, t - 300)},
    ]));

    // Built by `siwe`, signed by `eth-account`: admitted as the account's did:pkh.
    let id = oracle::admit(&s, ALICE, Some(&siwe_proof(&got[0]["message"], &got[0]["signature"])), t)
        .expect("siwe-built proof admitted")
        .expect("an identity");
    assert_eq!(id.id, format!("did:pkh:eip155:1:{address}"));
    let text = got[0]["message"].as_str().unwrap();
    assert_eq!(siwe::parse(text).unwrap().to_string(), text, "we parse siwe's text back exactly");
    assert_eq!(text, ours.replace(&format!("\nRequest ID: {}", s.id), ""), "same layout as ours");

    // Our exact text signed by `eth-account`.
    oracle::admit(&s, ALICE, Some(&siwe_proof(&json!(ours), &got[1]["signature"])), t)
        .expect("our text, their signature");

    // No statement, Not Before, Request ID and Resources, as `siwe` writes them.
    let expect = siwe::Expect { domain: &domain, nonce: &nonce, uri: ALICE, max_validity_secs: 3600, now: t };
    let v = siwe::verify(got[2]["message"].as_str().unwrap(), got[2]["signature"].as_str().unwrap(), &expect)
        .expect("the minimal siwe message verifies");
    assert_eq!(v.account.address.to_string(), address);
    assert_eq!(v.message.resources.len(), 2);
    assert!(v.message.statement.is_none());

    // Refusals, each for its reason.
    let p = |i: usize| siwe_proof(&got[i]["message"], &got[i]["signature"]);
    assert_eq!(refusal(oracle::admit(&s, ALICE, Some(&p(3)), t)), ProofReason::WrongAccount);
    assert_eq!(refusal(oracle::admit(&s, ALICE, Some(&p(4)), t)), ProofReason::NonceReused);
    assert_eq!(refusal(oracle::admit(&s, ALICE, Some(&p(5)), t)), ProofReason::Expired);
    let other = session("EBESExQVFhcYGRobHB0eHw", policy(&[address]), t);
    assert_eq!(refusal(oracle::admit(&other, ALICE, Some(&p(0)), t)), ProofReason::NonceReused);
    let bob = "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG";
    assert_eq!(refusal(oracle::admit(&s, bob, Some(&p(0)), t)), ProofReason::SubjectMismatch);
    let forged = siwe_proof(&got[0]["message"], &got[3]["signature"]);
    assert_eq!(refusal(oracle::admit(&s, ALICE, Some(&forged), t)), ProofReason::BadSignature);
}

#[test]
fn our_messages_pass_the_siwe_librarys_parser_and_verifier() {
    let t = now();
    let key = LocalKey::generate();
    let s = session("AAECAwQFBgcICQoLDA0ODw", policy(&[&key.address().to_string()]), t);
    let (domain, nonce) = (proofs::domain(&s).unwrap(), proofs::challenge(&s));
    let proofs::Presented::Siwe { message, signature } = proofs::siwe_sign(&s, ALICE, &key, 1, t).unwrap() else {
        unreachable!()
    };
    let got = oracle(json!([
        {"op": "verify", "message": message, "signature": signature, "domain": domain, "nonce": nonce, "timestamp": t},
        {"op": "verify", "message": message, "signature": signature, "domain": domain, "nonce": "0123456789abcdef", "timestamp": t},
        {"op": "verify", "message": message, "signature": signature, "domain": domain, "nonce": nonce, "timestamp": t + 3600},
        {"op": "verify", "message": message.replace("Chain ID: 1", "Chain ID: 5"), "signature": signature, "domain": domain, "nonce": nonce, "timestamp": t},
    ]));
    assert_eq!(got[0]["ok"], true, "siwe accepts our message: {}", got[0]);
    assert_eq!(got[0]["address"], key.address().to_string());
    assert_eq!(got[0]["reprepared_equal"], true, "siwe writes our message back byte for byte");
    assert!(got[1]["error"].as_str().unwrap().starts_with("NonceMismatch"), "{}", got[1]);
    assert!(got[2]["error"].as_str().unwrap().starts_with("ExpiredMessage"), "{}", got[2]);
    assert!(got[3]["error"].as_str().unwrap().starts_with("InvalidSignature"), "{}", got[3]);
}
