//! Discover Features 2.0 `queries` bodies (JSON) and the `*` matcher (two strings): `discover`
//! never panics and answers `disclose` or a problem report; `glob` agrees with a plain dynamic
//! programming matcher.
#![no_main]

use did_core::didcomm::Message;
use libfuzzer_sys::fuzz_target;
use mediator::protocols::misc::{discover, glob};

/// Whether `p` matches `s` (`*` = any run), by the textbook O(|p|·|s|) table.
fn reference(p: &[u8], s: &[u8]) -> bool {
    let mut row = vec![false; s.len() + 1];
    row[0] = true;
    for &c in p {
        let mut next = vec![false; s.len() + 1];
        for j in 0..=s.len() {
            next[j] = if c == b'*' { row[j] || (j > 0 && next[j - 1]) } else { j > 0 && row[j - 1] && s[j - 1] == c };
        }
        row = next;
    }
    row[s.len()]
}

fuzz_target!(|data: &[u8]| {
    if let Some((&cut, rest)) = data.split_first() {
        let cut = usize::from(cut) % (rest.len() + 1);
        if let (Ok(p), Ok(s)) = (std::str::from_utf8(&rest[..cut]), std::str::from_utf8(&rest[cut..])) {
            assert_eq!(glob(p, s), reference(p.as_bytes(), s.as_bytes()), "{p:?} {s:?}");
        }
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let answer = discover(&Message::new("https://didcomm.org/discover-features/2.0/queries", body));
    assert!(answer.type_.ends_with("/disclose") || answer.type_.ends_with("/problem-report"), "{}", answer.type_);
});
