//! `Did::parse` and `DidUrl::parse` on arbitrary text: no panic, and whatever parses
//! displays as exactly the input and parses again to an equal value.
#![no_main]

use did_core::{Did, DidUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(did) = Did::parse(s) {
        assert_eq!(did.to_string(), s);
        assert_eq!(
            format!("did:{}:{}", did.method(), did.method_specific_id()),
            s
        );
        assert_eq!(Did::parse(&did.to_string()).ok().as_ref(), Some(&did));
        let _ = did.fmt_short();
        // A DID is also a DID URL (no path, query or fragment).
        let url = DidUrl::parse(s).expect("a valid DID is a valid DID URL");
        assert_eq!((url.did(), url.fragment()), (&did, None));
    }
    if let Ok(url) = DidUrl::parse(s) {
        let text = url.to_string();
        assert_eq!(text, s);
        assert_eq!(DidUrl::parse(&text).ok().as_ref(), Some(&url));
        assert!(s.starts_with(url.did().as_str()));
        if let Some(f) = url.fragment() {
            assert!(s.ends_with(&format!("#{f}")));
        }
    }
    // Relative references (`#frag`, `frag`) against a fixed base.
    let base = Did::parse("did:example:base").expect("valid base");
    if let Ok(url) = DidUrl::resolve_ref(&base, s) {
        assert_eq!(DidUrl::parse(&url.to_string()).ok(), Some(url));
    }
});
