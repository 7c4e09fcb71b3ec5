//! Instance links (`relay::mesh`): WebSockets between the instances of a cluster at
//! `GET /cluster/link`, authenticated both ways with the cluster key, carrying relay frames
//! between route members connected to different instances (one hop), never through Redis.
//!
//! An instance dials another when a client here joins a route whose other slot the route
//! directory places there; a link either side opened serves both directions. While a dial
//! is under way, the ATTACHes for that instance wait for it; if the instance is gone (no
//! announcement, or it does not answer), they are dropped: its members will rejoin
//! elsewhere, and that instance will attach them here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use relay::mesh;
use relay::server::LinkHandle;
use relay::ws::{ws_config, WsSocket};
use relay::{RouteId, MAX_FRAME};

use super::{announced, Cluster};
use crate::server::App;
use crate::state::Mediator;
use crate::transport::relay_ws::{Binary, Reservations, READ_BUFFER};

/// How long dialling another instance may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

enum Peer {
    /// Serving: ATTACHes go straight in.
    Up(LinkHandle),
    /// Being dialled: what to attach once it is up.
    Dialing(Vec<(RouteId, u8)>),
}

/// The links of this instance, by the other instance's id.
#[derive(Default)]
pub(crate) struct Links {
    peers: Mutex<HashMap<String, Peer>>,
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Links up now.
    pub(crate) fn len(&self) -> usize {
        self.lock().values().filter(|p| matches!(p, Peer::Up(h) if !h.is_closed())).count()
    }

    /// Tells instance `peer` that a client here holds `slot` of `route` (dialling it first
    /// if there is no link yet).
    pub(crate) fn attach(&self, m: &Arc<Mediator>, c: &Arc<Cluster>, peer: &str, route: RouteId, slot: u8) {
        let mut peers = self.lock();
        match peers.get_mut(peer) {
            Some(Peer::Up(h)) if !h.is_closed() => h.attach(route, slot),
            Some(Peer::Dialing(waiting)) => waiting.push((route, slot)),
            _ => {
                peers.insert(peer.to_owned(), Peer::Dialing(vec![(route, slot)]));
                tokio::spawn(dial(m.clone(), c.clone(), peer.to_owned()));
            }
        }
    }

    /// A link to `peer` is up: it carries what waited, and what comes next unless another
    /// link to `peer` already serves.
    fn up(&self, peer: &str, h: &LinkHandle) {
        let mut peers = self.lock();
        match peers.remove(peer) {
            Some(Peer::Dialing(waiting)) => {
                for (route, slot) in waiting {
                    h.attach(route, slot);
                }
            }
            Some(Peer::Up(other)) if !other.is_closed() => {
                peers.insert(peer.to_owned(), Peer::Up(other));
                return;
            }
            _ => {}
        }
        peers.insert(peer.to_owned(), Peer::Up(h.clone()));
    }

    /// The link `h` to `peer` ended (or its dial failed, `h` = None).
    fn down(&self, peer: &str, h: Option<&LinkHandle>) {
        let mut peers = self.lock();
        let ours = match (peers.get(peer), h) {
            (Some(Peer::Up(cur)), Some(h)) => cur.same(h) || cur.is_closed(),
            (Some(Peer::Dialing(_)), None) => true,
            _ => false,
        };
        if ours {
            peers.remove(peer);
        }
    }
}

/// Dials `peer` at the URL it announced, proves the key, and serves the link.
async fn dial(m: Arc<Mediator>, c: Arc<Cluster>, peer: String) {
    let url = match announced(&c, &peer).await {
        Ok(Some(base)) => format!("{}/cluster/link", base.replacen("http://", "ws://", 1)),
        Ok(None) => {
            tracing::debug!(%peer, "instance not announced (gone?); not linking");
            c.links.down(&peer, None);
            return;
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot look the instance up");
            c.links.down(&peer, None);
            return;
        }
    };
    let connected = tokio::time::timeout(DIAL_TIMEOUT, async {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(ws_config()), true)
            .await
            .map_err(|e| relay::Error::Link(format!("connecting to {url}: {e}")))?;
        let mut socket = WsSocket::new(ws);
        let id = mesh::dial(&mut socket, c.key(), c.instance()).await?;
        if id != peer {
            return Err(relay::Error::Link(format!("{url} is instance {id}, not {peer}")));
        }
        Ok(socket)
    })
    .await;
    let mut socket = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "instance link failed");
            c.links.down(&peer, None);
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "instance link: no answer in time");
            c.links.down(&peer, None);
            return;
        }
    };
    tracing::info!(%peer, "instance link up (dialled)");
    let stopped = c.stopped();
    serve(&m, &c, &peer, &mut socket, stopped).await;
}

/// Serves an authenticated link to `peer` until it ends.
async fn serve<S: relay::FrameSocket>(
    m: &Arc<Mediator>,
    c: &Arc<Cluster>,
    peer: &str,
    socket: &mut S,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (handle, conn) = m.relay().new_link(peer);
    c.links.up(peer, &handle);
    let reservations = Reservations::new(m);
    let exit = m.relay().serve_link(conn, socket, &reservations, shutdown).await;
    tracing::info!(%peer, ?exit, "instance link ended");
    c.links.down(peer, Some(&handle));
}

/// `GET /cluster/link`: another instance's link (404 unless this mediator is a cluster).
pub async fn upgrade(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    let Some(c) = app.mediator.cluster.clone() else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    ws.read_buffer_size(READ_BUFFER).max_message_size(MAX_FRAME).max_frame_size(MAX_FRAME).on_upgrade(
        move |s| async move {
            let mut socket = Binary(s);
            let peer = match mesh::accept(&mut socket, c.key(), c.instance()).await {
                Ok(peer) => peer,
                Err(e) => {
                    tracing::warn!(error = %e, "instance link refused");
                    return;
                }
            };
            tracing::info!(%peer, "instance link up (accepted)");
            let mut stop = app.shutdown.clone();
            serve(&app.mediator, &c, &peer, &mut socket, async move {
                let _ = stop.wait_for(|down| *down).await;
            })
            .await;
        },
    )
}
