//! What the mediator benches share: reading one figure of `/metrics`, and blasting pre-packed
//! forwards over 8 WebSockets until the instances have queued them all.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Frame;

/// One counter or gauge of `url`'s `/metrics` (0 when absent).
pub async fn metric(url: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The sum of `name` over `instances`.
pub async fn total(instances: &[String], name: &str) -> u64 {
    let mut n = 0;
    for u in instances {
        n += metric(u, name).await;
    }
    n
}

/// Sends `packed` over 8 WebSockets to `ws_url` and returns once `instances` have queued
/// `packed.len()` more forwards than `before` (their `forwards_queued_total`); panics on the
/// first refusal. The sockets stay open until the returned value is dropped.
pub async fn blast(ws_url: &str, packed: &[String], instances: &[String], before: u64) -> Vec<Box<dyn Send>> {
    let chunks: Vec<Vec<String>> = packed.chunks(packed.len().div_ceil(8)).map(<[String]>::to_vec).collect();
    let mut senders = Vec::new();
    for chunk in chunks {
        let ws_url = ws_url.to_owned();
        senders.push(tokio::spawn(async move {
            let (ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
            let (mut sink, mut stream) = ws.split();
            let reader = tokio::spawn(async move {
                while let Some(Ok(f)) = stream.next().await {
                    if let Frame::Text(t) = f {
                        panic!("mediator refused a forward: {t}");
                    }
                }
            });
            for m in chunk {
                sink.send(Frame::Text(m.into())).await.unwrap();
            }
            Box::new((sink, reader)) as Box<dyn Send>
        }));
    }
    let mut keep = Vec::new();
    for s in senders {
        keep.push(s.await.unwrap());
    }
    while total(instances, "didmpc_mediator_forwards_queued_total").await - before < packed.len() as u64 {
        let refused = total(instances, "didmpc_mediator_forwards_refused_total").await;
        assert_eq!(refused, 0, "the mediator refused {refused} forwards (see its /metrics for the reason)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    keep
}
