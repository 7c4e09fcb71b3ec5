//! Transports: HTTP POST, WebSocket, optional TLS, and connection accounting.

pub mod http;
pub mod listener;
pub mod relay_ws;
pub mod tls;
pub mod ws;
