//! The one error type of the gateway crate.

/// What can go wrong in the party agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// DIDComm or DID processing failed.
    #[error(transparent)]
    Didcomm(#[from] did_core::Error),
    /// A transport failed (connect, send, receive).
    #[error("{uri}: {reason}")]
    Transport {
        /// The endpoint.
        uri: String,
        /// What happened.
        reason: String,
    },
    /// The other side refused with a problem report (or an HTTP error).
    #[error("{who} refused ({code}): {comment}")]
    Refused {
        /// Who refused (an endpoint or DID).
        who: String,
        /// Problem code or HTTP status.
        code: String,
        /// Its explanation.
        comment: String,
    },
    /// The other side did not answer in time.
    #[error("no answer from {0} in time")]
    Timeout(String),
    /// The other side answered something unexpected.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// Local state (agent file, keystore) is missing or broken.
    #[error("{0}")]
    State(String),
    /// The MPC program failed.
    #[error("{0}")]
    Mpc(String),
    /// A peer of the MPC session is gone for good.
    #[error("lost pid {pid} ({did}): {why}")]
    PeerLost {
        /// Its pid.
        pid: usize,
        /// Its DID.
        did: String,
        /// What happened.
        why: String,
    },
    /// Local IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for the gateway crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
