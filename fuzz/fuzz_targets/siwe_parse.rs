//! `proofs::siwe::parse` (EIP-4361) on arbitrary text: no panic; a parsed message prints
//! as text that parses back to the same message, and verifying it with a junk signature
//! fails cleanly.
#![no_main]

use proofs::siwe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = siwe::parse(s) {
        let text = m.to_string();
        assert_eq!(siwe::parse(&text).expect("printed message parses"), m);
        let expect = siwe::Expect { domain: &m.domain, nonce: &m.nonce, uri: &m.uri, max_validity_secs: 60, now: 0 };
        assert!(siwe::verify(s, &format!("0x{}1b", "11".repeat(64)), &expect).is_err());
    }
});
