//! What arrives on a UDP socket of didmpc, on arbitrary bytes: the mediator's probe check
//! (`reflex::check_probe`) never panics and never accepts a probe it did not key, its answer
//! is never longer than the probe; a party's side (`session::udp::parse`, `reflex::answer_txid`,
//! `reflex::check_answer`) never panics and accepts no answer it did not key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::reflex;

fuzz_target!(|data: &[u8]| {
    let secret = reflex::ServerSecret::generate();
    if let Ok((probe, key)) = reflex::check_probe(&secret, data, 0) {
        // Only a MAC under a fresh random secret could verify: that is a bug.
        let answer = reflex::answer(&key, &probe.txid, "203.0.113.1:9".parse().unwrap());
        assert!(answer.len() <= data.len());
        panic!("a probe verified under a key nobody granted");
    }
    if let Some((_, packet)) = session::udp::parse(data) {
        assert_eq!(packet.len() + session::udp::PREFIX_LEN, data.len());
    }
    let _ = reflex::answer_txid(data);
    let key = reflex::ProbeKey::from_slice(&[9; 32]).unwrap();
    if let Some(addr) = reflex::check_answer(&key, data) {
        // Verified: it must re-encode to the same bytes.
        let txid = reflex::answer_txid(data).unwrap();
        assert_eq!(reflex::answer(&key, &txid, addr), data);
    }
});
