use super::*;
use proptest::prelude::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn enc(r: &Record) -> String {
    let mut v = Vec::new();
    r.encode(&mut v);
    assert_eq!(v.len(), r.encoded_len());
    hex(&v)
}

/// Byte-exact snapshots of every frame type (specs/session.md §4).
#[test]
fn snapshots() {
    assert_eq!(hex(&Header { epoch: 2, nonce: 0x0102030405060708 }.encode()), "01020102030405060708");
    assert_eq!(enc(&Record::Open { id: 7 }), "0100000007");
    assert_eq!(
        enc(&Record::Data { id: 7, offset: 0x1122, data: b"hi" }),
        "02000000070000000000001122".to_owned() + "00026869"
    );
    assert_eq!(enc(&Record::Fin { id: 7, final_offset: 2 }), "03000000070000000000000002");
    assert_eq!(enc(&Record::Reset { id: 7, code: 0xdead }), "04000000070000dead");
    assert_eq!(enc(&Record::Window { id: 7, max_offset: 1 << 20 }), "05000000070000000000100000");
    assert_eq!(enc(&Record::Close { code: 1, reason: "bye" }), "0600000001".to_owned() + "0003627965");
    assert_eq!(enc(&Record::Ping), "07");
    assert_eq!(enc(&Record::PathChallenge { token: 0x0102 }), "090000000000000102");
    assert_eq!(enc(&Record::PathResponse { token: 0x0102 }), "0a0000000000000102");
    let mut acks = Vec::new();
    encode_acks(&[(9, 12), (5, 5)], &mut acks);
    assert_eq!(hex(&acks), "08020000000000000009000000000000000c00000000000000050000000000000005");
    let back: Vec<Record> = records(&acks).collect::<Result<_>>().unwrap();
    let Record::Acks { ranges } = &back[0] else { panic!("{back:?}") };
    assert_eq!(ranges.iter().collect::<Vec<_>>(), [(9, 12), (5, 5)]);
    assert_eq!(enc(&back[0]), hex(&acks));
    assert!(back[0].is_volatile() && Record::Ping.is_volatile() && !Record::Open { id: 1 }.is_volatile());
    let mut p = Vec::new();
    plain_header(5, 4, &mut p);
    assert_eq!(hex(&p), "00000000000000050000000000000004");
}

#[test]
fn bad_input_is_an_error() {
    for body in [
        &[0x02, 0, 0, 0][..],
        &[0x99],
        &[0x06, 0, 0, 0, 1, 0xff, 0xff],
        &[0x06, 0, 0, 0, 1, 0, 2, 0xff, 0xfe],
        &[0x02, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1],
        &[0x08, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[0x08],
        &[0x09, 0, 0, 0],
        &[0x0a, 0],
    ] {
        assert!(records(body).any(|r| r.is_err()), "{body:?}");
    }
    assert!(Header::decode(&[1, 0, 0]).is_err());
    assert!(Header::decode(&[2; 40]).is_err());
    assert!(Header::decode(&vec![1; MAX_PACKET + 1]).is_err());
    assert!(split_plain(&[0; 15]).is_err());
}

fn arb_record() -> impl Strategy<Value = (u8, u32, u64, Vec<u8>, String)> {
    (0u8..9, any::<u32>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300), "[a-z ]{0,40}")
}

proptest! {
    /// Any sequence of records round-trips and `encoded_len` is exact.
    #[test]
    fn roundtrip(items in proptest::collection::vec(arb_record(), 0..20)) {
        let recs: Vec<Record> = items.iter().map(|(t, id, n, data, s)| match t {
            0 => Record::Open { id: *id },
            1 => Record::Data { id: *id, offset: *n, data },
            2 => Record::Fin { id: *id, final_offset: *n },
            3 => Record::Reset { id: *id, code: *n as u32 },
            4 => Record::Window { id: *id, max_offset: *n },
            5 => Record::Close { code: *id, reason: s },
            6 => Record::PathChallenge { token: *n },
            7 => Record::PathResponse { token: *n },
            _ => Record::Ping,
        }).collect();
        let mut buf = Vec::new();
        for r in &recs { r.encode(&mut buf); }
        prop_assert_eq!(buf.len(), recs.iter().map(Record::encoded_len).sum::<usize>());
        let back: Vec<Record> = records(&buf).collect::<Result<_>>().unwrap();
        prop_assert_eq!(back, recs);
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = records(&bytes).count();
        let _ = Header::decode(&bytes);
        let _ = split_plain(&bytes);
    }
}

/// Regression (fuzz target `session_frame`): a CLOSE reason over `MAX_REASON` bytes is cut
/// at a character boundary, and `encoded_len` counts what `encode` writes, so the record
/// always decodes again.
#[test]
fn long_close_reasons_are_cut_at_a_char_boundary() {
    for reason in ["a".repeat(1032), format!("{}é{}", "a".repeat(MAX_REASON - 1), "b".repeat(10))] {
        let rec = Record::Close { code: 1, reason: &reason };
        let mut v = Vec::new();
        rec.encode(&mut v);
        assert_eq!(v.len(), rec.encoded_len());
        match records(&v).collect::<Vec<_>>()[..] {
            [Ok(Record::Close { code: 1, reason: r })] => assert!(reason.starts_with(r) && r.len() <= MAX_REASON),
            ref other => panic!("{other:?}"),
        }
    }
}
