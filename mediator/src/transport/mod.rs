//! Transports: HTTP POST, WebSocket, optional TLS, connection accounting, and UDP (the
//! reflexive-address probe).

pub mod http;
pub mod listener;
pub mod relay_ws;
pub mod tls;
pub mod udp;
pub mod ws;
