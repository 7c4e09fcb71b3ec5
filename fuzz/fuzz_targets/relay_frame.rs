//! Relay frames on arbitrary bytes (what a relay or a client reads off a WebSocket):
//! `Frame::decode` never panics, accepts nothing larger than `MAX_FRAME`, and whatever it
//! accepts encodes back to exactly the input, `encoded_len` included (the codec is
//! canonical). A JOIN's MAC check never panics either.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use relay::auth::RouteKey;
use relay::proto::{Frame, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(frame) = Frame::decode(&bytes) else { return };
    assert!(data.len() <= MAX_FRAME);
    assert_eq!(frame.encoded_len(), data.len());
    assert_eq!(frame.encode(), bytes, "{frame:?}");
    if let Frame::Join { route, slot, mac } = frame {
        let _ = RouteKey::from_slice(&[7; 32]).map(|k| k.slot_secret(slot).verify(&[0; 32], &route, slot, &mac));
    }
});
