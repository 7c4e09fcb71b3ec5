//! did:peer:2 resolution: `did:peer:2.` + arbitrary text, resolved if it is a DID.
//! Must not panic; a resolved document describes that DID with absolute key ids.
#![no_main]

use did_core::method::peer;
use did_core::{Did, Relationship};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tail) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(did) = Did::parse(&format!("did:peer:2.{tail}")) else {
        return;
    };
    let Ok(doc) = peer::resolve(&did) else {
        return;
    };
    assert_eq!(doc.id, did);
    let prefix = format!("{did}#");
    for vm in &doc.verification_method {
        assert!(vm.id.starts_with(&prefix), "{}", vm.id);
    }
    for rel in Relationship::ALL {
        assert!(doc.methods(rel).all(|vm| doc.has(rel, &vm.id)));
    }
    assert_eq!(
        peer::peer3(&did).ok().map(|d| d.to_string()).as_ref(),
        doc.also_known_as.first()
    );
    let _ = doc.didcomm_endpoints().count();
    let _ = doc.to_value();
});
