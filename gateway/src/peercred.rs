//! Who is on the other end of a loopback TCP connection: the owner (uid) of the peer's
//! socket, read from the kernel's socket tables (`/proc/net/tcp`, `/proc/net/tcp6`).
//!
//! The gateway's loopback listeners accept a connection only from a socket of its own user
//! (another local user cannot pose as the local MPyC and become "pid i"), and the gateway
//! hands a peer's stream to MPyC's listener only if that listener's socket is its user's
//! (another local user cannot squat MPyC's port and receive the peer's PRSS keys).
//! The launcher (`mpc/launcher.py`) applies the same rule inside MPyC.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;

/// The uid this process runs as.
pub fn own_uid() -> std::io::Result<u32> {
    Ok(std::fs::metadata("/proc/self")?.uid())
}

/// The owner of the socket whose own address is `local` and whose peer is `remote`,
/// as the kernel lists it; `Ok(None)` if no such socket is listed.
pub fn owner(local: SocketAddr, remote: SocketAddr) -> std::io::Result<Option<u32>> {
    let (want_local, want_remote) = (hex_addr(local), hex_addr(remote));
    let mut read_any = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        read_any = true;
        if let Some(uid) = find(&text, &want_local, &want_remote) {
            return Ok(Some(uid));
        }
    }
    if !read_any {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no /proc/net/tcp socket table"));
    }
    Ok(None)
}

/// Whether the socket at `local` connected to `remote` belongs to this process's user.
/// A missing socket table (not Linux) counts as yes, with a warning: the check cannot run.
pub fn is_own_user(local: SocketAddr, remote: SocketAddr) -> bool {
    let me = match own_uid() {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the owner of local sockets; not checked");
            return true;
        }
    };
    match owner(local, remote) {
        Ok(Some(uid)) => uid == me,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the owner of local sockets; not checked");
            true
        }
    }
}

/// The uid column of the row whose local and remote addresses are these.
fn find(table: &str, local: &str, remote: &str) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() > 7 && cols[1] == local && cols[2] == remote).then(|| cols[7].parse().ok()).flatten()
    })
}

/// An address as the kernel prints it: each 32-bit word of the address in host byte
/// order as `%08X`, then `:%04X` for the port.
fn hex_addr(a: SocketAddr) -> String {
    let words: Vec<u32> = match a.ip() {
        IpAddr::V4(v4) => vec![u32::from_ne_bytes(v4.octets())],
        IpAddr::V6(v6) => v6.octets().chunks(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect(),
    };
    let mut s: String = words.iter().map(|w| format!("{w:08X}")).collect();
    s.push_str(&format!(":{:04X}", a.port()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_printed_as_the_kernel_does() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(hex_addr(a), "0100007F:1F90");
        let b: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(hex_addr(b), "00000000000000000000000001000000:0050");
    }

    #[test]
    fn a_connection_of_our_own_is_ours() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        // The dialler's socket, seen from the accepting side, and the accepted one, seen
        // from the dialler.
        assert_eq!(owner(peer, s.local_addr().unwrap()).unwrap(), Some(own_uid().unwrap()));
        assert!(is_own_user(peer, s.local_addr().unwrap()));
        assert!(is_own_user(s.local_addr().unwrap(), peer));
        // A socket that does not exist is nobody's.
        let nowhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(!is_own_user(nowhere, peer));
    }
}
