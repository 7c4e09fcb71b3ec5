//! What every [`Store`] must do, as tests both stores run: `open` gives a handle on the same
//! durable state (SQLite: the same file reopened; Redis: the same keys, as another instance
//! or a restarted one would see them).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::*;

/// Opens the store under test (again).
pub(crate) trait Opener: Sync {
    /// A handle on the same state as every other handle this opener gave.
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
    /// Whether several handles may be open at once (instances of a cluster); otherwise a
    /// handle is dropped before the next is opened (a restart).
    fn concurrent(&self) -> bool {
        false
    }
}

fn msg(recipient: &str, body: &[u8], expires_at: u64) -> NewMessage {
    NewMessage { recipient: recipient.into(), body: body.to_vec(), received_at: 100, expires_at, source: String::new() }
}

fn from(source: &str, recipient: &str, body: &[u8]) -> NewMessage {
    NewMessage { source: source.into(), ..msg(recipient, body, 10_000) }
}

fn link(client: &str, id: &str, expires_at: u64) -> NewLink {
    NewLink { client: client.into(), id: id.into(), invitation: "{\"x\":1}".into(), now: 100, expires_at }
}

const LIMITS: QueueLimits = QueueLimits::per_recipient(3, 1000);

fn bodies(q: &[Queued]) -> Vec<&[u8]> {
    q.iter().map(|q| q.body.as_slice()).collect()
}

/// Queue, fetch in order across recipients, byte bounds, expiry, acknowledgement by the owner
/// only, and all of it seen by a second handle.
pub(crate) async fn queue_lifecycle(o: &dyn Opener) {
    let s = o.open().await;
    assert_eq!(s.enqueue(msg("did:ex:r", b"x", 1000), LIMITS).await.unwrap(), Err(Refused::UnknownRecipient));
    s.grant("did:ex:c", 1).await.unwrap();
    assert!(s.is_granted("did:ex:c").await.unwrap());
    assert!(!s.is_granted("did:ex:other").await.unwrap());
    assert_eq!(s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap(), UpdateResult::Success);
    assert_eq!(s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap(), UpdateResult::NoChange);
    assert_eq!(s.update_recipient("did:ex:other", "did:ex:r", true, 10).await.unwrap(), UpdateResult::ClientError);
    assert_eq!(s.update_recipient("did:ex:c", "did:ex:r2", true, 10).await.unwrap(), UpdateResult::Success);
    assert_eq!(s.recipients("did:ex:c", 0, 10).await.unwrap(), (vec!["did:ex:r".into(), "did:ex:r2".into()], 2));
    assert_eq!(s.recipients("did:ex:c", 1, 10).await.unwrap(), (vec!["did:ex:r2".into()], 2));
    let a = s.enqueue(msg("did:ex:r", b"first", 1000), LIMITS).await.unwrap().unwrap();
    assert_eq!(a.client, "did:ex:c");
    let b = s.enqueue(msg("did:ex:r2", b"second", 1000), LIMITS).await.unwrap().unwrap();
    s.enqueue(msg("did:ex:r", b"third", 150), LIMITS).await.unwrap().unwrap();
    s.enqueue(msg("did:ex:r", b"fourth", 1000), LIMITS).await.unwrap().unwrap();
    assert_eq!(s.enqueue(msg("did:ex:r", b"fifth", 1000), LIMITS).await.unwrap(), Err(Refused::QueueFullMessages));
    // oldest first across both recipients; one recipient only; expired ones never
    let all = s.fetch("did:ex:c", None, 10, usize::MAX, 120).await.unwrap();
    assert_eq!(bodies(&all), [&b"first"[..], b"second", b"third", b"fourth"]);
    assert_eq!(all[1].recipient, "did:ex:r2");
    let r = s.fetch("did:ex:c", Some("did:ex:r"), 10, usize::MAX, 120).await.unwrap();
    assert_eq!(bodies(&r), [&b"first"[..], b"third", b"fourth"]);
    assert_eq!(bodies(&s.fetch("did:ex:c", None, 2, usize::MAX, 120).await.unwrap()), [&b"first"[..], b"second"]);
    assert_eq!(bodies(&s.fetch("did:ex:c", None, 10, usize::MAX, 200).await.unwrap()).len(), 3, "third expired");
    // a byte bound stops before the message that would pass it, but always yields one
    assert_eq!(s.fetch("did:ex:c", None, 10, 11, 120).await.unwrap().len(), 2);
    assert_eq!(s.fetch("did:ex:c", None, 10, 1, 120).await.unwrap().len(), 1);
    // one message by id, as a notification names it
    let (owner, got) = s.get(&b.id, 120).await.unwrap().expect("queued");
    assert_eq!(
        (owner.as_str(), got.recipient.as_str(), got.body.as_slice()),
        ("did:ex:c", "did:ex:r2", &b"second"[..])
    );
    assert!(s.get("no-such-id", 120).await.unwrap().is_none());
    assert!(s.get(&a.id, 5000).await.unwrap().is_none(), "expired");
    // another client cannot ack or read them
    assert_eq!(s.ack("did:ex:other", std::slice::from_ref(&a.id)).await.unwrap(), 0);
    assert!(s.fetch("did:ex:other", None, 10, usize::MAX, 120).await.unwrap().is_empty());
    assert_eq!(s.ack("did:ex:c", &[a.id.clone(), "nope".into(), a.id.clone()]).await.unwrap(), 1);
    assert!(s.get(&a.id, 120).await.unwrap().is_none(), "acknowledged");
    let st = s.status("did:ex:c", None, 200).await.unwrap();
    assert_eq!((st.message_count, st.total_bytes), (2, 12), "second and fourth; third expired at 150");
    assert_eq!((st.oldest_received_time, st.newest_received_time), (Some(100), Some(100)));
    let st = s.status("did:ex:c", Some("did:ex:r2"), 200).await.unwrap();
    assert_eq!((st.message_count, st.total_bytes), (1, 6));
    drop(s);

    // another handle sees the same queue and counters
    let s = o.open().await;
    let got = s.fetch("did:ex:c", None, 10, usize::MAX, 200).await.unwrap();
    assert_eq!(got.iter().map(|q| q.id.as_str()).collect::<Vec<_>>()[0], b.id);
    assert_eq!(bodies(&got), [&b"second"[..], b"fourth"]);
    s.purge_expired(200).await.unwrap();
    s.enqueue(msg("did:ex:r", b"again", 1000), LIMITS).await.unwrap().unwrap();
    s.enqueue(msg("did:ex:r", b"more", 1000), LIMITS).await.unwrap().unwrap();
    assert_eq!(s.enqueue(msg("did:ex:r", b"full", 1000), LIMITS).await.unwrap(), Err(Refused::QueueFullMessages));
    s.grant("did:ex:c2", 1).await.unwrap();
    s.update_recipient("did:ex:c2", "did:ex:r3", true, 10).await.unwrap();
    assert_eq!(s.enqueue(msg("did:ex:r3", &[0u8; 2000], 1000), LIMITS).await.unwrap(), Err(Refused::QueueFullBytes));
    // a removed recipient's messages stay the client's until picked up; a new owner starts empty
    let before = s.fetch("did:ex:c", None, 10, usize::MAX, 200).await.unwrap().len();
    assert_eq!(s.update_recipient("did:ex:c", "did:ex:r2", false, 10).await.unwrap(), UpdateResult::Success);
    assert_eq!(s.fetch("did:ex:c", None, 10, usize::MAX, 200).await.unwrap().len(), before);
    assert_eq!(s.update_recipient("did:ex:c2", "did:ex:r2", true, 10).await.unwrap(), UpdateResult::Success);
    assert!(s.fetch("did:ex:c2", None, 10, usize::MAX, 200).await.unwrap().is_empty());
}

/// Rotation moves the grant, the recipient DIDs and the queue.
pub(crate) async fn rotation(o: &dyn Opener) {
    let s = o.open().await;
    s.grant("did:ex:old", 1).await.unwrap();
    s.update_recipient("did:ex:old", "did:ex:r", true, 10).await.unwrap();
    let m = s.enqueue(msg("did:ex:r", b"hello", 1000), LIMITS).await.unwrap().unwrap();
    assert!(s.rotate_client("did:ex:old", "did:ex:new").await.unwrap());
    assert!(!s.is_granted("did:ex:old").await.unwrap());
    assert!(s.is_granted("did:ex:new").await.unwrap());
    assert_eq!(s.recipients("did:ex:new", 0, 10).await.unwrap(), (vec!["did:ex:r".to_owned()], 1));
    assert_eq!(s.fetch("did:ex:new", None, 10, usize::MAX, 120).await.unwrap()[0].id, m.id);
    assert_eq!(s.enqueue(msg("did:ex:r", b"next", 1000), LIMITS).await.unwrap().unwrap().client, "did:ex:new");
    assert_eq!(s.ack("did:ex:new", std::slice::from_ref(&m.id)).await.unwrap(), 1);
    assert!(!s.rotate_client("did:ex:nobody", "did:ex:x").await.unwrap());
    s.grant("did:ex:taken", 1).await.unwrap();
    assert!(!s.rotate_client("did:ex:new", "did:ex:taken").await.unwrap(), "the new DID has a grant");
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r3", true, 1).await.unwrap(), UpdateResult::LimitReached);
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r", false, 1).await.unwrap(), UpdateResult::Success);
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r", false, 1).await.unwrap(), UpdateResult::NoChange);
}

/// Concurrent enqueues for one recipient (through several handles, as several instances
/// would) never pass its limit, and every accepted one is there.
pub(crate) async fn concurrent_enqueues_respect_limits(o: &dyn Opener) {
    let s = o.open().await;
    s.grant("did:ex:c", 1).await.unwrap();
    s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap();
    let handles = if o.concurrent() { vec![s.clone(), o.open().await, o.open().await] } else { vec![s.clone()] };
    let limits = QueueLimits::per_recipient(300, 1 << 30);
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let h = handles[i as usize % handles.len()].clone();
        tasks.push(tokio::spawn(async move { h.enqueue(msg("did:ex:r", &i.to_be_bytes(), 1000), limits).await }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Ok(_) => accepted += 1,
            Err(r) => assert_eq!(r, Refused::QueueFullMessages),
        }
    }
    assert_eq!(accepted, 300);
    assert_eq!(s.status("did:ex:c", None, 1).await.unwrap().message_count, 300);
    let got = s.fetch("did:ex:c", None, 1000, usize::MAX, 1).await.unwrap();
    let ids: std::collections::BTreeSet<_> = got.iter().map(|q| q.id.clone()).collect();
    assert_eq!((got.len(), ids.len()), (300, 300), "each once");
}

/// Reservations: lookup, expiry, ownership, renewal, the per-client bound, purge.
pub(crate) async fn route_reservations(o: &dyn Opener) {
    let s = o.open().await;
    let r = [5u8; 16];
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let found = |o: Option<RouteReservation>| o.map(|x| (x.client, x.key.to_vec(), x.expires_at));
    assert!(s.route_reservation(&r, 10).await.unwrap().is_none());
    assert!(s.reserve_route(&r, "did:ex:c", &k1, 100, 2).await.unwrap());
    assert_eq!(found(s.route_reservation(&r, 10).await.unwrap()), Some(("did:ex:c".into(), k1.to_vec(), 100)));
    assert!(s.route_reservation(&r, 100).await.unwrap().is_none(), "expired");
    assert!(!s.reserve_route(&r, "did:ex:other", &k2, 200, 2).await.unwrap(), "owned by another client");
    assert!(s.reserve_route(&r, "did:ex:c", &k2, 300, 2).await.unwrap(), "renewal");
    assert_eq!(found(s.route_reservation(&r, 10).await.unwrap()), Some(("did:ex:c".into(), k2.to_vec(), 300)));
    assert!(s.reserve_route(&[6u8; 16], "did:ex:c", &k1, 300, 2).await.unwrap());
    assert!(!s.reserve_route(&[7u8; 16], "did:ex:c", &k1, 300, 2).await.unwrap(), "per-client limit");
    drop(s);
    let s = o.open().await;
    assert!(s.route_reservation(&r, 200).await.unwrap().is_some(), "durable");
    s.purge_expired(1000).await.unwrap();
    assert!(s.route_reservation(&r, 200).await.unwrap().is_none(), "purged");
    assert!(s.reserve_route(&[7u8; 16], "did:ex:c", &k1, 3000, 2).await.unwrap(), "purged routes do not count");
}

/// Each quota refuses on its own, and the counters follow acknowledgements and purges.
pub(crate) async fn quotas(o: &dyn Opener) {
    let s = o.open().await;
    s.grant("did:ex:c", 1).await.unwrap();
    for r in ["did:ex:r1", "did:ex:r2"] {
        s.update_recipient("did:ex:c", r, true, 10).await.unwrap();
    }
    let l = QueueLimits { max_source_messages: 2, max_source_bytes: 100, ..QueueLimits::per_recipient(100, 10_000) };
    let a = s.enqueue(from("10.0.0.1", "did:ex:r1", b"one"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.1", "did:ex:r1", b"two"), l).await.unwrap().unwrap();
    assert_eq!(s.enqueue(from("10.0.0.1", "did:ex:r1", b"three"), l).await.unwrap(), Err(Refused::SourceBudget));
    s.enqueue(from("10.0.0.2", "did:ex:r1", b"other"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.1", "did:ex:r2", b"elsewhere"), l).await.unwrap().unwrap();
    assert_eq!(s.enqueue(from("10.0.0.3", "did:ex:r1", &[0u8; 101]), l).await.unwrap(), Err(Refused::SourceBudget));
    assert_eq!(s.ack("did:ex:c", std::slice::from_ref(&a.id)).await.unwrap(), 1);
    s.enqueue(from("10.0.0.1", "did:ex:r1", b"again"), l).await.unwrap().unwrap();
    assert_eq!(s.enqueue(from("10.0.0.1", "did:ex:r1", b"x"), l).await.unwrap(), Err(Refused::SourceBudget));
    drop(s);
    let s = o.open().await;
    assert_eq!(s.enqueue(from("10.0.0.1", "did:ex:r1", b"x"), l).await.unwrap(), Err(Refused::SourceBudget));
    // client bytes: r1 + r2 hold 3+5+5+9 = 22 bytes
    let per_client = QueueLimits { max_client_bytes: 24, ..QueueLimits::per_recipient(100, 10_000) };
    s.enqueue(from("10.0.0.9", "did:ex:r2", b"ab"), per_client).await.unwrap().unwrap();
    assert_eq!(
        s.enqueue(from("10.0.0.9", "did:ex:r1", b"c"), per_client).await.unwrap(),
        Err(Refused::ClientQueueBytes)
    );
    let total = QueueLimits { max_total_bytes: 24, ..QueueLimits::per_recipient(100, 10_000) };
    assert_eq!(s.enqueue(from("10.0.0.9", "did:ex:r2", b"c"), total).await.unwrap(), Err(Refused::TotalQueueBytes));
    // expiry frees everything it removes
    assert_eq!(s.purge_expired(20_000).await.unwrap(), 5);
    assert_eq!(s.status("did:ex:c", None, 20_000).await.unwrap(), QueueStatus::default());
    s.enqueue(from("10.0.0.1", "did:ex:r1", b"fresh"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.9", "did:ex:r1", &[0u8; 19]), per_client).await.unwrap().unwrap();
    assert_eq!(s.enqueue(from("10.0.0.8", "did:ex:r1", b"x"), total).await.unwrap(), Err(Refused::TotalQueueBytes));
}

/// Grants expire after their TTL without use; a use refreshes them; expiry removes the
/// recipients and queue, and a forward finds nobody.
pub(crate) async fn grants_expire(o: &dyn Opener) {
    let s = o.open().await;
    let l = QueueLimits { grant_ttl: 100, ..QueueLimits::per_recipient(100, 10_000) };
    assert_eq!(s.touch_grant("did:ex:c", 10, 100).await.unwrap(), GrantState::None);
    s.grant("did:ex:c", 1000).await.unwrap();
    s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap();
    let mut m = msg("did:ex:r", b"queued", 5000);
    m.received_at = 1050;
    s.enqueue(m, l).await.unwrap().unwrap();
    assert_eq!(s.touch_grant("did:ex:c", 1090, 100).await.unwrap(), GrantState::Active);
    assert_eq!(s.touch_grant("did:ex:c", 1180, 100).await.unwrap(), GrantState::Active, "refreshed at 1090");
    drop(s);
    let s = o.open().await;
    assert_eq!(s.expire_grants(1250, 100).await.unwrap(), 0);
    assert_eq!(s.touch_grant("did:ex:c", 1280, 100).await.unwrap(), GrantState::Expired);
    assert!(!s.is_granted("did:ex:c").await.unwrap());
    assert_eq!(s.recipients("did:ex:c", 0, 10).await.unwrap(), (vec![], 0));
    assert!(s.fetch("did:ex:c", None, 10, usize::MAX, 1280).await.unwrap().is_empty());
    let mut m = msg("did:ex:r", b"late", 5000);
    m.received_at = 1281;
    assert_eq!(s.enqueue(m, l).await.unwrap(), Err(Refused::UnknownRecipient));
    assert_eq!(s.touch_grant("did:ex:c", 1281, 100).await.unwrap(), GrantState::None);
    // the store's byte count gave the expired queue back
    let tight = QueueLimits { max_total_bytes: 6, ..l };
    s.grant("did:ex:f", 1281).await.unwrap();
    s.update_recipient("did:ex:f", "did:ex:rf", true, 10).await.unwrap();
    let mut m = msg("did:ex:rf", b"sixby", 5000);
    m.received_at = 1282;
    s.enqueue(m, tight).await.unwrap().unwrap();
    // a forward for an expired client removes it too; the periodic sweep finds the rest
    s.grant("did:ex:d", 2000).await.unwrap();
    s.update_recipient("did:ex:d", "did:ex:rd", true, 10).await.unwrap();
    s.grant("did:ex:e", 2000).await.unwrap();
    let mut m = msg("did:ex:rd", b"late", 5000);
    m.received_at = 2100;
    assert_eq!(s.enqueue(m, l).await.unwrap(), Err(Refused::UnknownRecipient));
    assert!(!s.is_granted("did:ex:d").await.unwrap());
    assert_eq!(s.expire_grants(2100, 0).await.unwrap(), 0, "ttl 0: grants never expire");
    assert_eq!(s.expire_grants(2100, 100).await.unwrap(), 2, "e, and f unused since 1281");
    assert!(!s.is_granted("did:ex:e").await.unwrap());
    s.grant("did:ex:c", 3000).await.unwrap();
    assert_eq!(s.touch_grant("did:ex:c", 3050, 100).await.unwrap(), GrantState::Active);
}

/// Short links: stored, served until they expire, bounded per client.
pub(crate) async fn short_links(o: &dyn Opener) {
    let s = o.open().await;
    assert!(s.put_oob(link("did:ex:c", "a", 500), 2).await.unwrap());
    assert!(s.put_oob(link("did:ex:c", "b", 500), 2).await.unwrap());
    assert!(!s.put_oob(link("did:ex:c", "c", 500), 2).await.unwrap());
    assert_eq!(s.get_oob("c", 100).await.unwrap(), None);
    assert_eq!(s.get_oob("a", 100).await.unwrap().as_deref(), Some("{\"x\":1}"));
    assert_eq!(s.get_oob("a", 500).await.unwrap(), None, "expired");
    assert!(s.put_oob(link("did:ex:other", "d", 500), 2).await.unwrap());
    let later = NewLink { now: 600, expires_at: 900, ..link("did:ex:c", "e", 0) };
    assert!(s.put_oob(later, 2).await.unwrap(), "expired links do not count");
    drop(s);
    let s = o.open().await;
    assert_eq!(s.get_oob("e", 700).await.unwrap().as_deref(), Some("{\"x\":1}"));
    s.purge_expired(1000).await.unwrap();
    assert_eq!(s.get_oob("e", 700).await.unwrap(), None, "purged");
}

/// Delivery is fair between sources: a flood from one address does not push back a message
/// from another; each source's messages keep their order (across the client's recipients too).
pub(crate) async fn delivery_interleaves_sources(o: &dyn Opener) {
    let s = o.open().await;
    s.grant("did:ex:c", 1).await.unwrap();
    s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap();
    s.update_recipient("did:ex:c", "did:ex:r2", true, 10).await.unwrap();
    let l = QueueLimits::per_recipient(1000, 1 << 20);
    for i in 0..20 {
        s.enqueue(from("10.0.0.66", "did:ex:r", format!("junk {i}").as_bytes()), l).await.unwrap().unwrap();
    }
    s.enqueue(from("10.0.0.1", "did:ex:r", b"invitation"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.1", "did:ex:r2", b"start"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.1", "did:ex:r", b"more"), l).await.unwrap().unwrap();
    let got = s.fetch("did:ex:c", None, 5, 1 << 20, 1).await.unwrap();
    assert_eq!(
        bodies(&got),
        [&b"junk 0"[..], b"invitation", b"junk 1", b"start", b"junk 2"],
        "round robin over sources, in order within each"
    );
    let one = s.fetch("did:ex:c", Some("did:ex:r"), 4, 1 << 20, 1).await.unwrap();
    assert_eq!(bodies(&one), [&b"junk 0"[..], b"invitation", b"junk 1", b"more"], "one recipient: the same rule");
    // a byte bound still stops before the message that would pass it
    assert_eq!(s.fetch("did:ex:c", None, 5, 13, 1).await.unwrap().len(), 1);
}

/// Runs every contract test with a fresh store from `fresh` each.
#[macro_export]
macro_rules! store_contract {
    ($fresh:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn contract_queue_lifecycle() {
            $crate::store::contract::queue_lifecycle(&$fresh().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn contract_rotation() {
            $crate::store::contract::rotation(&$fresh().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn contract_concurrent_enqueues_respect_limits() {
            $crate::store::contract::concurrent_enqueues_respect_limits(&$fresh().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn contract_route_reservations() {
            $crate::store::contract::route_reservations(&$fresh().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn contract_quotas() {
            $crate::store::contract::quotas(&$fresh().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn contract_grants_expire() {
            $crate::store::contract::grants_expire(&$fresh().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn contract_short_links() {
            $crate::store::contract::short_links(&$fresh().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn contract_delivery_interleaves_sources() {
            $crate::store::contract::delivery_interleaves_sources(&$fresh().await).await
        }
    };
}
