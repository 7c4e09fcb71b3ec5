//! The driver's end of each stream: a [`Pipe`] to the application (the other end of a
//! [`SessionStream`], or attached I/O), and the pump that moves bytes, FINs and resets
//! between the pipes and the session.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::stream::{Io, SessionStream, NOT_RESET};
use super::{Driver, PIPE_BYTES, RESET_DROPPED};
use crate::stream::Read;

pub(super) struct Pipe {
    /// The driver's end of a [`SessionStream`]'s duplex, or attached I/O.
    io: Box<dyn Io>,
    pub(super) reset: Arc<AtomicU32>,
    /// Bytes read from the application, not yet taken by the session.
    out: Vec<u8>,
    out_eof: bool,
    fin_passed: bool,
    /// Bytes read from the session (`inb[inb_pos..inb_len]`), not yet written to the application.
    inb: Box<[u8]>,
    inb_pos: usize,
    inb_len: usize,
    in_fin: bool,
    in_shut: bool,
}

impl Pipe {
    pub(super) fn new(io: Box<dyn Io>, reset: Arc<AtomicU32>) -> Pipe {
        Pipe {
            io,
            reset,
            out: Vec::new(),
            out_eof: false,
            fin_passed: false,
            inb: vec![0u8; PIPE_BYTES].into_boxed_slice(),
            inb_pos: 0,
            inb_len: 0,
            in_fin: false,
            in_shut: false,
        }
    }

    /// Swaps the duplex of `stream` (this pipe's other end) for `io`: what the application
    /// had written and the driver not yet read is kept for the session, what the driver had
    /// written and the application not yet read goes to `io` before anything else.
    pub(super) fn attach(&mut self, stream: SessionStream, io: Box<dyn Io>) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut buf = vec![0u8; PIPE_BYTES];
        // application → session: everything already in the pipe (and its EOF).
        while !self.out_eof {
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.io).poll_read(&mut cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => self.out_eof = true,
                Poll::Ready(Ok(())) => self.out.extend_from_slice(rb.filled()),
                Poll::Ready(Err(_)) => self.out_eof = true,
                Poll::Pending => break,
            }
        }
        // session → application: unread bytes first, then what was not yet in the pipe.
        let mut unread = Vec::new();
        let mut theirs = stream.pipe;
        loop {
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut theirs).poll_read(&mut cx, &mut rb) {
                Poll::Ready(Ok(())) if !rb.filled().is_empty() => unread.extend_from_slice(rb.filled()),
                _ => break,
            }
        }
        unread.extend_from_slice(&self.inb[self.inb_pos..self.inb_len]);
        self.inb_len = unread.len();
        self.inb_pos = 0;
        if unread.len() < PIPE_BYTES {
            unread.resize(PIPE_BYTES, 0);
        }
        self.inb = unread.into_boxed_slice();
        // A FIN that reached the pipe is passed on to `io` once the bytes are written.
        self.in_shut = false;
        self.io = io;
    }
}

impl Driver {
    pub(super) fn new_pipe(&mut self, id: u32) -> SessionStream {
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        let reset = Arc::new(AtomicU32::new(NOT_RESET));
        self.pipes.insert(id, Pipe::new(Box::new(ours), reset.clone()));
        SessionStream { id, pipe: theirs, reset }
    }

    pub(super) fn drop_pipe(&mut self, id: u32, code: u32) {
        if let Some(p) = self.pipes.remove(&id) {
            p.reset.store(code, Ordering::Release);
        }
    }

    /// Moves bytes between the application pipes and the session.
    pub(super) fn pump_streams(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut done = Vec::new();
        let Driver { session, pipes, scratch, .. } = self;
        'pipes: for (&id, pipe) in pipes.iter_mut() {
            // application → session
            loop {
                if !pipe.out.is_empty() {
                    match session.write(id, &pipe.out) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            pipe.out.drain(..n);
                            progress = true;
                            continue;
                        }
                    }
                }
                if pipe.out_eof {
                    if !pipe.fin_passed {
                        pipe.fin_passed = true;
                        let _ = session.finish(id);
                        progress = true;
                    }
                    break;
                }
                let mut rb = ReadBuf::new(scratch);
                match Pin::new(&mut pipe.io).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => pipe.out_eof = true,
                    Poll::Ready(Ok(())) => {
                        // Straight into the session; keep only what it cannot take yet.
                        let data = rb.filled();
                        let taken = session.write(id, data).unwrap_or(0);
                        pipe.out.extend_from_slice(&data[taken..]);
                    }
                    Poll::Ready(Err(_)) => {
                        // Attached I/O failed (e.g. a TCP reset): the peer must not take
                        // what it got for the whole stream, so reset it rather than FIN.
                        // (A `SessionStream`'s pipe only ever ends with EOF.)
                        let _ = session.reset(id, RESET_DROPPED);
                        done.push(id);
                        progress = true;
                        continue 'pipes;
                    }
                    Poll::Pending => break,
                }
                progress = true;
            }
            // session → application
            loop {
                if pipe.inb_pos < pipe.inb_len {
                    match Pin::new(&mut pipe.io).poll_write(cx, &pipe.inb[pipe.inb_pos..pipe.inb_len]) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            pipe.inb_pos += n;
                            progress = true;
                            continue;
                        }
                        Poll::Ready(_) => {
                            // The application dropped its end: abandon the stream.
                            let _ = session.reset(id, RESET_DROPPED);
                            done.push(id);
                            progress = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                if pipe.in_fin {
                    if !pipe.in_shut && Pin::new(&mut pipe.io).poll_shutdown(cx).is_ready() {
                        pipe.in_shut = true;
                        progress = true;
                    }
                    break;
                }
                pipe.inb_pos = 0;
                pipe.inb_len = 0;
                match session.read(id, &mut pipe.inb) {
                    Ok(Read::Data(n)) => pipe.inb_len = n,
                    Ok(Read::Fin) => pipe.in_fin = true,
                    Ok(Read::WouldBlock) | Err(_) => break,
                }
                progress = true;
            }
            if pipe.fin_passed && pipe.in_shut {
                done.push(id);
            }
        }
        for id in done {
            pipes.remove(&id);
        }
        progress
    }
}
