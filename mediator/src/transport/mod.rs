//! Transports: HTTP POST, WebSocket, optional TLS, and connection accounting.

pub mod http;
pub mod listener;
pub mod tls;
pub mod ws;
