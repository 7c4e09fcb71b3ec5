//! The party agent: `init` (mediation + a routed did:peer:2), sending messages, and
//! picking up the inbox (once over HTTP, or live over a WebSocket with reconnects).
//!
//! Setting up, loading and sending live here; `pickup` takes messages from the inbox.

use std::path::{Path, PathBuf};

use did_core::didcomm::{self, ServiceTarget, UnpackMetadata};
use did_core::didcomm::{message::Message, PackOptions};
use did_core::{Did, DidCommEndpoint, Identity, KeyRing, Keystore, Resolver};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inbox::Expected;
use did_core::didcomm::vocab::BasicMessage;

use crate::link::{Link, MediatorInfo};
use crate::transport::Transport;

mod pickup;

/// Basic Message 2.0.
pub const BASIC_MESSAGE: &str = <BasicMessage as did_core::didcomm::Typed>::TYPE;
/// Name of the agent state file in the home directory.
pub const AGENT_FILE: &str = "agent.json";

/// What `init` leaves in `<home>/agent.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentFile {
    /// The mediator.
    pub mediator: MediatorInfo,
    /// The DID holding the mediation grant (the identity, for agents made since identities
    /// are kept apart from routing).
    pub client: Did,
    /// The party's identity: the DID it chose (did:key by default; did:web, did:peer:2),
    /// what stands on rosters, signs, and binds its Noise sessions.
    pub party: Did,
    /// How the identity is reached: the mediator's endpoint and routing key. Peers learn
    /// it from our authenticated messages (see `specs/identity.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ServiceTarget>,
    /// A did:peer:2 that publishes the route in its own document, for peers who want a
    /// DID they can reach without any message from us first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed: Option<Did>,
}

/// An initialised party agent.
pub struct Agent {
    /// State directory.
    pub home: PathBuf,
    /// Saved agent state.
    pub file: AgentFile,
    keys: KeyRing,
    resolver: Resolver,
    transport: Transport,
    expected: Expected,
}

/// One message taken from the inbox.
#[derive(Debug)]
pub struct Incoming {
    /// Queue id at the mediator.
    pub id: String,
    /// The unpacked message, or why it could not be unpacked.
    pub result: std::result::Result<(Message, UnpackMetadata), did_core::Error>,
}

impl Agent {
    /// Requests mediation from the mediator named by `reference` (base URL, invitation
    /// URL or DID) for the party's identity (`identity`, else the keystore's default, else a
    /// new did:key), registers it and a routed did:peer:2 alias there, and saves the state.
    /// The identity stays the keystore's default. Idempotent for the same mediator.
    pub async fn init(home: &Path, reference: &str) -> Result<Agent> {
        Agent::init_as(home, reference, None).await
    }

    /// [`Agent::init`] for a chosen identity (a DID whose keys are in the keystore).
    pub async fn init_as(home: &Path, reference: &str, identity: Option<&Did>) -> Result<Agent> {
        let ks = Keystore::open(home)?;
        let transport = Transport::new()?;
        let resolver = Resolver::with_http()?;
        let mediator = MediatorInfo::discover(reference, &transport, &resolver).await?;
        let previous = read_file(home).ok().filter(|f| f.mediator.did == mediator.did);
        let party = match identity {
            Some(did) => ks.load(did)?,
            None => match &previous {
                Some(f) => ks.load(&f.party)?,
                None => match ks.default_identity() {
                    Ok(id) => id,
                    Err(_) => {
                        let id = Identity::generate_key();
                        ks.save(&id)?;
                        ks.set_default(&id.did)?;
                        id
                    }
                },
            },
        };
        if party.did.method() == "pkh" {
            return Err(Error::State(
                "a did:pkh is a wallet account, not an agent identity: init with a did:key and prove the \
                 account when you join (Sign-In with Ethereum)"
                    .into(),
            ));
        }
        let mut keys = KeyRing::new();
        keys.add_identity(&party);
        let link =
            Link { mediator: &mediator, client: &party.did, keys: &keys, resolver: &resolver, transport: &transport };
        let routing = link.mediate().await?;
        // The mediator's endpoint with its routing key: the one-hop Forward shape every
        // DIDComm implementation produces.
        let routing_did = Did::parse(&routing[0])?;
        let rdoc = did_core::DidResolver::resolve(&resolver, &routing_did).await?;
        let routing_key =
            rdoc.methods(did_core::Relationship::KeyAgreement).next().map(|vm| vm.id.clone()).ok_or_else(|| {
                Error::Protocol(format!("routing DID {} has no key-agreement key", routing_did.fmt_short()))
            })?;
        let uri = mediator.http.clone().or_else(|| mediator.ws.clone()).unwrap_or_default();
        let route = ServiceTarget { uri: uri.clone(), routing_keys: vec![routing_key.clone()] };
        let reuse = previous.as_ref().filter(|f| f.party == party.did && f.route.as_ref() == Some(&route));
        let routed = match reuse.and_then(|f| f.routed.as_ref()).and_then(|d| ks.load(d).ok()) {
            Some(p) => p,
            None => {
                let ep = DidCommEndpoint { uri, accept: vec!["didcomm/v2".into()], routing_keys: vec![routing_key] };
                let p = Identity::generate_peer(&[ep])?;
                ks.save(&p)?;
                p
            }
        };
        let results = link.update_recipients(&[party.did.as_str(), routed.did.as_str()], true).await?;
        if let Some((did, r)) = results.iter().find(|(_, r)| !matches!(r.as_str(), "success" | "no_change")) {
            return Err(Error::Refused {
                who: mediator.did.fmt_short(),
                code: r.clone(),
                comment: format!("the mediator did not register {did}"),
            });
        }
        if results.len() < 2 {
            return Err(Error::Protocol("the mediator answered fewer recipient updates than asked".into()));
        }
        let file = AgentFile {
            mediator,
            client: party.did.clone(),
            party: party.did.clone(),
            route: Some(route),
            routed: Some(routed.did.clone()),
        };
        write_file(home, &file)?;
        keys.add_identity(&routed);
        Ok(Agent { home: home.to_path_buf(), file, keys, resolver, transport, expected: Expected::default() })
    }

    /// Loads an agent set up by [`Agent::init`].
    pub fn load(home: &Path) -> Result<Agent> {
        let file = read_file(home)?;
        let ks = Keystore::open(home)?;
        let mut keys = KeyRing::new();
        for did in [Some(&file.client), Some(&file.party), file.routed.as_ref()].into_iter().flatten() {
            keys.add_identity(&ks.load(did)?);
        }
        Ok(Agent {
            home: home.to_path_buf(),
            file,
            keys,
            resolver: Resolver::with_http()?,
            transport: Transport::new()?,
            expected: Expected::default(),
        })
    }

    /// The link to the mediator.
    pub fn link(&self) -> Link<'_> {
        Link {
            mediator: &self.file.mediator,
            client: &self.file.client,
            keys: &self.keys,
            resolver: &self.resolver,
            transport: &self.transport,
        }
    }

    /// Our private key for `kid`, if held.
    pub fn secret(&self, kid: &str) -> Option<&did_core::SecretKey> {
        did_core::SecretStore::secret(&self.keys, kid)
    }

    /// The HTTP/WebSocket client.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The resolver (tests pin documents in it). Messages from the inbox are opened with
    /// it behind the [`Expected`] gate.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Expects messages from `did`: its document may be fetched to open them (see
    /// [`crate::inbox`]).
    pub fn expect(&self, did: &str) {
        self.expected.add(did);
    }

    /// Opens messages from anyone (a person reading their own inbox).
    pub fn expect_anyone(&self) {
        self.expected.open_all();
    }

    /// Sends `msg` from the party's identity to `to` (authcrypt, forwarded through the
    /// recipient's mediator); returns where it went. A recipient whose DID publishes no
    /// endpoint (did:key) is reached through our own mediator, which delivers only to
    /// parties registered there; use [`Agent::send_via`] with a route it gave us otherwise.
    pub async fn send(&self, msg: Message, to: &str) -> Result<ServiceTarget> {
        self.send_via(msg, to, None).await
    }

    /// [`Agent::send`] through `via` when `to`'s DID publishes no DIDComm endpoint (a
    /// route learned from an authenticated message of `to`).
    pub async fn send_via(&self, mut msg: Message, to: &str, via: Option<&ServiceTarget>) -> Result<ServiceTarget> {
        let to_did = Did::parse(to)?;
        if to_did.method() == "pkh" {
            return Err(Error::State(format!(
                "{} is a wallet account: it has no keys to message; it joins through the invitation link",
                to_did.fmt_short()
            )));
        }
        msg.from = Some(self.file.party.to_string());
        msg.to = Some(vec![to_did.to_string()]);
        let own_route = via.is_none().then_some(()).and(self.file.route.clone());
        let opts = PackOptions { via: via.cloned().or_else(|| own_route.clone()), ..PackOptions::default() };
        let packed =
            didcomm::pack_encrypted(&msg, to, Some(self.file.party.as_str()), None, &self.resolver, &self.keys, &opts)
                .await?;
        let target = packed.service.ok_or_else(|| {
            Error::Protocol(format!("{} publishes no DIDComm endpoint to send to", to_did.fmt_short()))
        })?;
        match self.transport.deliver(&target.uri, &packed.message).await {
            Err(Error::Refused { code, .. })
                if own_route.as_ref() == Some(&target) && code.contains("unknown-recipient") =>
            {
                Err(Error::Refused {
                    who: to_did.fmt_short(),
                    code: "unreachable".into(),
                    comment: format!(
                        "{} publishes no DIDComm endpoint and is not registered at your mediator: \
                         share the invitation link with them",
                        to_did.fmt_short()
                    ),
                })
            }
            r => r.map(|()| target),
        }
    }

    /// Sends a Basic Message 2.0.
    pub async fn send_text(&self, to: &str, text: &str) -> Result<ServiceTarget> {
        let mut msg = Message::typed(&BasicMessage { content: text.to_owned() });
        msg.extra.insert("lang".into(), "en".into());
        self.send(msg, to).await
    }
}

fn read_file(home: &Path) -> Result<AgentFile> {
    let p = home.join(AGENT_FILE);
    let text = std::fs::read_to_string(&p)
        .map_err(|_| Error::State(format!("{} not found: run `didmpc init --mediator URL` first", p.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::State(format!("{}: {e}", p.display())))
}

fn write_file(home: &Path, f: &AgentFile) -> Result<()> {
    let p = home.join(AGENT_FILE);
    let tmp = home.join(format!("{AGENT_FILE}.tmp"));
    let text = serde_json::to_string_pretty(f).map_err(|e| Error::State(e.to_string()))?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}
