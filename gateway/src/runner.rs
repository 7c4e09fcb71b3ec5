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

/// The Python interpreter to use: `explicit`, else `$DIDMPC_MPYC_PYTHON`, else `python3` on PATH.
pub fn find_python(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("DIDMPC_MPYC_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["python3", "python"] {
            let c = dir.join(name);
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    Err(Error::State("no python3 on PATH: install Python 3 with mpyc, or pass --python PATH".into()))
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

/// What to launch.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The interpreter.
    pub python: PathBuf,
    /// The program file.
    pub program: PathBuf,
    /// Its arguments (after MPyC's options).
    pub args: Vec<String>,
    /// MPyC options.
    pub options: MpcOptions,
    /// Working directory (where MPyC looks for `.config/` with `--ssl`).
    pub cwd: Option<PathBuf>,
}

impl Launch {
    /// The full argument vector after the interpreter.
    pub fn argv(&self, ports: &PortMap) -> Vec<String> {
        let mut a = vec!["-u".to_owned(), self.program.to_string_lossy().into_owned()];
        a.extend(ports.mpyc_args());
        if let Some(t) = self.options.threshold {
            a.push("-T".into());
            a.push(t.to_string());
        }
        if self.options.ssl {
            a.push("--ssl".into());
        }
        a.extend(self.args.iter().cloned());
        a
    }

    /// Starts the program; its output lines go to `sink`. The child dies with its handle.
    pub fn spawn(&self, ports: &PortMap, sink: Sink) -> Result<Running> {
        let mut cmd = Command::new(&self.python);
        cmd.args(self.argv(ports))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            .kill_on_drop(true);
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        let mut child =
            cmd.spawn().map_err(|e| Error::State(format!("cannot start {}: {e}", self.python.display())))?;
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
