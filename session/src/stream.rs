//! Per-stream state: bytes written by the application and not yet framed, the peer's
//! credit, and bytes received and not yet read.

use std::collections::VecDeque;

use crate::error::{Error, Result};

/// What a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many bytes were copied.
    Data(usize),
    /// The peer finished the stream and everything was read.
    Fin,
    /// Nothing to read yet.
    WouldBlock,
}

/// Sending half.
#[derive(Debug)]
pub(crate) struct SendHalf {
    /// Written by the application, not yet framed.
    pub pending: VecDeque<u8>,
    /// Bytes framed so far (the next DATA offset).
    pub offset: u64,
    /// The peer allows bytes below this offset.
    pub max_offset: u64,
    /// The application finished writing.
    pub fin_requested: bool,
    /// FIN was framed.
    pub fin_sent: bool,
    /// The application was told it cannot write more (buffer full); owed a Writable event.
    pub blocked: bool,
}

/// Receiving half.
#[derive(Debug)]
pub(crate) struct RecvHalf {
    /// Received, not yet read.
    pub buffer: VecDeque<u8>,
    /// Total bytes received.
    pub received: u64,
    /// Total bytes read by the application.
    pub consumed: u64,
    /// Credit we gave the peer.
    pub advertised: u64,
    /// The peer's final offset, once FIN arrived.
    pub fin_at: Option<u64>,
    /// The application saw the end.
    pub fin_read: bool,
}

/// One stream.
#[derive(Debug)]
pub(crate) struct Stream {
    pub send: SendHalf,
    pub recv: RecvHalf,
    /// Reset (by either side) with this code.
    pub reset: Option<u32>,
}

impl Stream {
    pub fn new(window: u64) -> Stream {
        Stream {
            send: SendHalf {
                pending: VecDeque::new(),
                offset: 0,
                max_offset: window,
                fin_requested: false,
                fin_sent: false,
                blocked: false,
            },
            recv: RecvHalf {
                buffer: VecDeque::new(),
                received: 0,
                consumed: 0,
                advertised: window,
                fin_at: None,
                fin_read: false,
            },
            reset: None,
        }
    }

    /// Takes up to `limit` pending bytes the peer's credit allows; returns (offset, bytes).
    /// Appends up to `limit` pending bytes the peer's credit allows to `out`; returns the
    /// offset of the first one.
    pub fn take_sendable_into(&mut self, limit: usize, out: &mut Vec<u8>) -> Option<u64> {
        let credit = self.send.max_offset.saturating_sub(self.send.offset) as usize;
        let n = self.send.pending.len().min(credit).min(limit);
        if n == 0 {
            return None;
        }
        let off = self.send.offset;
        let (a, b) = self.send.pending.as_slices();
        let from_a = a.len().min(n);
        out.extend_from_slice(&a[..from_a]);
        out.extend_from_slice(&b[..n - from_a]);
        self.send.pending.drain(..n);
        self.send.offset += n as u64;
        Some(off)
    }

    /// Whether a FIN can be framed now (everything before it is framed).
    pub fn fin_ready(&self) -> bool {
        self.send.fin_requested && !self.send.fin_sent && self.send.pending.is_empty()
    }

    /// Applies received DATA; checks order and flow control.
    pub fn on_data(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if offset != self.recv.received {
            return Err(Error::Malformed("stream data out of order"));
        }
        let end = self.recv.received + data.len() as u64;
        if end > self.recv.advertised {
            return Err(Error::Malformed("stream data beyond the granted window"));
        }
        if self.recv.fin_at.is_some_and(|f| end > f) {
            return Err(Error::Malformed("stream data after FIN"));
        }
        self.recv.buffer.extend(data);
        self.recv.received = end;
        Ok(())
    }

    /// Applies FIN.
    pub fn on_fin(&mut self, final_offset: u64) -> Result<()> {
        if final_offset != self.recv.received {
            return Err(Error::Malformed("FIN offset does not match the data received"));
        }
        self.recv.fin_at = Some(final_offset);
        Ok(())
    }

    /// Copies received bytes out; returns what happened and whether new credit should be
    /// announced (the new `max_offset`).
    pub fn read(&mut self, buf: &mut [u8], window: u64) -> (Read, Option<u64>) {
        if self.recv.buffer.is_empty() {
            if self.recv.fin_at.is_some() {
                self.recv.fin_read = true;
                return (Read::Fin, None);
            }
            return (Read::WouldBlock, None);
        }
        let n = buf.len().min(self.recv.buffer.len());
        copy_out(&mut self.recv.buffer, &mut buf[..n]);
        self.recv.consumed += n as u64;
        // Re-announce credit once half the window was consumed.
        let grant = (self.recv.advertised - self.recv.consumed < window / 2 && self.recv.fin_at.is_none()).then(|| {
            self.recv.advertised = self.recv.consumed + window;
            self.recv.advertised
        });
        (Read::Data(n), grant)
    }

    /// Whether both halves are done and the stream can be forgotten.
    pub fn finished(&self) -> bool {
        self.reset.is_some() || (self.send.fin_sent && self.recv.fin_read)
    }
}

/// Moves `dst.len()` bytes from the front of `q` into `dst` (slice copies, no per-byte loop).
fn copy_out(q: &mut VecDeque<u8>, dst: &mut [u8]) {
    let n = dst.len();
    let (a, b) = q.as_slices();
    let from_a = a.len().min(n);
    dst[..from_a].copy_from_slice(&a[..from_a]);
    dst[from_a..].copy_from_slice(&b[..n - from_a]);
    q.drain(..n);
}
