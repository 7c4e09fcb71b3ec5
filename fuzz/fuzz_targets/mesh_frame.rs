//! Instance-link frames on arbitrary bytes (what one mediator instance reads from another,
//! or from whoever reached `GET /cluster/link`): `LinkFrame::decode` never panics, accepts
//! nothing larger than `MAX_FRAME`, and whatever it accepts encodes back to exactly the input
//! (the codec is canonical).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use relay::mesh::LinkFrame;
use relay::proto::MAX_FRAME;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(frame) = LinkFrame::decode(&bytes) else { return };
    assert!(data.len() <= MAX_FRAME);
    assert_eq!(frame.encode(), bytes, "{frame:?}");
});
