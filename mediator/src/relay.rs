//! The session relay: forwards opaque binary frames between the two members of a route.
//! A route is a 16-byte secret reserved by a mediated client; whoever knows it may take
//! one of its two slots (the newest join of a slot wins). The relay never sees more than
//! the route id and frame sizes: payloads are Noise packets.
//!
//! Frames on `/relay` (binary WebSocket messages):
//! `01 route[16] slot` JOIN · `02 route[16] payload` DATA · `03 route[16]` LEAVE (client→relay);
//! `81 route[16] status` JOINED · `83 route[16] up` PEER · `02 route[16] payload` DATA (relay→client).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use axum::body::Bytes;
use tokio::sync::mpsc;

/// Route id length.
pub const ROUTE_LEN: usize = 16;
/// JOIN opcode.
pub const OP_JOIN: u8 = 0x01;
/// DATA opcode.
pub const OP_DATA: u8 = 0x02;
/// LEAVE opcode.
pub const OP_LEAVE: u8 = 0x03;
/// JOINED opcode (answer to JOIN).
pub const OP_JOINED: u8 = 0x81;
/// PEER opcode (the other slot came or went).
pub const OP_PEER: u8 = 0x83;
/// Largest relay frame: opcode, route and a 65,535-byte payload.
pub const MAX_FRAME: usize = 1 + ROUTE_LEN + 65_535;

/// JOIN outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JoinStatus {
    /// Joined.
    Ok = 0,
    /// The route is not reserved (or its reservation expired).
    UnknownRoute = 1,
    /// The slot is not 0 or 1.
    BadSlot = 2,
    /// The frame is malformed.
    Malformed = 3,
}

/// A route id.
pub type Route = [u8; ROUTE_LEN];

/// Frames waiting for a relay connection.
pub type Outbound = mpsc::Sender<Bytes>;

struct Slot {
    conn: u64,
    tx: Outbound,
}

#[derive(Default)]
struct RouteState {
    slots: [Option<Slot>; 2],
    /// Frames for a slot nobody holds right now.
    held: [VecDeque<Bytes>; 2],
    held_bytes: [usize; 2],
}

/// Counters of the relay.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Frames passed to the other member.
    pub forwarded: u64,
    /// Frames dropped (buffer full, or the member's connection was congested).
    pub dropped: u64,
}

/// All routes with a member or held frames.
pub struct Relay {
    routes: Mutex<HashMap<Route, RouteState>>,
    held_limit: usize,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    /// Whether `tap` is set (the data path only locks it then).
    tapped: AtomicBool,
    tap: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
}

/// `81 route status`.
pub fn joined_frame(route: &Route, status: JoinStatus) -> Bytes {
    let mut v = Vec::with_capacity(2 + ROUTE_LEN);
    v.push(OP_JOINED);
    v.extend_from_slice(route);
    v.push(status as u8);
    Bytes::from(v)
}

fn peer_frame(route: &Route, up: bool) -> Bytes {
    let mut v = Vec::with_capacity(2 + ROUTE_LEN);
    v.push(OP_PEER);
    v.extend_from_slice(route);
    v.push(u8::from(up));
    Bytes::from(v)
}

/// Parses the route of a frame.
pub fn route_of(frame: &[u8]) -> Option<Route> {
    frame.get(1..1 + ROUTE_LEN).and_then(|r| r.try_into().ok())
}

impl Relay {
    /// A relay holding at most `held_limit` bytes per absent member of a route.
    pub fn new(held_limit: usize) -> Relay {
        Relay {
            routes: Mutex::default(),
            held_limit,
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            tapped: AtomicBool::new(false),
            tap: Mutex::default(),
        }
    }

    /// Copies every DATA frame the relay handles to `tap` (for audits and tests: what
    /// the relay can see), or stops copying with `None`.
    pub fn set_tap(&self, tap: Option<mpsc::UnboundedSender<Bytes>>) {
        let mut slot = self.tap.lock().unwrap_or_else(|e| e.into_inner());
        self.tapped.store(tap.is_some(), Relaxed);
        *slot = tap;
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        RelayStats { forwarded: self.forwarded.load(Relaxed), dropped: self.dropped.load(Relaxed) }
    }

    /// Puts connection `conn` into `slot` of a reserved route, handing it frames held
    /// for that slot and telling both members about each other.
    pub fn join(&self, route: Route, slot: u8, conn: u64, tx: &Outbound) -> JoinStatus {
        if slot > 1 {
            return JoinStatus::BadSlot;
        }
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let st = routes.entry(route).or_default();
        let s = slot as usize;
        st.slots[s] = Some(Slot { conn, tx: tx.clone() });
        let _ = tx.try_send(joined_frame(&route, JoinStatus::Ok));
        while let Some(f) = st.held[s].pop_front() {
            st.held_bytes[s] -= f.len();
            if tx.try_send(f).is_err() {
                break;
            }
        }
        st.held[s].clear();
        st.held_bytes[s] = 0;
        let other_up = st.slots[1 - s].is_some();
        let _ = tx.try_send(peer_frame(&route, other_up));
        if let Some(o) = &st.slots[1 - s] {
            let _ = o.tx.try_send(peer_frame(&route, true));
        }
        JoinStatus::Ok
    }

    /// Passes a DATA frame from `conn` to the other member of its route (or holds it).
    pub fn data(&self, frame: Bytes, conn: u64) {
        if self.tapped.load(Relaxed) {
            if let Some(tap) = &*self.tap.lock().unwrap_or_else(|e| e.into_inner()) {
                let _ = tap.send(frame.clone());
            }
        }
        let Some(route) = route_of(&frame) else {
            return;
        };
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(st) = routes.get_mut(&route) else {
            return;
        };
        let Some(s) = st.slots.iter().position(|x| x.as_ref().is_some_and(|x| x.conn == conn)) else {
            return;
        };
        let other = 1 - s;
        let counter = match &st.slots[other] {
            Some(o) => match o.tx.try_send(frame) {
                Ok(()) => &self.forwarded,
                Err(_) => &self.dropped,
            },
            None if st.held_bytes[other] + frame.len() <= self.held_limit => {
                st.held_bytes[other] += frame.len();
                st.held[other].push_back(frame);
                return;
            }
            None => &self.dropped,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Takes `conn` out of `route` (LEAVE).
    pub fn leave(&self, route: Route, conn: u64) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        Relay::vacate(&mut routes, &route, conn);
    }

    fn vacate(routes: &mut HashMap<Route, RouteState>, route: &Route, conn: u64) {
        let Some(st) = routes.get_mut(route) else {
            return;
        };
        for s in 0..2 {
            if st.slots[s].as_ref().is_some_and(|x| x.conn == conn) {
                st.slots[s] = None;
                if let Some(o) = &st.slots[1 - s] {
                    let _ = o.tx.try_send(peer_frame(route, false));
                }
            }
        }
        if st.slots.iter().all(Option::is_none) && st.held.iter().all(VecDeque::is_empty) {
            routes.remove(route);
        }
    }

    /// A connection closed: it leaves every route.
    pub fn drop_conn(&self, conn: u64, joined: &[Route]) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        for r in joined {
            Relay::vacate(&mut routes, r, conn);
        }
    }

    /// Forgets routes whose reservation ended.
    pub fn forget(&self, route: &Route) {
        self.routes.lock().unwrap_or_else(|e| e.into_inner()).remove(route);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(route: &Route, payload: &[u8]) -> Bytes {
        let mut v = vec![OP_DATA];
        v.extend_from_slice(route);
        v.extend_from_slice(payload);
        Bytes::from(v)
    }

    #[tokio::test]
    async fn forwards_holds_and_notifies() {
        let relay = Relay::new(10_000);
        let r = [7u8; 16];
        let (atx, mut arx) = mpsc::channel(16);
        let (btx, mut brx) = mpsc::channel(16);
        assert_eq!(relay.join(r, 0, 1, &atx), JoinStatus::Ok);
        assert_eq!(arx.recv().await.unwrap()[17], JoinStatus::Ok as u8);
        assert_eq!(arx.recv().await.unwrap()[..], peer_frame(&r, false)[..]);
        relay.data(data(&r, b"early"), 1); // held for slot 1
        assert_eq!(relay.join(r, 1, 2, &btx), JoinStatus::Ok);
        assert_eq!(brx.recv().await.unwrap()[0], OP_JOINED);
        assert_eq!(&brx.recv().await.unwrap()[17..], b"early");
        assert_eq!(brx.recv().await.unwrap()[..], peer_frame(&r, true)[..]);
        assert_eq!(arx.recv().await.unwrap()[..], peer_frame(&r, true)[..]);
        relay.data(data(&r, b"hi"), 2);
        assert_eq!(&arx.recv().await.unwrap()[17..], b"hi");
        // a stranger's frames for the route are ignored
        relay.data(data(&r, b"spoof"), 99);
        relay.drop_conn(2, &[r]);
        assert_eq!(arx.recv().await.unwrap()[..], peer_frame(&r, false)[..]);
        assert!(arx.try_recv().is_err());
        assert_eq!(relay.join(r, 2, 3, &btx), JoinStatus::BadSlot);
        // holding is bounded
        for _ in 0..100 {
            relay.data(data(&r, &[0u8; 500]), 1);
        }
        assert!(relay.stats().dropped > 0);
    }
}
