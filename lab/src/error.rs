//! The library's one error type.

/// What can go wrong in the emulator, the scenario file and the probes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A link, scenario or argument is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The scenario file is not valid TOML for [`crate::scenario::Scenarios`].
    #[error("scenario file: {0}")]
    Toml(#[from] toml::de::Error),
    /// The TUN device could not be created or used.
    #[error("TUN device: {0}")]
    Tun(String),
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An IO error while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
