//! `didmpc did …` and `didmpc message …`: identities (DIDs and their keys) and DIDComm
//! messages packed and unpacked by hand.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// DID method for new identities.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// did:key (Ed25519 with derived X25519); cannot carry a service endpoint.
    Key,
    /// did:peer:2 (Ed25519 + X25519, optional DIDComm service).
    Peer,
}

/// `didmpc did …`
#[derive(Subcommand, Debug)]
pub enum DidCommand {
    /// Create a new identity and store its keys (the first one becomes the default).
    New {
        /// DID method.
        #[arg(long, value_enum, default_value = "key")]
        method: Method,
        /// DIDComm service endpoint (http(s)://, ws(s):// or a mediator DID); did:peer only.
        #[arg(long, value_name = "URI")]
        service_endpoint: Option<String>,
        /// Routing key (DID or DID URL) for the service; repeatable, outermost last.
        #[arg(long = "routing-key", value_name = "DID")]
        routing_keys: Vec<String>,
        /// Make this the default identity.
        #[arg(long)]
        default: bool,
    },
    /// Show an identity's DID and DID document.
    Show(Select),
    /// List stored identities (short forms; `*` marks the default).
    List {
        /// Print whole DIDs.
        #[arg(long)]
        full: bool,
    },
    /// Resolve any DID and print its document.
    Resolve {
        /// The DID to resolve.
        did: String,
    },
    /// Import private keys (JWK files) for a DID; refused unless they match its document.
    Import {
        /// The DID the keys belong to.
        did: String,
        /// A private JWK file (RFC 8037 OKP or EC); repeat for several keys.
        #[arg(long = "jwk", value_name = "FILE", required = true)]
        jwks: Vec<PathBuf>,
        /// A DID document file, for DIDs that cannot be resolved from here.
        #[arg(long, value_name = "FILE")]
        document: Option<PathBuf>,
        /// Make this the default identity.
        #[arg(long)]
        default: bool,
    },
    /// Print an identity's private keys as JWKs (keep the output secret).
    Export(Select),
}

/// Chooses a stored identity.
#[derive(Args, Debug, Clone)]
pub struct Select {
    /// The identity's DID [default: the default identity].
    #[arg(long)]
    pub did: Option<String>,
}

/// Content encryption for anoncrypt.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonEnc {
    /// AES-256-CBC + HMAC-SHA-512 (accepted everywhere).
    #[value(name = "A256CBC-HS512")]
    A256CbcHs512,
    /// AES-256-GCM.
    #[value(name = "A256GCM")]
    A256Gcm,
    /// XChaCha20-Poly1305.
    #[value(name = "XC20P")]
    Xc20p,
}

/// `didmpc message …`
#[derive(Subcommand, Debug)]
pub enum MessageCommand {
    /// Pack a plaintext message read from stdin; prints the envelope.
    Pack {
        /// Recipient DID (or one key id of it).
        #[arg(long)]
        to: String,
        /// Sender DID (a stored identity): authcrypt. Without it: anoncrypt.
        #[arg(long)]
        from: Option<String>,
        /// Sign first with the sender (or the default identity when no --from).
        #[arg(long)]
        sign: bool,
        /// Only sign (JWS), do not encrypt.
        #[arg(long, conflicts_with_all = ["from", "anon_enc", "forward", "protect_sender"])]
        sign_only: bool,
        /// Content cipher for anoncrypt.
        #[arg(long, value_enum, default_value = "A256CBC-HS512")]
        anon_enc: AnonEnc,
        /// Hide the sender by wrapping authcrypt in anoncrypt.
        #[arg(long, requires = "from")]
        protect_sender: bool,
        /// Wrap in Routing 2.0 forward messages for the recipient's routing keys.
        #[arg(long)]
        forward: bool,
    },
    /// Unpack an envelope read from stdin with the stored identities' keys.
    Unpack,
}
