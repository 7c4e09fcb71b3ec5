//! The README's first command on a fresh machine: `scripts/demo.sh`, run from another
//! directory with an empty HOME and an empty didmpc cache, must create its MPyC venv (from
//! the binary, no source-tree scripts), run the real MPyC program between three parties and
//! print the result. Its output on a pipe carries no escape codes and no QR code.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn demo_runs_with_an_empty_home_and_cache_from_any_directory() {
    let base = std::env::temp_dir().join(format!("didmpc-fresh-{}", std::process::id()));
    let (home, cache, cwd) = (base.join("home"), base.join("cache"), base.join("elsewhere"));
    for d in [&home, &cache, &cwd] {
        std::fs::create_dir_all(d).unwrap();
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(repo.join("scripts/demo.sh"))
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("DIDMPC_CACHE_DIR", &cache)
        .env("DIDMPC_BIN", env!("CARGO_BIN_EXE_didmpc"))
        .env("TMPDIR", &base)
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\nstdout:\n{stdout}\nstderr:\n{stderr}");
    // The result is the program's JSON on stdout; didmpc's own lines are on stderr.
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["program"], "secure_stats", "{v}");
    assert!(v["rounds"][0]["sorted_ok"] == true && v["rounds"][0]["santa_is_derangement"] == true, "{v}");
    assert!(stderr.contains("3 parties agree"), "{stderr}");
    assert!(cache.join("venv-mpyc/bin/python").is_file(), "the venv was not made in the given cache");
    assert!(!stderr.contains('\u{1b}') && !stdout.contains('\u{1b}'), "escape codes on a pipe:\n{stderr}");
    assert!(!stderr.contains('█') && !stderr.contains('▀'), "a QR code on a pipe:\n{stderr}");
    let _ = std::fs::remove_dir_all(&base);
}
