//! `DidDocument::from_json` on arbitrary text: no panic, and an accepted document
//! survives `to_value` → `from_value` unchanged (and serializes the same again).
#![no_main]

use did_core::{DidDocument, Relationship};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = DidDocument::from_json(text) else {
        return;
    };
    let v = doc.to_value();
    let back = DidDocument::from_value(&v)
        .unwrap_or_else(|e| panic!("own output does not parse: {e}\n{v:#}"));
    assert_eq!(back, doc, "round trip changed the document:\n{v:#}");
    assert_eq!(back.to_value(), v);
    // The lookups every consumer uses.
    for rel in Relationship::ALL {
        for vm in doc.methods(rel) {
            assert!(doc.has(rel, &vm.id));
            assert_eq!(doc.method(&vm.id), Some(vm));
        }
    }
    let _ = doc.didcomm_endpoints().count();
});
