//! DID methods: did:key, did:peer (0 and 2), did:web and did:pkh.

pub mod key;
pub mod peer;
pub mod pkh;
pub mod web;
