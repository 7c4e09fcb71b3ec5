//! A wireguard-go tunnel between two network namespaces joined by a veth pair, and a bulk
//! TCP transfer through it: the userspace WireGuard reference next to the session's paths.
//! The sender and receiver are this bench binary itself, re-run inside the namespaces
//! (`--wg-recv ADDR` / `--wg-send ADDR BYTES`) with the same pump as the other rows.
//! Needs root, `ip`, `wg` (wireguard-tools) and `wireguard-go`.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHUNK: usize = 1 << 20;
/// Receiver's address inside the tunnel.
const INNER_B: &str = "10.92.0.2";

/// The two namespaces and their wireguard-go daemons; torn down on drop.
pub struct Tunnel {
    ns: [String; 2],
    /// Interface names: wireguard-go's control sockets (/var/run/wireguard/NAME.sock) are
    /// host-wide, so the names differ.
    ifs: [String; 2],
    daemons: Vec<Child>,
}

fn run(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if let Some(text) = input {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Tunnel {
    /// Creates the namespaces, the veth link (10.91.0.0/24), a wireguard-go interface in
    /// each (tunnel 10.92.0.0/24, MTU 1420, wireguard-go's default) and checks a TCP connect.
    pub fn up() -> Result<Tunnel, String> {
        let tag = std::process::id() % 100_000;
        let ns = [format!("wgbA{tag}"), format!("wgbB{tag}")];
        let ifs = [format!("wgb{tag}a"), format!("wgb{tag}b")];
        let mut t = Tunnel { ns: ns.clone(), ifs: ifs.clone(), daemons: Vec::new() };
        for n in &ns {
            run(&["ip", "netns", "add", n], None)?;
            run(&["ip", "-n", n, "link", "set", "lo", "up"], None)?;
        }
        run(
            &["ip", "link", "add", "wgbva", "netns", &ns[0], "type", "veth", "peer", "name", "wgbvb", "netns", &ns[1]],
            None,
        )?;
        let mut keys = Vec::new();
        for (i, (n, dev)) in ns.iter().zip(["wgbva", "wgbvb"]).enumerate() {
            run(&["ip", "-n", n, "addr", "add", &format!("10.91.0.{}/24", i + 1), "dev", dev], None)?;
            run(&["ip", "-n", n, "link", "set", dev, "up"], None)?;
            let private = run(&["wg", "genkey"], None)?;
            let public = run(&["wg", "pubkey"], Some(&format!("{private}\n")))?;
            keys.push((private, public));
            let child = Command::new("ip")
                .args(["netns", "exec", n, "wireguard-go", "-f", &ifs[i]])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("wireguard-go: {e}"))?;
            t.daemons.push(child);
        }
        for (i, n) in ns.iter().enumerate() {
            let other = 1 - i;
            // wireguard-go's control socket appears once it has created the interface.
            let sock = format!("/var/run/wireguard/{}.sock", t.ifs[i]);
            let deadline = Instant::now() + Duration::from_secs(10);
            while run(&["ip", "netns", "exec", n, "wg", "show", &t.ifs[i]], None).is_err() {
                if Instant::now() > deadline {
                    return Err(format!("wireguard-go in {n}: no {sock} after 10 s"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // The private key goes through a pipe, never a file.
            run(
                &[
                    "ip",
                    "netns",
                    "exec",
                    n,
                    "wg",
                    "set",
                    &ifs[i],
                    "private-key",
                    "/dev/stdin",
                    "listen-port",
                    "51820",
                    "peer",
                    &keys[other].1,
                    "endpoint",
                    &format!("10.91.0.{}:51820", other + 1),
                    "allowed-ips",
                    &format!("10.92.0.{}/32", other + 1),
                ],
                Some(&format!("{}\n", keys[i].0)),
            )?;
            run(&["ip", "-n", n, "addr", "add", &format!("10.92.0.{}/24", i + 1), "dev", &ifs[i]], None)?;
            run(&["ip", "-n", n, "link", "set", &ifs[i], "up"], None)?;
        }
        Ok(t)
    }

    /// Sends `total` bytes from namespace A to B through the tunnel; Gbit/s as the sender
    /// measures it (from the first write to the receiver's acknowledgement of the last byte).
    pub fn throughput(&self, total: u64) -> Result<f64, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let exe = exe.to_string_lossy();
        let addr = format!("{INNER_B}:5201");
        let mut recv = Command::new("ip")
            .args(["netns", "exec", &self.ns[1], &exe, "--wg-recv", &addr])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut ready = [0u8; 1];
        recv.stdout.take().expect("stdout").read_exact(&mut ready).map_err(|e| format!("receiver: {e}"))?;
        let out = run(&["ip", "netns", "exec", &self.ns[0], &exe, "--wg-send", &addr, &total.to_string()], None);
        if out.is_err() {
            let _ = recv.kill();
        }
        let _ = recv.wait();
        out?.parse().map_err(|e| format!("sender output: {e}"))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        for n in &self.ns {
            let _ = run(&["ip", "netns", "del", n], None);
        }
    }
}

/// Child modes: `--wg-recv ADDR` (prints one byte when listening, acknowledges the end with
/// one byte) and `--wg-send ADDR BYTES` (prints Gbit/s). Returns whether it was one.
pub fn child_main() -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--wg-recv") => {
            let l = std::net::TcpListener::bind(&args[2]).expect("bind");
            std::io::stdout().write_all(b"r").and_then(|_| std::io::stdout().flush()).expect("ready");
            let (mut s, _) = l.accept().expect("accept");
            let mut buf = vec![0u8; CHUNK];
            while s.read(&mut buf).expect("read") > 0 {}
            s.write_all(b"k").expect("ack");
            true
        }
        Some("--wg-send") => {
            let total: u64 = args[3].parse().expect("bytes");
            let mut s = std::net::TcpStream::connect(&args[2]).expect("connect");
            let data = vec![0xa5u8; CHUNK];
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < total {
                s.write_all(&data).expect("write");
                sent += CHUNK as u64;
            }
            s.shutdown(std::net::Shutdown::Write).expect("shutdown");
            s.read_exact(&mut [0u8; 1]).expect("ack");
            println!("{}", sent as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9);
            true
        }
        _ => false,
    }
}
