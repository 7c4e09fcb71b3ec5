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
//! [`FrameSocket`]: crate::FrameSocket

mod conn;
mod outbox;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use conn::Exit;
pub use outbox::{CONTROL_SLACK, FRAME_OVERHEAD};
pub use stats::{Disconnect, DropReason, Stats};

use crate::auth::RouteKey;
use crate::error::Result;
use crate::proto::{Frame, JoinStatus, RouteId, MAC_LEN, NONCE_LEN};
use outbox::Outbox;
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

/// Where the relay looks reservations up (the mediator's durable store).
pub trait Reservations: Send + Sync {
    /// The unexpired reservation of `route`, if any.
    fn reservation(&self, route: RouteId) -> impl Future<Output = Result<Option<Reservation>>> + Send;
}

/// One connection, as the routes it is a member of see it.
#[derive(Clone)]
pub(crate) struct Member {
    pub conn: u64,
    pub outbox: Outbox,
}

struct RouteState {
    owner: Arc<str>,
    expires_at: u64,
    /// The reservation ended: nothing more is held for an absent member.
    expired: bool,
    slots: [Option<Member>; 2],
    /// Frames for a slot nobody holds right now, and what they count.
    held: [VecDeque<Bytes>; 2],
    held_cost: [usize; 2],
}

#[derive(Default)]
struct State {
    routes: HashMap<RouteId, RouteState>,
    /// Held bytes by reserving client.
    owners: HashMap<Arc<str>, usize>,
    held_total: usize,
}

impl State {
    /// Frees what `route` holds for `slot`; returns the frames.
    fn take_held(&mut self, route: &RouteId, slot: usize) -> VecDeque<Bytes> {
        let Some(rs) = self.routes.get_mut(route) else { return VecDeque::new() };
        let c = std::mem::take(&mut rs.held_cost[slot]);
        self.held_total -= c;
        if let Some(o) = self.owners.get_mut(&rs.owner) {
            *o -= c;
            if *o == 0 {
                self.owners.remove(&rs.owner);
            }
        }
        std::mem::take(&mut rs.held[slot])
    }

    /// Forgets `route` if nobody is in it and nothing is held for it.
    fn tidy(&mut self, route: &RouteId) {
        if self.routes.get(route).is_some_and(|rs| rs.slots.iter().all(Option::is_none) && rs.held_cost == [0, 0]) {
            self.routes.remove(route);
        }
    }
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

/// Held frames are counted in whole pages of this size (each has its own memory mapping).
pub const HELD_PAGE: usize = 4096;

/// What a held frame of `len` bytes counts against the held bounds.
pub fn held_cost(len: usize) -> usize {
    len.next_multiple_of(HELD_PAGE) + FRAME_OVERHEAD
}

/// A copy of a frame to hold, in its own anonymous memory mapping. Held frames may wait
/// long and come in bulk; from the heap, their memory would stay with the process after
/// they are freed (the allocator keeps it for reuse, and fragmentation pins it), so a relay
/// that was made to hold a lot once would stay that big. A mapping goes back to the system
/// when it is dropped. `None` when the system refuses the mapping.
fn hold(frame: &[u8]) -> Option<Bytes> {
    let mut map = memmap2::MmapMut::map_anon(frame.len().max(1)).ok()?;
    map[..frame.len()].copy_from_slice(frame);
    Some(Bytes::from_owner(map).slice(..frame.len()))
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
            routes: routes as u64,
        }
    }

    /// A new connection's queue.
    pub(crate) fn new_member(&self) -> (Member, outbox::Inbox) {
        let (outbox, inbox) =
            outbox::queue(self.limits.queue_bytes_per_conn, self.queued_total.clone(), self.limits.queue_bytes_total);
        (Member { conn: self.next_conn.fetch_add(1, Relaxed), outbox }, inbox)
    }

    /// Answers a JOIN by `m` (challenged with `nonce`) of `slot` of `route`, whose
    /// reservation lookup gave `found`. Joined, it takes the slot (telling a member it
    /// displaces), receives what was held for the slot, and both members learn about
    /// each other. Refused, it is told why.
    pub(crate) fn join(
        &self,
        m: &Member,
        nonce: &[u8; NONCE_LEN],
        route: RouteId,
        slot: u8,
        mac: &[u8; MAC_LEN],
        found: Result<Option<Reservation>>,
    ) -> JoinStatus {
        let status = match (slot, found) {
            (2.., _) => JoinStatus::BadSlot,
            (_, Err(e)) => {
                tracing::debug!(route = %route.fmt_short(), error = %e, "reservation lookup failed");
                JoinStatus::Unavailable
            }
            (_, Ok(None)) => JoinStatus::UnknownRoute,
            (_, Ok(Some(r))) if !r.key.slot_secret(slot).verify(nonce, &route, slot, mac) => JoinStatus::BadAuth,
            (_, Ok(Some(r))) => {
                self.admit(m, route, usize::from(slot), r);
                JoinStatus::Ok
            }
        };
        self.counters.joins[status as usize].fetch_add(1, Relaxed);
        if status != JoinStatus::Ok {
            m.outbox.push_control(Frame::Joined { route, status }.encode());
        }
        status
    }

    fn admit(&self, m: &Member, route: RouteId, s: usize, r: Reservation) {
        let mut st = lock(&self.state);
        // State left by an earlier reservation of the same id by another client.
        if st.routes.get(&route).is_some_and(|rs| rs.owner != r.owner) {
            for slot in 0..2 {
                let n = st.take_held(&route, slot).len();
                self.counters.drop_n(DropReason::Expired, n as u64);
            }
            if let Some(rs) = st.routes.get_mut(&route) {
                rs.owner = r.owner.clone();
            }
        }
        let rs = st.routes.entry(route).or_insert_with(|| RouteState {
            owner: r.owner.clone(),
            expires_at: r.expires_at,
            expired: false,
            slots: [None, None],
            held: Default::default(),
            held_cost: [0, 0],
        });
        rs.expires_at = r.expires_at;
        rs.expired = false;
        if let Some(old) = rs.slots[s].replace(m.clone()) {
            if !old.outbox.same(&m.outbox) {
                old.outbox.push_control(Frame::Displaced { route, slot: s as u8 }.encode());
                self.counters.displaced.fetch_add(1, Relaxed);
            }
        }
        m.outbox.push_control(Frame::Joined { route, status: JoinStatus::Ok }.encode());
        let other_up = rs.slots[1 - s].as_ref().map(|o| o.outbox.clone());
        for f in st.take_held(&route, s) {
            match m.outbox.push_data(f) {
                Ok(()) => self.counters.forward(),
                Err(why) => self.counters.drop(why),
            }
        }
        m.outbox.push_control(Frame::Peer { route, up: other_up.is_some() }.encode());
        if let Some(o) = other_up {
            o.push_control(Frame::Peer { route, up: true }.encode());
        }
    }

    /// Passes a DATA `frame` of `route` from connection `conn` to the other member (or
    /// holds it while the other slot is empty).
    pub(crate) fn data(&self, conn: u64, route: RouteId, frame: Bytes) {
        if self.tapped.load(Relaxed) {
            if let Some(tap) = &*lock(&self.tap) {
                let _ = tap.send(frame.clone());
            }
        }
        let outcome = self.route_data(conn, route, frame);
        match outcome {
            Ok(true) => self.counters.forward(),
            Ok(false) => {}
            Err(why) => self.counters.drop(why),
        }
    }

    /// Ok(true) forwarded, Ok(false) held.
    fn route_data(&self, conn: u64, route: RouteId, frame: Bytes) -> Result<bool, DropReason> {
        let mut guard = lock(&self.state);
        let State { routes, owners, held_total } = &mut *guard;
        let rs = routes.get_mut(&route).ok_or(DropReason::NotMember)?;
        let s =
            rs.slots.iter().position(|x| x.as_ref().is_some_and(|x| x.conn == conn)).ok_or(DropReason::NotMember)?;
        let o = 1 - s;
        if let Some(other) = &rs.slots[o] {
            return other.outbox.push_data(frame).map(|()| true);
        }
        if rs.expired {
            return Err(DropReason::Expired);
        }
        let c = held_cost(frame.len());
        let l = &self.limits;
        if rs.held_cost[0] + rs.held_cost[1] + c > l.held_bytes_per_route {
            return Err(DropReason::HeldRoute);
        }
        let owner = owners.get(&rs.owner).copied().unwrap_or(0);
        if owner + c > l.held_bytes_per_client {
            return Err(DropReason::HeldClient);
        }
        if *held_total + c > l.held_bytes_total {
            return Err(DropReason::HeldBudget);
        }
        let held = hold(&frame).ok_or(DropReason::HeldBudget)?;
        *held_total += c;
        *owners.entry(rs.owner.clone()).or_default() += c;
        rs.held_cost[o] += c;
        rs.held[o].push_back(held);
        Ok(false)
    }

    /// Takes connection `conn` out of `route` (LEAVE, or the connection ended).
    pub(crate) fn leave(&self, route: &RouteId, conn: u64) {
        let mut st = lock(&self.state);
        let Some(rs) = st.routes.get_mut(route) else { return };
        for s in 0..2 {
            if rs.slots[s].as_ref().is_some_and(|x| x.conn == conn) {
                rs.slots[s] = None;
                if let Some(o) = &rs.slots[1 - s] {
                    o.outbox.push_control(Frame::Peer { route: *route, up: false }.encode());
                }
            }
        }
        st.tidy(route);
    }

    /// Ends the reservations that expired by `now` (Unix seconds): frees what their routes
    /// hold and holds nothing more for them. Members still joined keep forwarding to each
    /// other (a reservation admits joins, it does not cut a running session). Returns the
    /// number of routes whose reservation ended.
    pub fn sweep(&self, now: u64) -> usize {
        let mut st = lock(&self.state);
        let ended: Vec<RouteId> =
            st.routes.iter().filter(|(_, rs)| !rs.expired && rs.expires_at <= now).map(|(r, _)| *r).collect();
        for route in &ended {
            for slot in 0..2 {
                let n = st.take_held(route, slot).len();
                self.counters.drop_n(DropReason::Expired, n as u64);
            }
            if let Some(rs) = st.routes.get_mut(route) {
                rs.expired = true;
            }
            st.tidy(route);
        }
        ended.len()
    }

    /// The reservation of `route` was renewed until `expires_at`.
    pub fn renew(&self, route: &RouteId, expires_at: u64) {
        if let Some(rs) = lock(&self.state).routes.get_mut(route) {
            rs.expires_at = expires_at;
            rs.expired = false;
        }
    }
}
