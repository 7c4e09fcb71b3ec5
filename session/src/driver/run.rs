//! The driver task's work: commands from the [`Handle`](super::Handle), packets from the
//! link and the UDP paths, session events, packets out to their paths, the published
//! counters and path report, and the session's timer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::handle::Command;
use super::pipe::Pipe;
use super::stream::NOT_RESET;
use super::{Driver, LinkEvent, Out};
use crate::error::Error;
use crate::path::PathAddr;
use crate::session::{Event, HEADROOM};
use crate::udp;

/// How often the path report is refreshed without a state change (RTTs move).
const REPORT_EVERY: Duration = Duration::from_millis(250);

impl Driver {
    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Open(reply) => {
                let r = self.session.open_stream().map(|id| self.new_pipe(id));
                let _ = reply.send(r);
            }
            Command::OpenIo(io, reply) => {
                let r = self.session.open_stream().inspect(|id| {
                    self.pipes.insert(*id, Pipe::new(io, Arc::new(AtomicU32::new(NOT_RESET))));
                });
                let _ = reply.send(r);
            }
            Command::Attach(stream, io, reply) => {
                let r = match self.pipes.get_mut(&stream.id) {
                    Some(p) => {
                        p.attach(stream, io);
                        Ok(())
                    }
                    None => Err(match stream.reset.load(Ordering::Acquire) {
                        NOT_RESET => Error::UnknownStream(stream.id),
                        code => Error::StreamReset(stream.id, code),
                    }),
                };
                let _ = reply.send(r);
            }
            Command::Reset(id, code) => {
                let _ = self.session.reset(id, code);
                self.drop_pipe(id, code);
            }
            Command::Close(code, reason) => self.session.close(code, &reason),
        }
    }

    /// One pass over every source of work; true if anything happened.
    fn pass(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while let Poll::Ready(Some(cmd)) = self.cmd_rx.poll_recv(cx) {
            progress = true;
            self.command(cmd);
        }
        let now = Instant::now();
        while !self.link_gone {
            match self.link_rx.poll_recv(cx) {
                Poll::Ready(Some(LinkEvent::Packet(p))) => self.session.handle_packet(now, &p),
                Poll::Ready(Some(LinkEvent::PathReset)) => self.session.on_path_reset(now),
                Poll::Ready(None) => self.link_gone = true,
                Poll::Pending => break,
            }
            progress = true;
        }
        while let (false, Some(d)) = (self.direct_gone, self.direct.as_mut()) {
            match d.rx.poll_recv(cx) {
                Poll::Ready(Some(g)) => {
                    let path = PathAddr::Udp { local: g.local, remote: g.from };
                    self.session.handle_packet_on(now, path, &g.packet);
                }
                Poll::Ready(None) => self.direct_gone = true,
                Poll::Pending => break,
            }
            progress = true;
        }
        while let Some(ev) = self.session.poll_event() {
            progress = true;
            match ev {
                Event::StreamOpened(id) => {
                    let s = self.new_pipe(id);
                    let _ = self.accept_tx.send(s);
                }
                Event::Reset(id, code) => self.drop_pipe(id, code),
                Event::Closed(reason) => {
                    for (_, p) in self.pipes.drain() {
                        p.reset.store(0, Ordering::Release);
                    }
                    let _ = self.closed_tx.send(Some(reason));
                }
                Event::Readable(_) | Event::Writable(_) => {}
            }
        }
        progress |= self.pump_streams(cx);
        progress |= self.transmit(cx, now);
        progress
    }

    /// Hands packets to their paths while they take them.
    fn transmit(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        loop {
            if self.pending.is_none() {
                let mut buf = std::mem::take(&mut self.udp_buf);
                match self.session.poll_transmit(now, &mut buf) {
                    None => {
                        self.udp_buf = buf;
                        return progress;
                    }
                    Some(t) => match t.path {
                        // The relay link takes the packet itself (no copy: the headroom
                        // stays in front of the slice).
                        PathAddr::Relay => self.pending = Some(Out::Relay(Bytes::from(buf).slice(HEADROOM..))),
                        PathAddr::Udp { local, remote } => {
                            self.udp_buf = buf;
                            self.pending = Some(Out::Udp { local, to: remote, len: t.len });
                        }
                    },
                }
            }
            match self.pending.take() {
                Some(Out::Relay(p)) => match self.out.poll_reserve(cx) {
                    Poll::Ready(Ok(())) => {
                        let _ = self.out.send_item(p);
                        progress = true;
                    }
                    // The link is gone: packets are dropped; the peer deadline ends the session.
                    Poll::Ready(Err(_)) => progress = true,
                    Poll::Pending => {
                        self.pending = Some(Out::Relay(p));
                        return progress;
                    }
                },
                Some(Out::Udp { local, to, len }) => {
                    let Some(d) = self.direct.as_ref() else {
                        progress = true;
                        continue;
                    };
                    let start = udp::write_prefix(&mut self.udp_buf, HEADROOM, d.peer_id);
                    match d.io.poll_send(cx, local, to, &self.udp_buf[start..HEADROOM + len]) {
                        // Sent, or failed (unreachable, no such socket): UDP may lose it;
                        // loss recovery resends what mattered.
                        Poll::Ready(_) => progress = true,
                        Poll::Pending => {
                            self.pending = Some(Out::Udp { local, to, len });
                            return progress;
                        }
                    }
                }
                None => return progress,
            }
        }
    }

    /// Publishes the path report when it changed, or every [`REPORT_EVERY`].
    fn report_paths(&mut self, now: Instant) {
        let gen = self.session.path_generation();
        if gen != self.paths_gen || now.saturating_duration_since(self.paths_at) >= REPORT_EVERY {
            self.paths_gen = gen;
            self.paths_at = now;
            let report = self.session.path_report();
            self.paths_tx.send_if_modified(|r| {
                *r = report;
                false
            });
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Bounded work per wakeup keeps the runtime fair; a self-wake continues it.
        let mut more = true;
        for _ in 0..64 {
            more = this.pass(cx);
            if !more {
                break;
            }
        }
        if more {
            cx.waker().wake_by_ref();
        }
        this.report_paths(Instant::now());
        // Nobody waits for new counters (they are read on demand): update them quietly.
        let stats = this.session.snapshot();
        let flushed = stats.unacked_bytes == 0 && stats.queued == 0;
        this.stats_tx.send_if_modified(|s| {
            *s = stats;
            false
        });
        // Waiters on `flushed` are woken only when it changes.
        this.flushed_tx.send_if_modified(|f| std::mem::replace(f, flushed) != flushed);
        if this.session.closed().is_some() && this.pending.is_none() {
            if this.closed_tx.borrow().is_none() {
                let _ = this.closed_tx.send(this.session.closed().cloned());
            }
            return Poll::Ready(());
        }
        match this.session.poll_timeout() {
            Some(deadline) => {
                // Re-arm only for an earlier deadline (or a spent timer): a later one just
                // means an early, harmless `handle_timeout`, and most packets push the
                // deadlines later, so the timer is not re-registered on each of them.
                let at = tokio::time::Instant::from_std(deadline);
                if this.timer.is_elapsed() || at < this.timer.deadline() {
                    this.timer.as_mut().reset(at);
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    this.session.handle_timeout(Instant::now());
                    cx.waker().wake_by_ref();
                }
            }
            None => cx.waker().wake_by_ref(),
        }
        Poll::Pending
    }
}
