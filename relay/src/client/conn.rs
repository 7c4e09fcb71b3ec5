//! The routes of one relay connection. One task polls everything itself (new routes, each
//! session's packets, the socket both ways, re-join timers): a packet meets no other task
//! between the session driver and the socket, in either direction.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use session::LinkEvent;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::Membership;
use crate::auth::SlotSecret;
use crate::error::Error;
use crate::proto::{data_frame, Frame, JoinStatus, RouteId, NONCE_LEN};
use crate::pump::Side;

/// A session joining the connection: its slot, where its packets go, where they come from.
pub(crate) struct NewRoute {
    pub member: Membership,
    pub tx: mpsc::Sender<LinkEvent>,
    pub out: mpsc::Receiver<Bytes>,
}

pub(crate) struct Route {
    pub slot: u8,
    pub secret: SlotSecret,
    pub tx: mpsc::Sender<LinkEvent>,
    /// Displacements in a row, and when the last one was.
    pub displaced: u32,
    pub last_displaced: Option<Instant>,
}

/// Why the pump stopped.
pub(crate) enum Exit {
    /// The WebSocket failed or closed: reconnect.
    Lost,
    /// No session uses the connection and none can come: close it.
    Done,
}

/// The delay before re-joining a route we were displaced from for the `n`th time in a row
/// (from 0): 100 ms doubling up to 25.6 s. A member that lost its slot to its own newer
/// connection never sees this (that connection is gone); two holders of one slot's secret
/// take turns at an ever slower pace instead of fighting in a tight loop.
pub(crate) fn rejoin_delay(n: u32) -> Duration {
    Duration::from_millis(100 << n.min(8))
}

/// A displacement this long after the previous one starts the count again.
const DISPLACED_RESET: Duration = Duration::from_secs(60);

pub(crate) struct Conn {
    pub url: String,
    cmds: mpsc::Receiver<NewRoute>,
    cmds_open: bool,
    pub(crate) routes: HashMap<RouteId, Route>,
    /// Each session's outbound packets.
    pub(crate) outs: Vec<(RouteId, mpsc::Receiver<Bytes>)>,
    /// Where the next round over `outs` starts (fairness between sessions).
    pub(crate) next_out: usize,
    /// This connection's challenge, once the relay sent it.
    nonce: Option<[u8; NONCE_LEN]>,
    /// JOIN frames not sent yet.
    joins: VecDeque<Bytes>,
    /// Routes to join again, and when.
    rejoins: Vec<(Instant, RouteId)>,
    rejoin_timer: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    pub(crate) fn new(url: String, cmds: mpsc::Receiver<NewRoute>) -> Conn {
        Conn {
            url,
            cmds,
            cmds_open: true,
            routes: HashMap::new(),
            outs: Vec::new(),
            next_out: 0,
            nonce: None,
            joins: VecDeque::new(),
            rejoins: Vec::new(),
            rejoin_timer: None,
        }
    }

    pub(crate) fn done(&self) -> bool {
        !self.cmds_open && self.outs.is_empty()
    }

    fn join_frame(&self, route: &RouteId) -> Option<Bytes> {
        let nonce = self.nonce.as_ref()?;
        let r = self.routes.get(route)?;
        Some(Frame::Join { route: *route, slot: r.slot, mac: r.secret.join_mac(nonce, route, r.slot) }.encode())
    }

    /// A new connection was challenged with `nonce`: every route joins (first thing sent),
    /// and every session resends what is unacknowledged.
    pub(crate) fn connected(&mut self, nonce: [u8; NONCE_LEN], reset_paths: bool) {
        self.nonce = Some(nonce);
        self.rejoins.clear();
        self.rejoin_timer = None;
        self.joins = self.routes.keys().filter_map(|r| self.join_frame(r)).collect();
        if reset_paths {
            for r in self.routes.values() {
                let _ = r.tx.try_send(LinkEvent::PathReset);
            }
        }
    }

    /// The connection is gone: nothing can be joined until the next challenge.
    pub(crate) fn disconnected(&mut self) {
        self.nonce = None;
        self.joins.clear();
        self.rejoins.clear();
        self.rejoin_timer = None;
    }

    /// Takes new routes (their JOIN frames go out first, once connected).
    fn poll_new_routes(&mut self, cx: &mut Context<'_>) {
        while self.cmds_open {
            match self.cmds.poll_recv(cx) {
                Poll::Ready(Some(r)) => {
                    let route = r.member.route;
                    let (slot, secret) = (r.member.slot, r.member.secret);
                    self.routes.insert(route, Route { slot, secret, tx: r.tx, displaced: 0, last_displaced: None });
                    self.outs.push((route, r.out));
                    if let Some(j) = self.join_frame(&route) {
                        self.joins.push_back(j);
                    }
                }
                Poll::Ready(None) => self.cmds_open = false,
                Poll::Pending => break,
            }
        }
    }

    /// The next packet of any session (round robin) as a DATA frame; forgets sessions that
    /// ended. Returning `None`, it has polled every open queue, so each one wakes the task.
    pub(crate) fn poll_packet(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        let n = self.outs.len();
        let mut ended = Vec::new();
        let mut found = None;
        for k in 0..n {
            let i = (self.next_out + k) % n;
            let (route, rx) = &mut self.outs[i];
            match rx.poll_recv(cx) {
                Poll::Ready(Some(p)) => {
                    self.next_out = i + 1;
                    found = Some(data_frame(route, &p));
                    break;
                }
                Poll::Ready(None) => ended.push(i),
                Poll::Pending => {}
            }
        }
        // Highest index first, so that `swap_remove` only ever moves an entry still kept.
        ended.sort_unstable();
        for i in ended.into_iter().rev() {
            let (route, _) = self.outs.swap_remove(i);
            self.routes.remove(&route);
        }
        found
    }

    /// Queues the JOINs of displaced routes whose delay is over.
    fn poll_rejoins(&mut self, cx: &mut Context<'_>) {
        let Some(timer) = &mut self.rejoin_timer else { return };
        if timer.as_mut().poll(cx).is_pending() {
            return;
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.rejoins.drain(..).partition(|(at, _)| *at <= now);
        self.rejoins = later;
        for (_, route) in due {
            if let Some(j) = self.join_frame(&route) {
                tracing::debug!(url = %self.url, route = %route.fmt_short(), "re-joining a route we were displaced from");
                self.joins.push_back(j);
            }
        }
        self.arm_rejoin_timer();
        if let Some(t) = &mut self.rejoin_timer {
            // Registers the wake-up for the next one.
            let _ = t.as_mut().poll(cx);
        }
    }

    fn arm_rejoin_timer(&mut self) {
        self.rejoin_timer =
            self.rejoins.iter().map(|(at, _)| *at).min().map(|at| Box::pin(tokio::time::sleep_until(at)));
    }

    fn displaced(&mut self, route: RouteId, slot: u8) {
        let Some(r) = self.routes.get_mut(&route).filter(|r| r.slot == slot) else { return };
        let now = Instant::now();
        if r.last_displaced.is_some_and(|t| now.duration_since(t) > DISPLACED_RESET) {
            r.displaced = 0;
        }
        let delay = rejoin_delay(r.displaced);
        r.displaced += 1;
        r.last_displaced = Some(now);
        tracing::info!(url = %self.url, route = %route.fmt_short(), ?delay, "another connection took our relay slot; re-joining");
        self.rejoins.push((now + delay, route));
        self.arm_rejoin_timer();
    }

    /// A frame from the relay.
    fn deliver(&mut self, b: Bytes) {
        let frame = match Frame::decode(&b) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(url = %self.url, error = %e, "undecodable relay frame");
                return;
            }
        };
        match frame {
            Frame::Data { route, payload } => {
                if let Some(r) = self.routes.get(&route) {
                    // A full session queue drops the packet; the sender retransmits it.
                    let _ = r.tx.try_send(LinkEvent::Packet(payload));
                }
            }
            Frame::Peer { route, up: true } => {
                if let Some(r) = self.routes.get(&route) {
                    let _ = r.tx.try_send(LinkEvent::PathReset);
                }
            }
            Frame::Joined { route, status } if status != JoinStatus::Ok => {
                tracing::warn!(url = %self.url, route = %route.fmt_short(), status = status.as_str(), "relay refused to join a route");
            }
            Frame::Displaced { route, slot } => self.displaced(route, slot),
            _ => {}
        }
    }

    /// While disconnected: takes new routes and drops packets (the sessions retransmit after
    /// the reconnection) until `pause` ends. False once the connection is no longer used.
    pub(crate) async fn wait_disconnected(&mut self, pause: Duration) -> bool {
        let mut pause = std::pin::pin!(tokio::time::sleep(pause));
        std::future::poll_fn(|cx| {
            self.poll_new_routes(cx);
            while self.poll_packet(cx).is_some() {}
            if self.done() {
                return Poll::Ready(false);
            }
            pause.as_mut().poll(cx).map(|()| true)
        })
        .await
    }
}

impl Side for Conn {
    type Exit = Exit;

    fn poll_start(&mut self, cx: &mut Context<'_>) -> Option<Exit> {
        self.poll_new_routes(cx);
        self.poll_rejoins(cx);
        None
    }

    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        // JOINs first, then session packets.
        self.joins.pop_front().or_else(|| self.poll_packet(cx))
    }

    fn incoming(&mut self, frame: Bytes) -> Option<Exit> {
        self.deliver(frame);
        None
    }

    fn lost(&mut self, error: Option<Error>) -> Exit {
        if let Some(e) = error {
            tracing::debug!(url = %self.url, error = %e, "relay connection failed");
        }
        Exit::Lost
    }

    fn poll_end(&mut self, _: &mut Context<'_>, _: bool, _: bool) -> Option<Exit> {
        self.done().then_some(Exit::Done)
    }
}

#[cfg(test)]
mod tests;
