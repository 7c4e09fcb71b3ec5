//! Where didmpc keeps its state: `--home`, `DIDMPC_HOME`, or the user's data directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use did_core::Keystore;

/// The state directory.
pub fn dir(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let base = dirs::data_dir().context("no data directory for this user; pass --home DIR or set DIDMPC_HOME")?;
    Ok(base.join("didmpc"))
}

/// Opens the keystore in the state directory.
pub fn keystore(flag: Option<&Path>) -> Result<Keystore> {
    let dir = dir(flag)?;
    Keystore::open(&dir).with_context(|| format!("opening keystore {}", dir.display()))
}
