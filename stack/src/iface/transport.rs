//! The boundary between the interface and the transports (TCP and UDP sockets).

use std::net::Ipv4Addr;

use super::egress::Egress;
use super::{InterfaceConfig, Ipv4Send, SendError};
use crate::time::Instant;
use crate::wire::icmpv4::{DstUnreachable, TimeExceeded};
use crate::wire::IpProtocol;

/// What a transport learns about the datagram that carried a segment or UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Meta {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    /// Sent to the limited or the subnet broadcast address (never answer with an error).
    pub broadcast: bool,
    /// Came through the stack's own loopback rather than the device.
    pub loopback: bool,
    /// Was put together from fragments.
    pub reassembled: bool,
    /// The transport checksum needs no verification: the datagram came from the stack's own
    /// loopback, or the device vouched for it (see [`Interface::receive_frame_verified`]).
    ///
    /// [`Interface::receive_frame_verified`]: super::Interface::receive_frame_verified
    pub checksum_trusted: bool,
}

/// The ICMP errors handed to transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpErrorKind {
    DstUnreachable(DstUnreachable),
    TimeExceeded(TimeExceeded),
    ParameterProblem { pointer: u8 },
}

/// An ICMP error quoting a datagram we sent, parsed for the transport. Source quench
/// (RFC 6633) and redirects are not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    pub kind: IcmpErrorKind,
    pub icmp_type: u8,
    pub code: u8,
    /// Who sent the ICMP message (a router, the peer, or we ourselves for ARP failures).
    pub from: Ipv4Addr,
    /// For "fragmentation needed" (type 3 code 4): the next-hop MTU (RFC 1191; 0 from routers
    /// that predate it).
    pub next_hop_mtu: Option<u16>,
    /// The quoted datagram's protocol and addresses (`src` is one of ours).
    pub protocol: IpProtocol,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The quoted TCP/UDP ports, when the quote holds them (first fragment, 4+ bytes).
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    quoted_transport: [u8; 8],
    quoted_transport_len: u8,
}

impl IcmpError {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kind: IcmpErrorKind,
        icmp_type: u8,
        code: u8,
        from: Ipv4Addr,
        next_hop_mtu: Option<u16>,
        protocol: IpProtocol,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        first_fragment: bool,
        transport_bytes: &[u8],
    ) -> IcmpError {
        let mut quoted_transport = [0u8; 8];
        let len = if first_fragment {
            transport_bytes.len().min(8)
        } else {
            0
        };
        quoted_transport[..len].copy_from_slice(&transport_bytes[..len]);
        let ports = match protocol {
            IpProtocol::Tcp | IpProtocol::Udp if len >= 4 => Some((
                u16::from_be_bytes([quoted_transport[0], quoted_transport[1]]),
                u16::from_be_bytes([quoted_transport[2], quoted_transport[3]]),
            )),
            _ => None,
        };
        IcmpError {
            kind,
            icmp_type,
            code,
            from,
            next_hop_mtu,
            protocol,
            src,
            dst,
            src_port: ports.map(|p| p.0),
            dst_port: ports.map(|p| p.1),
            quoted_transport,
            quoted_transport_len: len as u8,
        }
    }

    /// The first (up to 8) bytes of the quoted transport header: for TCP, ports and sequence
    /// number (what RFC 5927 checks before believing an error).
    pub fn quoted_transport(&self) -> &[u8] {
        &self.quoted_transport[..usize::from(self.quoted_transport_len).min(8)]
    }
}

/// What the interface hands up. Implemented by the daemon's socket layer; see the module
/// docs of [`crate::iface`] for when each method is called.
pub trait Transport {
    /// A TCP segment for us (the IPv4 header validated and stripped, reassembled if it came
    /// in fragments). The transport checks the TCP checksum itself. It may answer at once
    /// through `tx`.
    fn tcp(&mut self, now: Instant, ip: &Ipv4Meta, segment: &[u8], tx: &mut InterfaceTx<'_>);

    /// A UDP datagram for us: header and payload, length and checksum already verified.
    /// Returns false if no socket wants it; the interface then sends ICMP port unreachable
    /// (rate limited) unless the destination was a broadcast address.
    fn udp(&mut self, now: Instant, ip: &Ipv4Meta, datagram: &[u8]) -> bool;

    /// An ICMP error (destination unreachable, time exceeded, parameter problem) quoting one
    /// of our datagrams, including host unreachable generated locally when ARP fails.
    fn icmp_error(&mut self, now: Instant, error: &IcmpError);
}

/// A transport with no sockets: UDP is answered with port unreachable, TCP and ICMP errors
/// are ignored.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTransport;

impl Transport for NoTransport {
    fn tcp(&mut self, _: Instant, _: &Ipv4Meta, _: &[u8], _: &mut InterfaceTx<'_>) {}

    fn udp(&mut self, _: Instant, _: &Ipv4Meta, _: &[u8]) -> bool {
        false
    }

    fn icmp_error(&mut self, _: Instant, _: &IcmpError) {}
}

/// The sending half of an [`Interface`](super::Interface), lent to [`Transport::tcp`] so a
/// transport can answer while a frame is being processed.
pub struct InterfaceTx<'a> {
    pub(super) egress: &'a mut Egress,
}

impl InterfaceTx<'_> {
    /// Same as [`Interface::send_ipv4`](super::Interface::send_ipv4).
    pub fn send_ipv4(&mut self, now: Instant, packet: Ipv4Send<'_>) -> Result<(), SendError> {
        self.egress.send_ipv4(now, &packet, &[], None)
    }

    /// Same as [`Interface::confirm_reachable`](super::Interface::confirm_reachable).
    pub fn confirm_reachable(&mut self, now: Instant, remote: Ipv4Addr) {
        self.egress.confirm_reachable(now, remote);
    }

    /// Same as [`Interface::mtu_for`](super::Interface::mtu_for).
    pub fn mtu_for(&self, dst: Ipv4Addr) -> usize {
        self.egress.mtu_for(dst)
    }

    pub fn config(&self) -> &InterfaceConfig {
        self.egress.config()
    }
}
