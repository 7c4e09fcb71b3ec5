//! The one error type of the session crate.

/// What can go wrong in a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Noise handshake failed (wrong keys, wrong prologue, tampered message).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// A packet or record is malformed.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// The stream does not exist (never opened, or already gone).
    #[error("unknown stream {0}")]
    UnknownStream(u32),
    /// The stream was reset by the peer (with its code).
    #[error("stream {0} was reset by the peer (code {1})")]
    StreamReset(u32, u32),
    /// The stream's sending side is already finished.
    #[error("stream {0} is finished for writing")]
    StreamFinished(u32),
    /// Too many streams are open.
    #[error("too many open streams")]
    TooManyStreams,
    /// The session is closed.
    #[error("session closed: {0}")]
    Closed(CloseReason),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// We closed it.
    Local,
    /// The peer closed it, with a code and reason.
    Peer(u32, String),
    /// Nothing was heard from the peer for longer than the peer deadline.
    PeerLost,
    /// The peer misbehaved (protocol violation).
    Protocol(&'static str),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Peer(code, reason) => {
                write!(f, "closed by the peer (code {code}: {reason})")
            }
            CloseReason::PeerLost => f.write_str("the peer is gone (nothing heard within the deadline)"),
            CloseReason::Protocol(what) => write!(f, "protocol violation: {what}"),
        }
    }
}

/// Result alias for the session crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
