//! Session packets over UDP: one datagram carries one packet behind a 5-byte prefix that
//! names the receiving session, so one socket serves every session of a party.
//!
//! ```text
//! 0x20 ‖ connection id (u32, big-endian, chosen by the receiver) ‖ packet
//! ```
//!
//! The connection id only routes the datagram; the packet inside authenticates itself.
//! Datagrams of other first bytes belong to other protocols on the same socket (the
//! mediator's reflexive-address probe answers).

/// First byte of a datagram carrying a session packet.
pub const KIND_SESSION: u8 = 0x20;
/// Bytes in front of the packet.
pub const PREFIX_LEN: usize = 5;

/// Writes the prefix for connection `id` into `buf[at - PREFIX_LEN..at]`; returns the
/// datagram's first index. `at` is at least [`PREFIX_LEN`] (a packet from
/// `Session::poll_transmit` sits at `HEADROOM`).
pub fn write_prefix(buf: &mut [u8], at: usize, id: u32) -> usize {
    let start = at - PREFIX_LEN;
    buf[start] = KIND_SESSION;
    buf[start + 1..at].copy_from_slice(&id.to_be_bytes());
    start
}

/// The connection id and the packet of a session datagram; `None` for anything else.
pub fn parse(datagram: &[u8]) -> Option<(u32, &[u8])> {
    if datagram.len() <= PREFIX_LEN || datagram[0] != KIND_SESSION {
        return None;
    }
    let id = u32::from_be_bytes([datagram[1], datagram[2], datagram[3], datagram[4]]);
    Some((id, &datagram[PREFIX_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_roundtrip() {
        let mut buf = vec![0u8; 32];
        buf.extend_from_slice(b"packet");
        let start = write_prefix(&mut buf, 32, 0x0102_0304);
        assert_eq!(&buf[start..32], &[0x20, 1, 2, 3, 4]);
        assert_eq!(parse(&buf[start..]), Some((0x0102_0304, &b"packet"[..])));
        assert_eq!(parse(&[0x20, 1, 2, 3, 4]), None, "no packet");
        assert_eq!(parse(&[0x11, 1, 2, 3, 4, 5]), None, "another protocol");
    }
}
