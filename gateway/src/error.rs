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

/// Why an identity proof was refused (defined by the `proofs` crate; see `specs/proofs.md`).
pub use proofs::ProofReason;

/// A proofs error as the gateway's, variant for variant (its text is unchanged).
impl From<proofs::Error> for Error {
    fn from(e: proofs::Error) -> Error {
        match e {
            proofs::Error::Did(e) => Error::Didcomm(e),
            proofs::Error::Protocol(m) => Error::Protocol(m),
            proofs::Error::State(m) => Error::State(m),
            proofs::Error::Io(e) => Error::Io(e),
            proofs::Error::Proof { reason, detail } => Error::Proof { reason, detail },
            // proofs::Error is non_exhaustive: a future variant keeps its text.
            other => Error::State(other.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_errors_keep_their_variant_and_text() {
        let refused = proofs::Error::proof(ProofReason::Expired, "the message expired");
        let text = refused.to_string();
        let e = Error::from(refused);
        assert_eq!(e.proof_reason(), Some(ProofReason::Expired));
        assert_eq!(e.to_string(), text);
        let e = Error::from(proofs::Error::Protocol("the proof policy is malformed".into()));
        assert!(matches!(&e, Error::Protocol(m) if m == "the proof policy is malformed"), "{e:?}");
        assert_eq!(e.to_string(), proofs::Error::Protocol("the proof policy is malformed".into()).to_string());
        let e = Error::from(proofs::Error::State("session s is no longer open".into()));
        assert!(matches!(&e, Error::State(m) if m == "session s is no longer open"), "{e:?}");
    }
}
