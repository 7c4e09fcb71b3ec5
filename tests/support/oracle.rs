//! Python oracles for interop tests: a pinned venv made by a `setup-venv.sh` under
//! `tests/interop/<name>/`, and one batch of JSON requests answered by a script there.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// `tests/interop/<name>`.
pub fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

/// The venv's python, creating the venv if needed. Panics (never skips) with the way to
/// fix it when the venv cannot be made.
pub fn venv_python(name: &str, what: &str) -> PathBuf {
    let script = dir(name).join("setup-venv.sh");
    let out = Command::new("bash").arg(&script).output().expect("run setup-venv.sh");
    assert!(
        out.status.success(),
        "the {what} interop venv is required; run `bash {}` and read its errors:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().expect("a python path").trim())
}

/// Sends one JSON array of requests to `script` (in `tests/interop/<name>`), returns its answers.
pub fn ask(python: &PathBuf, name: &str, script: &str, reqs: Value) -> Vec<Value> {
    let mut child = Command::new(python)
        .arg(dir(name).join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the oracle");
    child.stdin.take().unwrap().write_all(reqs.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("oracle answers JSON")
}

/// What proofs are bound to in a session whose descriptor `host` would sign (without the
/// JWS: proofs only need its digest), created `at` and open for 600 s.
pub fn session(id: &str, host: &str, invitees: &[&str], proofs: Value, at: u64) -> proofs::Session {
    use gateway::descriptor::{Descriptor, MpcOptions, Program, Signed, VERSION};
    use sha2::Digest;
    let mut roster = vec![host.to_owned()];
    roster.extend(invitees.iter().map(|d| d.to_string()));
    let d = Descriptor {
        v: VERSION,
        id: id.into(),
        host: host.into(),
        host_route: None,
        roster,
        program: Program { name: "p.py".into(), sha256: "0".repeat(64), args: vec![], mpyc: "0.11".into() },
        mpyc: MpcOptions::default(),
        proofs,
        created: at,
        expires: at + 600,
        peer_deadline_secs: 30,
    };
    let digest = sha2::Sha256::digest(serde_json::to_vec(&d).unwrap()).into();
    Signed { descriptor: d, jws: Value::Null, digest }.proof_session()
}

/// [`proofs::admit`] with the standard resolver (did:key, did:peer), run to completion.
pub fn admit(
    s: &proofs::Session,
    party: &str,
    proof: Option<&Value>,
    now: u64,
) -> proofs::Result<Option<proofs::Identity>> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(proofs::admit(s, party, proof, &did_core::Resolver::default(), now))
}
