//! The relay's side of instance links ([`crate::mesh`]): a link is one more member of the
//! routes whose other member sits on the instance at its far end. A client here sends to
//! it as to any member (the frame crosses to the other instance); what arrives over it goes
//! to the client here holding the route's other slot, never on to a third instance.
//!
//! Who holds which slot where is the mediator's business (its route directory): when a
//! client here joins, the mediator sends an ATTACH over the link to the instance holding
//! the other slot ([`LinkHandle::attach`]); that instance puts the link in the slot and, if
//! its own client holds the other one, answers with an ATTACH of it, so both sides know.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::conn::{Exit, Stall};
use super::outbox::Inbox;
use super::{lock, Disconnect, DropReason, Member, Relay, Reservation, Reservations};
use crate::error::Error;
use crate::mesh::LinkFrame;
use crate::proto::{Frame, RouteId};
use crate::pump::{FrameSocket, Pump, Side};

/// What the mediator keeps of a link to push ATTACHes into it.
#[derive(Clone)]
pub struct LinkHandle {
    member: Member,
    peer: Arc<str>,
}

impl LinkHandle {
    /// Tells the instance at the far end that a client here holds `slot` of `route` (it
    /// answers with the other slot if its client holds that one).
    pub fn attach(&self, route: RouteId, slot: u8) {
        self.member.outbox.push_control(LinkFrame::Attach { route, slot, reply: true }.encode());
    }

    /// The instance at the far end.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Whether the link's connection has ended.
    pub fn is_closed(&self) -> bool {
        self.member.outbox.is_closed()
    }

    /// Whether `other` is a handle on the same link.
    pub fn same(&self, other: &LinkHandle) -> bool {
        self.member.outbox.same(&other.member.outbox)
    }
}

/// A link not yet served: give it to [`Relay::serve_link`].
pub struct LinkConn {
    member: Member,
    inbox: Inbox,
}

/// What the link's pump cannot finish by itself.
enum Event {
    /// An ATTACH (the reservation lookup is asynchronous).
    Attach { route: RouteId, slot: u8, reply: bool },
    /// The link is over.
    Exit(Exit),
}

struct LinkSide<'a> {
    relay: &'a Relay,
    member: Member,
    inbox: Inbox,
    routes: Vec<RouteId>,
    stall: Stall,
}

impl Side for LinkSide<'_> {
    type Exit = Event;

    fn poll_start(&mut self, cx: &mut Context<'_>) -> Option<Event> {
        self.inbox.overflowed(cx).then_some(Event::Exit(Exit::Disconnected(Disconnect::Overflow)))
    }

    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        self.inbox.poll_next(cx)
    }

    fn incoming(&mut self, frame: Bytes) -> Option<Event> {
        match LinkFrame::decode(&frame) {
            Ok(LinkFrame::Data { route, .. }) => self.relay.link_data(&self.member, route, frame),
            Ok(LinkFrame::Attach { route, slot, reply }) => return Some(Event::Attach { route, slot, reply }),
            Ok(LinkFrame::Detach { route, slot }) => self.relay.detach_link(&self.member, route, slot),
            Ok(_) | Err(_) => self.relay.counters.drop(DropReason::Malformed),
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
    /// A link to (or from) the instance `peer`, after its handshake ([`crate::mesh::dial`]
    /// or [`crate::mesh::accept`]): a handle to attach routes through, and the connection
    /// to serve.
    pub fn new_link(&self, peer: &str) -> (LinkHandle, LinkConn) {
        let (mut member, inbox) = self.new_member();
        member.link = true;
        (LinkHandle { member: member.clone(), peer: peer.into() }, LinkConn { member, inbox })
    }

    /// Runs a link on `socket` until it closes, the relay cuts it, or `shutdown`
    /// completes; then every route slot it held is empty again (their clients here hear
    /// PEER down). ATTACHes are admitted for routes `reservations` knows.
    pub async fn serve_link<S: FrameSocket, R: Reservations>(
        &self,
        link: LinkConn,
        socket: &mut S,
        reservations: &R,
        shutdown: impl Future<Output = ()>,
    ) -> Exit {
        self.counters.links.fetch_add(1, Relaxed);
        let LinkConn { member, inbox } = link;
        let mut side =
            LinkSide { relay: self, member, inbox, routes: Vec::new(), stall: Stall::new(self.limits.stall) };
        let mut pump = Pump::default();
        let mut shutdown = pin!(shutdown);
        let exit = loop {
            let ev = std::future::poll_fn(|cx| match shutdown.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Event::Exit(Exit::Shutdown)),
                Poll::Pending => pump.poll(cx, socket, &mut side),
            })
            .await;
            match ev {
                Event::Attach { route, slot, reply } => match reservations.reservation(route).await {
                    Ok(Some(r)) => {
                        self.attach_link(&side.member, route, usize::from(slot), r, reply);
                        if !side.routes.contains(&route) {
                            side.routes.push(route);
                        }
                    }
                    Ok(None) => tracing::debug!(route = %route.fmt_short(), "ATTACH of a route not reserved"),
                    Err(e) => tracing::debug!(route = %route.fmt_short(), error = %e, "ATTACH lookup failed"),
                },
                Event::Exit(e) => break e,
            }
        };
        for route in &side.routes {
            self.leave(route, side.member.conn);
        }
        if let Exit::Disconnected(d) = exit {
            self.counters.disconnects[d as usize].fetch_add(1, Relaxed);
        }
        self.counters.links.fetch_sub(1, Relaxed);
        exit
    }

    /// The member of `slot` of `route` sits at the far end of link `l`: frames for that slot
    /// go over the link (what was held for it, first). A client here that held the slot
    /// moved away and is told it was displaced; a client here holding the other slot hears
    /// PEER up, and with `reply` the far end learns of it by an ATTACH.
    pub(crate) fn attach_link(&self, l: &Member, route: RouteId, s: usize, r: Reservation, reply: bool) {
        let mut st = lock(&self.state);
        let rs = self.route_state(&mut st, route, &r);
        if let Some(old) = rs.slots[s].replace(l.clone()) {
            if !old.link {
                old.outbox.push_control(Frame::Displaced { route, slot: s as u8 }.encode());
                self.counters.displaced.fetch_add(1, Relaxed);
            }
        }
        // The answering ATTACH goes first: the far end admits frames of this route from the
        // link only once it knows which slot the link holds there.
        if let Some(o) = rs.slots[1 - s].as_ref().filter(|o| !o.link) {
            o.outbox.push_control(Frame::Peer { route, up: true }.encode());
            if reply {
                l.outbox.push_control(LinkFrame::Attach { route, slot: (1 - s) as u8, reply: false }.encode());
            }
        }
        for f in st.take_held(&route, s) {
            match l.outbox.push_data(f) {
                Ok(()) => self.counters.forward(),
                Err(why) => self.counters.drop(why),
            }
        }
    }

    /// The far end of link `l` no longer holds `slot` of `route`.
    pub(crate) fn detach_link(&self, l: &Member, route: RouteId, slot: u8) {
        let mut st = lock(&self.state);
        let Some(rs) = st.routes.get_mut(&route) else { return };
        let s = usize::from(slot);
        if rs.slots[s].as_ref().is_some_and(|m| m.conn == l.conn) {
            rs.slots[s] = None;
            if let Some(o) = rs.slots[1 - s].as_ref().filter(|o| !o.link) {
                o.outbox.push_control(Frame::Peer { route, up: false }.encode());
            }
        }
        st.tidy(&route);
    }

    /// A DATA frame that came over link `l`: for the client here holding the other slot (or
    /// held for it while it is away).
    pub(crate) fn link_data(&self, l: &Member, route: RouteId, frame: Bytes) {
        if self.tapped.load(Relaxed) {
            if let Some(tap) = &*lock(&self.tap) {
                let _ = tap.send(frame.clone());
            }
        }
        match self.route_data(l.conn, route, frame, true) {
            Ok(true) => self.counters.forward(),
            Ok(false) => {}
            Err(why) => self.counters.drop(why),
        }
    }
}
