//! The route table: which connection holds each slot of a route, and what is held for a
//! slot nobody holds. The [`Relay`] methods here move a route's frames: JOIN, DATA,
//! LEAVE, and the sweep of ended reservations.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;

use super::{lock, DropReason, Member, Relay, Reservation, FRAME_OVERHEAD};
use crate::error::Result;
use crate::proto::{Frame, JoinStatus, RouteId, MAC_LEN, NONCE_LEN};

pub(super) struct RouteState {
    owner: Arc<str>,
    expires_at: u64,
    /// The reservation ended: nothing more is held for an absent member.
    expired: bool,
    pub(super) slots: [Option<Member>; 2],
    /// Frames for a slot nobody holds right now, and what they count.
    held: [VecDeque<Bytes>; 2],
    held_cost: [usize; 2],
}

#[derive(Default)]
pub(super) struct State {
    pub(super) routes: HashMap<RouteId, RouteState>,
    /// Held bytes by reserving client.
    pub(super) owners: HashMap<Arc<str>, usize>,
    pub(super) held_total: usize,
}

impl State {
    /// Frees what `route` holds for `slot`; returns the frames.
    pub(super) fn take_held(&mut self, route: &RouteId, slot: usize) -> VecDeque<Bytes> {
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
    pub(super) fn tidy(&mut self, route: &RouteId) {
        if self.routes.get(route).is_some_and(|rs| rs.slots.iter().all(Option::is_none) && rs.held_cost == [0, 0]) {
            self.routes.remove(route);
        }
    }
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

impl Relay {
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
        let rs = self.route_state(&mut st, route, &r);
        if let Some(old) = rs.slots[s].replace(m.clone()) {
            // A member that moved here from another instance displaces nobody here.
            if !old.outbox.same(&m.outbox) && !old.link {
                old.outbox.push_control(Frame::Displaced { route, slot: s as u8 }.encode());
                self.counters.displaced.fetch_add(1, Relaxed);
            }
        }
        m.outbox.push_control(Frame::Joined { route, status: JoinStatus::Ok }.encode());
        let other = rs.slots[1 - s].clone();
        for f in st.take_held(&route, s) {
            match m.outbox.push_data(f) {
                Ok(()) => self.counters.forward(),
                Err(why) => self.counters.drop(why),
            }
        }
        m.outbox.push_control(Frame::Peer { route, up: other.is_some() }.encode());
        if let Some(o) = other.filter(|o| !o.link) {
            o.outbox.push_control(Frame::Peer { route, up: true }.encode());
        }
    }

    /// The state of `route` under reservation `r`, made when missing; what an earlier
    /// reservation of the same id by another client held is dropped.
    pub(super) fn route_state<'s>(&self, st: &'s mut State, route: RouteId, r: &Reservation) -> &'s mut RouteState {
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
        rs
    }

    /// Passes a DATA `frame` of `route` from connection `conn` to the other member (or
    /// holds it while the other slot is empty).
    pub(crate) fn data(&self, conn: u64, route: RouteId, frame: Bytes) {
        if self.tapped.load(Relaxed) {
            if let Some(tap) = &*lock(&self.tap) {
                let _ = tap.send(frame.clone());
            }
        }
        let outcome = self.route_data(conn, route, frame, false);
        match outcome {
            Ok(true) => self.counters.forward(),
            Ok(false) => {}
            Err(why) => self.counters.drop(why),
        }
    }

    /// Ok(true) forwarded, Ok(false) held. A frame that came over an instance link goes
    /// only to a client of this instance (one hop between instances, never two).
    pub(super) fn route_data(
        &self,
        conn: u64,
        route: RouteId,
        frame: Bytes,
        from_link: bool,
    ) -> Result<bool, DropReason> {
        let mut guard = lock(&self.state);
        let State { routes, owners, held_total } = &mut *guard;
        let rs = routes.get_mut(&route).ok_or(DropReason::NotMember)?;
        let s =
            rs.slots.iter().position(|x| x.as_ref().is_some_and(|x| x.conn == conn)).ok_or(DropReason::NotMember)?;
        let o = 1 - s;
        if let Some(other) = &rs.slots[o] {
            if from_link && other.link {
                return Err(DropReason::NotMember);
            }
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

    /// Takes connection `conn` out of `route` (LEAVE, or the connection ended); returns the
    /// slot it held, if it still held one. The other member hears of it: PEER down for a
    /// client here, DETACH for an instance link.
    pub(crate) fn leave(&self, route: &RouteId, conn: u64) -> Option<u8> {
        let mut st = lock(&self.state);
        let rs = st.routes.get_mut(route)?;
        let mut vacated = None;
        for s in 0..2 {
            if rs.slots[s].as_ref().is_some_and(|x| x.conn == conn) {
                let was_link = rs.slots[s].take().is_some_and(|m| m.link);
                if !was_link {
                    vacated = Some(s as u8);
                }
                match &rs.slots[1 - s] {
                    Some(o) if o.link && !was_link => {
                        o.outbox.push_control(crate::mesh::LinkFrame::Detach { route: *route, slot: s as u8 }.encode())
                    }
                    Some(o) if !o.link => o.outbox.push_control(Frame::Peer { route: *route, up: false }.encode()),
                    _ => {}
                }
            }
        }
        st.tidy(route);
        vacated
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
