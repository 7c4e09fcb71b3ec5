//! The one error type of the mediator crate.

/// What can go wrong inside the mediator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file or a setting is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The durable store failed.
    #[error("store: {0}")]
    Store(String),
    /// A queue limit was hit (per-recipient count or bytes).
    #[error("queue for {recipient} is full ({reason})")]
    QueueFull {
        /// The recipient DID whose queue is full.
        recipient: String,
        /// Which limit.
        reason: String,
    },
    /// DIDComm processing failed.
    #[error(transparent)]
    Didcomm(#[from] did_core::Error),
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Network IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for the mediator crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(e.to_string())
    }
}
