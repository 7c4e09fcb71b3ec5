//! Live delivery (Pickup 3.0 live mode): which WebSocket connections want which
//! client's messages pushed to them as they arrive.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

/// A frame queued for a WebSocket connection, with the memory it holds until written.
#[derive(Debug)]
pub struct OutFrame {
    /// The DIDComm message.
    pub text: String,
    /// Its share of the memory budget, given back when the frame is dropped.
    pub held: Option<crate::quota::Reservation>,
}

/// Sender for frames to a WebSocket connection.
pub type Outbound = mpsc::Sender<OutFrame>;

/// Registry of live connections per client DID.
#[derive(Default)]
pub struct Live {
    conns: Mutex<HashMap<String, Vec<(u64, Outbound)>>>,
}

impl Live {
    /// Enables or disables live delivery of `client`'s messages on connection `conn`.
    /// Returns whether `client` is live on some connection here now, if that changed.
    pub fn set(&self, client: &str, conn: u64, tx: &Outbound, on: bool) -> Option<bool> {
        let mut map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let before = map.contains_key(client);
        let list = map.entry(client.to_owned()).or_default();
        list.retain(|(id, _)| *id != conn);
        if on {
            list.push((conn, tx.clone()));
        }
        if list.is_empty() {
            map.remove(client);
        }
        let after = map.contains_key(client);
        (before != after).then_some(after)
    }

    /// Forgets a closed connection everywhere; returns the clients no longer live here.
    pub fn drop_conn(&self, conn: u64) -> Vec<String> {
        let mut map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut gone = Vec::new();
        map.retain(|client, list| {
            list.retain(|(id, _)| *id != conn);
            if list.is_empty() {
                gone.push(client.clone());
            }
            !list.is_empty()
        });
        gone
    }

    /// The clients live on some connection here.
    pub fn clients(&self) -> Vec<String> {
        let map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }

    /// The connections that want `client`'s messages now.
    pub fn targets(&self, client: &str) -> Vec<Outbound> {
        let map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        map.get(client).map(|l| l.iter().map(|(_, tx)| tx.clone()).collect()).unwrap_or_default()
    }

    /// Whether `client` is live on `conn`.
    pub fn is_live(&self, client: &str, conn: u64) -> bool {
        let map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        map.get(client).is_some_and(|l| l.iter().any(|(id, _)| *id == conn))
    }
}
