//! The sending half of the interface: routing, source selection, fragmentation (RFC 791 3.2),
//! ARP resolution and the frames it sends, the loopback, ICMP error generation (RFC 1122
//! 3.2.2) and the device queue.
//!
//! Fragmentation: the first fragment carries all options, later ones only those with the
//! copied flag; every fragment but the last carries a multiple of 8 data bytes, as many as
//! the MTU allows. DF with a datagram over the MTU is refused with `MessageTooLong`, never
//! fragmented (the transport learns the MTU from it, as Linux's EMSGSIZE).

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use super::ident::IdentGenerator;
use super::limits;
use super::neighbor::{Enqueued, NeighborCache, NeighborEvent, PendingDatagram, Resolution};
use super::queue::{FrameQueue, LoopbackQueue};
use super::ratelimit::IcmpRateLimiter;
use super::reassembly::Expired;
use super::route::{self, Route};
use super::{InterfaceConfig, Ipv4Send, MemoryUsage, Segmentation, SendError};
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::arp::{ArpOperation, ArpRepr};
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetRepr};
use crate::wire::icmpv4::{self, DstUnreachable, Icmpv4Repr, TimeExceeded};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr, MAX_OPTIONS_LEN};

/// RFC 1349 / Linux: ICMP errors are sent with precedence "internetwork control" and the TOS
/// bits of the offending datagram (`IPTOS_PREC_INTERNETCONTROL | (tos & IPTOS_TOS_MASK)`).
const ICMP_ERROR_PRECEDENCE: u8 = 0xc0;
const IPTOS_TOS_MASK: u8 = 0x1e;
/// Linux's highest known ICMP type (`NR_ICMP_TYPES`, address mask reply); ICMP messages of a
/// higher type are treated like errors and never answered with an error.
const LINUX_NR_ICMP_TYPES: u8 = 18;

/// The datagram an ICMP error is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offending<'a> {
    pub(crate) repr: Ipv4Repr,
    /// Its header, options included.
    pub(crate) header: &'a [u8],
    /// As much of its payload as is at hand.
    pub(crate) payload: &'a [u8],
    /// Sent to an IP broadcast address.
    pub(crate) to_broadcast: bool,
    /// Arrived in a link-layer broadcast/multicast frame.
    pub(crate) link_broadcast: bool,
}

/// The ICMP errors we generate.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IcmpErrorOut {
    DstUnreachable(DstUnreachable),
    TimeExceeded(TimeExceeded),
}

#[derive(Debug)]
pub(crate) struct Egress {
    config: InterfaceConfig,
    pub(crate) stats: Stats,
    neighbors: NeighborCache,
    tx: FrameQueue,
    loopback: LoopbackQueue,
    idents: IdentGenerator,
    icmp_limiter: IcmpRateLimiter,
    /// The latest `now` seen: what `poll_at` answers when output is waiting.
    last_now: Instant,
    /// Reused: frames of the datagram being built.
    frames: Vec<Vec<u8>>,
    /// Reused: neighbour events of one `handle_timeout`.
    events: Vec<NeighborEvent>,
    /// Reused: the quote of the datagram an ICMP error is about, and the error message.
    icmp_quote: Vec<u8>,
    icmp_message: Vec<u8>,
}

impl Egress {
    pub(crate) fn new(config: InterfaceConfig, now: Instant, seed: u64) -> Self {
        let frame_capacity = ethernet::HEADER_LEN + config.mtu;
        Egress {
            config,
            stats: Stats::default(),
            neighbors: NeighborCache::default(),
            tx: FrameQueue::new(frame_capacity),
            loopback: LoopbackQueue::new(),
            idents: IdentGenerator::new(seed),
            icmp_limiter: IcmpRateLimiter::new(now),
            last_now: now,
            frames: Vec::new(),
            events: Vec::new(),
            icmp_quote: Vec::with_capacity(limits::ICMP_ERROR_MAX_LEN),
            icmp_message: Vec::with_capacity(limits::ICMP_ERROR_MAX_LEN),
        }
    }

    pub(crate) fn config(&self) -> &InterfaceConfig {
        &self.config
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    pub(crate) fn observe(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }

    pub(crate) fn last_now(&self) -> Instant {
        self.last_now
    }

    pub(crate) fn has_output(&self) -> bool {
        !self.tx.is_empty() || self.loopback.len() > 0
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.neighbors.next_deadline()
    }

    pub(crate) fn neighbor(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.neighbors.lookup(ip)
    }

    pub(crate) fn memory(&self) -> MemoryUsage {
        MemoryUsage {
            tx_frames: self.tx.len(),
            loopback_datagrams: self.loopback.len(),
            loopback_bytes: self.loopback.bytes(),
            neighbor_entries: self.neighbors.len(),
            neighbor_queued_bytes: self.neighbors.queued_bytes(),
            ..MemoryUsage::default()
        }
    }

    pub(crate) fn mtu_for(&self, dst: Ipv4Addr) -> usize {
        match route::route(&self.config, dst) {
            Ok(Route::Loopback) => ipv4::MAX_PACKET_LEN,
            _ => self.config.mtu,
        }
    }

    pub(crate) fn transmit(&mut self, send: &mut dyn FnMut(&[u8]) -> bool) {
        self.stats.frames_out += self.tx.transmit(send);
    }

    pub(crate) fn transmit_offload(
        &mut self,
        send: &mut dyn FnMut(&mut [u8], Option<u16>) -> bool,
    ) {
        let (wire, supers) = self.tx.transmit_offload(send);
        self.stats.frames_out += wire;
        self.stats.tso_frames_out += supers;
    }

    pub(crate) fn loopback_len(&self) -> usize {
        self.loopback.len()
    }

    pub(crate) fn pop_loopback(&mut self) -> Option<Vec<u8>> {
        let datagram = self.loopback.pop()?;
        self.stats.loopback_in += 1;
        Some(datagram)
    }

    pub(crate) fn recycle_loopback(&mut self, datagram: Vec<u8>) {
        self.loopback.recycle(datagram);
    }

    // ---------------------------------------------------------------- IPv4 output

    /// Sends one datagram with the given options (already padded to a multiple of 4), or a
    /// TCP super-segment for the device to cut (`segmentation`).
    pub(crate) fn send_ipv4(
        &mut self,
        now: Instant,
        packet: &Ipv4Send<'_>,
        options: &[u8],
        segmentation: Option<Segmentation>,
    ) -> Result<(), SendError> {
        let result = self.try_send_ipv4(now, packet, options, segmentation);
        match result {
            Ok(()) => {
                self.stats.ipv4_out += segmentation.map_or(1, |s| u64::from(s.segments.max(1)))
            }
            Err(SendError::NoRoute) => self.stats.ipv4_no_route += 1,
            Err(SendError::MessageTooLong { .. }) => self.stats.ipv4_fragmentation_needed += 1,
            Err(SendError::TxQueueFull) => self.stats.tx_queue_full += 1,
            Err(SendError::LoopbackQueueFull) => self.stats.loopback_queue_full += 1,
            Err(SendError::ArpQueueFull) => self.stats.arp_queue_full += 1,
            Err(SendError::NeighborCacheFull) => self.stats.arp_cache_full += 1,
            Err(
                SendError::InvalidDestination
                | SendError::InvalidSource
                | SendError::InvalidTtl
                | SendError::PayloadTooLarge,
            ) => self.stats.ipv4_out_invalid += 1,
        }
        result
    }

    fn try_send_ipv4(
        &mut self,
        now: Instant,
        packet: &Ipv4Send<'_>,
        options: &[u8],
        segmentation: Option<Segmentation>,
    ) -> Result<(), SendError> {
        // RFC 1122 3.2.1.7: "A host MUST NOT send a datagram with a Time-to-Live (TTL) value
        // of zero."
        if packet.ttl == 0 {
            return Err(SendError::InvalidTtl);
        }
        let header_len = ipv4::MIN_HEADER_LEN + options.len().next_multiple_of(4);
        if options.len() > MAX_OPTIONS_LEN
            || header_len + packet.payload.len() > ipv4::MAX_PACKET_LEN
        {
            return Err(SendError::PayloadTooLarge);
        }
        let route = route::route(&self.config, packet.dst)?;
        let src = route::select_source(&self.config, route, packet.dst, packet.src)?;
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: packet.dst,
            protocol: packet.protocol,
            tos: packet.tos,
            ident: 0,
            dont_fragment: packet.dont_fragment,
            more_fragments: false,
            frag_offset: 0,
            ttl: packet.ttl,
            header_len,
            payload_len: packet.payload.len(),
        };
        match route {
            Route::Loopback => self.send_loopback(repr, options, packet.payload),
            Route::Link { next_hop, link_dst } => {
                let link = LinkTarget { next_hop, link_dst };
                self.send_link(now, repr, options, packet.payload, link, segmentation)
            }
        }
    }

    fn next_ident(&mut self, repr: &Ipv4Repr) -> u16 {
        self.idents
            .next(repr.src_addr, repr.dst_addr, u8::from(repr.protocol))
    }

    fn send_loopback(
        &mut self,
        mut repr: Ipv4Repr,
        options: &[u8],
        payload: &[u8],
    ) -> Result<(), SendError> {
        let total = repr.total_len();
        if !self.loopback.has_room(total) {
            return Err(SendError::LoopbackQueueFull);
        }
        repr.ident = self.next_ident(&repr);
        let mut datagram = self.loopback.take_buffer();
        datagram.resize(total, 0);
        repr.emit(&mut datagram, options);
        datagram[repr.header_len..].copy_from_slice(payload);
        self.loopback.push(datagram);
        self.stats.loopback_out += 1;
        Ok(())
    }

    fn send_link(
        &mut self,
        now: Instant,
        mut repr: Ipv4Repr,
        options: &[u8],
        payload: &[u8],
        link: LinkTarget,
        segmentation: Option<Segmentation>,
    ) -> Result<(), SendError> {
        let LinkTarget { next_hop, link_dst } = link;
        let mtu = self.config.mtu;
        // Even a super-segment that fits the MTU goes to the device as one: its checksum is
        // left for the device to compute.
        if let Some(segmentation) = segmentation {
            if !segments_fit(&repr, payload, segmentation, mtu) {
                return Err(SendError::MessageTooLong { mtu });
            }
        }
        let fragmented = segmentation.is_none() && repr.total_len() > mtu;
        if fragmented && repr.dont_fragment {
            return Err(SendError::MessageTooLong { mtu });
        }
        let mut later_options = [0u8; MAX_OPTIONS_LEN];
        let later_options_len = if fragmented {
            ipv4::copied_options(options, &mut later_options)
        } else {
            0
        };
        let plan_mtu = if segmentation.is_some() {
            usize::MAX
        } else {
            mtu
        };
        let plan = FragmentPlan::new(plan_mtu, repr.header_len, later_options_len, payload.len());

        let resolution = match link_dst {
            Some(mac) => Resolution::Known(mac),
            None => self.neighbors.resolve(now, next_hop),
        };
        // A new entry's first request goes out now, whatever becomes of this datagram.
        if resolution == (Resolution::Pending { send_request: true }) {
            self.send_arp_request(next_hop, None);
        }
        match resolution {
            Resolution::Known(_) if !self.tx.has_room(plan.count()) => {
                return Err(SendError::TxQueueFull)
            }
            Resolution::CacheFull => return Err(SendError::NeighborCacheFull),
            Resolution::Pending { .. }
                if plan.bytes() + self.neighbors.queued_bytes() > limits::NEIGHBOR_QUEUE_BYTES =>
            {
                return Err(SendError::ArpQueueFull);
            }
            _ => {}
        }
        let eth_dst = match resolution {
            Resolution::Known(mac) => mac,
            _ => EthernetAddress::UNSPECIFIED,
        };

        repr.ident = match segmentation {
            Some(s) => self.idents.next_block(
                repr.src_addr,
                repr.dst_addr,
                u8::from(repr.protocol),
                s.segments,
            ),
            None => self.next_ident(&repr),
        };
        let mut frames = std::mem::take(&mut self.frames);
        for piece in plan.pieces() {
            let mut frag = repr;
            frag.frag_offset = u16::try_from(piece.offset).unwrap_or(0);
            frag.more_fragments = piece.more;
            frag.payload_len = piece.len;
            let frag_options = if piece.offset == 0 {
                options
            } else {
                &later_options[..later_options_len]
            };
            frag.header_len = if piece.offset == 0 {
                repr.header_len
            } else {
                ipv4::MIN_HEADER_LEN + later_options_len
            };
            let data = payload
                .get(piece.offset..piece.offset + piece.len)
                .unwrap_or(&[]);
            let mut frame = self.tx.pool.take();
            frame.resize(ethernet::HEADER_LEN + frag.total_len(), 0);
            EthernetRepr {
                src: self.config.mac,
                dst: eth_dst,
                ethertype: EtherType::Ipv4,
            }
            .emit(&mut frame);
            let ip = &mut frame[ethernet::HEADER_LEN..];
            frag.emit(ip, frag_options);
            ip[frag.header_len..].copy_from_slice(data);
            frames.push(frame);
        }
        if fragmented {
            self.stats.ipv4_fragmented += 1;
            self.stats.ipv4_fragments_out += frames.len() as u64;
        }

        let result = match resolution {
            Resolution::Pending { .. } => {
                // The pending datagram keeps this allocation (a slow path): the next datagram
                // starts a new one.
                let datagram = PendingDatagram::new(std::mem::take(&mut frames), segmentation);
                match self.neighbors.enqueue(next_hop, datagram) {
                    Enqueued::Queued => Ok(()),
                    Enqueued::DroppedOldest(old) => {
                        // Linux drops the oldest waiting datagram too (`unres_discards`).
                        self.stats.arp_queue_full += 1;
                        self.recycle_frames(old.frames);
                        Ok(())
                    }
                    Enqueued::Refused(datagram) => {
                        self.recycle_frames(datagram.frames);
                        Err(SendError::ArpQueueFull)
                    }
                }
            }
            _ => {
                for frame in frames.drain(..) {
                    self.push_frame(frame, segmentation);
                }
                Ok(())
            }
        };
        self.frames = frames;
        result
    }

    fn push_frame(&mut self, frame: Vec<u8>, segmentation: Option<Segmentation>) {
        match segmentation {
            Some(s) => self.tx.push_super(frame, Some(s.segment_size), s.segments),
            None => self.tx.push(frame),
        };
    }

    fn recycle_frames(&mut self, frames: Vec<Vec<u8>>) {
        for frame in frames {
            self.tx.pool.give(frame);
        }
    }

    // ---------------------------------------------------------------- ARP output

    /// The gratuitous ARP at start: a broadcast request for our own address (RFC 5227's
    /// "ARP Announcement", what Linux sends with `arp_notify`), so neighbours update their
    /// caches.
    pub(crate) fn send_gratuitous_arp(&mut self) {
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            sender_hardware_addr: self.config.mac,
            sender_protocol_addr: self.config.addr,
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: self.config.addr,
        };
        if self.send_arp(EthernetAddress::BROADCAST, &arp) {
            self.stats.arp_requests_out += 1;
        }
    }

    /// A request for `target`: broadcast to resolve, unicast to re-validate a known entry.
    pub(crate) fn send_arp_request(
        &mut self,
        target: Ipv4Addr,
        unicast_to: Option<EthernetAddress>,
    ) {
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            sender_hardware_addr: self.config.mac,
            sender_protocol_addr: self.config.addr,
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: target,
        };
        if self.send_arp(unicast_to.unwrap_or(EthernetAddress::BROADCAST), &arp) {
            self.stats.arp_requests_out += 1;
        }
    }

    /// RFC 826: "swap fields ... put the local hardware and protocol addresses in the sender
    /// fields ... set the ar$op field to ares_op$REPLY ... send the packet to the (new)
    /// target hardware address".
    pub(crate) fn send_arp_reply(&mut self, request: &ArpRepr) {
        let arp = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hardware_addr: self.config.mac,
            sender_protocol_addr: self.config.addr,
            target_hardware_addr: request.sender_hardware_addr,
            target_protocol_addr: request.sender_protocol_addr,
        };
        if self.send_arp(request.sender_hardware_addr, &arp) {
            self.stats.arp_replies_out += 1;
        }
    }

    fn send_arp(&mut self, dst: EthernetAddress, arp: &ArpRepr) -> bool {
        if !self.tx.has_room(1) {
            self.stats.tx_queue_full += 1;
            return false;
        }
        let mut frame = self.tx.pool.take();
        frame.resize(ethernet::HEADER_LEN + arp.buffer_len(), 0);
        EthernetRepr {
            src: self.config.mac,
            dst,
            ethertype: EtherType::Arp,
        }
        .emit(&mut frame);
        arp.emit(&mut frame[ethernet::HEADER_LEN..]);
        self.tx.push(frame)
    }

    /// `ip` is now known at `mac`: the datagrams that waited for it go out, in order.
    pub(crate) fn release_pending(
        &mut self,
        mac: EthernetAddress,
        queue: VecDeque<PendingDatagram>,
    ) {
        for datagram in queue {
            if !self.tx.has_room(datagram.frames.len()) {
                self.stats.tx_queue_full += 1;
                self.recycle_frames(datagram.frames);
                continue;
            }
            for mut frame in datagram.frames {
                ethernet::set_destination(&mut frame, mac);
                self.push_frame(frame, datagram.segmentation);
            }
        }
    }

    /// A transport heard from `remote`: the neighbour it came through is reachable.
    pub(crate) fn confirm_reachable(&mut self, now: Instant, remote: Ipv4Addr) {
        if let Ok(super::route::Route::Link {
            next_hop,
            link_dst: None,
        }) = super::route::route(&self.config, remote)
        {
            self.neighbors.confirm(now, next_hop);
        }
    }

    pub(crate) fn neighbors_mut(&mut self) -> &mut NeighborCache {
        &mut self.neighbors
    }

    pub(crate) fn handle_neighbor_timeouts(&mut self, now: Instant) {
        let mut events = std::mem::take(&mut self.events);
        self.neighbors.handle_timeout(now, &mut events);
        for event in events.drain(..) {
            match event {
                NeighborEvent::Request { ip, unicast_to } => self.send_arp_request(ip, unicast_to),
                NeighborEvent::Failed { ip, queue } => {
                    tracing::debug!(%ip, waiting = queue.len(), "neighbour resolution failed");
                    self.stats.arp_timeout += 1;
                    for datagram in queue {
                        self.stats.arp_queue_dropped += 1;
                        self.host_unreachable(now, &datagram);
                        self.recycle_frames(datagram.frames);
                    }
                }
            }
        }
        self.events = events;
    }

    /// A datagram of ours could not be delivered because ARP failed: tell the local sender
    /// with ICMP host unreachable, which goes through the loopback to the transport (Linux
    /// does the same from `arp_error_report`).
    fn host_unreachable(&mut self, now: Instant, datagram: &PendingDatagram) {
        let Some(first) = datagram.frames.first() else {
            return;
        };
        let Some(Ok(packet)) = first.get(ethernet::HEADER_LEN..).map(Ipv4Packet::parse) else {
            return;
        };
        let offending = Offending {
            repr: packet.repr,
            header: packet.header,
            payload: packet.payload,
            to_broadcast: false,
            link_broadcast: false,
        };
        self.send_icmp_error(
            now,
            IcmpErrorOut::DstUnreachable(DstUnreachable::HostUnreachable),
            &offending,
        );
    }

    // ---------------------------------------------------------------- ICMP errors

    /// A partial datagram timed out: RFC 1122 3.3.2 "If the reassembly timeout expires, the
    /// partially-reassembled datagram MUST be discarded and an ICMP Time Exceeded message
    /// sent to the source host (if fragment zero has been received)."
    pub(crate) fn reassembly_timed_out(&mut self, now: Instant, expired: Expired<'_>) {
        self.stats.ipv4_reassembly_timeout += 1;
        let Some((header, data)) = expired.first_fragment else {
            return;
        };
        // The stored header's total length describes the first fragment, not the header
        // alone: read its fields without the length check (it was validated on arrival).
        let Some(packet) = parse_header_fields(header) else {
            return;
        };
        let offending = Offending {
            repr: packet,
            header,
            payload: data,
            to_broadcast: self.config.is_broadcast(packet.dst_addr),
            link_broadcast: false,
        };
        self.send_icmp_error(
            now,
            IcmpErrorOut::TimeExceeded(TimeExceeded::FragmentReassembly),
            &offending,
        );
    }

    /// Sends an ICMP error about `offending`, unless RFC 1122 3.2.2 forbids it or the rate
    /// limit says no. Returns whether it was sent.
    pub(crate) fn send_icmp_error(
        &mut self,
        now: Instant,
        error: IcmpErrorOut,
        offending: &Offending<'_>,
    ) -> bool {
        let repr = &offending.repr;
        if !self.icmp_error_allowed(offending) {
            self.stats.icmp_error_suppressed += 1;
            return false;
        }
        let dst = repr.src_addr;
        // Errors to ourselves are not limited (Linux exempts loopback).
        if !self.config.is_local(dst) && !self.icmp_limiter.allow(now, dst) {
            self.stats.icmp_rate_limited += 1;
            return false;
        }
        // Quote as much of the datagram as fits in 576 bytes (RFC 1812 4.3.2.3, Linux).
        let room = limits::ICMP_ERROR_MAX_LEN - ipv4::MIN_HEADER_LEN - icmpv4::HEADER_LEN;
        let header_len = offending.header.len().min(room);
        let payload_len = offending.payload.len().min(room - header_len);
        let mut quoted = std::mem::take(&mut self.icmp_quote);
        quoted.clear();
        quoted.extend_from_slice(&offending.header[..header_len]);
        quoted.extend_from_slice(&offending.payload[..payload_len]);
        let message = match error {
            IcmpErrorOut::DstUnreachable(reason) => Icmpv4Repr::DstUnreachable {
                reason,
                next_hop_mtu: 0,
                quoted: &quoted,
            },
            IcmpErrorOut::TimeExceeded(reason) => Icmpv4Repr::TimeExceeded {
                reason,
                quoted: &quoted,
            },
        };
        let mut buffer = std::mem::take(&mut self.icmp_message);
        buffer.clear();
        buffer.resize(message.buffer_len(), 0);
        message.emit(&mut buffer);
        // Answer from the address the datagram was sent to when it is ours (Linux does).
        let src = if self.config.is_local(repr.dst_addr) {
            repr.dst_addr
        } else {
            self.config.addr
        };
        let sent = self
            .send_ipv4(
                now,
                &Ipv4Send {
                    src: Some(src),
                    dst,
                    protocol: IpProtocol::Icmp,
                    ttl: ipv4::DEFAULT_TTL,
                    tos: (repr.tos & IPTOS_TOS_MASK) | ICMP_ERROR_PRECEDENCE,
                    dont_fragment: false,
                    payload: &buffer,
                },
                &[],
                None,
            )
            .is_ok();
        if sent {
            match error {
                IcmpErrorOut::DstUnreachable(_) => self.stats.icmp_dest_unreachable_out += 1,
                IcmpErrorOut::TimeExceeded(_) => self.stats.icmp_time_exceeded_out += 1,
            }
        }
        self.icmp_quote = quoted;
        self.icmp_message = buffer;
        sent
    }

    /// RFC 1122 3.2.2: "An ICMP error message MUST NOT be sent as the result of receiving:
    /// an ICMP error message, or a datagram destined to an IP broadcast or IP multicast
    /// address, or a datagram sent as a link-layer broadcast, or a non-initial fragment, or a
    /// datagram whose source address does not define a single host".
    fn icmp_error_allowed(&self, offending: &Offending<'_>) -> bool {
        let repr = &offending.repr;
        if offending.to_broadcast
            || offending.link_broadcast
            || repr.dst_addr.is_multicast()
            || repr.frag_offset != 0
        {
            return false;
        }
        let src = repr.src_addr;
        if !ipv4::is_unicast_host(src) || self.config.is_broadcast(src) {
            return false;
        }
        if repr.protocol == IpProtocol::Icmp {
            // Linux treats a truncated or unknown-type ICMP message as an error too.
            match offending.payload.first() {
                Some(&msg_type) => {
                    if icmpv4::is_error_type(msg_type) || msg_type > LINUX_NR_ICMP_TYPES {
                        return false;
                    }
                }
                None => return false,
            }
        }
        true
    }
}

/// Reads the fixed header fields without requiring the total length to be present.
fn parse_header_fields(header: &[u8]) -> Option<Ipv4Repr> {
    let slice = etherparse::Ipv4HeaderSlice::from_slice(header).ok()?;
    Some(Ipv4Repr {
        src_addr: slice.source_addr(),
        dst_addr: slice.destination_addr(),
        protocol: IpProtocol::from(slice.protocol().0),
        tos: header.get(1).copied().unwrap_or(0),
        ident: slice.identification(),
        dont_fragment: slice.dont_fragment(),
        more_fragments: slice.more_fragments(),
        frag_offset: slice.fragments_offset().value() * 8,
        ttl: slice.ttl(),
        header_len: slice.slice().len(),
        payload_len: 0,
    })
}

/// Where a datagram leaves on the link: the next hop and, if the route fixes it, its MAC.
#[derive(Debug, Clone, Copy)]
struct LinkTarget {
    next_hop: Ipv4Addr,
    link_dst: Option<EthernetAddress>,
}

/// Whether a TCP super-segment is what `segmentation` says: TCP, its pieces each within the
/// MTU, and as many pieces as stated (the device numbers their IP IDs from that count).
fn segments_fit(repr: &Ipv4Repr, tcp: &[u8], segmentation: Segmentation, mtu: usize) -> bool {
    let size = usize::from(segmentation.segment_size);
    let Some(tcp_header_len) = tcp.get(12).map(|offset| usize::from(offset >> 4) * 4) else {
        return false;
    };
    let Some(data_len) = tcp.len().checked_sub(tcp_header_len) else {
        return false;
    };
    repr.protocol == IpProtocol::Tcp
        && size > 0
        && repr.header_len + tcp_header_len + size <= mtu
        && data_len.div_ceil(size) == usize::from(segmentation.segments)
}

/// How a datagram's payload is cut into fragments.
#[derive(Debug, Clone, Copy)]
struct FragmentPlan {
    /// Data bytes in the first fragment (all of it when not fragmenting).
    first: usize,
    /// Data bytes per later fragment (a multiple of 8).
    later: usize,
    first_header: usize,
    later_header: usize,
    total: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    offset: usize,
    len: usize,
    more: bool,
}

impl FragmentPlan {
    fn new(
        mtu: usize,
        first_header: usize,
        later_header_options: usize,
        payload_len: usize,
    ) -> Self {
        let later_header = ipv4::MIN_HEADER_LEN + later_header_options;
        if first_header + payload_len <= mtu {
            return FragmentPlan {
                first: payload_len,
                later: payload_len.max(8),
                first_header,
                later_header,
                total: payload_len,
            };
        }
        // RFC 791: fragment data is measured in 8-byte units. The MTU is at least 68 and a
        // header at most 60 bytes, so each fragment carries at least 8 bytes.
        let first = (mtu.saturating_sub(first_header) & !7).max(8);
        let later = (mtu.saturating_sub(later_header) & !7).max(8);
        FragmentPlan {
            first,
            later,
            first_header,
            later_header,
            total: payload_len,
        }
    }

    fn count(&self) -> usize {
        if self.total <= self.first {
            1
        } else {
            1 + (self.total - self.first).div_ceil(self.later)
        }
    }

    /// Frame bytes of all fragments (what waits in the ARP queue).
    fn bytes(&self) -> usize {
        let headers = self.first_header + (self.count() - 1) * self.later_header;
        self.total + headers + self.count() * ethernet::HEADER_LEN
    }

    fn pieces(&self) -> impl Iterator<Item = Piece> + '_ {
        let mut offset = 0;
        let mut first = true;
        std::iter::from_fn(move || {
            if offset >= self.total && !(first && self.total == 0) {
                return None;
            }
            let size = if first { self.first } else { self.later };
            first = false;
            let len = size.min(self.total - offset);
            let piece = Piece {
                offset,
                len,
                more: offset + len < self.total,
            };
            offset += len.max(1);
            Some(piece)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_matches_the_kernel_for_3008_bytes() {
        // ping -s 3000: 3008 bytes of ICMP over MTU 1500 → 1480 + 1480 + 48.
        let plan = FragmentPlan::new(1500, 20, 0, 3008);
        let pieces: Vec<_> = plan.pieces().map(|p| (p.offset, p.len, p.more)).collect();
        assert_eq!(
            pieces,
            [(0, 1480, true), (1480, 1480, true), (2960, 48, false)]
        );
        assert_eq!(plan.count(), 3);
    }

    #[test]
    fn plan_edges() {
        let single: Vec<_> = FragmentPlan::new(1500, 20, 0, 1480).pieces().collect();
        assert_eq!(
            single,
            [Piece {
                offset: 0,
                len: 1480,
                more: false
            }]
        );
        let empty: Vec<_> = FragmentPlan::new(1500, 20, 0, 0).pieces().collect();
        assert_eq!(
            empty,
            [Piece {
                offset: 0,
                len: 0,
                more: false
            }]
        );
        // Options in the first fragment only: 60-byte first header at MTU 68 leaves 8 bytes.
        let plan = FragmentPlan::new(68, 60, 0, 100);
        let pieces: Vec<_> = plan.pieces().map(|p| p.len).collect();
        assert_eq!(pieces, [8, 48, 44]);
        assert_eq!(plan.count(), 3);
        // The largest datagram at the smallest MTU.
        let plan = FragmentPlan::new(68, 20, 0, 65515);
        let pieces: Vec<_> = plan.pieces().collect();
        assert_eq!(pieces.len(), plan.count());
        assert!(pieces
            .iter()
            .all(|p| p.offset & 7 == 0 && (p.len & 7 == 0 || !p.more)));
        assert_eq!(pieces.iter().map(|p| p.len).sum::<usize>(), 65515);
    }
}
