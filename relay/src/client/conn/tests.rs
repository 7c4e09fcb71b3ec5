use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use super::*;
use crate::auth::RouteKey;

struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn route_entry(slot: u8) -> (Route, mpsc::Receiver<LinkEvent>) {
    let (tx, rx) = mpsc::channel(16);
    (Route { slot, secret: RouteKey::generate().slot_secret(slot), tx, displaced: 0, last_displaced: None }, rx)
}

fn conn_with(n: usize) -> (Conn, Vec<mpsc::Sender<Bytes>>) {
    let (_, cmds) = mpsc::channel(1);
    let mut conn = Conn::new("ws://test".into(), cmds);
    let mut txs = Vec::new();
    for r in 0..n {
        let (tx, out) = mpsc::channel(8);
        conn.routes.insert(RouteId([r as u8; 16]), route_entry(0).0);
        conn.outs.push((RouteId([r as u8; 16]), out));
        txs.push(tx);
    }
    (conn, txs)
}

/// Whatever the round-robin position and whichever sessions ended, a `None` from
/// `poll_packet` leaves every open queue polled: a packet queued afterwards wakes the
/// task, and the packets already queued all come out, each once, on their own route.
#[test]
fn poll_packet_polls_every_open_queue_and_forgets_ended_ones() {
    for n in 1..=5usize {
        for next_out in 0..=n {
            for ended in 0..(1u32 << n) {
                let (mut conn, txs) = conn_with(n);
                conn.next_out = next_out;
                let mut open = Vec::new();
                for (r, tx) in txs.into_iter().enumerate() {
                    if ended & (1 << r) == 0 {
                        tx.try_send(Bytes::from(vec![r as u8])).unwrap();
                        open.push((r, tx));
                    }
                }
                let count = Arc::new(Count(AtomicUsize::new(0)));
                let waker = Waker::from(count.clone());
                let mut cx = Context::from_waker(&waker);
                let mut got = Vec::new();
                while let Some(f) = conn.poll_packet(&mut cx) {
                    let Frame::Data { route, payload } = Frame::decode(&f).unwrap() else { panic!("DATA") };
                    assert_eq!(payload[..], [route.0[0]], "payload on its own route");
                    got.push(route.0[0] as usize);
                }
                got.sort_unstable();
                let want: Vec<usize> = open.iter().map(|(r, _)| *r).collect();
                assert_eq!(got, want, "n={n} next_out={next_out} ended={ended:b}");
                assert_eq!(conn.outs.len(), open.len());
                assert_eq!(conn.routes.len(), open.len());
                for (k, (_, tx)) in open.iter().enumerate() {
                    tx.try_send(Bytes::from_static(b"x")).unwrap();
                    assert_eq!(count.0.load(Ordering::SeqCst), k + 1, "n={n} next_out={next_out} ended={ended:b}");
                    assert!(conn.poll_packet(&mut cx).is_some());
                    assert!(conn.poll_packet(&mut cx).is_none());
                }
            }
        }
    }
}

#[test]
fn rejoin_delays_grow_and_are_bounded() {
    let d: Vec<u64> = (0..12).map(|n| rejoin_delay(n).as_millis() as u64).collect();
    assert_eq!(d, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 25600, 25600, 25600]);
}

/// JOINs wait for the challenge and carry a MAC over it; a DISPLACED frame schedules a
/// new JOIN (with a fresh MAC for the same challenge) after the delay, and only for the
/// slot we hold.
#[tokio::test(start_paused = true)]
async fn joins_follow_the_challenge_and_displacement_schedules_a_rejoin() {
    let (cmd_tx, cmds) = mpsc::channel(4);
    let mut conn = Conn::new("ws://test".into(), cmds);
    let key = RouteKey::generate();
    let r = RouteId([4; 16]);
    let (tx, mut events) = mpsc::channel(4);
    let (_out_tx, out) = mpsc::channel(4);
    cmd_tx.try_send(NewRoute { member: Membership::with_key(r, 1, &key), tx, out }).ok().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(conn.poll_start(&mut cx).is_none());
    assert_eq!(conn.poll_outgoing(&mut cx), None, "no JOIN before the challenge");
    let nonce = crate::auth::nonce();
    conn.connected(nonce, true);
    assert!(matches!(events.try_recv(), Ok(LinkEvent::PathReset)), "a reconnection resends");
    let join = Frame::Join { route: r, slot: 1, mac: key.slot_secret(1).join_mac(&nonce, &r, 1) };
    assert_eq!(conn.poll_outgoing(&mut cx).map(|f| Frame::decode(&f).unwrap()), Some(join.clone()));
    assert!(conn.incoming(Frame::Displaced { route: r, slot: 0 }.encode()).is_none());
    assert!(conn.rejoins.is_empty(), "not our slot");
    conn.incoming(Frame::Displaced { route: r, slot: 1 }.encode());
    conn.poll_start(&mut cx);
    assert_eq!(conn.poll_outgoing(&mut cx), None, "not before the delay");
    tokio::time::sleep(rejoin_delay(0)).await;
    conn.poll_start(&mut cx);
    assert_eq!(conn.poll_outgoing(&mut cx).map(|f| Frame::decode(&f).unwrap()), Some(join));
    conn.incoming(Frame::Displaced { route: r, slot: 1 }.encode());
    assert_eq!(conn.rejoins[0].0 - Instant::now(), rejoin_delay(1), "backs off");
    conn.disconnected();
    assert!(conn.rejoins.is_empty() && conn.poll_outgoing(&mut cx).is_none());
}

#[cfg(feature = "server")]
mod with_the_server {
    use super::*;
    use crate::client::{Connect, RelayClient};
    use crate::pump::testing::{pair, MemSocket};
    use crate::server::{Relay, Reservation, Reservations};

    #[derive(Clone)]
    struct Mem(&'static Relay, RouteKey);

    struct One(RouteKey);
    impl Reservations for One {
        async fn reservation(&self, _: RouteId) -> crate::Result<Option<Reservation>> {
            Ok(Some(Reservation { owner: "did:ex:o".into(), key: self.0.clone(), expires_at: u64::MAX }))
        }
    }

    impl Connect for Mem {
        type Socket = MemSocket;
        async fn connect(&self, _: &str) -> crate::Result<MemSocket> {
            let (mut server, client) = pair(64);
            let (relay, key) = (self.0, self.1.clone());
            tokio::spawn(async move { relay.serve(&mut server, &One(key), std::future::pending()).await });
            Ok(client)
        }
    }

    async fn until(mut f: impl FnMut() -> bool) {
        for _ in 0..10_000 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition never held");
    }

    async fn packet(l: &mut session::Link) -> Bytes {
        loop {
            match l.rx.recv().await.unwrap() {
                LinkEvent::Packet(p) => return p,
                LinkEvent::PathReset => {}
            }
        }
    }

    /// Two members exchange packets; a third connection with slot 1's secret takes the
    /// slot (the member is told); once it is gone, the displaced member is back in its
    /// slot by itself and packets flow again.
    #[tokio::test(start_paused = true)]
    async fn a_displaced_member_rejoins_by_itself() {
        let relay: &'static Relay = Box::leak(Box::new(Relay::new(Default::default())));
        let key = RouteKey::generate();
        let r = RouteId([6; 16]);
        let client = |k: &RouteKey| RelayClient::new(Mem(relay, k.clone()));
        let (ca, cb, cc) = (client(&key), client(&key), client(&key));
        let mut a = ca.link("mem://relay", Membership::with_key(r, 0, &key)).unwrap();
        let mut b = cb.link("mem://relay", Membership::with_key(r, 1, &key)).unwrap();
        a.tx.send(Bytes::from_static(b"one")).await.unwrap();
        assert_eq!(packet(&mut b).await, "one");
        let c = cc.link("mem://relay", Membership::with_key(r, 1, &key)).unwrap();
        until(|| relay.stats().displaced >= 1).await;
        drop((c, cc));
        until(|| relay.stats().joins_for(crate::JoinStatus::Ok) >= 4).await;
        a.tx.send(Bytes::from_static(b"two")).await.unwrap();
        assert_eq!(packet(&mut b).await, "two");
        b.tx.send(Bytes::from_static(b"three")).await.unwrap();
        assert_eq!(packet(&mut a).await, "three");
    }
}
