use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::contract::Opener;
use crate::testing::RedisServer;

/// Handles on one Redis, as the instances of a cluster (each a new connection).
struct Instances {
    server: RedisServer,
    prefix: String,
}

impl Opener for Instances {
    fn open(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let instance = uuid::Uuid::new_v4().simple().to_string();
            Arc::new(RedisStore::connect(&self.server.url(), &self.prefix, &instance).await.unwrap()) as Arc<dyn Store>
        })
    }

    fn concurrent(&self) -> bool {
        true
    }
}

async fn fresh() -> Instances {
    Instances { server: RedisServer::start(), prefix: DEFAULT_PREFIX.into() }
}

crate::store_contract!(fresh);

async fn granted(s: &RedisStore, client: &str, recipient: &str) {
    s.grant(client, 1).await.unwrap();
    assert_eq!(s.update_recipient(client, recipient, true, 10).await.unwrap(), UpdateResult::Success);
}

fn msg(recipient: &str, body: &[u8]) -> NewMessage {
    NewMessage {
        recipient: recipient.into(),
        body: body.to_vec(),
        received_at: 100,
        expires_at: 1000,
        source: String::new(),
    }
}

const LIMITS: QueueLimits = QueueLimits::per_recipient(100, 10_000);

/// An enqueue on one instance names the message (its id, nothing else) on the channel of
/// every other instance where the client is live; an instance that stopped listening is
/// struck from the client's set.
#[tokio::test]
async fn enqueue_notifies_the_instances_where_the_client_is_live() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url(), DEFAULT_PREFIX, "a").await.unwrap();
    granted(&a, "did:ex:c", "did:ex:r").await;
    let mut sub = a.client().get_async_pubsub().await.unwrap();
    sub.subscribe("didmpc:n:b").await.unwrap();
    let mut conn = a.connection();
    let live = "didmpc:live:did:ex:c";
    let _: i64 = redis::cmd("SADD").arg(live).arg(&["a", "b", "gone"][..]).query_async(&mut conn).await.unwrap();
    let q = a.enqueue(msg("did:ex:r", b"secret body"), LIMITS).await.unwrap().unwrap();
    use futures_util::StreamExt;
    let note = tokio::time::timeout(Duration::from_secs(5), sub.on_message().next()).await.unwrap().unwrap();
    let payload: String = note.get_payload().unwrap();
    assert_eq!(payload, q.id, "the id only");
    let mut members: Vec<String> = redis::cmd("SMEMBERS").arg(live).query_async(&mut conn).await.unwrap();
    members.sort();
    assert_eq!(members, ["a", "b"], "nobody listens for `gone`; `a` enqueued itself");
    let (client, got) = a.get(&q.id, 100).await.unwrap().unwrap();
    assert_eq!((client.as_str(), got.body.as_slice()), ("did:ex:c", &b"secret body"[..]));
}

/// Keys of one prefix are invisible under another (two mediators on one Redis).
#[tokio::test]
async fn prefixes_keep_mediators_apart() {
    let server = RedisServer::start();
    let one = RedisStore::connect(&server.url(), "one:", "x").await.unwrap();
    let two = RedisStore::connect(&server.url(), "two:", "y").await.unwrap();
    granted(&one, "did:ex:c", "did:ex:r").await;
    assert!(!two.is_granted("did:ex:c").await.unwrap());
    assert_eq!(two.enqueue(msg("did:ex:r", b"x"), LIMITS).await.unwrap(), Err(Refused::UnknownRecipient));
    assert_eq!(two.update_recipient("did:ex:d", "did:ex:r", true, 10).await.unwrap(), UpdateResult::Success);
}

/// The route directory: a join learns where the other slot is; a leave forgets only its own.
#[tokio::test]
async fn route_directory() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url(), DEFAULT_PREFIX, "a").await.unwrap();
    let b = RedisStore::connect(&server.url(), DEFAULT_PREFIX, "b").await.unwrap();
    let route = [9u8; 16];
    let ttl = Duration::from_secs(60);
    assert_eq!(a.route_joined(&route, 0, ttl).await.unwrap(), None);
    assert_eq!(b.route_joined(&route, 1, ttl).await.unwrap().as_deref(), Some("a"));
    assert_eq!(a.route_joined(&route, 0, ttl).await.unwrap().as_deref(), Some("b"));
    // slot 0 moved to b; a's late leave does not erase it
    assert_eq!(b.route_joined(&route, 0, ttl).await.unwrap().as_deref(), Some("b"));
    a.route_left(&route, 0).await.unwrap();
    assert_eq!(a.route_joined(&route, 1, ttl).await.unwrap().as_deref(), Some("b"));
    b.route_left(&route, 0).await.unwrap();
    assert_eq!(a.route_joined(&route, 1, ttl).await.unwrap(), None);
}

/// While Redis is down the store answers errors (the router turns them into 503); once it is
/// back the same store works again, with what Redis kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_is_an_error_then_recovers() {
    let server = RedisServer::start();
    let port = server.port;
    let s = RedisStore::connect(&server.url(), DEFAULT_PREFIX, "a").await.unwrap();
    granted(&s, "did:ex:c", "did:ex:r").await;
    drop(server);
    assert!(matches!(s.is_granted("did:ex:c").await, Err(Error::Store(_))));
    let _server = RedisServer::start_on(port);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match s.grant("did:ex:d", 1).await {
            Ok(()) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "the store reconnects: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.is_granted("did:ex:d").await.unwrap(), "functions are loaded again after a restart too");
}
