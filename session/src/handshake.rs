//! The Noise KK handshake (`Noise_KK_25519_ChaChaPoly_BLAKE2s`): both parties know each
//! other's X25519 key-agreement key from their DID documents, so one round trip
//! authenticates both ends. The prologue binds the session id, the roster digest and
//! both DIDs, so a handshake cannot be replayed into another session or pairing.

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_KK_25519_ChaChaPoly_BLAKE2s";
/// First bytes of every prologue.
pub const PROLOGUE_LABEL: &[u8] = b"didmpc-session/1";
/// Length of both handshake messages (ephemeral key + empty encrypted payload).
pub const MESSAGE_LEN: usize = 48;

/// Which end of the handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the first message; opens odd stream ids.
    Initiator,
    /// Answers; opens even stream ids.
    Responder,
}

/// What both sides must agree on.
pub struct Params<'a> {
    /// Session id (at most 255 bytes).
    pub session_id: &'a [u8],
    /// SHA-256 (or similar) digest of the roster both sides accepted.
    pub roster_digest: &'a [u8; 32],
    /// The initiator's DID.
    pub initiator_did: &'a str,
    /// The responder's DID.
    pub responder_did: &'a str,
    /// Our X25519 secret (from our DID's key-agreement key).
    pub local_static: &'a [u8; 32],
    /// The peer's X25519 public key (from its DID document).
    pub remote_static: &'a [u8; 32],
}

/// The result of a handshake: transport keys and the handshake hash.
pub struct Keys {
    /// Our role.
    pub role: Role,
    /// Key for packets we send.
    pub send: Zeroizing<[u8; 32]>,
    /// Key for packets we receive.
    pub recv: Zeroizing<[u8; 32]>,
    /// Noise handshake hash (a channel binding; safe to log).
    pub handshake_hash: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({:?}, <redacted>)", self.role)
    }
}

/// The prologue: label ‖ len(session_id) u8 ‖ session_id ‖ roster_digest ‖
/// len u16 ‖ initiator DID ‖ len u16 ‖ responder DID.
pub fn prologue(p: &Params) -> Result<Vec<u8>> {
    if p.session_id.len() > 255 || p.initiator_did.len() > 65_535 || p.responder_did.len() > 65_535 {
        return Err(Error::Handshake("session id or DID too long".into()));
    }
    let mut v = Vec::with_capacity(
        PROLOGUE_LABEL.len() + 1 + p.session_id.len() + 36 + p.initiator_did.len() + p.responder_did.len(),
    );
    v.extend_from_slice(PROLOGUE_LABEL);
    v.push(p.session_id.len() as u8);
    v.extend_from_slice(p.session_id);
    v.extend_from_slice(p.roster_digest);
    for did in [p.initiator_did, p.responder_did] {
        v.extend_from_slice(&(did.len() as u16).to_be_bytes());
        v.extend_from_slice(did.as_bytes());
    }
    Ok(v)
}

fn builder<'a>(p: &'a Params, prologue: &'a [u8]) -> Result<snow::Builder<'a>> {
    let params = NOISE_PARAMS.parse().map_err(|e| Error::Handshake(format!("{e:?}")))?;
    snow::Builder::new(params)
        .local_private_key(p.local_static)
        .and_then(|b| b.remote_public_key(p.remote_static))
        .and_then(|b| b.prologue(prologue))
        .map_err(|e| Error::Handshake(e.to_string()))
}

fn keys(mut hs: snow::HandshakeState, role: Role) -> Keys {
    let (k1, k2) = hs.dangerously_get_raw_split();
    let (k1, k2) = (Zeroizing::new(k1), Zeroizing::new(k2));
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&hs.get_handshake_hash()[..32]);
    let (send, recv) = match role {
        Role::Initiator => (k1, k2),
        Role::Responder => (k2, k1),
    };
    Keys { role, send, recv, handshake_hash: hash }
}

/// An initiator waiting for the responder's message.
pub struct Initiator {
    hs: snow::HandshakeState,
}

impl Initiator {
    /// Starts a handshake; returns the state and the first message to send.
    pub fn start(p: &Params) -> Result<(Initiator, Vec<u8>)> {
        let prologue = prologue(p)?;
        let mut hs = builder(p, &prologue)?.build_initiator().map_err(|e| Error::Handshake(e.to_string()))?;
        let mut msg = vec![0u8; MESSAGE_LEN];
        let n = hs.write_message(&[], &mut msg).map_err(|e| Error::Handshake(e.to_string()))?;
        msg.truncate(n);
        Ok((Initiator { hs }, msg))
    }

    /// Reads the responder's message and derives the transport keys.
    pub fn finish(mut self, msg: &[u8]) -> Result<Keys> {
        if msg.len() != MESSAGE_LEN {
            return Err(Error::Handshake(format!("expected a {MESSAGE_LEN}-byte message, got {}", msg.len())));
        }
        let mut payload = [0u8; MESSAGE_LEN];
        self.hs.read_message(msg, &mut payload).map_err(|_| {
            Error::Handshake("the responder's message does not authenticate (wrong key or prologue)".into())
        })?;
        Ok(keys(self.hs, Role::Initiator))
    }
}

/// Answers an initiator's first message; returns the keys and the message to send back.
pub fn respond(p: &Params, msg: &[u8]) -> Result<(Keys, Vec<u8>)> {
    if msg.len() != MESSAGE_LEN {
        return Err(Error::Handshake(format!("expected a {MESSAGE_LEN}-byte message, got {}", msg.len())));
    }
    let prologue = prologue(p)?;
    let mut hs = builder(p, &prologue)?.build_responder().map_err(|e| Error::Handshake(e.to_string()))?;
    let mut payload = [0u8; MESSAGE_LEN];
    hs.read_message(msg, &mut payload).map_err(|_| {
        Error::Handshake("the initiator's message does not authenticate (wrong key or prologue)".into())
    })?;
    let mut out = vec![0u8; MESSAGE_LEN];
    let n = hs.write_message(&[], &mut out).map_err(|e| Error::Handshake(e.to_string()))?;
    out.truncate(n);
    Ok((keys(hs, Role::Responder), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(seed: u8) -> ([u8; 32], [u8; 32]) {
        let b = snow::Builder::new(NOISE_PARAMS.parse().unwrap());
        let _ = seed;
        let kp = b.generate_keypair().unwrap();
        (kp.private.try_into().unwrap(), kp.public.try_into().unwrap())
    }

    fn params<'a>(local: &'a [u8; 32], remote: &'a [u8; 32], sid: &'a [u8], digest: &'a [u8; 32]) -> Params<'a> {
        Params {
            session_id: sid,
            roster_digest: digest,
            initiator_did: "did:ex:a",
            responder_did: "did:ex:b",
            local_static: local,
            remote_static: remote,
        }
    }

    #[test]
    fn both_sides_agree() {
        let (a_sk, a_pk) = keypair(1);
        let (b_sk, b_pk) = keypair(2);
        let d = [9u8; 32];
        let (init, m1) = Initiator::start(&params(&a_sk, &b_pk, b"s1", &d)).unwrap();
        assert_eq!(m1.len(), MESSAGE_LEN);
        let (kb, m2) = respond(&params(&b_sk, &a_pk, b"s1", &d), &m1).unwrap();
        let ka = init.finish(&m2).unwrap();
        assert_eq!(*ka.send, *kb.recv);
        assert_eq!(*ka.recv, *kb.send);
        assert_ne!(*ka.send, *ka.recv);
        assert_eq!(ka.handshake_hash, kb.handshake_hash);
    }

    #[test]
    fn wrong_key_or_binding_fails() {
        let (a_sk, a_pk) = keypair(1);
        let (b_sk, b_pk) = keypair(2);
        let (m_sk, _m_pk) = keypair(3);
        let d = [9u8; 32];
        // Mallory, holding a different static key, cannot answer as Bob.
        let (_, m1) = Initiator::start(&params(&a_sk, &b_pk, b"s1", &d)).unwrap();
        assert!(respond(&params(&m_sk, &a_pk, b"s1", &d), &m1).is_err());
        // Another session id or roster digest: the prologue differs, the handshake fails.
        assert!(respond(&params(&b_sk, &a_pk, b"s2", &d), &m1).is_err());
        assert!(respond(&params(&b_sk, &a_pk, b"s1", &[8u8; 32]), &m1).is_err());
        // Bob expecting someone else as initiator fails too.
        let (_, x_pk) = keypair(4);
        assert!(respond(&params(&b_sk, &x_pk, b"s1", &d), &m1).is_err());
        // A tampered answer is refused by the initiator.
        let (init, m1) = Initiator::start(&params(&a_sk, &b_pk, b"s1", &d)).unwrap();
        let (_, mut m2) = respond(&params(&b_sk, &a_pk, b"s1", &d), &m1).unwrap();
        m2[40] ^= 1;
        assert!(init.finish(&m2).is_err());
    }
}
