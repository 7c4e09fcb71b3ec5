//! Taking messages from the inbox: draining it over HTTP ([`Agent::fetch`]), taking only
//! the wanted ones ([`Agent::take_matching`]), and following it live over the mediator's
//! WebSocket with reconnects ([`Agent::follow`]).

use std::time::Duration;

use did_core::didcomm::message::Message;
use did_core::didcomm::vocab::{Delivery, DeliveryRequest, LiveDeliveryChange, MessagesReceived, Status};
use did_core::didcomm::{self, UnpackMetadata, UnpackOptions};
use futures_util::StreamExt;

use super::{Agent, Incoming};
use crate::error::{Error, Result};
use crate::inbox::{Gated, UNPACK_AT_ONCE, UNPACK_TIMEOUT};
use crate::link::{backoff, deliveries, Link};

impl Agent {
    async fn open(&self, d: crate::link::Delivered) -> Incoming {
        let gated = Gated { inner: &self.resolver, expected: &self.expected };
        let opts = UnpackOptions::default();
        let unpack = didcomm::unpack(&d.envelope, &gated, &self.keys, &opts);
        let result = match tokio::time::timeout(UNPACK_TIMEOUT, unpack).await {
            Ok(r) => r,
            Err(_) => Err(did_core::Error::Resolution {
                did: "(the sender)".into(),
                reason: format!("opening the message took longer than {UNPACK_TIMEOUT:?}"),
            }),
        };
        Incoming { id: d.id, result }
    }

    /// Opens a batch, [`UNPACK_AT_ONCE`] at a time; results in queue order.
    async fn open_all(&self, batch: Vec<crate::link::Delivered>) -> Vec<Incoming> {
        futures_util::stream::iter(batch.into_iter().map(|d| self.open(d))).buffered(UNPACK_AT_ONCE).collect().await
    }

    /// Drains the inbox over HTTP: `handle` sees each message, which is acknowledged
    /// after `handle` returns `Ok`. Returns how many were handled.
    pub async fn fetch<F>(&self, mut handle: F) -> Result<usize>
    where
        F: FnMut(Incoming) -> Result<()>,
    {
        let link = self.link();
        let mut n = 0;
        loop {
            let answer = link.request(Message::typed(&DeliveryRequest { limit: 50, recipient_did: None })).await?;
            if answer.is::<Status>() {
                return Ok(n);
            }
            let mut ids = Vec::new();
            for inc in self.open_all(deliveries(&answer)?).await {
                ids.push(inc.id.clone());
                handle(inc)?;
                n += 1;
            }
            link.request(Message::typed(&MessagesReceived { message_id_list: ids })).await?;
        }
    }

    /// Looks at up to `limit` queued messages and takes (acknowledges) only those `want`
    /// accepts; the others stay queued for `inbox`.
    pub async fn take_matching(
        &self,
        limit: usize,
        want: impl Fn(&Message) -> bool,
    ) -> Result<Vec<(Message, UnpackMetadata)>> {
        let link = self.link();
        let ask = Message::typed(&DeliveryRequest { limit: limit.min(1000) as u32, recipient_did: None });
        let answer = link.request(ask).await?;
        if answer.is::<Status>() {
            return Ok(Vec::new());
        }
        let (mut taken, mut ids) = (Vec::new(), Vec::new());
        for inc in self.open_all(deliveries(&answer)?).await {
            if let Ok(m) = inc.result {
                if want(&m.0) {
                    taken.push(m);
                    ids.push(inc.id);
                }
            }
        }
        if !ids.is_empty() {
            link.request(Message::typed(&MessagesReceived { message_id_list: ids })).await?;
        }
        Ok(taken)
    }

    /// Follows the inbox live over the mediator's WebSocket until `stop` completes:
    /// drains the queue, then handles deliveries as they arrive; reconnects with backoff.
    pub async fn follow<F>(&self, mut handle: F, stop: impl std::future::Future<Output = ()>) -> Result<()>
    where
        F: FnMut(Incoming) -> Result<()>,
    {
        let ws_uri =
            self.file.mediator.ws.clone().ok_or_else(|| {
                Error::State("the mediator has no WebSocket endpoint; use inbox without --follow".into())
            })?;
        tokio::pin!(stop);
        let mut attempt = 0u32;
        loop {
            // `stop` ends the connection only between batches, so everything handed over
            // was acknowledged too.
            match self.follow_once(&ws_uri, &mut handle, &mut attempt, &mut stop).await {
                Ok(true) => return Ok(()),
                Err(e @ (Error::Refused { .. } | Error::Didcomm(_) | Error::State(_))) => return Err(e),
                Err(e) => tracing::warn!(error = %e, "inbox connection lost; reconnecting"),
                Ok(false) => tracing::info!("mediator closed the connection; reconnecting"),
            }
            let pause = backoff(attempt);
            attempt += 1;
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One connection's worth of following; true when `stop` ended it.
    async fn follow_once<F, S>(
        &self,
        ws_uri: &str,
        handle: &mut F,
        attempt: &mut u32,
        stop: &mut std::pin::Pin<&mut S>,
    ) -> Result<bool>
    where
        F: FnMut(Incoming) -> Result<()>,
        S: std::future::Future<Output = ()>,
    {
        let link = self.link();
        let mut ws = tokio::select! {
            _ = stop.as_mut() => return Ok(true),
            ws = self.transport.connect(ws_uri) => ws?,
        };
        let mut early = Vec::new();
        let mut seen = Seen::default();
        link.request_ws(&mut ws, Message::typed(&LiveDeliveryChange { live_delivery: true }), &mut early).await?;
        *attempt = 0;
        // Drain what queued while we were away, then take live deliveries.
        loop {
            let ask = Message::typed(&DeliveryRequest { limit: 50, recipient_did: None });
            let answer = link.request_ws(&mut ws, ask, &mut early).await?;
            if answer.is::<Status>() {
                break;
            }
            early.push(answer);
            self.handle_batch(&link, &mut ws, &mut early, &mut seen, handle).await?;
        }
        self.handle_batch(&link, &mut ws, &mut early, &mut seen, handle).await?;
        loop {
            let frame = tokio::select! {
                _ = stop.as_mut() => {
                    ws.close().await;
                    return Ok(true);
                }
                f = ws.recv_timeout(Duration::from_secs(3600)) => f?,
            };
            let Some(frame) = frame else { return Ok(false) };
            let (m, _) = link.open(&frame).await?;
            early.push(m);
            self.handle_batch(&link, &mut ws, &mut early, &mut seen, handle).await?;
        }
    }

    /// Handles queued `delivery` messages and acknowledges them.
    async fn handle_batch<F>(
        &self,
        link: &Link<'_>,
        ws: &mut crate::transport::WsConn,
        batch: &mut Vec<Message>,
        seen: &mut Seen,
        handle: &mut F,
    ) -> Result<()>
    where
        F: FnMut(Incoming) -> Result<()>,
    {
        while !batch.is_empty() {
            let m = batch.remove(0);
            if !m.is::<Delivery>() {
                continue;
            }
            let all = deliveries(&m)?;
            let ids: Vec<String> = all.iter().map(|d| d.id.clone()).collect();
            // A message can arrive live and in a delivery we asked for at the same time:
            // hand it over once, acknowledge it either way.
            let fresh: Vec<_> = all.into_iter().filter(|d| seen.insert(&d.id)).collect();
            for inc in self.open_all(fresh).await {
                handle(inc)?;
            }
            if !ids.is_empty() {
                link.request_ws(ws, Message::typed(&MessagesReceived { message_id_list: ids }), batch).await?;
            }
        }
        Ok(())
    }
}

/// Queue ids handed over in this session (bounded).
#[derive(Default)]
struct Seen {
    set: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl Seen {
    const MAX: usize = 10_000;

    /// True the first time `id` is seen.
    fn insert(&mut self, id: &str) -> bool {
        if !self.set.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > Self::MAX {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}
