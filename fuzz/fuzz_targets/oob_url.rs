//! `oob::from_url` on arbitrary text: no panic; a decoded invitation has a `from`, and
//! re-encoding it with `to_url` decodes to the same message.
#![no_main]

use did_core::didcomm::oob::{self, OobRef, MAX_URL_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match oob::from_url(s) {
        Ok(OobRef::Invitation(inv)) => {
            assert!(inv.from.is_some());
            let url = oob::to_url(&inv, "https://example.com/path?x=1");
            if url.len() <= MAX_URL_BYTES {
                match oob::from_url(&url) {
                    Ok(OobRef::Invitation(back)) => assert_eq!(back, inv),
                    other => panic!("re-encoded invitation decodes as {other:?}"),
                }
            }
        }
        Ok(OobRef::ShortLink(id)) => assert!(!id.is_empty()),
        Err(_) => {}
    }
});
