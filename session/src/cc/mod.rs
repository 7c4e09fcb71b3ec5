//! Congestion control behind a trait, with the RTT estimator and the pacer it needs.
//!
//! A direct path crosses UDP and shares the network with everything else, so the session
//! limits the bytes it has in flight on it ([`NewReno`], RFC 9002 §7) and spreads packets
//! over the round trip ([`Pacer`]). The relay path runs over the relay's TCP connection,
//! whose own congestion control already applies: it gets [`Unbounded`].
//!
//! quinn-proto's controllers are not reused: their `on_ack` takes quinn's `RttEstimator`,
//! which cannot be constructed outside quinn-proto, so they cannot be driven from here.

mod newreno;
mod pacer;
mod rtt;

use std::time::Instant;

pub use newreno::NewReno;
pub use pacer::Pacer;
pub use rtt::{RttEstimator, WindowedMin, GRANULARITY};

/// A congestion controller: how many bytes may be in flight on one path.
pub trait Controller: Send {
    /// The congestion window, bytes.
    fn window(&self) -> u64;

    /// Packets of `bytes` in total, sent at `sent`, were acknowledged. `app_limited`: the
    /// sender did not use its window when it sent them (the window must not grow then).
    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool, rtt: &RttEstimator);

    /// Packets sent at `sent` were declared lost. `persistent`: nothing was acknowledged
    /// for a long while (RFC 9002 §7.6), so the window collapses.
    fn on_congestion_event(&mut self, now: Instant, sent: Instant, persistent: bool);

    /// Whether the window is in slow start (for reports).
    fn in_slow_start(&self) -> bool {
        false
    }

    /// The algorithm's name (for reports).
    fn name(&self) -> &'static str;
}

/// No limit: for a path whose transport controls congestion itself (the relay's TCP).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unbounded;

impl Controller for Unbounded {
    fn window(&self) -> u64 {
        u64::MAX
    }
    fn on_ack(&mut self, _: Instant, _: Instant, _: u64, _: bool, _: &RttEstimator) {}
    fn on_congestion_event(&mut self, _: Instant, _: Instant, _: bool) {}
    fn name(&self) -> &'static str {
        "none (tcp below)"
    }
}
