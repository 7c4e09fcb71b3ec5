//! The one error type of the proofs crate.
//!
//! Its messages read exactly as the gateway's did when this code lived there: gateway
//! converts each variant into its own `Error` one to one (`From<proofs::Error>`).

/// What can go wrong making or checking an identity proof.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A DID or key operation failed (e.g. signing with a key that cannot make a JWS).
    #[error(transparent)]
    Did(#[from] did_core::Error),
    /// The session's descriptor cannot carry proofs: a malformed proof policy, or a session
    /// id that cannot be a proof domain. The text is the gateway's protocol error's.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// Local state is missing or broken (a key file, a stored proof), or the session is no
    /// longer open.
    #[error("{0}")]
    State(String),
    /// Local IO failed (writing a proof or a key file).
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

/// Why an identity proof was refused (see `specs/proofs.md`). The codes are wire-visible:
/// a refused `join` gets the problem report `e.p.req.proof.<code>`.
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

/// Result alias for the proofs crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_the_wire_codes() {
        let all = [
            (ProofReason::Missing, "missing"),
            (ProofReason::KindNotAccepted, "kind-not-accepted"),
            (ProofReason::Malformed, "malformed"),
            (ProofReason::BadSignature, "bad-signature"),
            (ProofReason::WrongAccount, "wrong-account"),
            (ProofReason::Expired, "expired"),
            (ProofReason::NotYetValid, "not-yet-valid"),
            (ProofReason::NonceReused, "nonce-reused"),
            (ProofReason::SubjectMismatch, "subject-mismatch"),
            (ProofReason::UntrustedIssuer, "untrusted-issuer"),
        ];
        for (r, code) in all {
            assert_eq!(r.code(), code);
        }
        let e = Error::proof(ProofReason::WrongAccount, "0xabc is not admitted");
        assert_eq!(e.to_string(), "identity proof refused (wrong-account): 0xabc is not admitted");
        assert_eq!(e.proof_reason(), Some(ProofReason::WrongAccount));
        assert_eq!(Error::State("x".into()).proof_reason(), None);
    }
}
