use super::*;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SyncMode::Normal, 64).unwrap()
}

fn tmpdb() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("didmpc-store-{}.db", uuid::Uuid::new_v4()))
}

const LIMITS: QueueLimits = QueueLimits { max_messages: 3, max_bytes: 1000 };

fn msg(recipient: &str, body: &[u8], expires_at: u64) -> NewMessage {
    NewMessage { recipient: recipient.into(), body: body.to_vec(), received_at: 100, expires_at }
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
    let got = s.fetch("did:ex:c", Some("did:ex:r"), 10, 120).await.unwrap();
    assert_eq!(got.iter().map(|q| q.body.as_slice()).collect::<Vec<_>>(), [&b"first"[..], b"second", b"third"]);
    // another client cannot ack or read them
    assert_eq!(s.ack("did:ex:other", std::slice::from_ref(&a.id)).await.unwrap(), 0);
    assert!(s.fetch("did:ex:other", None, 10, 120).await.unwrap().is_empty());
    assert_eq!(s.ack("did:ex:c", &[a.id.clone(), "nope".into()]).await.unwrap(), 1);
    drop(s);

    // reopen: state and counters come back from disk
    let s = open(&path);
    let got = s.fetch("did:ex:c", None, 10, 120).await.unwrap();
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
    assert_eq!(s.fetch("did:ex:new", None, 10, 120).await.unwrap()[0].id, m.id);
    assert!(!s.rotate_client("did:ex:nobody", "did:ex:x").await.unwrap());
    // per-client recipient limit
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r3", true, 1).await.unwrap(), UpdateResult::ClientError);
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r", false, 1).await.unwrap(), UpdateResult::Success);
    assert_eq!(s.update_recipient("did:ex:new", "did:ex:r", false, 1).await.unwrap(), UpdateResult::NoChange);
    // short links
    s.put_oob("abc", "{\"x\":1}", 500).await.unwrap();
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
    let limits = QueueLimits { max_messages: 10_000, max_bytes: 1 << 30 };
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

/// A database from before JOINs were authenticated: its keyless reservations go, the rest stays.
#[tokio::test]
async fn keyless_route_reservations_are_dropped_on_open() {
    let path = tmpdb();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE relay_routes (route BLOB PRIMARY KEY, client TEXT NOT NULL, expires_at INTEGER NOT NULL);
             INSERT INTO relay_routes VALUES (x'05050505050505050505050505050505', 'did:ex:c', 100);",
        )
        .unwrap();
    }
    let s = open(&path);
    assert!(s.route_reservation(&[5u8; 16], 10).await.unwrap().is_none());
    assert!(s.reserve_route(&[5u8; 16], "did:ex:c", &[1; 32], 100, 2).await.unwrap());
    assert!(s.route_reservation(&[5u8; 16], 10).await.unwrap().is_some());
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}
