//! The pinned MPyC environment: a Python venv in the didmpc cache with exactly the
//! packages of `mpc/requirements-mpyc.txt`, made with `python3 -m venv` and pip from Rust,
//! so an installed `didmpc` needs no source tree and no shell scripts.
//!
//! Layout (shared with `scripts/pinned-venv.sh`, which makes the same venv for the tests):
//! `<cache>/venv-mpyc`, where `<cache>` is `$DIDMPC_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/didmpc`, else `$HOME/.cache/didmpc`. A marker file in the venv holds
//! SHA-256 of the requirements text followed by the base interpreter's `(major, minor)`;
//! a venv whose marker matches and whose import check passes is reused. Concurrent
//! callers are serialised by a lock file next to the venv.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The pinned requirements (the full resolved set, installed with `--no-deps`).
pub const MPYC_REQUIREMENTS: &str = include_str!("../../mpc/requirements-mpyc.txt");
/// The MPyC version the pins install.
pub const MPYC_VERSION: &str = "0.11";
/// Environment variable naming the cache directory.
pub const ENV_CACHE_DIR: &str = "DIDMPC_CACHE_DIR";
/// Environment variable naming the base interpreter (default `python3`).
pub const ENV_BASE_PYTHON: &str = "DIDMPC_PYTHON";
/// Name of the marker file inside the venv.
const MARKER: &str = ".didmpc-requirements.sha256";

/// The didmpc cache directory.
pub fn cache_dir() -> Result<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = nonempty(ENV_CACHE_DIR) {
        return Ok(d);
    }
    if let Some(d) = nonempty("XDG_CACHE_HOME") {
        return Ok(d.join("didmpc"));
    }
    if let Some(h) = nonempty("HOME") {
        return Ok(h.join(".cache").join("didmpc"));
    }
    Err(Error::State(format!("no cache directory: set {ENV_CACHE_DIR} (or HOME)")))
}

/// A pinned venv to create or reuse.
#[derive(Debug, Clone)]
pub struct PinnedVenv {
    /// Venv name (the directory is `<cache>/venv-<name>`).
    pub name: String,
    /// The requirements file's text.
    pub requirements: String,
    /// Python code that must run without error in a usable venv.
    pub import_check: String,
    /// The interpreter that creates the venv.
    pub base_python: PathBuf,
}

impl PinnedVenv {
    /// The MPyC venv, made from `$DIDMPC_PYTHON` (default `python3`).
    pub fn mpyc() -> PinnedVenv {
        let base = std::env::var_os(ENV_BASE_PYTHON).filter(|v| !v.is_empty()).unwrap_or_else(|| "python3".into());
        PinnedVenv {
            name: "mpyc".into(),
            requirements: MPYC_REQUIREMENTS.into(),
            // Importing mpyc.runtime also runs its option parsing and setup: a real smoke test.
            import_check: format!(
                "import mpyc, mpyc.runtime; assert mpyc.__version__ == {MPYC_VERSION:?}, mpyc.__version__"
            ),
            base_python: PathBuf::from(base),
        }
    }

    /// Creates the venv in `cache` unless a matching one is there; returns its python.
    /// Progress lines go to `log`.
    pub fn ensure(&self, cache: &Path, log: &dyn Fn(&str)) -> Result<PathBuf> {
        let venv = cache.join(format!("venv-{}", self.name));
        let python = venv.join("bin").join("python");
        let version = self.base_version()?;
        let want = self.marker(&version);
        if self.usable(&venv, &python, &want) {
            return Ok(python);
        }
        std::fs::create_dir_all(cache)
            .map_err(|e| Error::State(format!("cannot create the cache {}: {e}", cache.display())))?;
        let lock = std::fs::File::create(cache.join(format!("venv-{}.lock", self.name)))?;
        lock.lock()?;
        if self.usable(&venv, &python, &want) {
            return Ok(python); // someone else made it while we waited
        }
        log(&format!("creating the Python venv {} (first use: downloads from PyPI)", venv.display()));
        if venv.exists() {
            std::fs::remove_dir_all(&venv)?;
        }
        let made = self.create(&venv, &python);
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&venv);
        }
        made?;
        std::fs::write(venv.join(MARKER), format!("{want}\n"))?;
        log("the Python venv is ready");
        Ok(python)
    }

    fn create(&self, venv: &Path, python: &Path) -> Result<()> {
        let base = self.base_python.display().to_string();
        let has_venv = Command::new(&self.base_python)
            .args(["-c", "import venv, ensurepip"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_venv {
            return Err(Error::State(format!(
                "`{base} -m venv` is not usable (the venv/ensurepip modules are missing); \
                 on Debian/Ubuntu: apt-get install python3-venv"
            )));
        }
        run(Command::new(&self.base_python).arg("-m").arg("venv").arg(venv), &format!("{base} -m venv"))?;
        let req = venv.join("requirements.txt");
        std::fs::File::create(&req)?.write_all(self.requirements.as_bytes())?;
        let mut pip = Command::new(python);
        pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", "--no-deps", "-r"])
            .arg(&req);
        run(&mut pip, "pip install (is PyPI reachable?)")?;
        run(Command::new(python).args(["-m", "pip", "check"]), "pip check")?;
        run(Command::new(python).args(["-c", &self.import_check]), "the import check of the new venv")
    }

    fn usable(&self, venv: &Path, python: &Path, want: &str) -> bool {
        let marker = std::fs::read_to_string(venv.join(MARKER)).unwrap_or_default();
        python.is_file()
            && marker.trim() == want
            && Command::new(python)
                .args(["-c", &self.import_check])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// `(major, minor)` of the base interpreter, as Python prints the tuple.
    fn base_version(&self) -> Result<String> {
        let out = Command::new(&self.base_python)
            .args(["-c", "import sys; print(sys.version_info[:2])"])
            .stderr(Stdio::null())
            .output()
            .map_err(|e| {
                Error::State(format!(
                    "cannot run {} ({e}): install Python 3.10 or newer, or set {ENV_BASE_PYTHON}",
                    self.base_python.display()
                ))
            })?;
        let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let minor = v.trim_start_matches("(3, ").trim_end_matches(')').parse::<u32>().unwrap_or(0);
        if !out.status.success() || !v.starts_with("(3, ") || minor < 10 {
            return Err(Error::State(format!(
                "{} is not Python 3.10 or newer (MPyC {MPYC_VERSION} needs it); set {ENV_BASE_PYTHON}",
                self.base_python.display()
            )));
        }
        Ok(v)
    }

    /// The marker: SHA-256 of the requirements then the version line (as the shell script writes it).
    fn marker(&self, version: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.requirements.as_bytes());
        h.update(version.as_bytes());
        h.update(b"\n");
        crate::descriptor::hex(&h.finalize())
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::State(format!("{what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let tail: Vec<&str> = text.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::State(format!("{what} failed ({}):\n{}", out.status, tail.join("\n"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_matches_the_shell_scripts_format() {
        // `{ cat REQ; python3 -c 'print(sys.version_info[:2])'; } | sha256sum` for REQ = "a\n".
        let v = PinnedVenv {
            name: "t".into(),
            requirements: "a\n".into(),
            import_check: String::new(),
            base_python: "python3".into(),
        };
        let mut h = Sha256::new();
        h.update(b"a\n(3, 11)\n");
        assert_eq!(v.marker("(3, 11)"), crate::descriptor::hex(&h.finalize()));
    }

    #[test]
    fn a_missing_interpreter_is_a_clear_error() {
        let v = PinnedVenv {
            name: "t".into(),
            requirements: String::new(),
            import_check: String::new(),
            base_python: "/nonexistent/python3".into(),
        };
        let dir = std::env::temp_dir().join(format!("didmpc-venv-test-{}", std::process::id()));
        let e = v.ensure(&dir, &|_| {}).unwrap_err().to_string();
        assert!(e.contains("Python 3.10"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
