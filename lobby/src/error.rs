//! The one error type of the lobby crate.

/// What can go wrong serving the lobby page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loopback listener could not be bound or served.
    #[error("the lobby page cannot be served: {0}")]
    Serve(#[from] std::io::Error),
    /// The operating system's random source failed (no token can be made).
    #[error("no randomness for the lobby's token: {0}")]
    Random(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
