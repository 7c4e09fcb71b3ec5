//! `didcomm::unpack` on arbitrary text, as the recipient holding the keys of three
//! did:key identities made from fixed seeds (Ed25519 seeds 1 and 2 with their derived
//! X25519 keys, and P-256 scalar 3), with the standard resolver (did:key, did:peer, did:pkh).
//! Must not panic; whatever unpacks must satisfy the metadata's security claims.
#![no_main]

use std::sync::LazyLock;

use did_core::didcomm::{self, from_prior};
use did_core::method::key;
use did_core::{KeyKind, KeyRing, Resolver, SecretKey, SecretStore};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    rt: tokio::runtime::Runtime,
    resolver: Resolver,
    keys: KeyRing,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ed = |seed: u8| SecretKey::from_bytes(KeyKind::Ed25519, &[seed; 32]).expect("seed");
    let mut secrets = vec![];
    for seed in [1u8, 2] {
        secrets.push((
            ed(seed),
            ed(seed).ed25519_to_x25519().expect("X25519 from Ed25519"),
        ));
    }
    let p256 = SecretKey::from_bytes(KeyKind::P256, &[3; 32]).expect("P-256 scalar");
    secrets.push((p256.clone(), p256));
    let resolver = Resolver::default().with_capacity(64);
    let mut keys = KeyRing::new();
    for (main, agreement) in secrets {
        let did = key::did_for(&main.public_key());
        resolver.insert(key::resolve(&did).expect("did:key resolves"));
        for sk in [main, agreement] {
            keys.insert(format!("{did}#{}", sk.public_key().to_multibase()), sk);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    Fixture { rt, resolver, keys }
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = &*FIXTURE;
    let Ok((msg, meta)) = f.rt.block_on(didcomm::unpack(
        text,
        &f.resolver,
        &f.keys,
        &Default::default(),
    )) else {
        return;
    };
    // Who is claimed to have sent it must be who `from` says.
    if meta.authenticated || meta.non_repudiation {
        assert!(meta.sender.is_some() && msg.from == meta.sender, "{meta:?}");
    }
    assert_eq!(meta.non_repudiation, meta.sign_from.is_some(), "{meta:?}");
    assert_eq!(
        meta.encrypted_from_kid.is_some(),
        meta.enc_alg_auth.is_some(),
        "{meta:?}"
    );
    // (Whether a signature alone sets `authenticated` is left open: it changed once.)
    assert!(
        meta.encrypted_from_kid.is_none() || meta.authenticated,
        "{meta:?}"
    );
    // Anonymity and sender protection need an encrypted layer (an authcrypt one for the latter).
    assert!(meta.encrypted || !meta.anonymous_sender, "{meta:?}");
    assert!(
        !meta.sender_protected || meta.encrypted_from_kid.is_some(),
        "{meta:?}"
    );
    assert_eq!(
        meta.encrypted,
        !meta.encrypted_to_kids.is_empty(),
        "{meta:?}"
    );
    assert!(meta
        .encrypted_to_kids
        .iter()
        .all(|k| f.keys.secret(k).is_some()));
    if let Some(jwt) = &msg.from_prior {
        let _ =
            f.rt.block_on(from_prior::verify(jwt, msg.from.as_deref(), &f.resolver));
    }
});
