//! TCP (RFC 9293) as sans-I/O state machines.
//!
//! - [`layer::TcpLayer`]: the TCP of one host: demultiplexing, listeners (SYN and accept
//!   queues), RSTs for segments to no socket, ICMP error routing, and a handle-based API for
//!   the socket layer.
//! - [`connection::Connection`]: one connection's state machine (handshake, data transfer,
//!   loss recovery, closing, keepalive), fed segments, application requests and `now`.
//! - Building blocks: [`seq`] (sequence-number arithmetic), [`rtt`] (RFC 6298),
//!   [`congestion`] (Reno, CUBIC), [`assembler`] / [`buffer`] (send and receive storage with
//!   out-of-order tracking), [`isn`] (RFC 6528), [`ports`] (RFC 6056), [`syncookie`] (RFC 4987),
//!   [`config`], [`stats`].
//!
//! Nothing here reads a clock or does I/O: see the driving contract on
//! [`connection::Connection`] and [`layer::TcpLayer`].

pub mod assembler;
pub mod buffer;
pub mod config;
pub mod congestion;
pub mod connection;
pub mod isn;
pub mod layer;
pub mod ports;
pub mod rtt;
pub mod seq;
pub mod stats;
pub mod syncookie;

pub use config::{SocketOptions, TcpConfig};
pub use connection::{
    Connection, ConnectionError, IcmpError, Readiness, RecvError, Segment, SendError, State,
};
pub use layer::{ConnHandle, ListenerHandle, TcpEvent, TcpLayer};
pub use seq::SeqNumber;
