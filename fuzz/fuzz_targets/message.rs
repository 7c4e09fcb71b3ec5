//! `Message::from_value` on arbitrary JSON: no panic, and an accepted message survives
//! `to_value` → `from_value` unchanged. Accepted messages also go through `parse_forward`.
#![no_main]

use did_core::didcomm::{parse_forward, Message};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(msg) = Message::from_value(v) else {
        return;
    };
    let out = msg.to_value();
    let back = Message::from_value(out.clone())
        .unwrap_or_else(|e| panic!("own output does not parse: {e}\n{out:#}"));
    assert_eq!(back, msg);
    assert_eq!(
        Message::from_value(serde_json::from_str(&msg.to_json()).expect("JSON")).ok(),
        Some(msg.clone())
    );
    let _ = msg.thread_id();
    let _ = msg.is_expired(u64::MAX);
    if let Ok(fwd) = parse_forward(&msg) {
        assert!(fwd.next.starts_with("did:"));
        assert!(!fwd.payloads.is_empty());
    }
});
