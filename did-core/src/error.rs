//! The one error type of `did-core`.

/// Everything that can go wrong in `did-core`.
///
/// Cryptographic failures stay deliberately coarse ([`Error::DecryptionFailed`],
/// [`Error::InvalidSignature`]) so they cannot be used as an oracle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string is not a syntactically valid DID.
    #[error("invalid DID {input:?}: {reason}")]
    InvalidDid {
        /// The rejected input (truncated to 120 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A string is not a syntactically valid DID URL.
    #[error("invalid DID URL {input:?}: {reason}")]
    InvalidDidUrl {
        /// The rejected input (truncated to 120 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The DID method is not supported by this build.
    #[error("unsupported DID method `{0}` (supported: key, peer, web, pkh)")]
    UnsupportedMethod(String),
    /// A DID document, verification method or service is malformed.
    #[error("invalid DID document: {0}")]
    InvalidDocument(String),
    /// A DID could not be resolved.
    #[error("cannot resolve {did}: {reason}")]
    Resolution {
        /// The DID that failed.
        did: String,
        /// Why.
        reason: String,
    },
    /// A key is malformed or of the wrong size or curve.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A verification method referenced by a key id is not in the document.
    #[error("key {0} is not in its DID document")]
    KeyNotFound(String),
    /// No private key is available for the requested key id(s).
    #[error("no private key for {0}")]
    SecretNotFound(String),
    /// An algorithm, curve or content-encryption method is not supported.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A message or envelope is not well-formed DIDComm/JOSE.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The input is bigger than the configured maximum.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The input size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// None of the envelope's recipients is one of our keys.
    #[error("message is not addressed to any of our keys (recipients: {0})")]
    NotForUs(String),
    /// Decryption or authentication of an encrypted envelope failed.
    #[error("decryption failed: ciphertext, tag or key is wrong")]
    DecryptionFailed,
    /// A signature did not verify.
    #[error("invalid signature by {0}")]
    InvalidSignature(String),
    /// The plaintext `from` does not match the key that authenticated the message.
    #[error("sender mismatch: message says `from` {claimed} but was {how} by {actual}")]
    SenderMismatch {
        /// The DID in the plaintext `from` header.
        claimed: String,
        /// The DID whose key authenticated the message.
        actual: String,
        /// "encrypted" or "signed".
        how: &'static str,
    },
    /// A protocol rule was broken (e.g. a header that must match does not).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Reading or writing the keystore failed.
    #[error("keystore {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// The keystore holds something unexpected.
    #[error("keystore: {0}")]
    Keystore(String),
}

/// Result alias for `did-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Truncates untrusted input for inclusion in an error message.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Error {
    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        Error::Malformed(msg.into())
    }
    pub(crate) fn doc(msg: impl Into<String>) -> Self {
        Error::InvalidDocument(msg.into())
    }
    pub(crate) fn key(msg: impl Into<String>) -> Self {
        Error::InvalidKey(msg.into())
    }
}
