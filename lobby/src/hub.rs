//! The page's state shared between the flow (which changes it) and the server (which
//! sends it): a [`View`] behind a lock, a version channel the event streams wait on, and
//! what each open stream has sent (so the process waits for the last state to leave
//! before it exits).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::view::{Role, View};

/// The shared state of one lobby.
pub struct Hub {
    view: Mutex<View>,
    version: watch::Sender<u64>,
    closing: watch::Sender<bool>,
    streams: Mutex<HashMap<u64, u64>>,
    next_stream: AtomicU64,
    qr: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// A hub for a page of `role`.
    pub fn new(role: Role) -> Arc<Hub> {
        let mut view = View::new(role);
        view.settle();
        Arc::new(Hub {
            view: Mutex::new(view),
            version: watch::channel(0).0,
            closing: watch::channel(false).0,
            streams: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(0),
            qr: Mutex::new(None),
        })
    }

    /// Changes the view (then recomputes what the user may do and wakes the streams).
    pub fn update(&self, f: impl FnOnce(&mut View)) {
        let version = {
            let mut v = lock(&self.view);
            f(&mut v);
            v.settle();
            v.version += 1;
            v.version
        };
        self.version.send_replace(version);
    }

    /// The view now.
    pub fn view(&self) -> View {
        lock(&self.view).clone()
    }

    /// Sets the QR code (SVG) of the invitation.
    pub fn set_qr(&self, svg: Option<String>) {
        *lock(&self.qr) = svg;
    }

    /// The QR code (SVG), if any.
    pub fn qr(&self) -> Option<String> {
        lock(&self.qr).clone()
    }

    /// A new event stream's handle (it reports what it sent; dropping it ends the record).
    pub(crate) fn subscribe(self: &Arc<Hub>) -> Stream {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        lock(&self.streams).insert(id, 0);
        Stream {
            hub: self.clone(),
            id,
            version: self.version.subscribe(),
            closing: self.closing.subscribe(),
            first: true,
        }
    }

    /// True when every open stream has sent the latest version.
    pub fn delivered(&self) -> bool {
        let now = lock(&self.view).version;
        lock(&self.streams).values().all(|&seen| seen >= now)
    }

    /// Ends every event stream (before the server stops).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }
}

/// One open event stream.
pub(crate) struct Stream {
    hub: Arc<Hub>,
    id: u64,
    version: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    first: bool,
}

impl Stream {
    /// The next view to send (None: the lobby is closing).
    pub(crate) async fn next(&mut self) -> Option<View> {
        if !self.first {
            tokio::select! {
                r = self.version.changed() => r.ok()?,
                _ = self.closing.wait_for(|c| *c) => return None,
            }
        }
        self.first = false;
        self.version.borrow_and_update();
        let view = self.hub.view();
        Some(view)
    }

    /// Records that `version` was sent.
    pub(crate) fn sent(&self, version: u64) {
        if let Some(seen) = lock(&self.hub.streams).get_mut(&self.id) {
            *seen = version;
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        lock(&self.hub.streams).remove(&self.id);
    }
}
