//! Admission and SIWE tests: the exact message layout, strict parsing, and each reason a
//! proof is refused.

use serde_json::{json, Value};

use super::eth::{Account, LocalKey};
use super::*;

/// [`super::admit`] with the standard resolver (did:key, did:peer), run to completion.
pub(super) fn admit(s: &Session, party: &str, proof: Option<&Value>, now: u64) -> Result<Option<Identity>> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(super::admit(s, party, proof, &did_core::Resolver::default(), now))
}

pub(super) const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const ALICE: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
const BOB: &str = "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG";
const HOST: &str = "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WXWSkDu8K4p";

fn session(id: &str, proofs: Value) -> Session {
    session_with(id, proofs, &[ALICE, BOB])
}

/// A session hosted by HOST with these invitees, joinable until NOW + 600; its digest
/// stands in for a signed descriptor's (it covers the id, roster and policy).
pub(super) fn session_with(id: &str, proofs: Value, invitees: &[&str]) -> Session {
    let mut roster = vec![HOST.to_owned()];
    roster.extend(invitees.iter().map(|d| d.to_string()));
    let payload = json!({"id": id, "host": HOST, "roster": roster, "proofs": proofs, "expires": NOW + 600});
    let digest = Sha256::digest(serde_json::to_vec(&payload).unwrap()).into();
    Session { id: id.into(), digest, join_deadline: NOW + 600, policy: proofs }
}

fn policy_for(accounts: &[&Account]) -> Value {
    let mut p = Policy::default();
    for a in accounts {
        p.require_account(None, a);
    }
    p.to_value()
}

fn account(k: &LocalKey) -> Account {
    Account { chain: 1, address: k.address() }
}

pub(super) fn reason(r: Result<Option<Identity>>) -> ProofReason {
    r.expect_err("the proof must be refused").proof_reason().expect("a proof refusal")
}

fn sign_text(k: &LocalKey, text: &str) -> Value {
    let sig = format!("0x{}", eth::hex_encode(&k.personal_sign(text.as_bytes()).unwrap()));
    json!({"kind": "siwe", "message": text, "signature": sig})
}

#[test]
fn the_message_has_the_exact_eip_4361_layout_and_round_trips() {
    let k = LocalKey::from_bytes(&[7u8; 32]).unwrap();
    let s = session("AAECAwQFBgcICQoLDA0ODw", Value::Null);
    let m = siwe_message(&s, ALICE, &account(&k), NOW).unwrap();
    let text = m.to_string();
    let want = format!(
        "AAECAwQFBgcICQoLDA0ODw.didmpc wants you to sign in with your Ethereum account:\n{}\n\n{SIWE_STATEMENT}\n\n\
         URI: {ALICE}\nVersion: 1\nChain ID: 1\nNonce: {}\nIssued At: 2026-01-01T00:00:00Z\n\
         Expiration Time: 2026-01-01T00:10:00Z\nRequest ID: AAECAwQFBgcICQoLDA0ODw",
        k.address(),
        challenge(&s)
    );
    assert_eq!(text, want);
    assert_eq!(siwe::parse(&text).unwrap(), m);
    assert_eq!(challenge(&s).len(), 32);
}

#[test]
fn the_parser_takes_every_optional_field_and_no_statement() {
    let text = "https://example.com:8443 wants you to sign in with your Ethereum account:\n\
                0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n\n\n\
                URI: https://example.com/login?x=1#f\nVersion: 1\nChain ID: 137\nNonce: abcdEFGH1234\n\
                Issued At: 2021-12-07T18:28:18.807Z\nExpiration Time: 2021-12-08T18:28:18+01:00\n\
                Not Before: 2021-12-07T18:28:18Z\nRequest ID: some-id:1@x\nResources:\n\
                - ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n- https://example.com/my-web2-claim.json";
    let m = siwe::parse(text).unwrap();
    assert_eq!(m.scheme.as_deref(), Some("https"));
    assert_eq!(m.domain, "example.com:8443");
    assert_eq!(m.statement, None);
    assert_eq!(m.chain_id, 137);
    assert_eq!(m.resources.len(), 2);
    assert_eq!(m.to_string(), text, "display is the exact text");
}

#[test]
fn the_parser_is_strict() {
    let k = LocalKey::from_bytes(&[7u8; 32]).unwrap();
    let s = session("AAECAwQFBgcICQoLDA0ODw", Value::Null);
    let good = siwe_message(&s, ALICE, &account(&k), NOW).unwrap().to_string();
    let addr = k.address().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("trailing newline", format!("{good}\n")),
        ("CRLF", good.replace('\n', "\r\n")),
        ("lowercase address", good.replace(&addr, &addr.to_lowercase())),
        ("version 2", good.replace("Version: 1", "Version: 2")),
        ("short nonce", good.replace(&challenge(&s), "abc123")),
        ("nonce with a dash", good.replace(&challenge(&s), "abcd-efgh-1234")),
        ("space in domain", good.replace(".didmpc wants", ".did mpc wants")),
        ("no empty line after the statement", good.replace(".\n\nURI", ".\nURI")),
        ("fields out of order", good.replace("Version: 1\nChain ID: 1", "Chain ID: 1\nVersion: 1")),
        ("bad date", good.replace("2026-01-01T00:10:00Z", "2026-01-01 00:10:00")),
        ("chain id not a number", good.replace("Chain ID: 1", "Chain ID: one")),
        ("unknown field", format!("{good}\nColor: blue")),
        ("a URI that is not one", good.replace(&format!("URI: {ALICE}"), "URI: not a uri")),
        ("a statement with a newline", good.replace(SIWE_STATEMENT, "one\ntwo")),
        ("empty", String::new()),
        ("huge", format!("{good}{}", " ".repeat(siwe::MAX_MESSAGE_BYTES))),
    ];
    for (what, text) in cases {
        let e = siwe::parse(&text).expect_err(what);
        assert_eq!(e.proof_reason(), Some(ProofReason::Malformed), "{what}: {e}");
    }
}

#[test]
fn a_good_proof_admits_the_party_with_its_account() {
    let k = LocalKey::generate();
    let s = session("AAECAwQFBgcICQoLDA0ODw", policy_for(&[&account(&k)]));
    let p = serde_json::to_value(siwe_sign(&s, ALICE, &k, 1, NOW).unwrap()).unwrap();
    let id = admit(&s, ALICE, Some(&p), NOW + 5).unwrap().unwrap();
    assert_eq!(id.id, account(&k).did_pkh());
    assert_eq!(id.to_string(), format!("account {}", account(&k).did_pkh()));
    // No policy: nothing asked, nothing checked.
    assert_eq!(admit(&session("x", Value::Null), ALICE, None, NOW).unwrap(), None);
}

#[test]
fn each_bad_proof_is_refused_for_its_own_reason() {
    let good = LocalKey::generate();
    let other = LocalKey::generate();
    let s = session("AAECAwQFBgcICQoLDA0ODw", policy_for(&[&account(&good)]));
    let proof =
        |k: &LocalKey, party: &str, at: u64| serde_json::to_value(siwe_sign(&s, party, k, 1, at).unwrap()).unwrap();

    // Missing, and a kind the policy does not accept.
    assert_eq!(reason(admit(&s, ALICE, None, NOW)), ProofReason::Missing);
    let vp = json!({"kind": "vp", "presentation": {}});
    assert_eq!(reason(admit(&s, ALICE, Some(&vp), NOW)), ProofReason::KindNotAccepted);

    // A valid proof by an account the host does not admit.
    assert_eq!(reason(admit(&s, ALICE, Some(&proof(&other, ALICE, NOW)), NOW)), ProofReason::WrongAccount);

    // Expired: after its expiration time, or valid for longer than the policy allows.
    let p = proof(&good, ALICE, NOW);
    assert_eq!(reason(admit(&s, ALICE, Some(&p), NOW + 601)), ProofReason::Expired);
    let m = siwe_message(&s, ALICE, &account(&good), NOW).unwrap();
    let long = siwe::Message { expiration_time: Some(time::format(NOW + 2 * 86_400)), ..m.clone() };
    assert_eq!(reason(admit(&s, ALICE, Some(&sign_text(&good, &long.to_string())), NOW)), ProofReason::Expired);
    let forever = siwe::Message { expiration_time: None, ..m.clone() };
    assert_eq!(reason(admit(&s, ALICE, Some(&sign_text(&good, &forever.to_string())), NOW)), ProofReason::Expired);
    // Not yet valid.
    let future = siwe::Message { not_before: Some(time::format(NOW + 3600)), ..m.clone() };
    assert_eq!(reason(admit(&s, ALICE, Some(&sign_text(&good, &future.to_string())), NOW)), ProofReason::NotYetValid);

    // Replayed into another session: same host, same roster, another id, so another
    // nonce and domain; and a new descriptor version of the same id (another nonce).
    let other_session = session("EBESExQVFhcYGRobHB0eHw", s.policy.clone());
    assert_eq!(reason(admit(&other_session, ALICE, Some(&p), NOW)), ProofReason::NonceReused);
    let mut same_id = s.clone();
    same_id.digest[0] ^= 1;
    assert_eq!(reason(admit(&same_id, ALICE, Some(&p), NOW)), ProofReason::NonceReused);

    // Alice's proof presented by Bob (the URI names Alice).
    assert_eq!(reason(admit(&s, BOB, Some(&p), NOW)), ProofReason::SubjectMismatch);

    // Malformed message, malformed signature, and a signature by another key.
    let mut broken = p.clone();
    broken["message"] = json!(m.to_string().replace("Version: 1", "Version: one"));
    assert_eq!(reason(admit(&s, ALICE, Some(&broken), NOW)), ProofReason::Malformed);
    let mut short_sig = p.clone();
    short_sig["signature"] = json!("0x1234");
    assert_eq!(reason(admit(&s, ALICE, Some(&short_sig), NOW)), ProofReason::Malformed);
    assert_eq!(reason(admit(&s, ALICE, Some(&json!({"kind": "siwe"})), NOW)), ProofReason::Malformed);
    let forged = json!({"kind": "siwe", "message": p["message"], "signature": proof(&other, ALICE, NOW)["signature"]});
    assert_eq!(reason(admit(&s, ALICE, Some(&forged), NOW)), ProofReason::BadSignature);
    let tampered = json!({"kind": "siwe", "message": p["message"].as_str().unwrap().replace("Chain ID: 1", "Chain ID: 5"), "signature": p["signature"]});
    assert_eq!(reason(admit(&s, ALICE, Some(&tampered), NOW)), ProofReason::BadSignature);
}

#[test]
fn per_party_accounts_and_any_account() {
    let (a, b) = (LocalKey::generate(), LocalKey::generate());
    let mut p = Policy::default();
    p.require_account(Some(ALICE), &account(&a));
    p.require_account(Some(BOB), &account(&b));
    let s = session("AAECAwQFBgcICQoLDA0ODw", p.to_value());
    let pa = serde_json::to_value(siwe_sign(&s, ALICE, &a, 1, NOW).unwrap()).unwrap();
    assert!(admit(&s, ALICE, Some(&pa), NOW).unwrap().is_some());
    let pb_wrong = serde_json::to_value(siwe_sign(&s, BOB, &a, 1, NOW).unwrap()).unwrap();
    assert_eq!(reason(admit(&s, BOB, Some(&pb_wrong), NOW)), ProofReason::WrongAccount);
    // Chain matters: the same address on another chain is another account.
    let pa137 = serde_json::to_value(siwe_sign(&s, ALICE, &a, 137, NOW).unwrap()).unwrap();
    assert_eq!(reason(admit(&s, ALICE, Some(&pa137), NOW)), ProofReason::WrongAccount);

    let mut any = Policy::default();
    any.accept_any_account(None);
    let s = session("AAECAwQFBgcICQoLDA0ODw", any.to_value());
    let p = serde_json::to_value(siwe_sign(&s, BOB, &b, 1, NOW).unwrap()).unwrap();
    assert_eq!(admit(&s, BOB, Some(&p), NOW).unwrap().unwrap().id, account(&b).did_pkh());
}
