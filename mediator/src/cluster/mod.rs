//! Several mediator instances serving one mediator (`specs/mediator.md`, "Cluster").
//!
//! ```text
//!               load balancer (one public URL)
//!            ┌────────────┼────────────┐
//!        instance A   instance B   instance C      one identity (the same keys)
//!            │  ╲          │          ╱ │
//!            │   ╲═══ instance links ═╝ │          relay bytes: one hop A ⇄ C
//!            └──────── Redis ───────────┘          queues (a stream per recipient), grants,
//!                                                  routes, quotas; live: who is where
//!                                                  (ids only on pub/sub); route directory
//! ```
//!
//! Each instance gets a fresh id when it starts, announces the URL its links are reached at
//! (`P inst:<id>`, refreshed every [`HEARTBEAT`]), and listens on its pub/sub channel
//! `P n:<id>` for the ids of messages queued for clients live on it ([`live`]). A relay
//! member joining here is recorded in the route directory, and the instance holding the
//! other slot is told over an authenticated link ([`links`]).

pub mod links;
pub mod live;

use std::sync::Arc;
use std::time::Duration;

use relay::mesh::LinkKey;
use relay::RouteId;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::state::Mediator;
use crate::store::RedisStore;

/// How often an instance renews its announcement.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long an announcement outlives its last renewal (then links to it are not dialled).
pub const ANNOUNCEMENT_TTL: Duration = Duration::from_secs(6);
/// How long a route directory entry lives without another join (longer than any reservation).
pub const DIRECTORY_TTL: Duration = Duration::from_secs(8 * 24 * 3600);
/// Route events waiting for the directory (past this, they are dropped and logged).
const ROUTE_EVENTS: usize = 16 * 1024;

/// A relay member came or went here.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RouteEvent {
    /// A client here took `slot` of the route.
    Joined(RouteId, u8),
    /// The client here holding `slot` left it.
    Left(RouteId, u8),
}

/// This instance's part in a cluster.
pub struct Cluster {
    redis: RedisStore,
    advertise: String,
    key: LinkKey,
    /// Orders live registrations (local state and Redis change together).
    live_order: tokio::sync::Mutex<()>,
    links: links::Links,
    events: mpsc::Sender<RouteEvent>,
    events_rx: std::sync::Mutex<Option<mpsc::Receiver<RouteEvent>>>,
    /// Flips to true when the server stops (links close).
    stop: tokio::sync::watch::Sender<bool>,
}

/// A fresh instance id: 16 random hex digits.
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

impl Cluster {
    /// This instance's part, on `redis`, reached by the others at `advertise`
    /// (`http://host:port`), authenticating links with `key`.
    pub fn new(redis: RedisStore, advertise: String, key: LinkKey) -> Result<Cluster> {
        if !advertise.starts_with("http://") {
            return Err(Error::Config(format!(
                "cluster.advertise_url {advertise}: instance links are plain WebSockets (http://) on the instances' \
                 own network"
            )));
        }
        let (events, rx) = mpsc::channel(ROUTE_EVENTS);
        Ok(Cluster {
            redis,
            advertise: advertise.trim_end_matches('/').to_owned(),
            key,
            live_order: tokio::sync::Mutex::new(()),
            links: links::Links::default(),
            events,
            events_rx: std::sync::Mutex::new(Some(rx)),
            stop: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Completes when the server stops.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Closes the links (the server is stopping).
    pub(crate) fn shut_down(&self) {
        self.stop.send_replace(true);
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        self.redis.instance()
    }

    /// The Redis store.
    pub fn redis(&self) -> &RedisStore {
        &self.redis
    }

    /// The link key.
    pub(crate) fn key(&self) -> &LinkKey {
        &self.key
    }

    /// Where the route events go (the relay's hooks).
    pub(crate) fn route_events(&self) -> mpsc::Sender<RouteEvent> {
        self.events.clone()
    }

    /// Open links to other instances.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    fn key_of(&self, what: &str) -> String {
        format!("{}{what}", self.redis.prefix())
    }
}

/// Starts the instance's background work: its announcement, its notification channel, and
/// the route directory. Ends when the returned handles are aborted.
pub(crate) fn start(m: &Arc<Mediator>, c: &Arc<Cluster>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(announce(c.clone())), tokio::spawn(live::listen(m.clone(), c.clone()))];
    if let Some(rx) = c.events_rx.lock().unwrap_or_else(|e| e.into_inner()).take() {
        tasks.push(tokio::spawn(directory(m.clone(), c.clone(), rx)));
    }
    tasks
}

/// Renews `P inst:<id>` = the link base URL, every [`HEARTBEAT`].
async fn announce(c: Arc<Cluster>) {
    let key = c.key_of(&format!("inst:{}", c.instance()));
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let cmd =
            redis::cmd("SET").arg(&key).arg(&c.advertise).arg("PX").arg(ANNOUNCEMENT_TTL.as_millis() as u64).to_owned();
        if let Err(e) = c.redis.run::<()>(&cmd).await {
            tracing::warn!(error = %e, "cannot announce this instance");
        }
    }
}

/// The link base URL another instance announced, if it is alive.
pub(crate) async fn announced(c: &Cluster, instance: &str) -> Result<Option<String>> {
    c.redis.run(redis::cmd("GET").arg(c.key_of(&format!("inst:{instance}")))).await
}

/// Records joins and leaves in the route directory, in order; a join whose other slot is
/// held on another instance attaches it there over a link.
async fn directory(m: Arc<Mediator>, c: Arc<Cluster>, mut rx: mpsc::Receiver<RouteEvent>) {
    while let Some(ev) = rx.recv().await {
        match ev {
            RouteEvent::Joined(route, slot) => match c.redis.route_joined(&route.0, slot, DIRECTORY_TTL).await {
                Ok(Some(other)) if other != c.instance() => c.links.attach(&m, &c, &other, route, slot),
                Ok(_) => {}
                Err(e) => tracing::warn!(route = %route.fmt_short(), error = %e, "route directory unavailable"),
            },
            RouteEvent::Left(route, slot) => {
                if let Err(e) = c.redis.route_left(&route.0, slot).await {
                    tracing::debug!(route = %route.fmt_short(), error = %e, "route directory unavailable");
                }
            }
        }
    }
}
