//! The userspace WAN emulator: a sans-IO [`model`] of the lab's links and the TUN [`driver`]
//! that applies it to real packets.

pub mod driver;
pub mod model;

pub use driver::{Emulator, Stats};
pub use model::{Link, Model, Verdict};
