//! The relay's counters, and the reasons they are kept by.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::proto::JoinStatus;

/// Why the relay dropped a DATA frame (the session layer retransmits it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// It came from a connection that holds no slot of its route.
    NotMember,
    /// The recipient connection's queue is at its byte bound (a slow reader).
    Congested,
    /// The relay's queues together are at their byte budget.
    QueueBudget,
    /// The recipient connection ended while the frame was being queued.
    Closed,
    /// The route already holds its bound for its absent member.
    HeldRoute,
    /// The routes of the client that reserved this one already hold its bound.
    HeldClient,
    /// The relay already holds its budget of frames for absent members.
    HeldBudget,
    /// Held for an absent member until the route's reservation ended, or sent on an
    /// expired route towards an absent member.
    Expired,
    /// The frame did not decode.
    Malformed,
}

impl DropReason {
    /// Every reason, in index order.
    pub const ALL: [DropReason; 9] = [
        DropReason::NotMember,
        DropReason::Congested,
        DropReason::QueueBudget,
        DropReason::Closed,
        DropReason::HeldRoute,
        DropReason::HeldClient,
        DropReason::HeldBudget,
        DropReason::Expired,
        DropReason::Malformed,
    ];

    /// A stable name (metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotMember => "not_member",
            DropReason::Congested => "congested",
            DropReason::QueueBudget => "queue_budget",
            DropReason::Closed => "closed",
            DropReason::HeldRoute => "held_route",
            DropReason::HeldClient => "held_client",
            DropReason::HeldBudget => "held_budget",
            DropReason::Expired => "expired",
            DropReason::Malformed => "malformed",
        }
    }
}

/// Why the relay cut a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disconnect {
    /// Frames waited for it while its socket took nothing for the stall time.
    Stalled,
    /// Its queue passed its byte bound (control frames included).
    Overflow,
    /// Too many of its JOINs were refused.
    TooManyRefusals,
    /// It sent a text message.
    NotBinary,
}

impl Disconnect {
    /// Every reason, in index order.
    pub const ALL: [Disconnect; 4] =
        [Disconnect::Stalled, Disconnect::Overflow, Disconnect::TooManyRefusals, Disconnect::NotBinary];

    /// A stable name (metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Disconnect::Stalled => "stalled",
            Disconnect::Overflow => "overflow",
            Disconnect::TooManyRefusals => "too_many_refusals",
            Disconnect::NotBinary => "not_binary",
        }
    }
}

/// The live counters.
#[derive(Default)]
pub(crate) struct Counters {
    pub forwarded: AtomicU64,
    pub dropped: [AtomicU64; DropReason::ALL.len()],
    pub joins: [AtomicU64; JoinStatus::ALL.len()],
    pub displaced: AtomicU64,
    pub disconnects: [AtomicU64; Disconnect::ALL.len()],
    pub connections: AtomicU64,
}

impl Counters {
    pub fn drop(&self, r: DropReason) {
        self.dropped[r as usize].fetch_add(1, Relaxed);
    }

    pub fn drop_n(&self, r: DropReason, n: u64) {
        self.dropped[r as usize].fetch_add(n, Relaxed);
    }

    pub fn forward(&self) {
        self.forwarded.fetch_add(1, Relaxed);
    }
}

/// A snapshot of the relay's counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// DATA frames queued towards the other member of their route.
    pub forwarded: u64,
    /// DATA frames dropped, all reasons together.
    pub dropped: u64,
    /// DATA frames dropped, by [`DropReason`] (indexed as [`DropReason::ALL`]).
    pub dropped_by: [u64; DropReason::ALL.len()],
    /// JOIN answers, by [`JoinStatus`] (indexed as [`JoinStatus::ALL`]; `Ok` are the joins).
    pub joins: [u64; JoinStatus::ALL.len()],
    /// Members told that another connection took their slot.
    pub displaced: u64,
    /// Connections the relay cut, by [`Disconnect`] (indexed as [`Disconnect::ALL`]).
    pub disconnects: [u64; Disconnect::ALL.len()],
    /// Bytes held for absent members now (counted as the bounds count them).
    pub held_bytes: u64,
    /// Bytes queued towards connections now.
    pub queued_bytes: u64,
    /// Open relay connections.
    pub connections: u64,
    /// Routes with a member or held frames.
    pub routes: u64,
}

impl Stats {
    /// Frames dropped for `r`.
    pub fn dropped_for(&self, r: DropReason) -> u64 {
        self.dropped_by[r as usize]
    }

    /// JOINs answered with `s`.
    pub fn joins_for(&self, s: JoinStatus) -> u64 {
        self.joins[s as usize]
    }

    /// Connections cut for `d`.
    pub fn disconnects_for(&self, d: Disconnect) -> u64 {
        self.disconnects[d as usize]
    }
}

pub(crate) fn load<const N: usize>(a: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| a[i].load(Relaxed))
}
