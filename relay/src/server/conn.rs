//! One relay connection: the challenge, then frames both ways through the shared
//! [`Pump`](crate::pump::Pump), JOINs checked against the reservations, and the stall
//! watch that cuts a connection whose socket takes nothing while frames wait for it.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::time::{sleep_until, Instant, Sleep};

use super::outbox::Inbox;
use super::{Disconnect, DropReason, Member, Relay, Reservations};
use crate::auth;
use crate::error::Error;
use crate::proto::{op, Frame, JoinStatus, RouteId, MAC_LEN, NONCE_LEN};
use crate::pump::{FrameSocket, Pump, Side};

/// Why [`Relay::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The client closed the socket, or it failed.
    Closed,
    /// The shutdown future completed.
    Shutdown,
    /// The relay cut the connection.
    Disconnected(Disconnect),
}

impl Exit {
    /// The WebSocket close code and reason to send, if the socket is worth a goodbye (a
    /// stalled or overflowing one is not: nothing more is written to it).
    pub fn close_frame(&self) -> Option<(u16, &'static str)> {
        match self {
            Exit::Shutdown => Some((1001, "mediator shutting down")),
            Exit::Disconnected(Disconnect::NotBinary) => Some((1003, "the relay takes binary frames only")),
            Exit::Disconnected(Disconnect::TooManyRefusals) => Some((1008, "too many refused joins")),
            Exit::Closed | Exit::Disconnected(Disconnect::Stalled | Disconnect::Overflow) => None,
        }
    }

    /// Why a connection ended when its socket failed (`Some`) or was closed (`None`).
    pub(super) fn lost(error: Option<Error>) -> Exit {
        match error {
            Some(Error::NotBinary) => Exit::Disconnected(Disconnect::NotBinary),
            _ => Exit::Closed,
        }
    }
}

/// What the pump cannot finish by itself.
enum Event {
    /// A JOIN (the reservation lookup is asynchronous).
    Join { route: RouteId, slot: u8, mac: [u8; MAC_LEN] },
    /// The connection gave up its slot of a route (the reservations hear of it).
    Left { route: RouteId, slot: u8 },
    /// The connection is over.
    Exit(Exit),
}

/// Watches that a socket takes frames while frames wait for it.
pub(super) struct Stall {
    /// Frames were waiting for the socket at the end of the last round.
    waiting: bool,
    /// Since when the socket has taken nothing while frames wait: the later of the last
    /// write and the moment frames started waiting.
    since: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Stall {
    pub(super) fn new(limit: std::time::Duration) -> Stall {
        let now = Instant::now();
        Stall { waiting: false, since: now, timer: Box::pin(sleep_until(now + limit)) }
    }

    /// End of a pump round: the stalled exit when frames have waited `limit` for a socket
    /// that took none.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        wrote: bool,
        pending: bool,
        limit: std::time::Duration,
    ) -> Option<Exit> {
        if !pending {
            self.waiting = false;
            return None;
        }
        if wrote || !self.waiting {
            self.since = Instant::now();
            self.waiting = true;
        }
        let deadline = self.since + limit;
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready().then_some(Exit::Disconnected(Disconnect::Stalled))
    }
}

struct ServerSide<'a> {
    relay: &'a Relay,
    member: Member,
    inbox: Inbox,
    nonce: [u8; NONCE_LEN],
    joined: Vec<RouteId>,
    stall: Stall,
}

impl ServerSide<'_> {
    fn refuse_malformed(&self, opcode: Option<u8>) {
        self.relay.counters.drop(DropReason::Malformed);
        if opcode == Some(op::JOIN) {
            self.relay.counters.joins[JoinStatus::Malformed as usize].fetch_add(1, Relaxed);
        }
        let joined = Frame::Joined { route: RouteId::default(), status: JoinStatus::Malformed };
        self.member.outbox.push_control(joined.encode());
    }
}

impl Side for ServerSide<'_> {
    type Exit = Event;

    fn poll_start(&mut self, cx: &mut Context<'_>) -> Option<Event> {
        self.inbox.overflowed(cx).then_some(Event::Exit(Exit::Disconnected(Disconnect::Overflow)))
    }

    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        self.inbox.poll_next(cx)
    }

    fn incoming(&mut self, frame: Bytes) -> Option<Event> {
        match Frame::decode(&frame) {
            // Forwarded byte for byte: the relay → client DATA frame is the same.
            Ok(Frame::Data { route, .. }) => self.relay.data(self.member.conn, route, frame),
            Ok(Frame::Join { route, slot, mac }) => return Some(Event::Join { route, slot, mac }),
            Ok(Frame::Leave { route }) => {
                self.joined.retain(|r| *r != route);
                if let Some(slot) = self.relay.leave(&route, self.member.conn) {
                    return Some(Event::Left { route, slot });
                }
            }
            // Frames only the relay sends, and frames that do not decode.
            Ok(_) | Err(_) => self.refuse_malformed(frame.first().copied()),
        }
        None
    }

    fn lost(&mut self, error: Option<Error>) -> Event {
        Event::Exit(Exit::lost(error))
    }

    fn poll_end(&mut self, cx: &mut Context<'_>, wrote: bool, unflushed: bool) -> Option<Event> {
        let pending = unflushed || self.inbox.queued() > 0;
        self.stall.poll(cx, wrote, pending, self.relay.limits.stall).map(Event::Exit)
    }
}

impl Relay {
    /// Runs one relay connection on `socket` until the client leaves, the relay cuts it,
    /// or `shutdown` completes. JOINs are checked against `reservations`. The caller
    /// sends [`Exit::close_frame`], if any.
    pub async fn serve<S: FrameSocket, R: Reservations>(
        &self,
        socket: &mut S,
        reservations: &R,
        shutdown: impl Future<Output = ()>,
    ) -> Exit {
        let (member, inbox) = self.new_member();
        let nonce = auth::nonce();
        member.outbox.push_control(Frame::Challenge { nonce }.encode());
        self.counters.connections.fetch_add(1, Relaxed);
        let mut side =
            ServerSide { relay: self, member, inbox, nonce, joined: Vec::new(), stall: Stall::new(self.limits.stall) };
        let mut pump = Pump::default();
        let mut shutdown = pin!(shutdown);
        let mut refused = 0u32;
        let exit = loop {
            let ev = std::future::poll_fn(|cx| match shutdown.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Event::Exit(Exit::Shutdown)),
                Poll::Pending => pump.poll(cx, socket, &mut side),
            })
            .await;
            match ev {
                Event::Join { route, slot, mac } => {
                    let found = reservations.reservation(route).await;
                    match self.join(&side.member, &side.nonce, route, slot, &mac, found) {
                        JoinStatus::Ok => {
                            if !side.joined.contains(&route) {
                                side.joined.push(route);
                            }
                            reservations.joined(route, slot);
                        }
                        status => {
                            tracing::debug!(route = %route.fmt_short(), status = status.as_str(), "join refused");
                            refused += 1;
                            if refused >= self.limits.max_refused_joins {
                                break Exit::Disconnected(Disconnect::TooManyRefusals);
                            }
                        }
                    }
                }
                Event::Left { route, slot } => reservations.left(route, slot),
                Event::Exit(e) => break e,
            }
        };
        for route in &side.joined {
            if let Some(slot) = self.leave(route, side.member.conn) {
                reservations.left(*route, slot);
            }
        }
        if let Exit::Disconnected(d) = exit {
            self.counters.disconnects[d as usize].fetch_add(1, Relaxed);
        }
        self.counters.connections.fetch_sub(1, Relaxed);
        exit
    }
}
