//! The lab's orchestration (binary only): namespaces and processes ([`sys`], [`topo`]), the
//! transports ([`plain`], [`wireguard`], [`didmpc`]), the matrix ([`matrix`]), the report
//! ([`report`]) and the emulator's calibration ([`calibrate`]).

pub mod calibrate;
pub mod didmpc;
pub mod http;
pub mod matrix;
pub mod parties;
pub mod plain;
pub mod report;
pub mod sys;
pub mod topo;
pub mod transport;
pub mod wireguard;
