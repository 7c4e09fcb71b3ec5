//! The gateway's relay client: [`relay::client`] (one task per relay URL, JOINs
//! authenticated per slot, reconnection and re-joining) over the gateway's [`Transport`],
//! so relay WebSockets trust the same TLS roots as every other connection.

use std::future::Future;

use relay::client::{ws_config, Connect, WsSocket};
use session::Link;
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

pub use relay::client::Membership;
pub use relay::proto::{RouteId, ROUTE_LEN};

use crate::error::{Error, Result};
use crate::transport::Transport;

/// Relay connections by URL, opened with the gateway's transport.
#[derive(Clone)]
pub struct RelayClient(relay::client::RelayClient);

impl RelayClient {
    /// A client using `transport` for its WebSockets.
    pub fn new(transport: Transport) -> RelayClient {
        RelayClient(relay::client::RelayClient::new(Relays(transport)))
    }

    /// A session link over `member`'s slot of its route at the relay at `url`.
    pub fn link(&self, url: &str, member: Membership) -> Result<Link> {
        self.0.link(url, member).map_err(|e| Error::Transport { uri: url.to_owned(), reason: e.to_string() })
    }
}

/// Opens relay WebSockets with the gateway's TLS roots and the relay's socket settings.
#[derive(Clone)]
struct Relays(Transport);

impl Connect for Relays {
    type Socket = WsSocket<MaybeTlsStream<TcpStream>>;

    fn connect(&self, url: &str) -> impl Future<Output = relay::Result<Self::Socket>> + Send {
        let (transport, url) = (self.0.clone(), url.to_owned());
        async move {
            match transport.connect_with(&url, Some(ws_config())).await {
                Ok(ws) => Ok(WsSocket::new(ws.into_inner())),
                Err(e) => Err(relay::Error::Connect { url, reason: e.to_string() }),
            }
        }
    }
}
