//! # did-core
//!
//! Identities and DIDComm v2 for didmpc: DIDs and DID documents (did:key, did:peer:0/2,
//! did:web, did:pkh), key material with JWK import/export and an on-disk keystore, and
//! an interoperable DIDComm v2 implementation (plaintext, signed, anoncrypt, authcrypt,
//! sender protection, Routing 2.0 forward, Out-of-Band 2.0, `from_prior`).
//!
//! ```text
//!  Message ──pack_signed──▶ JWS ──┐
//!     │                           ├─pack_encrypted─▶ JWE (1PU or ES) ─▶ [anoncrypt] ─▶ forward ▶ … ─▶ wire
//!     └───────────────────────────┘
//!  wire ─▶ unpack: decrypt each layer with our keys ─▶ verify signatures ─▶ check `from` ─▶ Message
//! ```
//!
//! ```
//! # tokio_test_block_on(async {
//! use did_core::{didcomm, Identity, Resolver};
//! let (alice, bob) = (Identity::generate_key(), Identity::generate_key());
//! let resolver = Resolver::default();
//! let msg = didcomm::Message::new("https://didcomm.org/basicmessage/2.0/message",
//!     serde_json::json!({"content": "hi"})).from(alice.did.as_str()).to(bob.did.as_str());
//! let packed = didcomm::pack_encrypted(&msg, bob.did.as_str(), Some(alice.did.as_str()), None,
//!     &resolver, &alice, &Default::default()).await.unwrap();
//! let (got, meta) = didcomm::unpack(&packed.message, &resolver, &bob, &Default::default()).await.unwrap();
//! assert_eq!(got.body["content"], "hi");
//! assert!(meta.authenticated);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod did;
pub mod didcomm;
pub mod doc;
pub mod error;
pub mod jose;
pub mod jwk;
pub mod keys;
pub mod keystore;
pub mod method;
pub mod resolver;
pub mod secrets;

pub use did::{Did, DidUrl};
pub use doc::{DidCommEndpoint, DidDocument, Relationship, Service, VerificationMethod};
pub use error::{Error, Result};
pub use jwk::Jwk;
pub use keys::{KeyKind, PublicKey, SecretKey};
pub use keystore::Keystore;
pub use resolver::{DidResolver, Reach, Resolver, ResolverPolicy};
pub use secrets::{Identity, KeyRing, SecretStore};
