//! Paths between the two ends of a session: the relay (always there) and direct UDP paths
//! found by hole punching. A [`manager::Paths`] keeps one entry per path with its own RTT,
//! congestion controller and pacer, validates direct paths with PATH_CHALLENGE /
//! PATH_RESPONSE (a path carries data only after an authenticated packet went both ways on
//! it), picks the path new packets take, falls back to the relay when a direct path goes
//! silent, and probes it again later. See `specs/session.md` §8.

pub mod manager;
pub mod punch;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use manager::Paths;
pub use punch::{Nat, Offer};

/// Where a packet goes or came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathAddr {
    /// Through the mediator's relay.
    Relay,
    /// A UDP datagram between one of our sockets (`local`: 0 is the main socket, 1… the
    /// extra sockets a hard NAT punches from) and a remote address.
    Udp {
        /// Index of our socket.
        local: u16,
        /// The peer's address as we see it.
        remote: SocketAddr,
    },
}

impl PathAddr {
    /// Whether this is a direct (UDP) path.
    pub fn is_direct(&self) -> bool {
        matches!(self, PathAddr::Udp { .. })
    }
}

impl fmt::Display for PathAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathAddr::Relay => f.write_str("relay"),
            PathAddr::Udp { local: 0, remote } => write!(f, "udp {remote}"),
            PathAddr::Udp { local, remote } => write!(f, "udp {remote} (socket {local})"),
        }
    }
}

/// Tunables of the path manager. The defaults suit Internet paths; tests shorten them.
#[derive(Debug, Clone)]
pub struct PathConfig {
    /// A candidate is probed this often while punching.
    pub punch_interval: Duration,
    /// Punching gives up on a candidate (and on spraying) after this long.
    pub punch_timeout: Duration,
    /// Ports of the peer's address an easy side sprays when the peer's NAT is hard.
    pub spray_ports: u16,
    /// Time between two spray packets.
    pub spray_interval: Duration,
    /// Extra sockets a hard side sends from towards an easy peer (one NAT mapping each).
    pub hard_sockets: u16,
    /// A hard side resends from all its extra sockets this often while punching.
    pub hard_interval: Duration,
    /// A validated direct path that is not in use, and the relay while a direct path is,
    /// are probed this often (NAT keepalive and RTT).
    pub keepalive: Duration,
    /// A direct path that heard nothing for `clamp(3 × PTO, fail_min, fail_max)` after we
    /// sent on it is declared failed.
    pub fail_min: Duration,
    /// See `fail_min`.
    pub fail_max: Duration,
    /// A failed direct path is probed again after this, doubling up to `retry_max`.
    pub retry: Duration,
    /// See `retry`.
    pub retry_max: Duration,
    /// Most paths tracked per session (candidates plus addresses learnt from the peer).
    pub max_paths: usize,
    /// A direct path in use gives way to the relay on RTT alone only when its RTT exceeds
    /// the relay's by this factor (hysteresis).
    pub switch_margin: f64,
    /// RTTs closer than this count as equal, and then direct is preferred (it spares the
    /// relay; on a LAN both RTTs are noise).
    pub switch_slack: Duration,
    /// Paths are compared by their minimum RTT over the last one to two of these windows.
    pub rtt_window: Duration,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            punch_interval: Duration::from_millis(200),
            punch_timeout: Duration::from_secs(10),
            spray_ports: 2048,
            spray_interval: Duration::from_micros(500),
            hard_sockets: 256,
            hard_interval: Duration::from_millis(500),
            keepalive: Duration::from_secs(2),
            fail_min: Duration::from_millis(300),
            fail_max: Duration::from_secs(2),
            retry: Duration::from_secs(1),
            retry_max: Duration::from_secs(5),
            max_paths: 16,
            switch_margin: 1.25,
            switch_slack: Duration::from_millis(5),
            rtt_window: Duration::from_secs(10),
        }
    }
}

/// A path's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// Being probed; not used for data yet.
    Probing,
    /// An authenticated packet went both ways; usable.
    Validated,
    /// Was validated, then went silent; probed again from time to time.
    Failed,
    /// Probing gave up.
    Abandoned,
}

impl PathState {
    /// A short name for reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            PathState::Probing => "probing",
            PathState::Validated => "validated",
            PathState::Failed => "failed",
            PathState::Abandoned => "abandoned",
        }
    }
}

/// One path as reported (status).
#[derive(Debug, Clone, PartialEq)]
pub struct PathInfo {
    /// Where it goes.
    pub addr: PathAddr,
    /// Its state.
    pub state: PathState,
    /// Whether new packets take it.
    pub active: bool,
    /// Smoothed RTT, once measured.
    pub srtt: Option<Duration>,
    /// Congestion window, bytes (`None`: unbounded).
    pub cwnd: Option<u64>,
    /// Packets sent on it.
    pub sent: u64,
    /// Packets received on it.
    pub received: u64,
    /// Packets sent on it and declared lost.
    pub lost: u64,
}

/// Why the active path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchReason {
    /// A direct path was validated with a lower RTT than the path in use.
    Upgrade,
    /// The path in use went silent.
    Failed,
    /// The RTTs changed order.
    Rtt,
}

impl SwitchReason {
    /// A short name for reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            SwitchReason::Upgrade => "upgrade",
            SwitchReason::Failed => "failed",
            SwitchReason::Rtt => "rtt",
        }
    }
}

/// A change of the active path.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    /// When, since the session started.
    pub at: Duration,
    /// The path in use before.
    pub from: PathAddr,
    /// The path in use after.
    pub to: PathAddr,
    /// Why.
    pub why: SwitchReason,
    /// For a failure: how long the failed path had been silent (the fallback time).
    pub silent_for: Option<Duration>,
}

/// Everything a status report shows about a session's paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathReport {
    /// Every path tracked.
    pub paths: Vec<PathInfo>,
    /// The latest switches (at most 64), oldest first.
    pub switches: Vec<Switch>,
    /// Switches since the session started.
    pub switch_count: u64,
    /// Whether direct candidates were exchanged (false: relay only).
    pub punching: bool,
    /// Spray packets sent.
    pub sprayed: u64,
    /// When the first direct path was validated, since the session started.
    pub first_direct: Option<Duration>,
}

#[cfg(test)]
mod tests;
