use proptest::prelude::*;

use super::*;

const R: RouteId = RouteId([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
const R_HEX: &str = "000102030405060708090a0b0c0d0e0f";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Bytes {
    Bytes::from((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<_>>())
}

/// The exact bytes of every frame, written out by hand from the table in the module docs.
#[test]
fn snapshots() {
    let mut mac = [0u8; MAC_LEN];
    mac.iter_mut().enumerate().for_each(|(i, b)| *b = 0xa0 + (i % 16) as u8);
    let cases = [
        (
            Frame::Join { route: R, slot: 1, mac },
            "01000102030405060708090a0b0c0d0e0f01a0a1a2a3a4a5a6a7a8a9aaabacadaeafa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        ),
        (Frame::Data { route: R, payload: Bytes::from_static(b"hi") }, "02000102030405060708090a0b0c0d0e0f6869"),
        (Frame::Data { route: R, payload: Bytes::new() }, "02000102030405060708090a0b0c0d0e0f"),
        (Frame::Leave { route: R }, "03000102030405060708090a0b0c0d0e0f"),
        (
            Frame::Challenge { nonce: [0x5a; NONCE_LEN] },
            "80015a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        ),
        (Frame::Joined { route: R, status: JoinStatus::Ok }, "81000102030405060708090a0b0c0d0e0f00"),
        (Frame::Joined { route: R, status: JoinStatus::BadAuth }, "81000102030405060708090a0b0c0d0e0f04"),
        (Frame::Peer { route: R, up: true }, "83000102030405060708090a0b0c0d0e0f01"),
        (Frame::Peer { route: R, up: false }, "83000102030405060708090a0b0c0d0e0f00"),
        (Frame::Displaced { route: R, slot: 0 }, "84000102030405060708090a0b0c0d0e0f00"),
    ];
    for (frame, want) in cases {
        let enc = frame.encode();
        assert_eq!(hex(&enc), want, "{frame:?}");
        assert_eq!(enc.len(), frame.encoded_len());
        assert_eq!(Frame::decode(&unhex(want)).unwrap(), frame);
    }
    assert_eq!(hex(&data_frame(&R, b"hi")), format!("02{R_HEX}6869"));
}

#[test]
fn join_status_codes_are_fixed() {
    let names: Vec<(u8, &str)> = JoinStatus::ALL.iter().map(|s| (*s as u8, s.as_str())).collect();
    assert_eq!(
        names,
        [(0, "ok"), (1, "unknown_route"), (2, "bad_slot"), (3, "malformed"), (4, "bad_auth"), (5, "unavailable")]
    );
    assert_eq!(JoinStatus::from_code(6), None);
}

#[test]
fn refuses_what_the_protocol_does_not_define() {
    let cases: [(String, &str); 10] = [
        (String::new(), "empty relay frame"),
        ("04".into(), "unknown relay opcode 0x04"),
        ("82".into(), "unknown relay opcode 0x82"),
        (format!("01{R_HEX}01"), "relay frame 0x01 has 18 bytes, expected 50"),
        (format!("02{}", &R_HEX[..30]), "relay frame 0x02 has 16 bytes, expected 17 to 65552"),
        (format!("03{R_HEX}00"), "relay frame 0x03 has 18 bytes, expected 17"),
        (format!("8002{}", "00".repeat(32)), "relay protocol version 2 is not supported (this build speaks 1)"),
        (format!("81{R_HEX}06"), "relay frame field `status` has undefined value 6"),
        (format!("83{R_HEX}02"), "relay frame field `up` has undefined value 2"),
        (format!("84{R_HEX}"), "relay frame 0x84 has 17 bytes, expected 18"),
    ];
    for (h, want) in cases {
        assert_eq!(Frame::decode(&unhex(&h)).unwrap_err().to_string(), want, "{h}");
    }
    let mut big = vec![op::DATA; MAX_FRAME + 1];
    assert!(matches!(Frame::decode(&Bytes::from(big.clone())), Err(Error::Length { len, .. }) if len == MAX_FRAME + 1));
    big.pop();
    assert!(Frame::decode(&Bytes::from(big)).is_ok(), "MAX_FRAME itself is accepted");
}

fn route() -> impl Strategy<Value = RouteId> {
    any::<[u8; ROUTE_LEN]>().prop_map(RouteId)
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (route(), any::<u8>(), any::<[u8; MAC_LEN]>()).prop_map(|(route, slot, mac)| Frame::Join { route, slot, mac }),
        (route(), proptest::collection::vec(any::<u8>(), 0..2048))
            .prop_map(|(route, p)| Frame::Data { route, payload: Bytes::from(p) }),
        (route(), (0usize..=MAX_PAYLOAD).prop_map(|n| vec![7u8; n]))
            .prop_map(|(route, p)| Frame::Data { route, payload: Bytes::from(p) }),
        route().prop_map(|route| Frame::Leave { route }),
        any::<[u8; NONCE_LEN]>().prop_map(|nonce| Frame::Challenge { nonce }),
        (route(), proptest::sample::select(JoinStatus::ALL.to_vec()))
            .prop_map(|(route, status)| Frame::Joined { route, status }),
        (route(), any::<bool>()).prop_map(|(route, up)| Frame::Peer { route, up }),
        (route(), any::<u8>()).prop_map(|(route, slot)| Frame::Displaced { route, slot }),
    ]
}

proptest! {
    #[test]
    fn round_trip(f in frame()) {
        let enc = f.encode();
        prop_assert_eq!(enc.len(), f.encoded_len());
        prop_assert!(enc.len() <= MAX_FRAME);
        prop_assert_eq!(Frame::decode(&enc).unwrap(), f);
    }

    #[test]
    fn decoding_is_canonical(b in proptest::collection::vec(any::<u8>(), 0..80), op in prop_oneof![Just(op::JOIN), Just(op::DATA), Just(op::LEAVE), Just(op::CHALLENGE), Just(op::JOINED), Just(op::PEER), Just(op::DISPLACED), any::<u8>()]) {
        let mut v = b;
        v.insert(0, op);
        let bytes = Bytes::from(v);
        if let Ok(f) = Frame::decode(&bytes) {
            prop_assert_eq!(f.encode(), bytes);
        }
    }
}
