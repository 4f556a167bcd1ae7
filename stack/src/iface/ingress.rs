//! The receiving half: Ethernet demultiplexing, ARP input, IPv4 validation and address
//! checks, reassembly, and delivery to ICMP, UDP and TCP. Every discarded frame or datagram is
//! counted under its reason.

use std::net::Ipv4Addr;

use super::egress::{IcmpErrorOut, Offending};
use super::neighbor::Learned;
use super::transport::{InterfaceTx, Ipv4Meta, Transport};
use super::Interface;
use crate::time::Instant;
use crate::wire::arp::{ArpError, ArpOperation, ArpRepr};
use crate::wire::icmpv4::DstUnreachable;
use crate::wire::ipv4::{self, option, Ipv4Error, Ipv4Packet, Ipv4Repr, OptionsIter};
use crate::wire::udp::{UdpError, UdpRepr};
use crate::wire::{EtherType, EthernetRepr, IpProtocol};

/// How a datagram reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// From the device, in a frame sent to our MAC (`link_broadcast` false) or to a group
    /// address.
    Link {
        link_broadcast: bool,
        /// The device vouched for the transport checksum.
        checksum_trusted: bool,
    },
    /// From the stack's own loopback.
    Loopback,
}

/// A datagram that passed the IP checks, ready for its protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inbound<'a> {
    pub(crate) meta: Ipv4Meta,
    pub(crate) repr: Ipv4Repr,
    /// The (first fragment's) header, options included.
    pub(crate) header: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) link_broadcast: bool,
}

impl Inbound<'_> {
    /// The datagram as an ICMP error would quote it.
    pub(crate) fn offending(&self) -> Offending<'_> {
        Offending {
            repr: self.repr,
            header: self.header,
            payload: self.payload,
            to_broadcast: self.meta.broadcast,
            link_broadcast: self.link_broadcast,
        }
    }

    /// The option bytes of the header.
    pub(crate) fn options(&self) -> &[u8] {
        self.header.get(ipv4::MIN_HEADER_LEN..).unwrap_or(&[])
    }
}

impl Interface {
    pub(crate) fn ethernet_input(
        &mut self,
        now: Instant,
        frame: &[u8],
        checksum_trusted: bool,
        transport: &mut dyn Transport,
    ) {
        let our_mac = self.egress.config().mac;
        let stats = &mut self.egress.stats;
        stats.frames_in += 1;
        let Ok((eth, payload)) = EthernetRepr::parse(frame) else {
            stats.eth_truncated += 1;
            return;
        };
        // Only frames for us or for everyone; a group or zero source is never a station.
        if (eth.dst != our_mac && !eth.dst.is_broadcast()) || !eth.src.is_unicast() {
            stats.eth_not_for_us += 1;
            return;
        }
        match eth.ethertype {
            EtherType::Arp => self.arp_input(now, payload),
            EtherType::Ipv4 => {
                let arrival = Arrival::Link {
                    link_broadcast: eth.dst.is_multicast(),
                    checksum_trusted,
                };
                self.ipv4_input(now, payload, arrival, transport);
            }
            EtherType::Ipv6 | EtherType::Unknown(_) => stats.eth_unknown_ethertype += 1,
        }
    }

    fn arp_input(&mut self, now: Instant, payload: &[u8]) {
        let config = self.egress.config().clone();
        let stats = &mut self.egress.stats;
        stats.arp_in += 1;
        let arp = match ArpRepr::parse(payload) {
            Ok(arp) => arp,
            Err(ArpError::Truncated) => {
                stats.arp_truncated += 1;
                return;
            }
            Err(ArpError::Unsupported) => {
                stats.arp_unsupported += 1;
                return;
            }
        };
        match arp.operation {
            ArpOperation::Request => stats.arp_requests_in += 1,
            ArpOperation::Reply => stats.arp_replies_in += 1,
            ArpOperation::Unknown(_) => {
                stats.arp_unknown_operation += 1;
                return;
            }
        }
        let sender_ip = arp.sender_protocol_addr;
        if !arp.sender_hardware_addr.is_unicast()
            || (!sender_ip.is_unspecified()
                && (!ipv4::is_unicast_host(sender_ip) || sender_ip.is_loopback()))
        {
            stats.arp_bad_sender += 1;
            return;
        }
        if sender_ip == config.addr {
            // Our own announcement looped back is harmless; anyone else is a conflict.
            if arp.sender_hardware_addr != config.mac {
                stats.arp_address_conflict += 1;
            }
            return;
        }
        let for_us = arp.target_protocol_addr == config.addr;
        // RFC 826: "If the pair <protocol type, sender protocol address> is already in my
        // translation table, update the sender hardware address field". A sender of 0.0.0.0
        // is an address probe (RFC 5227) and teaches nothing.
        if !sender_ip.is_unspecified() {
            let how = match (arp.operation, for_us) {
                (ArpOperation::Reply, true) => Learned::Reply,
                (ArpOperation::Request, true) => Learned::RequestForUs,
                _ => Learned::Other,
            };
            if let Some(queue) =
                self.egress
                    .neighbors_mut()
                    .learn(now, sender_ip, arp.sender_hardware_addr, how)
            {
                self.egress.stats.arp_resolved += 1;
                self.egress.release_pending(arp.sender_hardware_addr, queue);
            }
        }
        // RFC 826: "?Is the opcode ares_op$REQUEST? Yes: ... send the packet". Probes from
        // 0.0.0.0 are answered too (RFC 5227 2.1.1, as Linux does).
        if arp.operation == ArpOperation::Request && for_us {
            self.egress.send_arp_reply(&arp);
        }
    }

    /// Validates a datagram and hands it on (also used for loopback datagrams).
    pub(crate) fn ipv4_input(
        &mut self,
        now: Instant,
        bytes: &[u8],
        arrival: Arrival,
        transport: &mut dyn Transport,
    ) {
        let config = self.egress.config().clone();
        let stats = &mut self.egress.stats;
        stats.ipv4_in += 1;
        let packet = match Ipv4Packet::parse(bytes) {
            Ok(packet) => packet,
            Err(error) => {
                match error {
                    Ipv4Error::Truncated => stats.ipv4_truncated += 1,
                    Ipv4Error::BadVersion(_) => stats.ipv4_bad_version += 1,
                    Ipv4Error::BadHeaderLen(_) => stats.ipv4_bad_ihl += 1,
                    Ipv4Error::BadTotalLen(_) => stats.ipv4_bad_length += 1,
                    Ipv4Error::BadChecksum => stats.ipv4_bad_checksum += 1,
                }
                return;
            }
        };
        let repr = packet.repr;

        // Options: walked so malformed ones cannot hurt later stages; source routes are
        // refused as a Linux host does (`accept_source_route=0`).
        for opt in OptionsIter::new(packet.options()) {
            match opt {
                Err(_) => {
                    stats.ipv4_bad_options += 1;
                    return;
                }
                Ok(o)
                    if o.kind == option::LOOSE_SOURCE_ROUTE
                        || o.kind == option::STRICT_SOURCE_ROUTE =>
                {
                    stats.ipv4_source_routed += 1;
                    return;
                }
                Ok(_) => {}
            }
        }

        let (broadcast, link_broadcast) = match arrival {
            Arrival::Loopback => {
                if !config.is_local(repr.dst_addr) {
                    stats.ipv4_not_for_us += 1;
                    return;
                }
                (false, false)
            }
            Arrival::Link { link_broadcast, .. } => {
                let dst = repr.dst_addr;
                let broadcast = config.is_broadcast(dst);
                if is_martian_source(&config, repr.src_addr, broadcast) {
                    stats.ipv4_martian_source += 1;
                    return;
                }
                if dst.is_loopback() {
                    stats.ipv4_martian_destination += 1;
                    return;
                }
                if dst != config.addr && !broadcast {
                    stats.ipv4_not_for_us += 1;
                    return;
                }
                // RFC 1122 3.3.6: "A host SHOULD silently discard a datagram that is received
                // via a link-layer broadcast but does not specify an IP multicast or broadcast
                // destination address."
                if link_broadcast && !broadcast {
                    stats.ipv4_unicast_in_link_broadcast += 1;
                    return;
                }
                (broadcast, link_broadcast)
            }
        };
        // RFC 1122 3.2.1.7: "A host MUST NOT discard a datagram just because it was received
        // with TTL less than 2." Counted only.
        if repr.ttl == 0 {
            stats.ipv4_ttl_zero_in += 1;
        }
        let meta = Ipv4Meta {
            src: repr.src_addr,
            dst: repr.dst_addr,
            protocol: repr.protocol,
            ttl: repr.ttl,
            tos: repr.tos,
            ident: repr.ident,
            broadcast,
            loopback: arrival == Arrival::Loopback,
            reassembled: false,
            checksum_trusted: match arrival {
                Arrival::Link {
                    checksum_trusted, ..
                } => checksum_trusted,
                Arrival::Loopback => true,
            },
        };
        if !repr.is_fragment() {
            let inbound = Inbound {
                meta,
                repr,
                header: packet.header,
                payload: packet.payload,
                link_broadcast,
            };
            self.deliver(now, &inbound, transport);
            return;
        }
        stats.ipv4_fragments_in += 1;
        let Some(whole) = self.reassembler.insert(
            now,
            &repr,
            packet.header,
            packet.payload,
            &mut self.egress.stats,
        ) else {
            return;
        };
        self.egress.stats.ipv4_reassembled += 1;
        let mut whole_repr = repr;
        whole_repr.frag_offset = 0;
        whole_repr.more_fragments = false;
        whole_repr.header_len = whole.header_len;
        whole_repr.payload_len = whole.payload.len();
        let inbound = Inbound {
            meta: Ipv4Meta {
                reassembled: true,
                // Only whole datagrams come with the device's word for their checksum.
                checksum_trusted: meta.loopback,
                ..meta
            },
            repr: whole_repr,
            header: whole.header(),
            payload: &whole.payload,
            link_broadcast,
        };
        self.deliver(now, &inbound, transport);
    }

    fn deliver(&mut self, now: Instant, inbound: &Inbound<'_>, transport: &mut dyn Transport) {
        self.egress.stats.ipv4_delivered += 1;
        match inbound.meta.protocol {
            IpProtocol::Icmp => self.icmp_input(now, inbound, transport),
            IpProtocol::Udp => self.udp_input(now, inbound, transport),
            IpProtocol::Tcp => {
                self.egress.stats.tcp_in += 1;
                let mut tx = InterfaceTx {
                    egress: &mut self.egress,
                };
                transport.tcp(now, &inbound.meta, inbound.payload, &mut tx);
            }
            IpProtocol::Unknown(_) => {
                self.egress.stats.ipv4_unknown_protocol += 1;
                // RFC 1122 3.2.2.1: a host SHOULD generate protocol unreachable.
                self.egress.send_icmp_error(
                    now,
                    IcmpErrorOut::DstUnreachable(DstUnreachable::ProtocolUnreachable),
                    &inbound.offending(),
                );
            }
        }
    }

    fn udp_input(&mut self, now: Instant, inbound: &Inbound<'_>, transport: &mut dyn Transport) {
        let stats = &mut self.egress.stats;
        stats.udp_in += 1;
        let meta = &inbound.meta;
        let parsed = if meta.checksum_trusted {
            UdpRepr::parse_trusted(inbound.payload)
        } else {
            UdpRepr::parse(inbound.payload, meta.src, meta.dst)
        };
        let datagram = match parsed {
            Ok((_, datagram)) => datagram,
            Err(error) => {
                match error {
                    UdpError::Truncated => stats.udp_truncated += 1,
                    UdpError::BadLength => stats.udp_bad_length += 1,
                    UdpError::BadChecksum => stats.udp_bad_checksum += 1,
                }
                return;
            }
        };
        if transport.udp(now, meta, datagram) {
            return;
        }
        self.egress.stats.udp_no_port += 1;
        // RFC 1122 4.1.3.1: "If a datagram arrives addressed to a UDP port for which there is
        // no pending LISTEN call, UDP SHOULD send an ICMP Port Unreachable message." The
        // broadcast and rate-limit exceptions are applied by `send_icmp_error`.
        self.egress.send_icmp_error(
            now,
            IcmpErrorOut::DstUnreachable(DstUnreachable::PortUnreachable),
            &inbound.offending(),
        );
    }
}

/// RFC 1122 3.2.1.3 and Linux `ip_route_input_slow`: sources no remote host may use. 0.0.0.0
/// is allowed only towards a broadcast address (a host without an address yet, e.g. DHCP).
fn is_martian_source(config: &super::InterfaceConfig, src: Ipv4Addr, to_broadcast: bool) -> bool {
    if src.is_unspecified() {
        return !to_broadcast;
    }
    !ipv4::is_unicast_host(src)
        || src.is_loopback()
        || config.is_broadcast(src)
        || src == config.addr
}
