//! The mediator's shared state and its own identity (created once, kept in a keystore
//! next to the database; a did:peer:2 is re-issued with the same keys when the public
//! URLs change, and the old DID keeps decrypting).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use did_core::didcomm::{oob, Message};
use did_core::doc::{KeyFormat, Relationship, Service};
use did_core::{
    Did, DidCommEndpoint, DidDocument, Identity, Jwk, KeyKind, KeyRing, Keystore, Resolver, SecretKey,
    VerificationMethod,
};

use crate::cluster::Cluster;
use crate::config::{Config, IdentityMethod};
use crate::error::{Error, Result};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::store::{RedisStore, SqliteStore, Store};

/// Shared state of a running mediator.
pub struct Mediator {
    pub(crate) config: Config,
    pub(crate) identity: Identity,
    pub(crate) doc: DidDocument,
    pub(crate) keys: KeyRing,
    pub(crate) resolver: Resolver,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) live: Live,
    pub(crate) metrics: Metrics,
    pub(crate) base_urls: Vec<String>,
    /// Every DID of the mediator (current first, then earlier ones it still decrypts for).
    pub(crate) own_dids: Vec<String>,
    /// did:key of the X25519 key; what `mediate-grant` names as `routing_did`.
    pub(crate) routing_did: Did,
    /// The session relay.
    pub(crate) relay: relay::server::Relay,
    /// The secret probe keys derive from (`relay::reflex`).
    pub(crate) reflex: relay::reflex::ServerSecret,
    /// The probe sockets (`[udp]`).
    pub(crate) udp: crate::transport::udp::Sockets,
    /// Bytes of buffers held in memory (`limits.memory_budget_bytes`).
    pub(crate) memory: Arc<crate::quota::MemoryBudget>,
    /// This instance's part in a cluster (with a Redis store).
    pub(crate) cluster: Option<Arc<Cluster>>,
}

impl Mediator {
    /// Opens the store named in `config` (SQLite, or Redis as one instance of a cluster),
    /// loads or creates the mediator's identity for the addresses it will be reached at, and
    /// returns the shared state.
    pub async fn open(config: Config, listen: SocketAddr) -> Result<Arc<Mediator>> {
        config.validate()?;
        let Some(url) = config.store.redis_url() else {
            let store = SqliteStore::open(&config.store.db, config.store.sync, config.store.batch)?;
            return Mediator::build(config, listen, Arc::new(store), None);
        };
        let instance = crate::cluster::new_instance_id();
        let redis = RedisStore::connect(url, &config.store.redis_prefix, &instance).await?;
        tracing::info!(%instance, "mediator instance on a Redis store");
        Mediator::build(config, listen, Arc::new(redis.clone()), Some(redis))
    }

    /// Like [`Mediator::open`] with a given store (one instance: no cluster).
    pub fn with_store(config: Config, listen: SocketAddr, store: Arc<dyn Store>) -> Result<Arc<Mediator>> {
        Mediator::build(config, listen, store, None)
    }

    fn build(
        config: Config,
        listen: SocketAddr,
        store: Arc<dyn Store>,
        redis: Option<RedisStore>,
    ) -> Result<Arc<Mediator>> {
        let base_urls = config.base_urls(listen);
        let udp = crate::transport::udp::bind(&config.udp, &base_urls)?;
        let relay_limits = config.relay.limits();
        let endpoints = endpoints_for(&base_urls);
        let ks = Keystore::open(keys_dir(&config))?;
        // Instances of a cluster may start at once on one keystore: one creates the identity,
        // the others find it.
        let lock = identity_lock(&ks)?;
        let identity = match config.identity.method {
            IdentityMethod::Peer => peer_identity(&ks, &endpoints)?,
            IdentityMethod::Web => {
                web_identity(&ks, config.identity.web_host.as_deref().unwrap_or_default(), &endpoints)?
            }
        };
        drop(lock);
        let doc = match &identity.document {
            Some(d) => d.clone(),
            None => did_core::keystore::derived_document(&identity.did)?,
        };
        let mut keys = KeyRing::new();
        let mut own_dids = vec![identity.did.to_string()];
        for old in ks.list()? {
            keys.add_identity(&old);
            if old.did != identity.did {
                own_dids.push(old.did.to_string());
            }
        }
        keys.add_identity(&identity);
        // The routing DID parties put in their services: a short did:key of our X25519
        // key-agreement key, so forwards stay small and every client can resolve it.
        let x = identity
            .keys()
            .find(|(_, k)| k.kind() == KeyKind::X25519)
            .map(|(_, k)| k.clone())
            .ok_or_else(|| Error::Config("the mediator identity has no X25519 key".into()))?;
        let link = redis.as_ref().map(|_| link_key(&config, &x)).transpose()?;
        let routing_did = did_core::method::key::did_for(&x.public_key());
        keys.insert(format!("{routing_did}#{}", x.public_key().to_multibase()), x);
        own_dids.push(routing_did.to_string());
        let resolver = Resolver::with_http_policy(config.resolver.policy())?;
        resolver.insert(doc.clone());
        tracing::info!(did = %identity.did, "mediator identity");
        let memory = crate::quota::MemoryBudget::new(config.limits.memory_budget_bytes);
        let cluster = match (redis, link) {
            (Some(redis), Some(key)) => {
                let advertise = match &config.cluster.advertise_url {
                    Some(u) => u.clone(),
                    None if listen.ip().is_unspecified() => {
                        return Err(Error::Config(format!(
                            "listening on {listen}: set cluster.advertise_url to the address the other instances \
                             reach this one at"
                        )))
                    }
                    None => format!("http://{listen}"),
                };
                Some(Arc::new(Cluster::new(redis, advertise, key)?))
            }
            _ => None,
        };
        Ok(Arc::new(Mediator {
            config,
            identity,
            doc,
            keys,
            resolver,
            store,
            live: Live::default(),
            metrics: Metrics::default(),
            base_urls,
            own_dids,
            routing_did,
            relay: relay::server::Relay::new(relay_limits),
            reflex: relay::reflex::ServerSecret::generate(),
            udp,
            memory,
            cluster,
        }))
    }

    /// This instance's part in a cluster, when the store is Redis.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// The mediator's DID.
    pub fn did(&self) -> &Did {
        &self.identity.did
    }

    /// The DID parties list as their routing key (a did:key of our X25519 key).
    pub fn routing_did(&self) -> &Did {
        &self.routing_did
    }

    /// The session relay.
    pub fn relay(&self) -> &relay::server::Relay {
        &self.relay
    }

    /// Where parties send reflexive-address probes (`host:port`; empty: no probes).
    pub fn udp_addresses(&self) -> &[String] {
        &self.udp.advertised
    }

    /// The relay's WebSocket URL (`ws(s)://<first public base>/relay`).
    pub fn relay_url(&self) -> String {
        let b = &self.base_urls[0];
        format!("{}/relay", b.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1))
    }

    /// The mediator's DID document.
    pub fn document(&self) -> &DidDocument {
        &self.doc
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The resolver the mediator uses (tests pin documents in it).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The memory budget and what is held against it.
    pub fn memory(&self) -> &Arc<crate::quota::MemoryBudget> {
        &self.memory
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// An Out-of-Band invitation to request mediation from this mediator.
    pub fn invitation(&self) -> Message {
        oob::invitation(self.identity.did.as_str(), "request-mediate", "Request mediation", vec![])
    }

    /// The invitation as a URL on the first public base URL.
    pub fn invitation_url(&self) -> String {
        oob::to_url(&self.invitation(), &format!("{}/invitation", self.base_urls[0]))
    }

    /// Public base URLs.
    pub fn base_urls(&self) -> &[String] {
        &self.base_urls
    }
}

/// Where the mediator's keys live: `identity.keys`, or `<db>.keys/`.
fn keys_dir(config: &Config) -> PathBuf {
    if let Some(dir) = &config.identity.keys {
        return dir.clone();
    }
    let mut p = config.store.db.clone().into_os_string();
    p.push(".keys");
    PathBuf::from(p)
}

/// An exclusive lock on the keystore while the identity is loaded or made.
fn identity_lock(ks: &Keystore) -> Result<std::fs::File> {
    let f =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(ks.dir().join(".identity.lock"))?;
    f.lock()?;
    Ok(f)
}

/// The key authenticating instance links: from `cluster.secret_file`, or derived from the
/// mediator's X25519 key (every instance holds it).
fn link_key(config: &Config, x25519: &SecretKey) -> Result<relay::mesh::LinkKey> {
    match &config.cluster.secret_file {
        Some(path) => {
            let secret = zeroize::Zeroizing::new(
                std::fs::read(path)
                    .map_err(|e| Error::Config(format!("cluster.secret_file {}: {e}", path.display())))?,
            );
            if secret.len() < 32 {
                return Err(Error::Config("cluster.secret_file must hold at least 32 bytes".into()));
            }
            Ok(relay::mesh::LinkKey::derive(&secret))
        }
        None => Ok(relay::mesh::LinkKey::derive(&x25519.to_bytes())),
    }
}

/// `<url>/didcomm` and `ws(s)://…/ws` for each base URL.
pub(crate) fn endpoints_for(base_urls: &[String]) -> Vec<DidCommEndpoint> {
    let mut out = Vec::new();
    for b in base_urls {
        let ep = |uri: String| DidCommEndpoint { uri, accept: vec!["didcomm/v2".into()], routing_keys: vec![] };
        out.push(ep(format!("{b}/didcomm")));
        let ws = b.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        out.push(ep(format!("{ws}/ws")));
    }
    out
}

fn peer_identity(ks: &Keystore, endpoints: &[DidCommEndpoint]) -> Result<Identity> {
    let current = match ks.default_identity() {
        Ok(id) if id.did.method() == "peer" => Some(id),
        _ => None,
    };
    if let Some(id) = current {
        let doc = did_core::keystore::derived_document(&id.did)?;
        if doc.didcomm_endpoints().cloned().collect::<Vec<_>>() == endpoints {
            return Ok(id);
        }
        let key = |kind: KeyKind| id.keys().find(|(_, k)| k.kind() == kind).map(|(_, k)| k.clone());
        if let (Some(ed), Some(x)) = (key(KeyKind::Ed25519), key(KeyKind::X25519)) {
            let new = Identity::peer_from_keys(ed, x, endpoints)?;
            tracing::warn!(old = %id.did.fmt_short(), new = %new.did.fmt_short(), "public URLs changed; re-issued the mediator did:peer:2 with the same keys");
            ks.save(&new)?;
            ks.set_default(&new.did)?;
            return Ok(new);
        }
    }
    let id = Identity::generate_peer(endpoints)?;
    ks.save(&id)?;
    ks.set_default(&id.did)?;
    Ok(id)
}

fn web_identity(ks: &Keystore, host: &str, endpoints: &[DidCommEndpoint]) -> Result<Identity> {
    let did = Did::parse(&format!("did:web:{host}")).map_err(|e| Error::Config(format!("identity.web_host: {e}")))?;
    let (ed, x) = match ks.load(&did) {
        Ok(id) => {
            let key = |kind: KeyKind| id.keys().find(|(_, k)| k.kind() == kind).map(|(_, k)| k.clone());
            match (key(KeyKind::Ed25519), key(KeyKind::X25519)) {
                (Some(ed), Some(x)) => (ed, x),
                _ => return Err(Error::Config(format!("stored identity {did} lacks an Ed25519 or X25519 key"))),
            }
        }
        Err(_) => (SecretKey::generate(KeyKind::Ed25519), SecretKey::generate(KeyKind::X25519)),
    };
    let mut doc = DidDocument::new(did.clone());
    doc.context = serde_json::json!(["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"]);
    let vm = |n: u8, key: did_core::PublicKey| VerificationMethod {
        id: format!("{did}#key-{n}"),
        type_: "JsonWebKey2020".into(),
        controller: did.to_string(),
        key,
        format: KeyFormat::Jwk,
    };
    use Relationship::*;
    doc.add_method(vm(1, ed.public_key()), &[Authentication, AssertionMethod])?;
    doc.add_method(vm(2, x.public_key()), &[KeyAgreement])?;
    doc.service.push(Service::DidComm { id: format!("{did}#didcomm"), endpoints: endpoints.to_vec() });
    let jwks =
        [Jwk::from_secret(&ed).with_kid(format!("{did}#key-1")), Jwk::from_secret(&x).with_kid(format!("{did}#key-2"))];
    let mut id = Identity::from_jwks(&doc, &jwks)?;
    id.document = Some(doc);
    ks.save(&id)?;
    ks.set_default(&id.did)?;
    Ok(id)
}
