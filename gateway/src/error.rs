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
    /// An identity proof (Sign-In with Ethereum, Verifiable Presentation) was refused.
    #[error("identity proof refused ({}): {detail}", reason.code())]
    Proof {
        /// Why, as a stable code (also the problem report's code suffix).
        reason: ProofReason,
        /// What exactly did not hold.
        detail: String,
    },
}

/// Why an identity proof was refused (see `specs/proofs.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofReason {
    /// The policy asks for a proof and none came.
    Missing,
    /// The proof is of a kind the policy does not accept.
    KindNotAccepted,
    /// The proof does not parse (not EIP-4361, bad signature encoding, ...).
    Malformed,
    /// The signature does not verify, or was made by another key than the message names.
    BadSignature,
    /// The proof verifies, but for an account the policy does not allow.
    WrongAccount,
    /// The proof is past its expiration time (or its validity is longer than allowed).
    Expired,
    /// The proof is not valid yet (`Not Before`, or issued in the future).
    NotYetValid,
    /// The proof was made for another session (nonce or domain of another challenge).
    NonceReused,
    /// The proof names another DID than the party presenting it.
    SubjectMismatch,
    /// The credential comes from an issuer (or has a type) the policy does not trust.
    UntrustedIssuer,
}

impl ProofReason {
    /// The stable code (`wrong-account`, `expired`, ...).
    pub fn code(self) -> &'static str {
        match self {
            ProofReason::Missing => "missing",
            ProofReason::KindNotAccepted => "kind-not-accepted",
            ProofReason::Malformed => "malformed",
            ProofReason::BadSignature => "bad-signature",
            ProofReason::WrongAccount => "wrong-account",
            ProofReason::Expired => "expired",
            ProofReason::NotYetValid => "not-yet-valid",
            ProofReason::NonceReused => "nonce-reused",
            ProofReason::SubjectMismatch => "subject-mismatch",
            ProofReason::UntrustedIssuer => "untrusted-issuer",
        }
    }
}

impl Error {
    /// A refused proof.
    pub fn proof(reason: ProofReason, detail: impl Into<String>) -> Error {
        Error::Proof { reason, detail: detail.into() }
    }

    /// The proof refusal reason, if this is one.
    pub fn proof_reason(&self) -> Option<ProofReason> {
        match self {
            Error::Proof { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Result alias for the gateway crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
