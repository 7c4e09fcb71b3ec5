//! DIDComm v2 messages and envelopes.

pub mod forward;
pub mod from_prior;
mod keys;
pub mod message;
pub mod oob;
pub mod pack;
pub mod unpack;
pub mod vocab;
mod wire;

pub use forward::{parse_forward, Forward, ServiceTarget, FORWARD};
pub use message::{Attachment, AttachmentData, Message};
pub use pack::{pack_encrypted, pack_plaintext, pack_signed, PackOptions, Packed};
pub use unpack::{unpack, UnpackMetadata, UnpackOptions};
pub use vocab::Typed;
