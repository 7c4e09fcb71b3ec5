//! The session descriptor: what an MPC session is (who, which program, which options,
//! until when), signed by the host's DID. Every party checks the signature and its own
//! program against it before anything runs (see `specs/mpc-session.md`).

use std::path::Path;

use did_core::jose::jws::{self, ParsedJws};
use did_core::{Did, DidResolver, Relationship};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::agent::Agent;
use crate::error::{Error, Result};

/// JWS `typ` of a signed descriptor.
pub const DESCRIPTOR_TYP: &str = "application/didmpc-session+json";
/// Descriptor format version.
pub const VERSION: u32 = 1;
/// Most parties in one session.
pub const MAX_PARTIES: usize = 64;
/// Most program arguments.
pub const MAX_ARGS: usize = 256;
/// Longest program argument, bytes.
pub const MAX_ARG_BYTES: usize = 4096;

/// The program every party must run, as digests they can compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// File name of the program (informational; the digest is what counts).
    pub name: String,
    /// SHA-256 of the program file, lowercase hex.
    pub sha256: String,
    /// Arguments passed to the program after the MPyC options.
    pub args: Vec<String>,
    /// `mpyc.__version__` the host runs.
    pub mpyc: String,
}

/// MPyC options every party gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpcOptions {
    /// `-T`: the threshold (None: MPyC's default, (m-1)/2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Pass `--ssl` (MPyC's own TLS between parties, inside our tunnels).
    #[serde(default)]
    pub ssl: bool,
}

impl MpcOptions {
    /// The threshold MPyC runs with for `m` parties: the given one, else MPyC's default
    /// `(m-1)/2`.
    pub fn threshold_for(&self, m: usize) -> u32 {
        self.threshold.unwrap_or((m.saturating_sub(1) / 2) as u32)
    }
}

/// An MPC session as the host defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Format version ([`VERSION`]).
    pub v: u32,
    /// Session id (base64url of 16 random bytes).
    pub id: String,
    /// The host's DID (also in the roster).
    pub host: String,
    /// Where the host is reached when its DID publishes no endpoint (its mediator's
    /// endpoint and routing key): invitees who come by the link answer there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_route: Option<did_core::didcomm::ServiceTarget>,
    /// The parties, in MPyC pid order.
    pub roster: Vec<String>,
    /// The program.
    pub program: Program,
    /// MPyC options.
    pub mpyc: MpcOptions,
    /// Proof policy (which identity proofs the host asks for; null: none).
    #[serde(default)]
    pub proofs: Value,
    /// When it was made (Unix seconds).
    pub created: u64,
    /// Joining is possible until then (Unix seconds).
    pub expires: u64,
    /// A peer silent for this long ends the run with an error (seconds).
    pub peer_deadline_secs: u64,
}

/// A descriptor with its signature, checked.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The descriptor.
    pub descriptor: Descriptor,
    /// The JWS (General JSON) as sent.
    pub jws: Value,
    /// SHA-256 of the signed payload: the roster digest bound into every Noise handshake.
    pub digest: [u8; 32],
}

impl Signed {
    /// What identity proofs for this session are bound to (its id, digest, join deadline
    /// and proof policy), as the `proofs` crate takes it.
    pub fn proof_session(&self) -> proofs::Session {
        proofs::Session {
            id: self.descriptor.id.clone(),
            digest: self.digest,
            join_deadline: self.descriptor.expires,
            policy: self.descriptor.proofs.clone(),
        }
    }
}

impl Descriptor {
    /// Structural checks every party applies.
    pub fn check(&self, now: u64) -> Result<()> {
        let bad = |why: String| Err(Error::Protocol(format!("session descriptor: {why}")));
        if self.v != VERSION {
            return bad(format!("version {} (we speak {VERSION})", self.v));
        }
        if self.roster.len() < 2 || self.roster.len() > MAX_PARTIES {
            return bad(format!("{} parties (2..={MAX_PARTIES} allowed)", self.roster.len()));
        }
        for (i, d) in self.roster.iter().enumerate() {
            Did::parse(d)?;
            if self.roster[..i].contains(d) {
                return bad(format!("{d} appears twice in the roster"));
            }
        }
        if !self.roster.contains(&self.host) {
            return bad("the host is not in the roster".into());
        }
        if let Some(t) = self.mpyc.threshold {
            if 2 * t as usize >= self.roster.len() {
                return bad(format!("threshold {t} needs more than {} parties", 2 * t));
            }
        }
        if self.expires <= now {
            return bad("expired".into());
        }
        if self.program.sha256.len() != 64 || !self.program.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("program digest is not SHA-256 hex".into());
        }
        if self.program.args.len() > MAX_ARGS || self.program.args.iter().any(|a| a.len() > MAX_ARG_BYTES) {
            return bad(format!("more than {MAX_ARGS} program arguments or one longer than {MAX_ARG_BYTES} bytes"));
        }
        let printable = |t: &str| !t.chars().any(char::is_control);
        if !printable(&self.program.name) || !self.program.args.iter().all(|a| printable(a)) {
            return bad("the program name or an argument holds control characters".into());
        }
        if let Some(p) = proofs::Policy::from_value(&self.proofs)? {
            if let Some(d) = p.parties.keys().find(|d| !self.roster.contains(d)) {
                return bad(format!("the proof policy names {d}, who is not in the roster"));
            }
        }
        Ok(())
    }

    /// What a joiner is shown, one line each: host, program and digest, arguments, MPyC
    /// version, parties and threshold, then one line per pid (`you` marks `me`). DIDs in
    /// their short form; nothing is cut from the digest or the arguments.
    pub fn summary(&self, me: Option<usize>) -> Vec<String> {
        let short = |d: &str| Did::parse(d).map(|d| d.fmt_short()).unwrap_or_else(|_| d.to_owned());
        let args = if self.program.args.is_empty() { "(none)".to_owned() } else { self.program.args.join(" ") };
        let ssl = if self.mpyc.ssl { ", --ssl" } else { "" };
        let mut lines = vec![
            format!("session {} from {}", self.id, short(&self.host)),
            format!("  program:   {} (sha256 {})", self.program.name, self.program.sha256),
            format!("  arguments: {args}"),
            format!(
                "  MPyC {}: {} parties, threshold {}{ssl}",
                self.program.mpyc,
                self.roster.len(),
                self.mpyc.threshold_for(self.roster.len())
            ),
        ];
        for (j, did) in self.roster.iter().enumerate() {
            let you = if Some(j) == me { "  (you)" } else { "" };
            lines.push(format!("  pid {j}: {}{you}", short(did)));
        }
        lines
    }

    /// The pid of `did`, if invited.
    pub fn pid_of(&self, did: &str) -> Option<usize> {
        self.roster.iter().position(|d| d == did)
    }

    /// Signs with the host agent's authentication key.
    pub async fn sign(&self, host: &Agent) -> Result<Signed> {
        if self.host != host.file.party.as_str() {
            return Err(Error::State("only the host signs its descriptor".into()));
        }
        let payload = serde_json::to_vec(self).map_err(|e| Error::State(e.to_string()))?;
        let doc = host.resolver().resolve(&host.file.party).await?;
        let (kid, key) = doc
            .methods(Relationship::Authentication)
            .find_map(|m| host.secret(&m.id).map(|k| (m.id.clone(), k)))
            .ok_or_else(|| Error::State("no private authentication key for our DID".into()))?;
        let signed = jws::sign(&payload, DESCRIPTOR_TYP, &kid, key)?;
        let jws = serde_json::to_value(&signed).map_err(|e| Error::State(e.to_string()))?;
        Ok(Signed { descriptor: self.clone(), jws, digest: Sha256::digest(&payload).into() })
    }
}

/// Verifies a signed descriptor: signature by an authentication key of `host`, then
/// [`Descriptor::check`].
pub async fn verify(jws_value: &Value, resolver: &dyn DidResolver, now: u64) -> Result<Signed> {
    let parsed = ParsedJws::parse(jws_value.clone())?;
    let descriptor: Descriptor = serde_json::from_slice(&parsed.payload)
        .map_err(|e| Error::Protocol(format!("session descriptor is malformed: {e}")))?;
    let host = Did::parse(&descriptor.host)?;
    let [sig] = &parsed.signatures[..] else {
        return Err(Error::Protocol("session descriptor must carry exactly one signature".into()));
    };
    let doc = resolver.resolve(&host).await?;
    let method = doc.methods(Relationship::Authentication).find(|m| m.id == sig.kid).ok_or_else(|| {
        Error::Protocol(format!("descriptor signed by {}, not an authentication key of the host", sig.kid))
    })?;
    sig.verify(&method.key)?;
    descriptor.check(now)?;
    Ok(Signed { descriptor, jws: jws_value.clone(), digest: Sha256::digest(&parsed.payload).into() })
}

/// The digest of the final roster: the signed descriptor's digest and, per pid, the DID
/// each member acts as. Every pairwise Noise session binds it, so a host that tells two
/// parties different rosters makes their handshake fail.
pub fn final_digest(signed: &Signed, members: &[crate::wire::Member]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"didmpc final roster v1\0");
    h.update(signed.digest);
    for m in members {
        h.update(m.agent.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

/// SHA-256 (hex) of a program file.
pub fn program_digest(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::State(format!("cannot read the program {}: {e}", path.display())))?;
    Ok(hex(&Sha256::digest(bytes)))
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How the local program differs from the descriptor's, in words (None: it matches).
pub fn program_mismatch(want: &Program, local: &Program) -> Option<String> {
    let mut why = Vec::new();
    if want.sha256 != local.sha256 {
        why.push(format!(
            "the program differs: {} has SHA-256 {}, the host's {} has {}",
            local.name, local.sha256, want.name, want.sha256
        ));
    }
    if want.mpyc != local.mpyc {
        why.push(format!("MPyC versions differ: here {}, the host runs {}", local.mpyc, want.mpyc));
    }
    if want.args != local.args {
        why.push(format!("arguments differ: here {:?}, the host's {:?}", local.args, want.args));
    }
    (!why.is_empty()).then(|| why.join("; "))
}
