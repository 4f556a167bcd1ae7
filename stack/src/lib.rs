//! ustack's protocol core: wire formats, ARP, IPv4, ICMP, UDP and TCP as state machines.
//!
//! Nothing in this library does I/O or reads a clock. Each layer is handed an input (a frame,
//! a parsed segment, an application request) and the current [`time::Instant`], and hands back
//! what to transmit and when it next wants to be woken (`poll_at`). The daemon (`ustackd`) is
//! the only place that touches devices, sockets and clocks; simulations drive the same code
//! with virtual time.
#![forbid(unsafe_code)]

pub mod control;
pub mod host;
pub mod iface;
pub mod services;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;
