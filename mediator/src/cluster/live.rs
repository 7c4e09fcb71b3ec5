//! Live delivery across instances. A client live on a WebSocket here is in the set
//! `P live:<client>` with this instance's id; an enqueue on any instance publishes the new
//! message's id (nothing else) on `P n:<instance>` for each instance in that set (the Redis
//! function does it in the same step). This instance reads the message by id from the
//! client's stream and pushes it to its live connections, as for a message queued here.
//!
//! Pub/sub delivers at most once: a notification lost while this instance's subscription is
//! down only delays. When the subscription is (re)established, the instance registers its
//! live clients again and pushes what their queues hold; the message stays queued until
//! `messages-received` in any case, and the client drains its queue when it reconnects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::Cluster;
use crate::state::Mediator;

/// Queued messages pushed per live client when the subscription comes back.
const CATCH_UP: usize = 100;

impl Cluster {
    /// Records that `client` is live here (`on`) or no longer. Errors are logged: the
    /// client then gets its messages at its next pickup.
    pub(crate) async fn register_live(&self, client: &str, on: bool) {
        let key = self.key_of(&format!("live:{client}"));
        let cmd = redis::cmd(if on { "SADD" } else { "SREM" }).arg(&key).arg(self.instance()).to_owned();
        if let Err(e) = self.redis.run::<i64>(&cmd).await {
            tracing::warn!(%client, error = %e, "cannot record live delivery in Redis");
        }
    }
}

impl Mediator {
    /// Switches live delivery of `client`'s messages on connection `conn` on or off, and
    /// tells the cluster when the client becomes live here or stops being so.
    pub(crate) async fn set_live(&self, client: &str, conn: u64, tx: &crate::live::Outbound, on: bool) {
        let Some(c) = &self.cluster else {
            self.live.set(client, conn, tx, on);
            return;
        };
        let _order = c.live_order.lock().await;
        if let Some(now) = self.live.set(client, conn, tx, on) {
            c.register_live(client, now).await;
        }
    }

    /// Forgets a closed WebSocket for live delivery.
    pub(crate) async fn drop_live(&self, conn: u64) {
        let Some(c) = &self.cluster else {
            self.live.drop_conn(conn);
            return;
        };
        let _order = c.live_order.lock().await;
        for client in self.live.drop_conn(conn) {
            c.register_live(&client, false).await;
        }
    }
}

/// Subscribes to this instance's channel and pushes what it names; resubscribes (after
/// re-registering and catching up) whenever the subscription breaks.
pub(crate) async fn listen(m: Arc<Mediator>, c: Arc<Cluster>) {
    let channel = c.key_of(&format!("n:{}", c.instance()));
    loop {
        match c.redis.client().get_async_pubsub().await {
            Ok(mut sub) => match sub.subscribe(&channel).await {
                Ok(()) => {
                    catch_up(&m, &c).await;
                    let mut stream = sub.on_message();
                    while let Some(msg) = stream.next().await {
                        match msg.get_payload::<String>() {
                            Ok(id) => deliver(&m, &id).await,
                            Err(e) => tracing::debug!(error = %e, "notification without an id"),
                        }
                    }
                    tracing::warn!("live notification subscription lost; resubscribing");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to live notifications"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot connect to Redis for live notifications"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Pushes the message `id` to its client's live connections here.
async fn deliver(m: &Mediator, id: &str) {
    match m.store.get(id, did_core::didcomm::message::now()).await {
        Ok(Some((client, q))) => m.push_live(&client, q.id, &q.body).await,
        Ok(None) => {} // acknowledged or expired meanwhile
        Err(e) => tracing::debug!(error = %e, "cannot read a notified message"),
    }
}

/// After (re)subscribing: every client live here is registered again (Redis may have lost
/// it), and what its queue holds is pushed (notifications may have been lost).
async fn catch_up(m: &Mediator, c: &Cluster) {
    let now = did_core::didcomm::message::now();
    for client in m.live.clients() {
        c.register_live(&client, true).await;
        match m.store.fetch(&client, None, CATCH_UP, crate::protocols::pickup::MAX_DELIVERY_BYTES, now).await {
            Ok(queued) => {
                for q in queued {
                    m.push_live(&client, q.id, &q.body).await;
                }
            }
            Err(e) => tracing::debug!(%client, error = %e, "cannot catch up a live client"),
        }
    }
}
