//! The relay: forwards opaque DATA frames between the two members of a route, holds a
//! bounded amount for a member that is away, and authenticates every JOIN.
//!
//! [`Relay`] is the state every connection shares; its methods are synchronous and take
//! no socket, so the unit tests drive it directly. [`Relay::serve`] is one connection's
//! driver, generic over its [`FrameSocket`]: the mediator hands it an axum WebSocket
//! behind a small adapter and keeps only the HTTP route and the reservation protocol.
//!
//! Memory is bounded by [`Limits`]: frames held for absent members per route, per
//! reserving client and in total; frames queued per connection and in total; a
//! connection whose socket takes nothing while frames wait for it is cut after
//! [`Limits::stall`]. Held frames live in their own memory mappings (counted in whole
//! pages) and are freed, memory returned to the system, when their route's reservation
//! ends ([`Relay::sweep`]).
//!
//! The route table and the JOIN, DATA and LEAVE paths through it live in `routes`.
//!
//! [`FrameSocket`]: crate::FrameSocket

mod conn;
mod mesh;
mod outbox;
mod routes;
mod stats;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use conn::Exit;
pub use mesh::{LinkConn, LinkHandle};
pub use outbox::{CONTROL_SLACK, FRAME_OVERHEAD};
pub use routes::{held_cost, HELD_PAGE};
pub use stats::{Disconnect, DropReason, Stats};

use crate::auth::RouteKey;
use crate::error::Result;
use crate::proto::RouteId;
use outbox::Outbox;
use routes::State;
use stats::Counters;

/// The relay's memory bounds. The defaults are the mediator's (`[relay]` in its config).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes held for the absent member of one route (default 1 MiB).
    pub held_bytes_per_route: usize,
    /// Bytes held across all routes one client reserved (default 16 MiB).
    pub held_bytes_per_client: usize,
    /// Bytes held across the relay (default 256 MiB).
    pub held_bytes_total: usize,
    /// Bytes queued towards one connection; DATA past it is dropped (default 16 MiB).
    pub queue_bytes_per_conn: usize,
    /// Bytes queued towards all connections together (default 512 MiB).
    pub queue_bytes_total: usize,
    /// How long frames may wait for a connection whose socket takes nothing before it is
    /// cut (default 20 s).
    pub stall: Duration,
    /// Refused JOINs after which a connection is cut (default 64).
    pub max_refused_joins: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            held_bytes_per_route: 1 << 20,
            held_bytes_per_client: 16 << 20,
            held_bytes_total: 256 << 20,
            queue_bytes_per_conn: 16 << 20,
            queue_bytes_total: 512 << 20,
            stall: Duration::from_secs(20),
            max_refused_joins: 64,
        }
    }
}

/// A route's reservation, as the relay needs it to admit a JOIN.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// The client that reserved the route (held frames count against it).
    pub owner: Arc<str>,
    /// The key the client registered; slot secrets derive from it.
    pub key: RouteKey,
    /// When the reservation ends (Unix seconds).
    pub expires_at: u64,
}

/// Where the relay looks reservations up (the mediator's durable store), and whom it tells
/// where members are (a cluster's route directory).
pub trait Reservations: Send + Sync {
    /// The unexpired reservation of `route`, if any.
    fn reservation(&self, route: RouteId) -> impl Future<Output = Result<Option<Reservation>>> + Send;

    /// A client connection of this relay took `slot` of `route` (a JOIN was admitted).
    /// A cluster records it in its route directory and tells the instance holding the other
    /// slot (see [`crate::mesh`]). Must not block.
    fn joined(&self, _route: RouteId, _slot: u8) {}

    /// The client connection holding `slot` of `route` here left it (LEAVE, or it closed).
    fn left(&self, _route: RouteId, _slot: u8) {}
}

/// One connection, as the routes it is a member of see it.
#[derive(Clone)]
pub(crate) struct Member {
    pub conn: u64,
    pub outbox: Outbox,
    /// An instance link (the route's member sits on another instance), not a client.
    pub link: bool,
}

/// The relay state shared by all connections.
pub struct Relay {
    state: Mutex<State>,
    limits: Limits,
    counters: Counters,
    queued_total: Arc<AtomicUsize>,
    next_conn: AtomicU64,
    /// Whether `tap` is set (the data path only locks it then).
    tapped: AtomicBool,
    tap: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Relay {
    /// A relay within `limits`.
    pub fn new(limits: Limits) -> Relay {
        Relay {
            state: Mutex::default(),
            limits,
            counters: Counters::default(),
            queued_total: Arc::default(),
            next_conn: AtomicU64::new(1),
            tapped: AtomicBool::new(false),
            tap: Mutex::default(),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Copies every DATA frame the relay handles to `tap` (for audits and tests: what
    /// the relay can see), or stops copying with `None`.
    pub fn set_tap(&self, tap: Option<mpsc::UnboundedSender<Bytes>>) {
        let mut slot = lock(&self.tap);
        self.tapped.store(tap.is_some(), Relaxed);
        *slot = tap;
    }

    /// Counters and gauges.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let dropped_by = stats::load(&c.dropped);
        let (held, routes) = {
            let st = lock(&self.state);
            (st.held_total, st.routes.len())
        };
        Stats {
            forwarded: c.forwarded.load(Relaxed),
            dropped: dropped_by.iter().sum(),
            dropped_by,
            joins: stats::load(&c.joins),
            displaced: c.displaced.load(Relaxed),
            disconnects: stats::load(&c.disconnects),
            held_bytes: held as u64,
            queued_bytes: self.queued_total.load(Acquire) as u64,
            connections: c.connections.load(Relaxed),
            links: c.links.load(Relaxed),
            routes: routes as u64,
        }
    }

    /// A new connection's queue.
    pub(crate) fn new_member(&self) -> (Member, outbox::Inbox) {
        let (outbox, inbox) =
            outbox::queue(self.limits.queue_bytes_per_conn, self.queued_total.clone(), self.limits.queue_bytes_total);
        (Member { conn: self.next_conn.fetch_add(1, Relaxed), outbox, link: false }, inbox)
    }
}
