//! What a host parses from a `join` proof of kind `vp` (network bytes): a compact JWS
//! whose claims are a VP or a VC, or a JSON credential with an embedded Data Integrity
//! proof, then the whole verification (did:key / did:peer resolve locally, no network). No panic, and every refusal carries a proof reason (so the party
//! gets a problem report that says why).
#![no_main]

use proofs::{di, jwt, vc};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(j) = jwt::decode(text, "presentation") {
        for name in ["iss", "sub", "aud", "nonce", "jti"] {
            let _ = j.str_claim(name);
        }
        for name in ["nbf", "exp", "iat"] {
            let _ = j.time_claim(name);
        }
    }
    if let Err(e) = vc::peek_issuer(text) {
        assert!(e.proof_reason().is_some(), "{e}");
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let resolver = did_core::Resolver::default();
    let expect = vc::Expect {
        holder: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        challenge: "00112233445566778899aabbccddeeff",
        domain: "AAECAwQFBgcICQoLDA0ODw.didmpc",
        max_validity_secs: 86_400,
        now: NOW,
    };
    if let Err(e) = rt.block_on(vc::verify_presentation(text, &expect, &resolver)) {
        assert!(e.proof_reason().is_some(), "{e}");
    }
    if let Err(e) = rt.block_on(vc::verify_credential(text, &resolver, NOW)) {
        assert!(e.proof_reason().is_some(), "{e}");
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if let Err(e) = di::peek_issuer(&v) {
            assert!(e.proof_reason().is_some(), "{e}");
        }
        if let Err(e) = rt.block_on(di::verify_credential(&v, &resolver, NOW)) {
            assert!(e.proof_reason().is_some(), "{e}");
        }
    }
});
