//! The table of UDP sockets: demultiplexing arriving datagrams, ICMP errors, and the list of
//! sockets with something new for the application.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::socket::{Received, UdpBinding, UdpSocket};
use crate::iface::{IcmpError, IcmpErrorKind, Ipv4Meta};
use crate::tcp::connection::icmp::unreachable_error;
use crate::tcp::connection::ConnectionError;
use crate::wire::icmpv4::DstUnreachable;
use crate::wire::udp::{UdpRepr, HEADER_LEN};
use crate::wire::IpProtocol;

/// A UDP socket in a [`UdpLayer`]. Handles of closed sockets are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpHandle {
    index: u32,
    generation: u32,
}

/// Counters, named like Linux's `/proc/net/snmp` Udp line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams queued to a socket.
    pub in_datagrams: u64,
    /// Datagrams sent.
    pub out_datagrams: u64,
    /// Datagrams dropped because the socket's receive buffer was full.
    pub rcvbuf_errors: u64,
    /// ICMP errors that set a socket's pending error.
    pub icmp_errors: u64,
}

#[derive(Debug, Default)]
pub struct UdpLayer {
    sockets: Vec<Option<UdpSocket>>,
    free: Vec<u32>,
    generations: Vec<u32>,
    /// Socket indices by local port.
    by_port: HashMap<u16, Vec<u32>>,
    /// Sockets that got datagrams or an error since [`UdpLayer::take_ready`].
    ready: Vec<UdpHandle>,
    bind_counter: u64,
    stats: UdpStats,
}

impl UdpLayer {
    pub fn new() -> UdpLayer {
        UdpLayer::default()
    }

    pub fn stats(&self) -> &UdpStats {
        &self.stats
    }

    pub fn socket_count(&self) -> usize {
        self.sockets.iter().flatten().count()
    }

    fn socket(&self, handle: UdpHandle) -> Option<&UdpSocket> {
        self.sockets
            .get(handle.index as usize)?
            .as_ref()
            .filter(|s| s.generation == handle.generation)
    }

    fn socket_mut(&mut self, handle: UdpHandle) -> Option<&mut UdpSocket> {
        self.sockets
            .get_mut(handle.index as usize)?
            .as_mut()
            .filter(|s| s.generation == handle.generation)
    }

    /// A socket bound to `binding` (the caller has checked that it may share the port).
    pub fn open(&mut self, binding: UdpBinding) -> UdpHandle {
        let index = self.free.pop().unwrap_or_else(|| {
            self.sockets.push(None);
            self.generations.push(0);
            (self.sockets.len() - 1) as u32
        });
        let slot = index as usize;
        let generation = self.generations.get(slot).copied().unwrap_or(0);
        self.bind_counter += 1;
        if let Some(entry) = self.sockets.get_mut(slot) {
            *entry = Some(UdpSocket::new(generation, binding, self.bind_counter));
        }
        self.by_port
            .entry(binding.local.port())
            .or_default()
            .push(index);
        UdpHandle { index, generation }
    }

    /// Closes a socket; its queued datagrams are dropped.
    pub fn close(&mut self, handle: UdpHandle) {
        let Some(socket) = self.socket(handle) else {
            return;
        };
        let port = socket.binding.local.port();
        self.unlink(handle.index, port);
        let slot = handle.index as usize;
        if let Some(entry) = self.sockets.get_mut(slot) {
            *entry = None;
        }
        if let Some(generation) = self.generations.get_mut(slot) {
            *generation = generation.wrapping_add(1);
        }
        self.free.push(handle.index);
        self.ready.retain(|&h| h != handle);
    }

    fn unlink(&mut self, index: u32, port: u16) {
        if let Some(list) = self.by_port.get_mut(&port) {
            list.retain(|&i| i != index);
            if list.is_empty() {
                self.by_port.remove(&port);
            }
        }
    }

    pub fn binding(&self, handle: UdpHandle) -> Option<UdpBinding> {
        self.socket(handle).map(|s| s.binding)
    }

    /// Moves a socket to another local address (connect fixing the source address, or a
    /// disconnect releasing it).
    pub fn rebind(&mut self, handle: UdpHandle, binding: UdpBinding) {
        let Some(old) = self.binding(handle) else {
            return;
        };
        if old.local.port() != binding.local.port() {
            self.unlink(handle.index, old.local.port());
            self.by_port
                .entry(binding.local.port())
                .or_default()
                .push(handle.index);
        }
        if let Some(socket) = self.socket_mut(handle) {
            socket.binding = binding;
        }
    }

    /// Receives only from `peer` from now on, and sends there by default (`None`: from
    /// anyone). Datagrams already queued stay, as on Linux.
    pub fn set_peer(&mut self, handle: UdpHandle, peer: Option<SocketAddrV4>) {
        if let Some(socket) = self.socket_mut(handle) {
            socket.peer = peer;
            socket.error = None;
        }
    }

    pub fn peer(&self, handle: UdpHandle) -> Option<SocketAddrV4> {
        self.socket(handle).and_then(|s| s.peer)
    }

    pub fn set_rcvbuf(&mut self, handle: UdpHandle, bytes: usize) {
        if let Some(socket) = self.socket_mut(handle) {
            socket.rcvbuf = bytes;
        }
    }

    pub fn set_broadcast(&mut self, handle: UdpHandle, on: bool) {
        if let Some(socket) = self.socket_mut(handle) {
            socket.broadcast = on;
        }
    }

    pub fn broadcast(&self, handle: UdpHandle) -> bool {
        self.socket(handle).is_some_and(|s| s.broadcast)
    }

    /// The next queued datagram.
    pub fn recv(&mut self, handle: UdpHandle) -> Option<Received> {
        self.socket_mut(handle)?.dequeue()
    }

    /// The next queued datagram, left in the queue.
    pub fn peek(&self, handle: UdpHandle) -> Option<&Received> {
        self.socket(handle)?.rx.front()
    }

    /// Datagrams queued.
    pub fn queued(&self, handle: UdpHandle) -> usize {
        self.socket(handle).map_or(0, |s| s.rx.len())
    }

    /// Payload bytes queued (Recv-Q in `ustack ss`).
    pub fn queued_bytes(&self, handle: UdpHandle) -> usize {
        self.socket(handle)
            .map_or(0, |s| s.rx.iter().map(|d| d.payload.len()).sum())
    }

    /// The pending error, cleared (SO_ERROR, or the next send or receive).
    pub fn take_error(&mut self, handle: UdpHandle) -> Option<ConnectionError> {
        self.socket_mut(handle)?.error.take()
    }

    /// Sockets that got datagrams or an error since the last call, each once.
    pub fn take_ready(&mut self) -> Vec<UdpHandle> {
        std::mem::take(&mut self.ready)
    }

    fn mark_ready(&mut self, handle: UdpHandle) {
        if !self.ready.contains(&handle) {
            self.ready.push(handle);
        }
    }

    fn handle_of(&self, index: u32) -> Option<UdpHandle> {
        let socket = self.sockets.get(index as usize)?.as_ref()?;
        Some(UdpHandle {
            index,
            generation: socket.generation,
        })
    }

    /// The socket a unicast datagram from `src` to `dst:port` goes to.
    fn lookup(&self, src: SocketAddrV4, dst: Ipv4Addr, port: u16) -> Option<u32> {
        let candidates = self.by_port.get(&port)?;
        candidates
            .iter()
            .filter_map(|&index| {
                let socket = self.sockets.get(index as usize)?.as_ref()?;
                let score = socket.score(src, dst)?;
                Some(((score, socket.bound_at), index))
            })
            .max_by_key(|&(rank, _)| rank)
            .map(|(_, index)| index)
    }

    /// A verified datagram (header and payload) from the interface. Returns false if no
    /// socket wants it (the interface answers with port unreachable).
    pub fn receive(&mut self, ip: &Ipv4Meta, datagram: &[u8]) -> bool {
        let (Some(header), Some(payload)) = (
            datagram.get(..HEADER_LEN).and_then(parse_ports),
            datagram.get(HEADER_LEN..),
        ) else {
            return false;
        };
        let src = SocketAddrV4::new(ip.src, header.src_port);
        let targets: Vec<u32> = if ip.broadcast {
            // Linux's `__udp4_lib_mcast_deliver`: every socket on the port that is bound to
            // the wildcard or to that broadcast address and not connected elsewhere.
            self.by_port
                .get(&header.dst_port)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&index| {
                    self.sockets
                        .get(index as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|s| s.score(src, ip.dst).is_some())
                })
                .collect()
        } else {
            self.lookup(src, ip.dst, header.dst_port)
                .into_iter()
                .collect()
        };
        if targets.is_empty() {
            return false;
        }
        for index in targets {
            let Some(handle) = self.handle_of(index) else {
                continue;
            };
            let received = Received {
                from: src,
                to: ip.dst,
                payload: payload.to_vec(),
            };
            let queued = self
                .socket_mut(handle)
                .is_some_and(|socket| socket.enqueue(received));
            if queued {
                self.stats.in_datagrams += 1;
                self.mark_ready(handle);
            } else {
                self.stats.rcvbuf_errors += 1;
            }
        }
        true
    }

    /// An ICMP error quoting one of our datagrams. Like Linux without IP_RECVERR, only hard
    /// errors are reported, and only to a connected socket (RFC 1122 4.1.3.3 leaves it to the
    /// application; an unconnected socket cannot tell whose datagram failed).
    pub fn handle_icmp_error(&mut self, error: &IcmpError) {
        if error.protocol != IpProtocol::Udp {
            return;
        }
        let (Some(src_port), Some(dst_port)) = (error.src_port, error.dst_port) else {
            return;
        };
        let Some(kind) = hard_error(error.kind) else {
            return;
        };
        // The quoted datagram went from us (src) to the remote (dst): find the socket that
        // would receive the remote's answer.
        let remote = SocketAddrV4::new(error.dst, dst_port);
        let Some(handle) = self
            .lookup(remote, error.src, src_port)
            .and_then(|index| self.handle_of(index))
        else {
            return;
        };
        let Some(socket) = self.socket_mut(handle) else {
            return;
        };
        if socket.peer != Some(remote) {
            return;
        }
        socket.error = Some(kind);
        self.stats.icmp_errors += 1;
        self.mark_ready(handle);
    }

    /// Counts a datagram handed to IPv4.
    pub(crate) fn count_sent(&mut self) {
        self.stats.out_datagrams += 1;
    }
}

fn parse_ports(header: &[u8]) -> Option<UdpRepr> {
    Some(UdpRepr {
        src_port: u16::from_be_bytes([*header.first()?, *header.get(1)?]),
        dst_port: u16::from_be_bytes([*header.get(2)?, *header.get(3)?]),
    })
}

/// The errors Linux's `__udp4_lib_err` reports to a connected socket ("hard" errors).
fn hard_error(kind: IcmpErrorKind) -> Option<ConnectionError> {
    match kind {
        IcmpErrorKind::DstUnreachable(DstUnreachable::FragmentationNeeded) => {
            Some(ConnectionError::MessageTooLong)
        }
        IcmpErrorKind::DstUnreachable(code) => match unreachable_error(u8::from(code)) {
            Some((error, true)) => Some(error),
            _ => None,
        },
        IcmpErrorKind::ParameterProblem { .. } => Some(ConnectionError::ProtocolError),
        IcmpErrorKind::TimeExceeded(_) => None,
    }
}
