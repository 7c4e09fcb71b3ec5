//! What a party parses from an MPC invitation (network bytes): the JWS envelope and the
//! session descriptor with its proof policy. No panic; a descriptor that parses survives
//! `check` (accepting or refusing), serialises back to an equal descriptor, and renders as
//! `join` shows it (`summary`, for any pid), whatever its strings hold.
#![no_main]

use did_core::jose::jws::ParsedJws;
use gateway::descriptor::Descriptor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = ParsedJws::parse(v.clone());
    if let Ok(d) = serde_json::from_value::<Descriptor>(v) {
        let _ = d.check(1_800_000_000);
        for me in [None, Some(0), Some(d.roster.len())] {
            let _ = d.summary(me);
        }
        let text = serde_json::to_vec(&d).expect("serialises");
        let back: Descriptor = serde_json::from_slice(&text).expect("parses again");
        assert_eq!(back, d);
    }
});
