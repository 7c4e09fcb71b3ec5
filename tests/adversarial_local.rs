//! Another local user on a party's machine (threat model: "Local user"), through the real
//! binary and real MPyC. The attacker runs as `nobody` (uid 65534, via `setpriv`; the
//! tests run as root).
//!
//! - It connects to the gateway's loopback port for a peer while MPyC runs and tries to
//!   speak as the local MPyC: the connection is refused with nothing carried, logged, and
//!   the computation is still correct.
//! - It looks for the port map in the process list: there is none.
//! - It connects to MPyC's own listener: the launcher binds it to 127.0.0.1 (MPyC alone
//!   binds all interfaces) and drops connections from other users.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/parties.rs"]
mod parties;
#[path = "support/mediator.rs"]
mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parties::{invite, join, lab, party, Running};

/// As `nobody`: connect to 127.0.0.1:port, send `data` (hex), and report what came back
/// (`closed:<n bytes>`), or `refused` if the connect itself failed.
fn as_nobody_connect(port: u16, data: &str) -> String {
    let bytes: String = data.as_bytes().chunks(2).map(|c| format!("\\x{}", String::from_utf8_lossy(c))).collect();
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} 2>/dev/null || {{ echo refused; exit 0; }}\n\
         printf '{bytes}' >&3 2>/dev/null\n\
         n=$(timeout 10 cat <&3 2>/dev/null | wc -c)\n\
         echo closed:$n\n"
    );
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash", "-c", &script])
        .output()
        .expect("setpriv runs");
    assert!(out.status.success(), "the attacker script failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The running MPyC (python) process whose working directory is `dir`.
fn mpyc_process(dir: &Path) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with("python") {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let launched = env.split(|b| *b == 0).any(|kv| kv.starts_with(b"DIDMPC_LAUNCH="));
        if launched && std::fs::read_link(format!("/proc/{pid}/cwd")).ok().as_deref() == Some(dir) {
            return Some(pid);
        }
    }
    None
}

/// `-P` ports of the launch in a process's environment.
fn launch_ports(pid: u32) -> Vec<u16> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let launch = env
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("DIDMPC_LAUNCH="))
        .expect("the launch is in the environment")
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&launch).unwrap();
    let opts: Vec<&str> = v["mpyc"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    opts.windows(2).filter(|w| w[0] == "-P").map(|w| w[1].rsplit(':').next().unwrap().parse().unwrap()).collect()
}

#[test]
fn another_user_cannot_speak_as_the_local_mpyc_nor_see_the_port_map() {
    let lab = lab();
    let parties: Vec<(PathBuf, String)> = (0..3).map(|_| party(&lab.url)).collect();
    let dirs: Vec<PathBuf> = (0..3).map(|i| mpyc::workdir(&format!("local{i}"), "many_rounds.py")).collect();
    let args = ["--steps", "1200"];
    let dids: Vec<String> = parties[1..].iter().map(|p| p.1.clone()).collect();
    let host = invite(&parties[0].0, &dirs[0], &dids, "many_rounds.py", &[], &args);
    let joiners: Vec<Running> =
        (1..3).map(|i| join(&parties[i].0, &dirs[i], &format!("party {i}"), &parties[0].1)).collect();
    // Party 1's MPyC: find it, read its launch as the attacker never can (root here).
    let start = Instant::now();
    let pid = loop {
        if let Some(p) = mpyc_process(&std::fs::canonicalize(&dirs[1]).unwrap()) {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "party 1's MPyC never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    assert!(!cmdline.contains("127.0.0.1") && !cmdline.contains("-P"), "no port map in the process list: {cmdline}");
    let ports = launch_ports(pid);
    assert_eq!(ports.len(), 3);
    // Pid 1 dials pid 2 through the gateway listener ports[2]: the attacker tries it, as pid 1.
    let seen = as_nobody_connect(ports[2], "0100deadbeef");
    assert!(seen.starts_with("closed:0"), "the gateway accepted and closed it, carrying nothing: {seen}");
    let mut results = Vec::new();
    let (ok, out, err) = host.wait(Duration::from_secs(240));
    assert!(ok, "host failed:\n{out}\n{err}");
    results.push(mpyc::result_of(&out).expect("host RESULT"));
    for j in joiners {
        let name = j.name.clone();
        let (ok, out, err) = j.wait(Duration::from_secs(60));
        assert!(ok, "{name} failed:\n{out}\n{err}");
        if name == "party 1" {
            assert!(err.contains("refused a local connection from another user"), "logged: {err}");
        }
        results.push(mpyc::result_of(&out).expect("RESULT"));
    }
    let (plain, _) = mpyc::plain("many_rounds.py", 3, &args, false, &dirs[0]);
    for r in &results {
        assert_eq!(r, &plain, "the computation is still correct");
    }
}

#[test]
fn the_launcher_binds_mpyc_listeners_to_loopback_and_admits_only_its_user() {
    // A program that listens as MPyC does (create_server without a host) and reports.
    let dir = support::temp_path("launcher");
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("listen.py");
    std::fs::write(
        &program,
        "import asyncio, sys\n\
         from mpyc.runtime import mpc\n\
         got = []\n\
         class P(asyncio.Protocol):\n    def connection_made(self, t):\n        got.append(t.get_extra_info('peername'))\n\
         async def main():\n    loop = asyncio.get_running_loop()\n    srv = await loop.create_server(P, port=0)\n\
         \x20   print('BOUND', [s.getsockname()[0] for s in srv.sockets], srv.sockets[0].getsockname()[1], flush=True)\n\
         \x20   line = await loop.run_in_executor(None, sys.stdin.readline)\n\
         \x20   await asyncio.sleep(0.5)\n    print('ADMITTED', len(got), flush=True)\n\
         asyncio.run(main())\n",
    )
    .unwrap();
    let launch = serde_json::json!({"program": program, "mpyc": ["-M", "1"], "args": []}).to_string();
    let launcher = std::fs::read_to_string(mpyc::repo().join("mpc/launcher.py")).unwrap();
    // The launcher reads itself from stdin, then the program reads one line from it too:
    // feed them through a wrapper that runs the launcher with the program's stdin open.
    let wrapper = dir.join("run.py");
    std::fs::write(&wrapper, launcher).unwrap();
    let mut child = Command::new(mpyc::python())
        .arg("-u")
        .arg(&wrapper)
        .env("DIDMPC_LAUNCH", &launch)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while !first.ends_with(b"\n") || !String::from_utf8_lossy(&first).contains("BOUND") {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "the program ended early: {}", String::from_utf8_lossy(&first));
        first.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&first).lines().find(|l| l.starts_with("BOUND")).unwrap().to_owned();
    assert!(line.contains("['127.0.0.1']"), "bound to loopback only: {line}");
    let port: u16 = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
    let seen = as_nobody_connect(port, "0000");
    assert!(seen.starts_with("closed:0"), "another user's connection is dropped: {seen}");
    // Our own user's connection is admitted.
    let mut own = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    own.write_all(b"hi").unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.contains("ADMITTED 1"), "exactly our own connection reached the program: {rest}");
}
