//! The on-disk keystore: one JSON file per identity (mode 0600) in a 0700 directory,
//! plus a `default` file naming the default DID. Format: `specs/identity.md`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::did::Did;
use crate::doc::DidDocument;
use crate::error::{Error, Result};
use crate::jwk::Jwk;
use crate::secrets::Identity;

/// The format tag written into every identity file.
pub const FORMAT: &str = "didmpc-identity/1";

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    format: String,
    did: Did,
    keys: Vec<Jwk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    document: Option<serde_json::Value>,
}

/// A keystore directory.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

impl Keystore {
    /// Opens the keystore at `dir`, creating it (mode 0700) if needed. The
    /// `identities/` subdirectory that holds private keys is always kept at 0700;
    /// an existing `dir` keeps its permissions.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Keystore> {
        let dir = dir.into();
        let created = !dir.exists();
        let ids = dir.join("identities");
        fs::create_dir_all(&ids).map_err(io_err(&ids))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let private = fs::Permissions::from_mode(0o700);
            fs::set_permissions(&ids, private.clone()).map_err(io_err(&ids))?;
            if created {
                fs::set_permissions(&dir, private).map_err(io_err(&dir))?;
            }
        }
        Ok(Keystore { dir })
    }

    /// The keystore directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, did: &Did) -> PathBuf {
        let h = Sha256::digest(did.as_str().as_bytes());
        let hex: String = h[..10].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join("identities").join(format!("{}-{hex}.json", did.method()))
    }

    /// Writes `path` atomically with mode 0600: a fresh temporary file in the same
    /// directory, fsynced, renamed over `path`, then the directory fsynced.
    fn write_private(path: &Path, data: &[u8]) -> Result<()> {
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
        let written = f.write_all(data).and_then(|_| f.sync_all());
        if let Err(e) = written.and_then(|_| fs::rename(&tmp, path)) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(path)(e));
        }
        if let Some(parent) = path.parent() {
            fs::File::open(parent).and_then(|d| d.sync_all()).map_err(io_err(parent))?;
        }
        Ok(())
    }

    /// Saves an identity (replacing one with the same DID).
    pub fn save(&self, id: &Identity) -> Result<PathBuf> {
        let file = IdentityFile {
            format: FORMAT.into(),
            did: id.did.clone(),
            keys: id.to_jwks(),
            document: id.document.as_ref().map(DidDocument::to_value),
        };
        let json =
            zeroize::Zeroizing::new(serde_json::to_vec_pretty(&file).map_err(|e| Error::Keystore(e.to_string()))?);
        let path = self.path_for(&id.did);
        Keystore::write_private(&path, &json)?;
        Ok(path)
    }

    /// Loads the identity for `did`.
    pub fn load(&self, did: &Did) -> Result<Identity> {
        let path = self.path_for(did);
        if !path.exists() {
            return Err(Error::Keystore(format!("no identity for {did} in {}", self.dir.display())));
        }
        self.load_path(&path)
    }

    fn load_path(&self, path: &Path) -> Result<Identity> {
        let text = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
        let file: IdentityFile = serde_json::from_str(&text)
            .map_err(|e| Error::Keystore(format!("{}: not an identity file: {e}", path.display())))?;
        if file.format != FORMAT {
            return Err(Error::Keystore(format!("{}: unknown format {:?}", path.display(), file.format)));
        }
        let doc = match &file.document {
            Some(v) => DidDocument::from_value(v)?,
            None => derived_document(&file.did)?,
        };
        if doc.id != file.did {
            return Err(Error::Keystore(format!(
                "{}: the document is for {}, the file for {}",
                path.display(),
                doc.id,
                file.did
            )));
        }
        let mut id = Identity::from_jwks(&doc, &file.keys)?;
        id.document = file.document.is_some().then_some(doc);
        Ok(id)
    }

    /// Every identity in the store (unreadable files are reported as errors).
    pub fn list(&self) -> Result<Vec<Identity>> {
        let ids = self.dir.join("identities");
        let mut out = Vec::new();
        let mut entries: Vec<_> =
            fs::read_dir(&ids).map_err(io_err(&ids))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        entries.sort();
        for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
            out.push(self.load_path(&path)?);
        }
        Ok(out)
    }

    /// Removes an identity's file.
    pub fn remove(&self, did: &Did) -> Result<()> {
        let path = self.path_for(did);
        fs::remove_file(&path).map_err(io_err(&path))
    }

    /// Marks `did` as the default identity.
    pub fn set_default(&self, did: &Did) -> Result<()> {
        let path = self.dir.join("default");
        Keystore::write_private(&path, did.as_str().as_bytes())
    }

    /// The default identity: the one named in `default`, else the only one.
    pub fn default_identity(&self) -> Result<Identity> {
        let path = self.dir.join("default");
        if path.exists() {
            let s = fs::read_to_string(&path).map_err(io_err(&path))?;
            return self.load(&Did::parse(s.trim())?);
        }
        let mut all = self.list()?;
        match all.len() {
            1 => Ok(all.remove(0)),
            0 => {
                Err(Error::Keystore(format!("no identity in {}; create one with `didmpc did new`", self.dir.display())))
            }
            n => Err(Error::Keystore(format!("{n} identities and no default; pick one with --did"))),
        }
    }
}

/// The document of a DID whose document follows from the DID itself.
pub fn derived_document(did: &Did) -> Result<DidDocument> {
    match did.method() {
        "key" => crate::method::key::resolve(did),
        "peer" => crate::method::peer::resolve(did),
        m => Err(Error::Keystore(format!("a did:{m} identity file must include its DID document"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_list_default_and_permissions() {
        let dir = std::env::temp_dir().join(format!("didmpc-ks-{}", uuid::Uuid::new_v4()));
        let ks = Keystore::open(&dir).unwrap();
        assert!(ks.default_identity().is_err());
        let a = Identity::generate_key();
        let b = Identity::generate_peer(&[]).unwrap();
        let pa = ks.save(&a).unwrap();
        ks.save(&b).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&pa).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(ks.load(&a.did).unwrap().did, a.did);
        assert_eq!(ks.list().unwrap().len(), 2);
        assert!(ks.default_identity().is_err(), "two identities, no default");
        ks.set_default(&b.did).unwrap();
        assert_eq!(ks.default_identity().unwrap().did, b.did);
        // a tampered file is refused, not half-loaded
        let text = fs::read_to_string(&pa).unwrap();
        let other = Identity::generate_key().to_jwks();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["keys"][0]["d"] = other[0].d.as_ref().unwrap().as_str().into();
        fs::write(&pa, v.to_string()).unwrap();
        assert!(ks.load(&a.did).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
