use super::*;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SyncMode::Normal, 64).unwrap()
}

fn tmpdb() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("didmpc-store-{}.db", uuid::Uuid::new_v4()))
}

const LIMITS: QueueLimits = QueueLimits::per_recipient(3, 1000);

fn link(client: &str, id: &str, expires_at: u64) -> NewLink {
    NewLink { client: client.into(), id: id.into(), invitation: "{\"x\":1}".into(), now: 100, expires_at }
}

fn from(source: &str, recipient: &str, body: &[u8]) -> NewMessage {
    NewMessage { source: source.into(), ..msg(recipient, body, 10_000) }
}

fn cleanup(path: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

fn msg(recipient: &str, body: &[u8], expires_at: u64) -> NewMessage {
    NewMessage { recipient: recipient.into(), body: body.to_vec(), received_at: 100, expires_at, source: String::new() }
}

#[tokio::test]
async fn queue_lifecycle_limits_and_persistence() {
    let path = tmpdb();
    let s = open(&path);
    assert_eq!(s.enqueue(msg("did:ex:r", b"x", 1000), LIMITS).await.unwrap(), Err(Refused::UnknownRecipient));
    s.grant("did:ex:c", 1).await.unwrap();
    assert!(s.is_granted("did:ex:c").await.unwrap());
    assert_eq!(s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap(), UpdateResult::Success);
    assert_eq!(s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap(), UpdateResult::NoChange);
    assert_eq!(s.update_recipient("did:ex:other", "did:ex:r", true, 10).await.unwrap(), UpdateResult::ClientError);
    let a = s.enqueue(msg("did:ex:r", b"first", 1000), LIMITS).await.unwrap().unwrap();
    assert_eq!(a.client, "did:ex:c");
    let b = s.enqueue(msg("did:ex:r", b"second", 1000), LIMITS).await.unwrap().unwrap();
    s.enqueue(msg("did:ex:r", b"third", 150), LIMITS).await.unwrap().unwrap();
    assert_eq!(s.enqueue(msg("did:ex:r", b"fourth", 1000), LIMITS).await.unwrap(), Err(Refused::QueueFullMessages));
    let st = s.status("did:ex:c", None, 200).await.unwrap();
    assert_eq!((st.message_count, st.total_bytes), (2, 11), "the third message expired at 150");
    let got = s.fetch("did:ex:c", Some("did:ex:r"), 10, usize::MAX, 120).await.unwrap();
    assert_eq!(got.iter().map(|q| q.body.as_slice()).collect::<Vec<_>>(), [&b"first"[..], b"second", b"third"]);
    // a byte bound stops before the message that would pass it, but always yields one
    assert_eq!(s.fetch("did:ex:c", None, 10, 11, 120).await.unwrap().len(), 2);
    assert_eq!(s.fetch("did:ex:c", None, 10, 1, 120).await.unwrap().len(), 1);
    // another client cannot ack or read them
    assert_eq!(s.ack("did:ex:other", std::slice::from_ref(&a.id)).await.unwrap(), 0);
    assert!(s.fetch("did:ex:other", None, 10, usize::MAX, 120).await.unwrap().is_empty());
    assert_eq!(s.ack("did:ex:c", &[a.id.clone(), "nope".into()]).await.unwrap(), 1);
    drop(s);

    // reopen: state and counters come back from disk
    let s = open(&path);
    let got = s.fetch("did:ex:c", None, 10, usize::MAX, 120).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, b.id);
    assert_eq!(s.purge_expired(200).await.unwrap(), 1);
    s.enqueue(msg("did:ex:r", b"again", 1000), LIMITS).await.unwrap().unwrap();
    s.enqueue(msg("did:ex:r", b"more", 1000), LIMITS).await.unwrap().unwrap();
    assert_eq!(s.enqueue(msg("did:ex:r", b"full", 1000), LIMITS).await.unwrap(), Err(Refused::QueueFullMessages));
    let big = vec![0u8; 2000];
    s.grant("did:ex:c2", 1).await.unwrap();
    s.update_recipient("did:ex:c2", "did:ex:r2", true, 10).await.unwrap();
    assert_eq!(s.enqueue(msg("did:ex:r2", &big, 1000), LIMITS).await.unwrap(), Err(Refused::QueueFullBytes));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

#[tokio::test]
async fn rotation_moves_everything() {
    let path = tmpdb();
    let s = open(&path);
    s.grant("did:ex:old", 1).await.unwrap();
    s.update_recipient("did:ex:old", "did:ex:r", true, 10).await.unwrap();
    let m = s.enqueue(msg("did:ex:r", b"hello", 1000), LIMITS).await.unwrap().unwrap();
    assert!(s.rotate_client("did:ex:old", "did:ex:new").await.unwrap());
    assert!(!s.is_granted("did:ex:old").await.unwrap());
    assert_eq!(s.recipients("did:ex:new", 0, 10).await.unwrap(), (vec!["did:ex:r".to_owned()], 1));
    assert_eq!(s.fetch("did:ex:new", None, 10, usize::MAX, 120).await.unwrap()[0].id, m.id);
    assert!(!s.rotate_client("did:ex:nobody", "did:ex:x").await.unwrap());
    // per-client recipient limit
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r3", true, 1).await.unwrap(), UpdateResult::LimitReached);
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r", false, 1).await.unwrap(), UpdateResult::Success);
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r", false, 1).await.unwrap(), UpdateResult::NoChange);
    // short links
    assert!(s.put_oob(link("did:ex:new", "abc", 500), 10).await.unwrap());
    assert_eq!(s.get_oob("abc", 100).await.unwrap().as_deref(), Some("{\"x\":1}"));
    assert_eq!(s.get_oob("abc", 600).await.unwrap(), None);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

#[tokio::test]
async fn concurrent_enqueues_are_group_committed() {
    let path = tmpdb();
    let s = std::sync::Arc::new(open(&path));
    s.grant("did:ex:c", 1).await.unwrap();
    s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap();
    let limits = QueueLimits::per_recipient(10_000, 1 << 30);
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.enqueue(msg("did:ex:r", &i.to_be_bytes(), 1000), limits).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap().unwrap();
    }
    assert_eq!(s.status("did:ex:c", None, 1).await.unwrap().message_count, 500);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

#[tokio::test]
async fn relay_route_reservations() {
    let path = tmpdb();
    let s = open(&path);
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
    let s = open(&path);
    assert!(s.route_reservation(&r, 200).await.unwrap().is_some(), "durable");
    // The count covers every expired row kind; what matters here is the route.
    s.purge_expired(1000).await.unwrap();
    assert!(s.route_reservation(&r, 200).await.unwrap().is_none(), "purged");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

/// A database from before JOINs were authenticated (schema 1 or 2): its keyless route
/// reservations go (schema 3), everything else stays.
#[tokio::test]
async fn keyless_route_reservations_are_dropped_by_the_migration() {
    let path = tmpdb();
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO mediations (client, granted_at) VALUES ('did:ex:c', 1000);
             INSERT INTO relay_routes VALUES (x'05050505050505050505050505050505', 'did:ex:c', 9000);",
        )
        .unwrap();
    }
    let s = open(&path);
    assert!(s.is_granted("did:ex:c").await.unwrap());
    assert!(s.route_reservation(&[5u8; 16], 1000).await.unwrap().is_none());
    assert!(s.reserve_route(&[5u8; 16], "did:ex:c", &[1; 32], 9000, 2).await.unwrap());
    assert!(s.route_reservation(&[5u8; 16], 1000).await.unwrap().is_some());
    drop(s);
    let v: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, schema::VERSION);
    cleanup(&path);
}

/// Each quota refuses on its own, and counters follow acks, purges and restarts.
#[tokio::test]
async fn quotas_per_source_client_and_store() {
    let path = tmpdb();
    let s = open(&path);
    s.grant("did:ex:c", 1).await.unwrap();
    for r in ["did:ex:r1", "did:ex:r2"] {
        s.update_recipient("did:ex:c", r, true, 10).await.unwrap();
    }
    let l = QueueLimits { max_source_messages: 2, max_source_bytes: 100, ..QueueLimits::per_recipient(100, 10_000) };
    // one source: two messages for r1, then refused; another source and another recipient still pass
    let a = s.enqueue(from("10.0.0.1", "did:ex:r1", b"one"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.1", "did:ex:r1", b"two"), l).await.unwrap().unwrap();
    assert_eq!(s.enqueue(from("10.0.0.1", "did:ex:r1", b"three"), l).await.unwrap(), Err(Refused::SourceBudget));
    s.enqueue(from("10.0.0.2", "did:ex:r1", b"other"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.1", "did:ex:r2", b"elsewhere"), l).await.unwrap().unwrap();
    // bytes per source
    let big = vec![0u8; 101];
    assert_eq!(s.enqueue(from("10.0.0.3", "did:ex:r1", &big), l).await.unwrap(), Err(Refused::SourceBudget));
    // acknowledging frees the source's share
    assert_eq!(s.ack("did:ex:c", std::slice::from_ref(&a.id)).await.unwrap(), 1);
    s.enqueue(from("10.0.0.1", "did:ex:r1", b"again"), l).await.unwrap().unwrap();
    assert_eq!(s.enqueue(from("10.0.0.1", "did:ex:r1", b"x"), l).await.unwrap(), Err(Refused::SourceBudget));
    drop(s);
    // the counters are rebuilt from the database
    let s = open(&path);
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
    s.enqueue(from("10.0.0.1", "did:ex:r1", b"fresh"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.9", "did:ex:r1", &[0u8; 19]), per_client).await.unwrap().unwrap();
    drop(s);
    cleanup(&path);
}

/// Grants expire after their TTL without use; a use refreshes them; expiry removes the
/// recipients and queue, and a forward finds nobody.
#[tokio::test]
async fn grants_expire_unless_used() {
    let path = tmpdb();
    let s = open(&path);
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
    // the last use survives a restart (written at least every ttl/8)
    let s = open(&path);
    assert_eq!(s.expire_grants(1250, 100).await.unwrap(), 0);
    assert_eq!(s.touch_grant("did:ex:c", 1280, 100).await.unwrap(), GrantState::Expired);
    assert!(!s.is_granted("did:ex:c").await.unwrap());
    assert_eq!(s.recipients("did:ex:c", 0, 10).await.unwrap(), (vec![], 0));
    assert!(s.fetch("did:ex:c", None, 10, usize::MAX, 1280).await.unwrap().is_empty());
    let mut m = msg("did:ex:r", b"late", 5000);
    m.received_at = 1281;
    assert_eq!(s.enqueue(m.clone(), l).await.unwrap(), Err(Refused::UnknownRecipient));
    assert_eq!(s.touch_grant("did:ex:c", 1281, 100).await.unwrap(), GrantState::None);
    // a forward for an expired client removes it too; the periodic sweep finds the rest
    s.grant("did:ex:d", 2000).await.unwrap();
    s.update_recipient("did:ex:d", "did:ex:rd", true, 10).await.unwrap();
    s.grant("did:ex:e", 2000).await.unwrap();
    let mut m = msg("did:ex:rd", b"late", 5000);
    m.received_at = 2100;
    assert_eq!(s.enqueue(m, l).await.unwrap(), Err(Refused::UnknownRecipient));
    assert!(!s.is_granted("did:ex:d").await.unwrap());
    assert_eq!(s.expire_grants(2100, 0).await.unwrap(), 0, "ttl 0: grants never expire");
    assert_eq!(s.expire_grants(2100, 100).await.unwrap(), 1);
    assert!(!s.is_granted("did:ex:e").await.unwrap());
    // requesting mediation again grants afresh
    s.grant("did:ex:c", 3000).await.unwrap();
    assert_eq!(s.touch_grant("did:ex:c", 3050, 100).await.unwrap(), GrantState::Active);
    drop(s);
    cleanup(&path);
}

#[tokio::test]
async fn short_links_per_client() {
    let path = tmpdb();
    let s = open(&path);
    assert!(s.put_oob(link("did:ex:c", "a", 500), 2).await.unwrap());
    assert!(s.put_oob(link("did:ex:c", "b", 500), 2).await.unwrap());
    assert!(!s.put_oob(link("did:ex:c", "c", 500), 2).await.unwrap());
    assert_eq!(s.get_oob("c", 100).await.unwrap(), None);
    assert!(s.put_oob(link("did:ex:other", "d", 500), 2).await.unwrap());
    // expired links do not count
    let later = NewLink { now: 600, expires_at: 900, ..link("did:ex:c", "e", 0) };
    assert!(s.put_oob(later, 2).await.unwrap());
    drop(s);
    cleanup(&path);
}

/// A database written by the version-1 schema opens with everything in it, and gets the
/// new columns with sensible values.
#[tokio::test]
async fn migrates_a_version_1_database() {
    let path = tmpdb();
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO mediations (client, granted_at) VALUES ('did:ex:c', 1000);
             INSERT INTO recipients (recipient, client, added_at) VALUES ('did:ex:r', 'did:ex:c', 1000);
             INSERT INTO messages (id, recipient, client, body, size, received_at, expires_at)
                 VALUES ('m1', 'did:ex:r', 'did:ex:c', x'6869', 2, 1000, 9000);
             INSERT INTO oob (id, invitation, expires_at) VALUES ('old', '{}', 9000);",
        )
        .unwrap();
    }
    let s = open(&path);
    assert!(s.is_granted("did:ex:c").await.unwrap());
    assert_eq!(s.fetch("did:ex:c", None, 10, usize::MAX, 1000).await.unwrap()[0].body, b"hi");
    assert_eq!(s.get_oob("old", 1000).await.unwrap().as_deref(), Some("{}"));
    // last_used = granted_at: expired 100 s later with a 100 s TTL
    assert_eq!(s.touch_grant("did:ex:c", 1099, 100).await.unwrap(), GrantState::Active);
    let l = QueueLimits { max_source_messages: 1, ..QueueLimits::per_recipient(100, 10_000) };
    assert_eq!(
        s.enqueue(msg("did:ex:r", b"x", 9000), l).await.unwrap(),
        Err(Refused::SourceBudget),
        "old rows count as source \"\""
    );
    drop(s);
    let c = Connection::open(&path).unwrap();
    let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, schema::VERSION);
    drop(c);
    // opening again does not migrate twice
    let s = open(&path);
    assert!(s.is_granted("did:ex:c").await.unwrap());
    drop(s);
    cleanup(&path);
}

/// Delivery is fair between sources: a flood from one address does not push back a message
/// from another; each source's messages keep their order.
#[tokio::test]
async fn delivery_interleaves_sources() {
    let path = tmpdb();
    let s = open(&path);
    s.grant("did:ex:c", 1).await.unwrap();
    s.update_recipient("did:ex:c", "did:ex:r", true, 10).await.unwrap();
    let l = QueueLimits::per_recipient(1000, 1 << 20);
    for i in 0..20 {
        s.enqueue(from("10.0.0.66", "did:ex:r", format!("junk {i}").as_bytes()), l).await.unwrap().unwrap();
    }
    s.enqueue(from("10.0.0.1", "did:ex:r", b"invitation"), l).await.unwrap().unwrap();
    s.enqueue(from("10.0.0.1", "did:ex:r", b"start"), l).await.unwrap().unwrap();
    let got = s.fetch("did:ex:c", None, 4, 1 << 20, 1).await.unwrap();
    let bodies: Vec<String> = got.iter().map(|q| String::from_utf8_lossy(&q.body).into_owned()).collect();
    assert_eq!(bodies, ["junk 0", "invitation", "junk 1", "start"], "round robin over sources, in order within each");
    drop(s);
    cleanup(&path);
}
