//! The didmpc WAN lab: the seeds' E³ evaluation (MPyC programs × party counts × network
//! scenarios × transports) reproduced on one machine in Linux network namespaces.
//!
//! This library holds the parts with no process orchestration: the userspace WAN emulator
//! ([`emu`]: a sans-IO link model and its TUN driver), the scenario file ([`scenario`]) and
//! UDP probes ([`probe`]). The `didmpc-lab` binary builds the namespaces, runs the
//! transports and writes the results; `scripts/lab.sh` is the one command around it.
//!
//! ```text
//!  home 0: party ─ router (NAT) ─ spoke s1 ─┐
//!  home 1: party ─ router (NAT) ─ spoke s2 ─┼─ core: wanemu (TUN) applies each spoke's
//!  home N: party ─ router (NAT) ─ spoke sN ─┤        delay, jitter, loss and rate
//!  server: mediator + WireGuard hub ─ spoke ┘
//! ```
//!
//! ```
//! use didmpc_lab::emu::{Link, Model, Verdict};
//! let links = [Link::delay("home", "198.18.1.0/24", 10.0), Link::delay("server", "198.18.200.0/24", 10.0)];
//! let mut model = Model::new(&links, 1).unwrap();
//! let mut ip = [0u8; 40];
//! ip[0] = 0x45;
//! ip[12..16].copy_from_slice(&[198, 18, 1, 2]);
//! ip[16..20].copy_from_slice(&[198, 18, 200, 2]);
//! let now = std::time::Instant::now();
//! assert_eq!(model.packet(now, &ip), Verdict::Deliver(now + std::time::Duration::from_millis(20)));
//! ```

pub mod emu;
pub mod error;
pub mod probe;
pub mod scenario;

pub use error::{Error, Result};
