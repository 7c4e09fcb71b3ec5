//! Real MPyC for tests: the pinned venv (created by `mpc/setup-venv.sh`, cached), the
//! project's programs, certificates for `--ssl`, and the plain-TCP reference run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python with the pinned MPyC (fails loudly when it cannot be made).
pub fn python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("bash").arg(repo().join("mpc/setup-venv.sh")).output().expect("bash runs");
        assert!(
            out.status.success(),
            "the MPyC venv could not be set up (python3-venv and PyPI access needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().expect("a path").trim())
    })
    .clone()
}

/// A program of `mpc/programs/`.
pub fn program(name: &str) -> PathBuf {
    repo().join("mpc/programs").join(name)
}

/// A fresh working directory holding a copy of `name` (as MPyC parties each have).
pub fn workdir(tag: &str, name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("didmpc-mpc-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(program(name), d.join(name)).unwrap();
    d
}

/// Writes MPyC's `--ssl` certificates for `n` parties into `dir/.config`.
pub fn certs(dir: &Path, n: usize) {
    let out = Command::new("bash")
        .arg(repo().join("mpc/gen-certs.sh"))
        .arg(dir)
        .arg(n.to_string())
        .env("DIDMPC_MPYC_PYTHON", python())
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "gen-certs failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The program over plain TCP on loopback (`mpc/run-plain.py`): the reference result
/// (every party's RESULT line is the same) and the wall time in seconds.
pub fn plain(name: &str, parties: usize, args: &[&str], ssl: bool, cwd: &Path) -> (Value, f64) {
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("mpc/run-plain.py"))
        .args(["--python".as_ref(), python().as_os_str()])
        .args(["--parties", &parties.to_string(), "--cwd"])
        .arg(cwd)
        .args(["--timeout", "300"]);
    if ssl {
        cmd.arg("--ssl");
    }
    cmd.arg(cwd.join(name)).args(args);
    let out = cmd.output().expect("run-plain runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "plain MPyC run failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let last: Value = serde_json::from_str(text.lines().last().expect("a summary line")).expect("summary JSON");
    assert_eq!(last["all_equal"], true, "plain parties disagree: {last}");
    let first = &last["results"][0];
    let result = match first {
        Value::String(s) => serde_json::from_str(s).expect("RESULT JSON"),
        v => v.clone(),
    };
    (result, last["wall_s"].as_f64().unwrap_or_default())
}

/// The JSON of the `RESULT` line in `output`.
pub fn result_of(output: &str) -> Option<Value> {
    output.lines().find_map(|l| l.strip_prefix("RESULT ")).and_then(|r| serde_json::from_str(r).ok())
}
