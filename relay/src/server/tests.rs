use std::task::{Context, Waker};

use futures_util::{SinkExt, StreamExt};

use super::outbox::Inbox;
use super::*;
use crate::auth::{self, SlotSecret};
use crate::proto::{data_frame, Frame, JoinStatus};
use crate::pump::testing::{pair, MemSocket};

const OWNER: &str = "did:example:owner";

fn reservation(key: &RouteKey, owner: &str, expires_at: u64) -> Result<Option<Reservation>> {
    Ok(Some(Reservation { owner: owner.into(), key: key.clone(), expires_at }))
}

/// A connection without a socket: its member handle, its queue and its challenge.
struct Peer {
    m: Member,
    inbox: Inbox,
    nonce: [u8; 32],
}

fn peer(relay: &Relay) -> Peer {
    let (m, inbox) = relay.new_member();
    Peer { m, inbox, nonce: auth::nonce() }
}

impl Peer {
    fn join(&self, relay: &Relay, key: &RouteKey, route: RouteId, slot: u8) -> JoinStatus {
        self.join_as(relay, key, route, slot, OWNER, &key.slot_secret(slot))
    }

    fn join_as(
        &self,
        relay: &Relay,
        key: &RouteKey,
        route: RouteId,
        slot: u8,
        owner: &str,
        s: &SlotSecret,
    ) -> JoinStatus {
        let mac = s.join_mac(&self.nonce, &route, slot);
        relay.join(&self.m, &self.nonce, route, slot, &mac, reservation(key, owner, 1000))
    }

    /// Everything queued for this connection, decoded.
    fn frames(&mut self) -> Vec<Frame> {
        let mut cx = Context::from_waker(Waker::noop());
        std::iter::from_fn(|| self.inbox.poll_next(&mut cx)).map(|f| Frame::decode(&f).unwrap()).collect()
    }
}

fn data(route: RouteId, payload: &[u8]) -> Frame {
    Frame::Data { route, payload: Bytes::copy_from_slice(payload) }
}

fn send(relay: &Relay, p: &Peer, route: RouteId, payload: &[u8]) {
    relay.data(p.m.conn, route, data_frame(&route, payload));
}

#[test]
fn forwards_holds_and_notifies() {
    let relay = Relay::new(Limits { held_bytes_per_route: 10_000, ..Limits::default() });
    let (key, r) = (RouteKey::generate(), RouteId([7; 16]));
    let (mut a, mut b) = (peer(&relay), peer(&relay));
    assert_eq!(a.join(&relay, &key, r, 0), JoinStatus::Ok);
    assert_eq!(a.frames(), [Frame::Joined { route: r, status: JoinStatus::Ok }, Frame::Peer { route: r, up: false }]);
    send(&relay, &a, r, b"early"); // held for slot 1
    assert_eq!(relay.stats().held_bytes, held_cost(5 + 17) as u64);
    assert_eq!(b.join(&relay, &key, r, 1), JoinStatus::Ok);
    assert_eq!(
        b.frames(),
        [Frame::Joined { route: r, status: JoinStatus::Ok }, data(r, b"early"), Frame::Peer { route: r, up: true }]
    );
    assert_eq!(a.frames(), [Frame::Peer { route: r, up: true }]);
    assert_eq!(relay.stats().held_bytes, 0);
    send(&relay, &b, r, b"hi");
    assert_eq!(a.frames(), [data(r, b"hi")]);
    // A connection that is no member of the route: its frames go nowhere.
    let mut c = peer(&relay);
    send(&relay, &c, r, b"spoof");
    assert!(a.frames().is_empty() && b.frames().is_empty() && c.frames().is_empty());
    assert_eq!(relay.stats().dropped_for(DropReason::NotMember), 1);
    relay.leave(&r, b.m.conn);
    assert_eq!(a.frames(), [Frame::Peer { route: r, up: false }]);
    // Holding is bounded per route.
    for _ in 0..100 {
        send(&relay, &a, r, &[0; 500]);
    }
    let s = relay.stats();
    assert_eq!(s.held_bytes as usize, 10_000 / held_cost(517) * held_cost(517));
    assert_eq!(s.dropped_for(DropReason::HeldRoute), 100 - 10_000 / held_cost(517) as u64);
    assert_eq!(s.forwarded, 2);
    assert_eq!(s.joins_for(JoinStatus::Ok), 2);
}

#[test]
fn a_join_needs_the_slot_secret_for_this_connection() {
    let relay = Relay::new(Limits::default());
    let (key, r) = (RouteKey::generate(), RouteId([1; 16]));
    let mut a = peer(&relay);
    let ok = reservation(&key, OWNER, 1000);
    let s1 = key.slot_secret(1);
    let try_join = |mac: [u8; 32], slot: u8, found| relay.join(&a.m, &a.nonce, r, slot, &mac, found);
    assert_eq!(try_join([0; 32], 1, reservation(&key, OWNER, 1000)), JoinStatus::BadAuth, "no secret");
    let other = RouteKey::generate().slot_secret(1).join_mac(&a.nonce, &r, 1);
    assert_eq!(try_join(other, 1, reservation(&key, OWNER, 1000)), JoinStatus::BadAuth, "wrong secret");
    let replayed = s1.join_mac(&auth::nonce(), &r, 1);
    assert_eq!(try_join(replayed, 1, reservation(&key, OWNER, 1000)), JoinStatus::BadAuth, "another connection's JOIN");
    let slot0 = key.slot_secret(0).join_mac(&a.nonce, &r, 1);
    assert_eq!(try_join(slot0, 1, ok), JoinStatus::BadAuth, "slot 0's secret for slot 1");
    let good = s1.join_mac(&a.nonce, &r, 1);
    assert_eq!(try_join(good, 1, Ok(None)), JoinStatus::UnknownRoute);
    assert_eq!(try_join(good, 1, Err(crate::Error::Reservations("down".into()))), JoinStatus::Unavailable);
    assert_eq!(try_join(good, 2, reservation(&key, OWNER, 1000)), JoinStatus::BadSlot);
    let st = |s| Frame::Joined { route: r, status: s };
    use JoinStatus::{BadAuth, BadSlot, Unavailable, UnknownRoute};
    assert_eq!(
        a.frames(),
        [st(BadAuth), st(BadAuth), st(BadAuth), st(BadAuth), st(UnknownRoute), st(Unavailable), st(BadSlot)]
    );
    let s = relay.stats();
    assert_eq!((s.joins_for(BadAuth), s.joins_for(UnknownRoute), s.joins_for(JoinStatus::Ok), s.routes), (4, 1, 0, 0));
    assert_eq!(a.join(&relay, &key, r, 1), JoinStatus::Ok);
}

#[test]
fn a_second_valid_join_displaces_and_tells_the_first() {
    let relay = Relay::new(Limits::default());
    let (key, r) = (RouteKey::generate(), RouteId([2; 16]));
    let (mut a, mut b, mut b2) = (peer(&relay), peer(&relay), peer(&relay));
    a.join(&relay, &key, r, 0);
    b.join(&relay, &key, r, 1);
    a.frames();
    b.frames();
    assert_eq!(b2.join(&relay, &key, r, 1), JoinStatus::Ok, "a reconnecting member");
    assert_eq!(b.frames(), [Frame::Displaced { route: r, slot: 1 }]);
    assert_eq!(b2.frames(), [Frame::Joined { route: r, status: JoinStatus::Ok }, Frame::Peer { route: r, up: true }]);
    assert_eq!(a.frames(), [Frame::Peer { route: r, up: true }], "the other member resends");
    send(&relay, &b, r, b"stale");
    send(&relay, &b2, r, b"fresh");
    assert_eq!(a.frames(), [data(r, b"fresh")]);
    assert_eq!(relay.stats().displaced, 1);
    // The same connection joining again displaces nobody.
    assert_eq!(b2.join(&relay, &key, r, 1), JoinStatus::Ok);
    assert_eq!(relay.stats().displaced, 1);
    // The displaced connection's end does not empty the slot it lost.
    relay.leave(&r, b.m.conn);
    send(&relay, &a, r, b"still there");
    assert_eq!(b2.frames().last(), Some(&data(r, b"still there")));
}

#[test]
fn held_frames_are_capped_per_client_and_in_total_and_freed_at_expiry() {
    let relay = Relay::new(Limits {
        held_bytes_per_route: 4 * held_cost(1000),
        held_bytes_per_client: 6 * held_cost(1000),
        held_bytes_total: 10 * held_cost(1000),
        ..Limits::default()
    });
    let key = RouteKey::generate();
    let payload = [9u8; 1000 - 17];
    let fill = |owner: &str, route: RouteId, n: usize| {
        let p = peer(&relay);
        assert_eq!(p.join_as(&relay, &key, route, 0, owner, &key.slot_secret(0)), JoinStatus::Ok);
        for _ in 0..n {
            send(&relay, &p, route, &payload);
        }
        p
    };
    let _a1 = fill("did:ex:a", RouteId([1; 16]), 5); // 4 held, 1 over the route's bound
    let _a2 = fill("did:ex:a", RouteId([2; 16]), 5); // 2 held, 3 over the client's bound
    let _b1 = fill("did:ex:b", RouteId([3; 16]), 5); // 4 held, 1 over the route's bound
    let _c1 = fill("did:ex:c", RouteId([4; 16]), 3); // none held: the total is reached
    let s = relay.stats();
    assert_eq!(s.held_bytes as usize, 10 * held_cost(1000));
    assert_eq!(
        (
            s.dropped_for(DropReason::HeldRoute),
            s.dropped_for(DropReason::HeldClient),
            s.dropped_for(DropReason::HeldBudget)
        ),
        (2, 3, 3)
    );
    assert_eq!(relay.sweep(999), 0, "nothing expired yet");
    assert_eq!(relay.sweep(1000), 4);
    let s = relay.stats();
    assert_eq!((s.held_bytes, s.dropped_for(DropReason::Expired)), (0, 10));
    assert!(lock(&relay.state).owners.is_empty(), "no per-client entry outlives its bytes");
    // Members still joined keep their routes; nothing more is held on an expired one.
    send(&relay, &_a1, RouteId([1; 16]), b"x");
    assert_eq!(relay.stats().dropped_for(DropReason::Expired), 11);
    relay.leave(&RouteId([1; 16]), _a1.m.conn);
    assert_eq!(relay.stats().routes, 3);
    // A renewed reservation holds again.
    relay.renew(&RouteId([2; 16]), 5000);
    send(&relay, &_a2, RouteId([2; 16]), b"y");
    assert_eq!(relay.stats().held_bytes as usize, held_cost(18));
}

#[test]
fn a_route_reserved_again_by_another_client_starts_afresh() {
    let relay = Relay::new(Limits::default());
    let (k1, k2, r) = (RouteKey::generate(), RouteKey::generate(), RouteId([5; 16]));
    let a = peer(&relay);
    a.join_as(&relay, &k1, r, 0, "did:ex:old", &k1.slot_secret(0));
    send(&relay, &a, r, b"old");
    let b = peer(&relay);
    assert_eq!(b.join_as(&relay, &k2, r, 0, "did:ex:new", &k2.slot_secret(0)), JoinStatus::Ok);
    let s = relay.stats();
    assert_eq!((s.held_bytes, s.dropped_for(DropReason::Expired)), (0, 1));
}

async fn connect(relay: &'static Relay, key: RouteKey) -> (MemSocket, tokio::task::JoinHandle<Exit>) {
    connect_with(relay, key, 64).await
}

/// A connection whose socket holds `capacity` frames each way.
async fn connect_with(
    relay: &'static Relay,
    key: RouteKey,
    capacity: usize,
) -> (MemSocket, tokio::task::JoinHandle<Exit>) {
    let (mut server, client) = pair(capacity);
    struct One(RouteKey);
    impl Reservations for One {
        async fn reservation(&self, _: RouteId) -> Result<Option<Reservation>> {
            Ok(Some(Reservation { owner: OWNER.into(), key: self.0.clone(), expires_at: u64::MAX }))
        }
    }
    let task = tokio::spawn(async move { relay.serve(&mut server, &One(key), std::future::pending()).await });
    (client, task)
}

async fn next(s: &mut MemSocket) -> Frame {
    Frame::decode(&s.next().await.unwrap().unwrap()).unwrap()
}

async fn challenged_join(s: &mut MemSocket, key: &RouteKey, route: RouteId, slot: u8) {
    let Frame::Challenge { nonce } = next(s).await else { panic!("the relay speaks first") };
    let mac = key.slot_secret(slot).join_mac(&nonce, &route, slot);
    s.send(Frame::Join { route, slot, mac }.encode()).await.unwrap();
    assert_eq!(next(s).await, Frame::Joined { route, status: JoinStatus::Ok });
}

fn leak(limits: Limits) -> &'static Relay {
    Box::leak(Box::new(Relay::new(limits)))
}

#[tokio::test]
async fn serve_challenges_joins_forwards_and_refuses_text() {
    let relay = leak(Limits::default());
    let (key, r) = (RouteKey::generate(), RouteId([8; 16]));
    let (mut a, ta) = connect(relay, key.clone()).await;
    let (mut b, _tb) = connect(relay, key.clone()).await;
    challenged_join(&mut a, &key, r, 0).await;
    assert_eq!(next(&mut a).await, Frame::Peer { route: r, up: false });
    challenged_join(&mut b, &key, r, 1).await;
    assert_eq!(next(&mut b).await, Frame::Peer { route: r, up: true });
    assert_eq!(next(&mut a).await, Frame::Peer { route: r, up: true });
    a.send(data_frame(&r, b"ping")).await.unwrap();
    assert_eq!(next(&mut b).await, data(r, b"ping"));
    a.send(Bytes::from_static(&[0x81; 18])).await.unwrap();
    assert_eq!(next(&mut a).await, Frame::Joined { route: RouteId::default(), status: JoinStatus::Malformed });
    a.send_text().await;
    assert_eq!(ta.await.unwrap(), Exit::Disconnected(Disconnect::NotBinary));
    assert_eq!(Exit::Disconnected(Disconnect::NotBinary).close_frame().map(|c| c.0), Some(1003));
    assert_eq!(next(&mut b).await, Frame::Peer { route: r, up: false }, "a's end empties its slot");
    let s = relay.stats();
    assert_eq!((s.connections, s.dropped_for(DropReason::Malformed)), (1, 1));
    assert_eq!(s.disconnects_for(Disconnect::NotBinary), 1);
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_stalls_is_cut_and_its_queue_freed() {
    let relay = leak(Limits { queue_bytes_per_conn: 256 * 1024, ..Limits::default() });
    let (key, r) = (RouteKey::generate(), RouteId([9; 16]));
    let (mut a, _ta) = connect(relay, key.clone()).await;
    let (mut b, tb) = connect_with(relay, key.clone(), 8).await;
    challenged_join(&mut a, &key, r, 0).await;
    challenged_join(&mut b, &key, r, 1).await;
    // b reads nothing more; a floods. b's socket holds 8 frames, its queue 256 KiB.
    let payload = vec![1u8; 16 * 1024];
    let flood = tokio::spawn(async move {
        for _ in 0..200 {
            if a.send(data_frame(&r, &payload)).await.is_err() {
                break;
            }
        }
        a
    });
    assert_eq!(tb.await.unwrap(), Exit::Disconnected(Disconnect::Stalled));
    let _a = flood.await.unwrap();

    let s = relay.stats();
    assert!(s.dropped_for(DropReason::Congested) > 0, "{s:?}");
    assert_eq!(s.queued_bytes as usize, relay.queued_total.load(Acquire));
    assert!(s.queued_bytes < 1024, "the cut connection's queue is freed: {s:?}");
    assert_eq!(s.disconnects_for(Disconnect::Stalled), 1);
    drop(b);
}

/// The stall time counts from when frames start waiting, not from the last write: a
/// connection whose socket filled long ago, then idle, is not cut the moment new frames
/// arrive for it, and reading them a little late is fine.
#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_not_stalled_by_a_late_read() {
    let relay = leak(Limits::default());
    let (key, r) = (RouteKey::generate(), RouteId([10; 16]));
    let (mut a, ta) = connect_with(relay, key.clone(), 2).await;
    let (mut b, _tb) = connect(relay, key.clone()).await;
    challenged_join(&mut a, &key, r, 0).await;
    challenged_join(&mut b, &key, r, 1).await;
    while next(&mut a).await != (Frame::Peer { route: r, up: true }) {}
    // a's socket fills up (2 frames) and everything is quiet for a long time.
    for i in 0..2u8 {
        b.send(data_frame(&r, &[i])).await.unwrap();
    }
    tokio::time::sleep(relay.limits.stall * 3).await;
    for i in 2..12u8 {
        b.send(data_frame(&r, &[i])).await.unwrap();
    }
    tokio::time::sleep(relay.limits.stall / 2).await;
    for i in 0..12u8 {
        assert_eq!(next(&mut a).await, data(r, &[i]));
    }
    assert!(!ta.is_finished());
    assert_eq!(relay.stats().disconnects_for(Disconnect::Stalled), 0);
}

/// Frames that arrive for a connection whose socket filled up earlier wake its pump, so the
/// stall time runs even though the socket never becomes writable again.
#[tokio::test(start_paused = true)]
async fn a_reader_whose_socket_filled_earlier_is_cut_once_frames_wait() {
    let relay = leak(Limits::default());
    let (key, r) = (RouteKey::generate(), RouteId([11; 16]));
    let (mut a, ta) = connect_with(relay, key.clone(), 2).await;
    let (mut b, _tb) = connect(relay, key.clone()).await;
    challenged_join(&mut a, &key, r, 0).await;
    challenged_join(&mut b, &key, r, 1).await;
    while next(&mut a).await != (Frame::Peer { route: r, up: true }) {}
    for i in 0..2u8 {
        b.send(data_frame(&r, &[i])).await.unwrap();
    }
    tokio::time::sleep(relay.limits.stall * 3).await;
    b.send(data_frame(&r, b"waits")).await.unwrap();
    let exit = tokio::time::timeout(relay.limits.stall * 2, ta).await.expect("cut within the stall time");
    assert_eq!(exit.unwrap(), Exit::Disconnected(Disconnect::Stalled));
}

#[tokio::test]
async fn too_many_refused_joins_cut_the_connection() {
    let relay = leak(Limits { max_refused_joins: 3, ..Limits::default() });
    let (mut a, ta) = connect(relay, RouteKey::generate()).await;
    let Frame::Challenge { .. } = next(&mut a).await else { panic!() };
    for _ in 0..3 {
        a.send(Frame::Join { route: RouteId([1; 16]), slot: 0, mac: [0; 32] }.encode()).await.unwrap();
    }
    assert_eq!(ta.await.unwrap(), Exit::Disconnected(Disconnect::TooManyRefusals));
    assert_eq!(relay.stats().joins_for(JoinStatus::BadAuth), 3);
}

#[tokio::test]
async fn a_client_that_only_sends_is_cut_when_its_answers_overflow() {
    let relay = leak(Limits { queue_bytes_per_conn: 1024, ..Limits::default() });
    let (mut a, ta) = connect_with(relay, RouteKey::generate(), 4).await;
    // Every undecodable frame earns a JOINED(malformed) answer that a never reads.
    let spam = tokio::spawn(async move { while a.send(Bytes::from_static(&[0x7f])).await.is_ok() {} });
    assert_eq!(ta.await.unwrap(), Exit::Disconnected(Disconnect::Overflow));
    spam.abort();
    let s = relay.stats();
    assert_eq!(s.disconnects_for(Disconnect::Overflow), 1);
    assert!(s.dropped_for(DropReason::Malformed) as usize > (1024 + CONTROL_SLACK) / (18 + FRAME_OVERHEAD));
    assert_eq!(s.queued_bytes, 0);
}

/// Two instances joined by a link over an in-memory socket; the mediator's part (the route
/// directory) is played by the test: it sends the ATTACH a join on one side calls for.
struct Mesh {
    a: &'static Relay,
    b: &'static Relay,
    /// a's handle on the link (to attach routes through).
    ha: LinkHandle,
    /// b's handle on the link.
    hb: LinkHandle,
    ta: tokio::task::JoinHandle<Exit>,
}

struct Fixed(RouteKey);
impl Reservations for Fixed {
    async fn reservation(&self, _: RouteId) -> Result<Option<Reservation>> {
        Ok(Some(Reservation { owner: OWNER.into(), key: self.0.clone(), expires_at: 1000 }))
    }
}

fn mesh(key: &RouteKey) -> Mesh {
    let (a, b) = (leak(Limits::default()), leak(Limits::default()));
    let (mut sa, mut sb) = pair(64);
    let ((ha, ca), (hb, cb)) = (a.new_link("b"), b.new_link("a"));
    let (k1, k2) = (key.clone(), key.clone());
    let ta = tokio::spawn(async move { a.serve_link(ca, &mut sa, &Fixed(k1), std::future::pending()).await });
    tokio::spawn(async move { b.serve_link(cb, &mut sb, &Fixed(k2), std::future::pending()).await });
    Mesh { a, b, ha, hb, ta }
}

/// Polls `p` until it has `n` frames (the link runs in other tasks).
async fn frames_of(p: &mut Peer, n: usize) -> Vec<Frame> {
    let mut got = Vec::new();
    for _ in 0..500 {
        got.extend(p.frames());
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("expected {n} frames, got {got:?}");
}

#[tokio::test]
async fn members_on_two_instances_meet_over_a_link() {
    let (key, r) = (RouteKey::generate(), RouteId([12; 16]));
    let m = mesh(&key);
    let (mut p0, mut p1) = (peer(m.a), peer(m.b));
    assert_eq!(p0.join(m.a, &key, r, 0), JoinStatus::Ok);
    assert_eq!(p0.frames(), [Frame::Joined { route: r, status: JoinStatus::Ok }, Frame::Peer { route: r, up: false }]);
    send(m.a, &p0, r, b"early"); // held on a: nobody holds slot 1 yet
    assert_eq!(p1.join(m.b, &key, r, 1), JoinStatus::Ok);
    assert_eq!(p1.frames(), [Frame::Joined { route: r, status: JoinStatus::Ok }, Frame::Peer { route: r, up: false }]);
    // b's directory says slot 0 is on a: b attaches slot 1 over the link.
    m.hb.attach(r, 1);
    assert_eq!(frames_of(&mut p0, 1).await, [Frame::Peer { route: r, up: true }]);
    // a answered with its own slot, then sent the held frame over: p1 sees both.
    assert_eq!(frames_of(&mut p1, 2).await, [Frame::Peer { route: r, up: true }, data(r, b"early")]);
    send(m.a, &p0, r, b"to b");
    send(m.b, &p1, r, b"to a");
    assert_eq!(frames_of(&mut p1, 1).await, [data(r, b"to b")]);
    assert_eq!(frames_of(&mut p0, 1).await, [data(r, b"to a")]);
    assert_eq!((m.a.stats().links, m.b.stats().links), (1, 1));
    // p1 leaves: a hears DETACH and tells p0.
    assert_eq!(m.b.leave(&r, p1.m.conn), Some(1));
    assert_eq!(frames_of(&mut p0, 1).await, [Frame::Peer { route: r, up: false }]);
    send(m.a, &p0, r, b"held again");
    assert_eq!(m.a.stats().held_bytes, held_cost(10 + 17) as u64);
    // p1 comes back on a (it reconnected through the load balancer): local again, and the
    // frame held for it is there; the link's slot is simply replaced, nobody displaced.
    let mut p1a = peer(m.a);
    assert_eq!(p1a.join(m.a, &key, r, 1), JoinStatus::Ok);
    assert_eq!(
        p1a.frames(),
        [
            Frame::Joined { route: r, status: JoinStatus::Ok },
            data(r, b"held again"),
            Frame::Peer { route: r, up: true }
        ]
    );
    assert_eq!(m.a.stats().displaced, 0);
    drop(m.ta);
    let _ = m.ha.peer();
}

#[tokio::test]
async fn a_member_that_moves_to_another_instance_displaces_its_old_self_and_frames_follow() {
    let (key, r) = (RouteKey::generate(), RouteId([13; 16]));
    let m = mesh(&key);
    let (mut p0, mut old1) = (peer(m.a), peer(m.a));
    p0.join(m.a, &key, r, 0);
    old1.join(m.a, &key, r, 1);
    let _ = (p0.frames(), old1.frames());
    // slot 1's member reconnects to b (its connection to a is half dead): b attaches it.
    let mut new1 = peer(m.b);
    assert_eq!(new1.join(m.b, &key, r, 1), JoinStatus::Ok);
    m.hb.attach(r, 1);
    assert_eq!(frames_of(&mut old1, 1).await, [Frame::Displaced { route: r, slot: 1 }]);
    assert_eq!(frames_of(&mut new1, 3).await[2], Frame::Peer { route: r, up: true }, "a answered with slot 0");
    send(m.a, &p0, r, b"follows");
    assert_eq!(frames_of(&mut new1, 1).await, [data(r, b"follows")]);
    // frames from the old connection go nowhere
    send(m.a, &old1, r, b"stale");
    assert!(p0.frames().iter().all(|f| *f != data(r, b"stale")));
    // A link frame is never passed on over another link (one hop only).
    let (hc, _cc) = m.a.new_link("c");
    let _ = hc;
    assert_eq!(m.a.stats().dropped_for(DropReason::NotMember), 1);
}

#[tokio::test]
async fn a_link_that_ends_empties_the_slots_it_held() {
    let (key, r) = (RouteKey::generate(), RouteId([14; 16]));
    let m = mesh(&key);
    let (mut p0, mut p1) = (peer(m.a), peer(m.b));
    p0.join(m.a, &key, r, 0);
    p1.join(m.b, &key, r, 1);
    m.hb.attach(r, 1);
    frames_of(&mut p0, 3).await;
    frames_of(&mut p1, 3).await;
    m.ta.abort(); // a's side of the link goes (the instance died)
    assert_eq!(frames_of(&mut p1, 1).await, [Frame::Peer { route: r, up: false }], "b's client hears of it");
    send(m.b, &p1, r, b"waits");
    assert_eq!(m.b.stats().held_bytes, held_cost(5 + 17) as u64, "held for whoever takes slot 0 next");
    assert!(m.ha.is_closed());
}

#[tokio::test]
async fn link_junk_is_counted_and_data_for_unknown_routes_dropped() {
    let key = RouteKey::generate();
    let relay = leak(Limits::default());
    let (mut far, mut near) = pair(8);
    let (_h, c) = relay.new_link("x");
    let task = tokio::spawn(async move { relay.serve_link(c, &mut near, &Fixed(key), std::future::pending()).await });
    far.send(Bytes::from_static(&[0x91, 1, 2])).await.unwrap();
    far.send(data_frame(&RouteId([1; 16]), b"nobody")).await.unwrap();
    far.send(crate::mesh::LinkFrame::Detach { route: RouteId([1; 16]), slot: 0 }.encode()).await.unwrap();
    far.send(crate::mesh::LinkFrame::Attach { route: RouteId([2; 16]), slot: 0, reply: true }.encode()).await.unwrap();
    let counted = |s: &Stats| (s.dropped_for(DropReason::Malformed), s.dropped_for(DropReason::NotMember));
    for _ in 0..500 {
        if counted(&relay.stats()) == (1, 1) && relay.stats().routes == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(counted(&relay.stats()), (1, 1));
    assert_eq!((relay.stats().links, relay.stats().routes), (1, 1), "the ATTACH made a route with the link in it");
    drop(far);
    assert_eq!(task.await.unwrap(), Exit::Closed);
    assert_eq!((relay.stats().links, relay.stats().routes), (0, 0), "and its end forgets it");
}
