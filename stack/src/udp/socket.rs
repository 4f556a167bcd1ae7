//! One UDP socket's state: addresses, receive queue, pending error.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::tcp::connection::ConnectionError;

/// Linux's `net.core.rmem_default`.
pub const DEFAULT_RCVBUF: usize = 212_992;

/// What Linux charges a queued datagram beyond its payload (the skb's truesize overhead for a
/// small packet), so that a flood of tiny datagrams is bounded by count as well as bytes.
pub(crate) const PER_DATAGRAM_OVERHEAD: usize = 768;

/// Where a socket receives: its local address and port and how well it matches IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpBinding {
    /// The bound address; 0.0.0.0 takes datagrams for any local address.
    pub local: SocketAddrV4,
    /// An AF_INET socket outranks a dual-stack AF_INET6 one bound to the same port, as in
    /// Linux's `compute_score` (2 against 1).
    pub ipv4_native: bool,
}

/// A datagram waiting to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub from: SocketAddrV4,
    /// The local address it was sent to (a broadcast address for broadcasts).
    pub to: Ipv4Addr,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct UdpSocket {
    pub generation: u32,
    pub binding: UdpBinding,
    pub peer: Option<SocketAddrV4>,
    pub rx: VecDeque<Received>,
    /// Bytes charged for `rx` (payload plus [`PER_DATAGRAM_OVERHEAD`] each).
    pub rx_charged: usize,
    pub rcvbuf: usize,
    /// SO_BROADCAST: may send to broadcast addresses.
    pub broadcast: bool,
    /// The error an ICMP message left for the application (Linux's `sk_err`).
    pub error: Option<ConnectionError>,
    /// Bind order: among equally good matches the most recent binding wins, as in Linux,
    /// which adds new sockets at the head of its hash chain.
    pub bound_at: u64,
}

impl UdpSocket {
    pub fn new(generation: u32, binding: UdpBinding, bound_at: u64) -> UdpSocket {
        UdpSocket {
            generation,
            binding,
            peer: None,
            rx: VecDeque::new(),
            rx_charged: 0,
            rcvbuf: DEFAULT_RCVBUF,
            broadcast: false,
            error: None,
            bound_at,
        }
    }

    /// Linux's `compute_score` for a datagram from `src` to `dst`: `None` if this socket must
    /// not receive it.
    pub fn score(&self, src: SocketAddrV4, dst: Ipv4Addr) -> Option<u8> {
        let mut score = if self.binding.ipv4_native { 2 } else { 1 };
        let local = *self.binding.local.ip();
        if !local.is_unspecified() {
            if local != dst {
                return None;
            }
            score += 4;
        }
        if let Some(peer) = self.peer {
            if *peer.ip() != *src.ip() || peer.port() != src.port() {
                return None;
            }
            score += 8;
        }
        Some(score)
    }

    /// Queues a datagram unless the receive buffer is full (Linux drops and counts
    /// `RcvbufErrors`; a datagram is accepted while the buffer is not yet over its limit).
    pub fn enqueue(&mut self, datagram: Received) -> bool {
        if self.rx_charged >= self.rcvbuf {
            return false;
        }
        self.rx_charged += datagram.payload.len() + PER_DATAGRAM_OVERHEAD;
        self.rx.push_back(datagram);
        true
    }

    pub fn dequeue(&mut self) -> Option<Received> {
        let datagram = self.rx.pop_front()?;
        self.rx_charged = self
            .rx_charged
            .saturating_sub(datagram.payload.len() + PER_DATAGRAM_OVERHEAD);
        Some(datagram)
    }
}
