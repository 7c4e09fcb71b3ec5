//! Direct paths for a party's sessions (`specs/session.md` §8): one UDP [`endpoint`] per
//! party, our reflexive address and NAT kind from the mediator ([`reflex`]), the offer each
//! session handshake carries (`wire::DirectOffer`), and starting a session's punching.
//! With `--relay-only` none of this exists: no socket, no offer, no address revealed.

pub mod endpoint;
pub mod reflex;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use session::driver::Direct;
use session::{Nat, Offer, Session};

use crate::agent::Agent;
use crate::error::Result;
use crate::wire::DirectOffer;
use endpoint::{Endpoint, Registration};

/// What a party brings to its sessions' direct paths.
pub struct LocalDirect {
    /// The UDP endpoint.
    pub endpoint: Arc<Endpoint>,
    /// Our candidates and NAT kind.
    pub offer: Offer,
    /// Extra sockets a hard NAT punches from.
    pub hard_sockets: u16,
}

impl LocalDirect {
    /// Binds the endpoint and learns our reflexive address and NAT kind from our mediator
    /// (without its probe service: host candidates only, NAT kind unknown).
    pub async fn prepare(agent: &Agent, hard_sockets: u16) -> Result<LocalDirect> {
        let endpoint = Endpoint::bind(0).await?;
        let port = endpoint.port();
        let (reflexive, nat, toward) = match reflex::grant(agent).await {
            Ok(g) => {
                let (r, nat) = reflex::discover(&endpoint, &g).await;
                (r, nat, g.addrs.first().copied())
            }
            Err(e) => {
                tracing::info!(error = %e, "no reflexive address (the mediator answers no probes)");
                (None, Nat::Unknown, mediator_addr(agent).await)
            }
        };
        let host: Vec<SocketAddr> =
            toward.and_then(reflex::local_ip_towards).map(|ip| SocketAddr::new(ip, port)).into_iter().collect();
        // No NAT: the mediator sees our own address.
        let nat = if reflexive.is_some_and(|r| host.iter().any(|h| h.ip() == r.ip())) { Nat::Easy } else { nat };
        let offer = Offer { host, reflexive, nat };
        tracing::info!(?offer, "direct-path candidates");
        Ok(LocalDirect { endpoint, offer, hard_sockets })
    }

    /// A connection id for a new session.
    pub fn register(&self) -> Registration {
        self.endpoint.register()
    }

    /// Starts punching in `session` towards a peer that offered `theirs` (we offered ours
    /// under `reg`): the direct paths the driver runs.
    pub fn start(&self, session: &mut Session, reg: Registration, theirs: &DirectOffer) -> Direct {
        let theirs_offer = theirs.offer();
        if self.offer.nat == Nat::Hard && theirs_offer.nat != Nat::Hard && theirs_offer.reflexive.is_some() {
            if let Err(e) = self.endpoint.ensure_extra(self.hard_sockets) {
                tracing::warn!(error = %e, "punching from the main socket only");
            }
        }
        session.punch(Instant::now(), &self.offer, &theirs_offer);
        Direct { io: self.endpoint.clone(), peer_id: theirs.id, rx: reg.rx }
    }
}

/// The mediator's address from its URL (for the host-candidate lookup when it answers no
/// probes).
async fn mediator_addr(agent: &Agent) -> Option<SocketAddr> {
    let m = &agent.file.mediator;
    let url = m.http.as_deref().or(m.ws.as_deref())?;
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let with_port = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:443") };
    tokio::net::lookup_host(with_port).await.ok()?.find(SocketAddr::is_ipv4)
}
