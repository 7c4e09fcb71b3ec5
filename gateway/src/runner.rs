//! Launching the user's MPyC program: finding Python and MPyC, building the command line
//! from the port map, and streaming the program's output line by line.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::descriptor::{program_digest, MpcOptions, Program};
use crate::error::{Error, Result};
use crate::tunnel::PortMap;

/// Where the program's output lines go (stdout and stderr alike).
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// The Python interpreter to use: `explicit`, else `$DIDMPC_MPYC_PYTHON`, else `python3` on
/// PATH when it has MPyC, else the pinned MPyC venv in the didmpc cache (made on first use).
/// Progress of a venv creation goes to `log`.
pub fn find_python(explicit: Option<&Path>, log: &dyn Fn(&str)) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("DIDMPC_MPYC_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).map(|d| d.join("python3")).find(|c| c.is_file());
    if let Some(py) = on_path {
        let has_mpyc = std::process::Command::new(&py)
            .args(["-c", "import importlib.util as u, sys; sys.exit(u.find_spec('mpyc') is None)"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if has_mpyc {
            return Ok(py);
        }
    }
    let cache = crate::venv::cache_dir()?;
    crate::venv::PinnedVenv::mpyc()
        .ensure(&cache, log)
        .map_err(|e| Error::State(format!("no Python with MPyC: {e}; install mpyc, or pass --python PATH")))
}

/// The MPyC version installed for `python`.
pub async fn mpyc_version(python: &Path) -> Result<String> {
    let out = Command::new(python)
        // The installed distribution's version: no import (MPyC logs on import).
        .args(["-c", "import importlib.metadata as m; print(m.version('mpyc'))"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::State(format!("cannot run {}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(Error::State(format!(
            "MPyC is not installed for {} (`{} -m pip install mpyc`)",
            python.display(),
            python.display()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The program as a descriptor describes it, measured locally.
pub async fn describe(program: &Path, args: &[String], python: &Path) -> Result<Program> {
    let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Program { name, sha256: program_digest(program)?, args: args.to_vec(), mpyc: mpyc_version(python).await? })
}

/// didmpc's MPyC launcher (`mpc/launcher.py`), fed to the interpreter on stdin.
pub const LAUNCHER: &str = include_str!("../../mpc/launcher.py");
/// Environment variable carrying the launch (JSON) to the launcher.
pub const ENV_LAUNCH: &str = "DIDMPC_LAUNCH";

/// What to launch.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The interpreter.
    pub python: PathBuf,
    /// The program file.
    pub program: PathBuf,
    /// Its arguments (the program's own; they never reach MPyC's option parser).
    pub args: Vec<String>,
    /// MPyC options.
    pub options: MpcOptions,
    /// Number of parties (for the default threshold).
    pub parties: usize,
    /// Working directory (where MPyC looks for `.config/` with `--ssl`).
    pub cwd: Option<PathBuf>,
}

impl Launch {
    /// MPyC's own options: the port map, the threshold (always explicit, so what the
    /// joiner accepted is what runs) and `--ssl`.
    pub fn mpyc_options(&self, ports: &PortMap) -> Vec<String> {
        let mut a = ports.mpyc_args();
        a.push("-T".into());
        a.push(self.options.threshold_for(self.parties).to_string());
        if self.options.ssl {
            a.push("--ssl".into());
        }
        a
    }

    /// The launch as the launcher reads it from [`ENV_LAUNCH`].
    pub fn spec(&self, ports: &PortMap) -> String {
        let program = std::path::absolute(&self.program).unwrap_or_else(|_| self.program.clone());
        serde_json::json!({
            "program": program.to_string_lossy(),
            "mpyc": self.mpyc_options(ports),
            "args": self.args,
        })
        .to_string()
    }

    /// Starts the program through the launcher; its output lines go to `sink`. The child
    /// dies with its handle. Nothing of the port map shows in the process list.
    pub fn spawn(&self, ports: &PortMap, sink: Sink) -> Result<Running> {
        let name = self.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut cmd = Command::new(&self.python);
        cmd.args(["-u", "-", &name])
            .env(ENV_LAUNCH, self.spec(ports))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        let mut child =
            cmd.spawn().map_err(|e| Error::State(format!("cannot start {}: {e}", self.python.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                // Python reads the whole script before it runs it; EOF ends it.
                let _ = stdin.write_all(LAUNCHER.as_bytes()).await;
            });
        }
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(forward(out, sink.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(forward(err, sink));
        }
        Ok(Running { child, readers })
    }
}

/// A running program.
pub struct Running {
    /// The process.
    pub child: Child,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Waits until the output was forwarded completely (after the process ended).
    pub async fn drain(self) {
        for r in self.readers {
            let _ = r.await;
        }
    }
}

fn forward(r: impl tokio::io::AsyncRead + Unpin + Send + 'static, sink: Sink) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            sink(&l);
        }
    })
}
