//! The session wire codec on arbitrary bytes: `Header::decode`, `split_plain` and the
//! `records` iterator never panic, and every decoded header or record encodes back to
//! exactly the bytes it was decoded from. The other way round, a CLOSE with the input as
//! its reason (any UTF-8, any length) encodes to `encoded_len` bytes that decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session::frame::{self, Header, Record, HEADER_LEN, MAX_PACKET, PLAIN_HEADER_LEN, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok((header, ct)) = Header::decode(data) {
        assert!((HEADER_LEN + TAG_LEN..=MAX_PACKET).contains(&data.len()));
        assert_eq!(header.encode(), data[..HEADER_LEN]);
        assert_eq!(ct, &data[HEADER_LEN..]);
    }
    // The input as a plaintext (seq, ack, records), and as a bare records body.
    let plain_body = match frame::split_plain(data) {
        Ok((seq, ack, body)) => {
            let mut h = Vec::new();
            frame::plain_header(seq, ack, &mut h);
            assert_eq!(h, data[..PLAIN_HEADER_LEN]);
            assert_eq!(body, &data[PLAIN_HEADER_LEN..]);
            Some(body)
        }
        Err(_) => {
            assert!(data.len() < PLAIN_HEADER_LEN);
            None
        }
    };
    for body in [Some(data), plain_body].into_iter().flatten() {
        let mut rest = body;
        let mut records = frame::records(body);
        while let Some(r) = records.next() {
            let Ok(r) = r else {
                assert!(records.next().is_none(), "the iterator stops after an error");
                rest = &[];
                break;
            };
            // The record consumed exactly its encoding from the front of what was left.
            let mut enc = Vec::new();
            r.encode(&mut enc);
            assert_eq!(enc.len(), r.encoded_len());
            assert_eq!(enc, rest[..enc.len()], "{r:?}");
            rest = &rest[enc.len()..];
            if let Record::Close { reason, .. } = r {
                assert!(reason.len() <= frame::MAX_REASON);
            }
        }
        assert!(rest.is_empty(), "records stop only at the end or at an error");
    }
    if let Ok(reason) = std::str::from_utf8(data) {
        let mut enc = Vec::new();
        Record::Close { code: 1, reason }.encode(&mut enc);
        assert_eq!(enc.len(), Record::Close { code: 1, reason }.encoded_len());
        match frame::records(&enc).collect::<Vec<_>>()[..] {
            [Ok(Record::Close { code: 1, reason: r })] => {
                assert!(reason.starts_with(r) && r.len() <= frame::MAX_REASON)
            }
            ref other => panic!("CLOSE did not decode again: {other:?}"),
        }
    }
});
