//! Proofs kept between `didmpc proof siwe` (which prints the message, then takes the
//! wallet's signature) and `didmpc join`: `<home>/proofs/<session>.siwe.txt` (the exact
//! message awaiting a signature) and `<home>/proofs/<session>.json` (the finished proof).

use std::path::{Path, PathBuf};

use super::Presented;
use crate::error::{Error, Result};

/// Directory (in the home) of proofs.
pub const PROOFS_DIR: &str = "proofs";

fn path(home: &Path, session: &str, ext: &str) -> Result<PathBuf> {
    if session.is_empty() || !session.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        return Err(Error::State(format!("{session:?} is not a session id")));
    }
    Ok(home.join(PROOFS_DIR).join(format!("{session}.{ext}")))
}

fn write(p: &Path, text: &str) -> Result<()> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(p, text)?;
    Ok(())
}

/// Keeps the SIWE message printed for a wallet to sign.
pub fn save_pending(home: &Path, session: &str, message: &str) -> Result<()> {
    write(&path(home, session, "siwe.txt")?, message)
}

/// The SIWE message printed earlier for this session.
pub fn load_pending(home: &Path, session: &str) -> Result<String> {
    let p = path(home, session, "siwe.txt")?;
    std::fs::read_to_string(&p).map_err(|_| {
        Error::State(format!("no SIWE message was printed for session {session} here; run `didmpc proof siwe` first"))
    })
}

/// Keeps a finished proof for `didmpc join`.
pub fn save(home: &Path, session: &str, proof: &Presented) -> Result<PathBuf> {
    let p = path(home, session, "json")?;
    let text = serde_json::to_string_pretty(proof).map_err(|e| Error::State(e.to_string()))?;
    write(&p, &text)?;
    Ok(p)
}

/// The finished proof for `session`, if there is one.
pub fn load(home: &Path, session: &str) -> Result<Option<Presented>> {
    let p = path(home, session, "json")?;
    match std::fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| Error::State(format!("{}: {e}", p.display()))),
        Err(_) => Ok(None),
    }
}
