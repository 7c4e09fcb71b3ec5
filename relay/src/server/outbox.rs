//! The queue of frames towards one relay connection, bounded in bytes per connection and
//! across the relay.
//!
//! Frames are counted at their length plus [`FRAME_OVERHEAD`]. DATA frames past either
//! bound are refused (the session layer retransmits). Control frames (CHALLENGE, JOINED,
//! PEER, DISPLACED) are never refused, but a connection whose queue passes its bound by
//! [`CONTROL_SLACK`] is flagged as overflowed and its pump disconnects it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Release};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;

use super::DropReason;

/// Bytes counted per queued or held frame on top of its length (the `Bytes` handle, the
/// queue slot, allocator rounding), so that floods of tiny frames are bounded too.
pub const FRAME_OVERHEAD: usize = 64;
/// How far control frames may take a queue past its bound before the connection is cut.
pub const CONTROL_SLACK: usize = 64 * 1024;
/// Frames shorter than this are copied into their own allocation when queued.
const COPY_BELOW: usize = 4096;
/// Frames queued behind this many bytes are copied into their own allocation.
const COPY_BEHIND: usize = 256 * 1024;

/// What a frame of `len` bytes counts against the bounds.
pub fn cost(len: usize) -> usize {
    len + FRAME_OVERHEAD
}

/// Removes `n` from a byte counter.
fn sub(counter: &AtomicUsize, n: usize) {
    counter.fetch_sub(n, AcqRel);
}

struct Shared {
    /// Bytes queued towards this connection.
    bytes: AtomicUsize,
    /// Control frames took the queue past its bound.
    overflow: AtomicBool,
    /// The pump, to wake when frames start waiting (even while its socket is blocked, so
    /// that it watches the stall time) and when the queue overflows.
    waker: AtomicWaker,
}

/// The sending side: whoever has a frame for the connection.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    shared: Arc<Shared>,
    /// Bytes queued across all connections of the relay.
    total: Arc<AtomicUsize>,
    limit: usize,
    total_limit: usize,
}

/// The receiving side: the connection's pump.
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
    total: Arc<AtomicUsize>,
}

/// A queue holding at most `limit` bytes, sharing `total` (at most `total_limit`) with the
/// relay's other queues.
pub(crate) fn queue(limit: usize, total: Arc<AtomicUsize>, total_limit: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared =
        Arc::new(Shared { bytes: AtomicUsize::new(0), overflow: AtomicBool::new(false), waker: AtomicWaker::new() });
    (Outbox { tx, shared: shared.clone(), total: total.clone(), limit, total_limit }, Inbox { rx, shared, total })
}

impl Outbox {
    /// Queues a DATA frame, or says why not.
    pub(crate) fn push_data(&self, frame: Bytes) -> Result<(), DropReason> {
        let c = cost(frame.len());
        let before = self.shared.bytes.fetch_add(c, AcqRel);
        if before + c > self.limit {
            sub(&self.shared.bytes, c);
            return Err(DropReason::Congested);
        }
        if self.total.fetch_add(c, AcqRel) + c > self.total_limit {
            sub(&self.shared.bytes, c);
            sub(&self.total, c);
            return Err(DropReason::QueueBudget);
        }
        // A frame read off a WebSocket is a slice of the buffer it was read into and keeps
        // all of it alive; one that may wait gets its own allocation so that the bytes
        // counted are the bytes held.
        let frame =
            if frame.len() < COPY_BELOW || before > COPY_BEHIND { Bytes::copy_from_slice(&frame) } else { frame };
        if self.tx.send(frame).is_err() {
            sub(&self.shared.bytes, c);
            sub(&self.total, c);
            return Err(DropReason::Closed);
        }
        if before == 0 {
            self.shared.waker.wake();
        }
        Ok(())
    }

    /// Queues a control frame; flags the connection when its queue overflows.
    pub(crate) fn push_control(&self, frame: Bytes) {
        let c = cost(frame.len());
        let before = self.shared.bytes.fetch_add(c, AcqRel);
        self.total.fetch_add(c, AcqRel);
        if self.tx.send(frame).is_err() {
            sub(&self.shared.bytes, c);
            sub(&self.total, c);
            return;
        }
        if before + c > self.limit + CONTROL_SLACK {
            self.shared.overflow.store(true, Release);
            self.shared.waker.wake();
        } else if before == 0 {
            self.shared.waker.wake();
        }
    }

    /// Whether `other` feeds the same connection.
    pub(crate) fn same(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Inbox {
    /// The next queued frame, if any (otherwise a wake-up is registered).
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(f)) => {
                let c = cost(f.len());
                sub(&self.shared.bytes, c);
                sub(&self.total, c);
                Some(f)
            }
            _ => None,
        }
    }

    /// Bytes queued.
    pub(crate) fn queued(&self) -> usize {
        self.shared.bytes.load(Acquire)
    }

    /// Whether control frames overflowed the queue (registers a wake-up for when they do,
    /// and for when frames start waiting).
    pub(crate) fn overflowed(&self, cx: &mut Context<'_>) -> bool {
        self.shared.waker.register(cx.waker());
        self.shared.overflow.load(Acquire)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // Nothing can be queued any more; what was gives its bytes back.
        self.rx.close();
        while let Ok(f) = self.rx.try_recv() {
            let c = cost(f.len());
            sub(&self.shared.bytes, c);
            sub(&self.total, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    #[test]
    fn bounds_per_queue_and_in_total() {
        let total = Arc::new(AtomicUsize::new(0));
        let (a, mut ai) = queue(1000, total.clone(), 1500);
        let (b, bi) = queue(1000, total.clone(), 1500);
        a.push_data(Bytes::from(vec![0; 800])).unwrap();
        assert_eq!(a.push_data(Bytes::from(vec![0; 200])), Err(DropReason::Congested));
        assert_eq!(ai.queued(), cost(800));
        b.push_data(Bytes::from(vec![0; 500])).unwrap();
        assert_eq!(b.push_data(Bytes::from(vec![0; 100])), Err(DropReason::QueueBudget), "relay-wide");
        assert_eq!(total.load(Acquire), cost(800) + cost(500));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(ai.poll_next(&mut cx).map(|f| f.len()), Some(800));
        assert_eq!(ai.queued(), 0);
        drop(bi);
        assert_eq!(total.load(Acquire), 0, "a dropped queue gives its bytes back");
        assert_eq!(b.push_data(Bytes::from_static(b"x")), Err(DropReason::Closed));
        assert_eq!(total.load(Acquire), 0);
    }

    #[test]
    fn control_frames_pass_the_bound_until_it_overflows() {
        let total = Arc::new(AtomicUsize::new(0));
        let (a, ai) = queue(100, total, usize::MAX);
        let mut cx = Context::from_waker(Waker::noop());
        let mut pushed = 0;
        while !ai.overflowed(&mut cx) {
            a.push_control(Bytes::from_static(&[0x83; 18]));
            pushed += 1;
        }
        assert_eq!(pushed, (100 + CONTROL_SLACK) / cost(18) + 1);
        assert!(a.same(&a.clone()));
    }
}
