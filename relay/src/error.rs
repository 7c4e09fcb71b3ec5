//! The one error type of the relay crate.

/// What can go wrong in the relay: a frame that does not decode, a socket that fails, a
/// reservation lookup that fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame with no bytes at all.
    #[error("empty relay frame")]
    Empty,
    /// The first byte names no frame of this protocol version.
    #[error("unknown relay opcode {0:#04x}")]
    UnknownOpcode(u8),
    /// The frame's length does not fit its opcode.
    #[error("relay frame {op:#04x} has {len} bytes, expected {expected}")]
    Length {
        /// The opcode.
        op: u8,
        /// The frame's length.
        len: usize,
        /// What its length must be.
        expected: &'static str,
    },
    /// A field holds a value the protocol does not define.
    #[error("relay frame field `{field}` has undefined value {value}")]
    Value {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u8,
    },
    /// The relay speaks a protocol version this build does not.
    #[error("relay protocol version {0} is not supported (this build speaks 1)")]
    Version(u8),
    /// A text (not binary) WebSocket message arrived.
    #[error("relay sockets carry binary frames only")]
    NotBinary,
    /// The socket failed.
    #[error("relay socket: {0}")]
    Socket(String),
    /// Connecting to a relay failed, or it broke the protocol while connecting.
    #[error("relay {url}: {reason}")]
    Connect {
        /// The relay URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The relay connection task cannot take another route right now.
    #[error("relay connection to {0} is overloaded")]
    Overloaded(String),
    /// Looking up a route reservation failed (the mediator's store).
    #[error("route reservation lookup failed: {0}")]
    Reservations(String),
}

/// Result alias for the relay crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
