//! The link and network layers of one Ethernet interface: Ethernet II, ARP, IPv4 (with
//! reassembly, fragmentation and routing), ICMP, UDP validation, and the stack's own loopback.
//!
//! An [`Interface`] is a state machine without I/O or clock. It is fed frames and the current
//! time, hands datagrams up to a [`Transport`] (TCP and UDP sockets live there), queues frames
//! for the device, and says when it next wants to be woken.
//!
//! # Driving contract
//!
//! Methods fall into four groups (as in quinn's `Connection`):
//!
//! * **Inputs**: [`receive_frame`](Interface::receive_frame) (a frame from the device),
//!   [`handle_timeout`](Interface::handle_timeout) (time has passed),
//!   [`process_loopback`](Interface::process_loopback) (datagrams the stack sent to itself).
//! * **Commands** from transports: [`send_ipv4`](Interface::send_ipv4).
//! * **Outputs**: [`transmit`](Interface::transmit) (frames for the device) and
//!   [`poll_at`](Interface::poll_at) (when to call again).
//! * **Getters**: [`stats`](Interface::stats), [`config`](Interface::config),
//!   [`neighbor`](Interface::neighbor), [`memory`](Interface::memory).
//!
//! The daemon's loop turn, with `now` read from the monotonic clock once per turn:
//!
//! 1. For each frame read from the device (a bounded batch, so control requests are never
//!    starved): `iface.receive_frame(now, &frame, &mut transport)`.
//! 2. `iface.process_loopback(now, &mut transport)`: delivers what was queued on the loopback
//!    before the call (by step 1's answers, by transports, by earlier turns). Datagrams queued
//!    during the call wait for the next call, so two local endpoints cannot starve the loop.
//! 3. Application events: the transport does its work and sends with `iface.send_ipv4(..)`.
//! 4. `iface.handle_timeout(now)`: ARP retries and expiry, reassembly timeouts. Cheap to call
//!    every turn; required once `now >= poll_at()`.
//! 5. `iface.transmit(&mut |frame| device.send(frame))`: hands queued frames over in order
//!    until the device reports it is full.
//! 6. Sleep until the earliest of `iface.poll_at()`, the transport's own deadline, and device
//!    or socket readiness. `poll_at()` is "now or earlier" whenever frames or loopback
//!    datagrams are queued (a driver must never sleep with output waiting); if the device is
//!    full, wait for it to become writable rather than spinning on that deadline.
//!
//! # How a transport answers from inside a callback
//!
//! [`Transport::tcp`] receives an [`InterfaceTx`]: a handle on the sending half of the
//! interface (routing, ARP, fragmentation, queues) that is borrowed separately from the
//! receiving half, so a transport can send a RST or an ACK immediately while the interface is
//! in the middle of processing a frame. [`Transport::udp`] and [`Transport::icmp_error`] get
//! no handle: UDP never answers in-line and ICMP errors only change socket state; whatever
//! they want to send afterwards goes through [`Interface::send_ipv4`] in step 3.
//!
//! # What this layer does and does not do
//!
//! See the module docs of `neighbor` (ARP), `reassembly`, `egress` (routing, fragmentation,
//! ICMP errors) and `ratelimit`. Every bound is listed in [`limits`], with what happens when it
//! is hit. Not implemented: forwarding, IP multicast group membership (multicast datagrams are
//! not accepted), source routing (datagrams carrying it are dropped, as a Linux host does),
//! timestamp-option reflection, ICMP timestamp replies, redirects (counted and ignored),
//! Parameter Problem generation for malformed options (they are dropped and counted).

mod egress;
mod icmp;
mod ident;
mod ingress;
mod neighbor;
mod queue;
mod ratelimit;
mod reassembly;
mod route;
mod transport;

use std::net::Ipv4Addr;

use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::{EthernetAddress, IpProtocol};

use egress::Egress;
use reassembly::Reassembler;

pub use transport::{IcmpError, IcmpErrorKind, InterfaceTx, Ipv4Meta, NoTransport, Transport};

/// Every bound of this layer, its value, and what happens when it is hit.
pub mod limits {
    use std::time::Duration;

    /// Frames waiting for the device. Full: `send_ipv4` returns [`SendError::TxQueueFull`]
    /// (ENOBUFS) without queueing any part of the datagram; ARP answers are dropped and
    /// counted in `tx_queue_full`.
    ///
    /// [`SendError::TxQueueFull`]: super::SendError::TxQueueFull
    pub const TX_QUEUE_FRAMES: usize = 1024;
    /// Frame buffers kept for reuse once the device has taken their frames.
    pub const TX_POOL_BUFFERS: usize = 256;
    /// Datagrams waiting on the loopback. Full: `send_ipv4` returns `LoopbackQueueFull`.
    pub const LOOPBACK_QUEUE_DATAGRAMS: usize = 1024;
    /// Bytes waiting on the loopback (like a socket backlog). Full: `LoopbackQueueFull`.
    pub const LOOPBACK_QUEUE_BYTES: usize = 4 << 20;
    /// Datagram buffers kept for reuse by the loopback.
    pub const LOOPBACK_POOL_BUFFERS: usize = 16;

    /// Neighbour cache entries (Linux `gc_thresh3` is 1024). Full: entries not in use are
    /// evicted; if every entry is still resolving, the send fails with `NeighborCacheFull`.
    pub const NEIGHBOR_ENTRIES: usize = 1024;
    /// Datagrams queued per neighbour while it resolves (Linux's historic `unres_qlen` of 3).
    /// Full: the oldest is dropped (as Linux does), counted in `arp_queue_full`.
    pub const NEIGHBOR_QUEUE_DATAGRAMS: usize = 3;
    /// Bytes queued over all resolving neighbours. Full: the new datagram is refused with
    /// `ArpQueueFull`, counted in `arp_queue_full`.
    pub const NEIGHBOR_QUEUE_BYTES: usize = 256 << 10;
    /// Broadcast requests before a resolution fails (Linux `mcast_solicit`).
    pub const ARP_MULTICAST_PROBES: u8 = 3;
    /// Unicast requests re-validating a stale entry before it is dropped (`ucast_solicit`).
    pub const ARP_UNICAST_PROBES: u8 = 3;
    /// Time between requests (Linux `retrans_time_ms`).
    pub const ARP_RETRANS_TIME: Duration = Duration::from_secs(1);
    /// How long a confirmed mapping is trusted (Linux `base_reachable_time`; Linux
    /// randomises it to 0.5-1.5 times this, we do not).
    pub const ARP_REACHABLE_TIME: Duration = Duration::from_secs(30);
    /// Grace period after a stale entry is used before it is probed (`delay_first_probe_time`).
    pub const ARP_DELAY_FIRST_PROBE: Duration = Duration::from_secs(5);
    /// Unused stale entries are forgotten after this long (Linux `gc_stale_time`).
    pub const ARP_GC_STALE_TIME: Duration = Duration::from_secs(60);

    /// Time a partial datagram may wait for its missing fragments, from its first fragment
    /// (Linux `ipfrag_time`; RFC 1122 3.3.2 suggests 60-120 s, Linux uses 30 s).
    pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Memory for partial datagrams (Linux `ipfrag_high_thresh` is 4 MiB). Full: new fragments
    /// are dropped (counted in `ipv4_reassembly_overflow`) until timeouts free memory.
    pub const REASSEMBLY_MEMORY: usize = 4 << 20;
    /// Bytes charged per partial datagram on top of its data (bookkeeping), so a flood of tiny
    /// fragments is bounded too.
    pub const REASSEMBLY_OVERHEAD: usize = 256;
    /// Partial datagrams at once. Full: fragments of new datagrams are dropped.
    pub const REASSEMBLY_DATAGRAMS: usize = 1024;

    /// ICMP errors to one destination: one per second, bursts of 6 (Linux `icmp_ratelimit` =
    /// 1000 ms with the inet_peer burst factor of 6). Over: not sent, `icmp_rate_limited`.
    pub const ICMP_PEER_INTERVAL: Duration = Duration::from_secs(1);
    pub const ICMP_PEER_BURST: u64 = 6;
    /// ICMP errors overall: 1000 per second, bursts of 50 (Linux `icmp_msgs_per_sec`,
    /// `icmp_msgs_burst`).
    pub const ICMP_GLOBAL_PER_SEC: u64 = 1000;
    pub const ICMP_GLOBAL_BURST: u64 = 50;
    /// Destinations whose ICMP rate is tracked; the least recently limited is forgotten.
    pub const ICMP_PEERS: usize = 256;
    /// ICMP errors are kept within the 576 bytes every host accepts (RFC 1812 4.3.2.3; Linux
    /// quotes as much of the offending datagram as fits).
    pub const ICMP_ERROR_MAX_LEN: usize = 576;
}

/// How the interface is set up. Values out of range are clamped by [`Interface::new`]
/// (`prefix_len` to 32, `mtu` to 68..=65535); [`Interface::config`] shows the effective values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub mac: EthernetAddress,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU of the link (Ethernet payload size), 1500 on Ethernet.
    pub mtu: usize,
}

impl InterfaceConfig {
    /// A config with no gateway and the Ethernet MTU of 1500.
    pub fn new(mac: EthernetAddress, addr: Ipv4Addr, prefix_len: u8) -> Self {
        InterfaceConfig {
            mac,
            addr,
            prefix_len,
            gateway: None,
            mtu: 1500,
        }
    }

    /// The network mask as a number.
    pub fn netmask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n.min(32))),
        }
    }

    /// True if `addr` is on the attached subnet (reachable without the gateway).
    pub fn is_on_link(&self, addr: Ipv4Addr) -> bool {
        let mask = self.netmask();
        u32::from(addr) & mask == u32::from(self.addr) & mask
    }

    /// The subnet's directed broadcast address; none for /31 (RFC 3021) and /32.
    pub fn subnet_broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len < 31).then(|| Ipv4Addr::from(u32::from(self.addr) | !self.netmask()))
    }

    /// The limited broadcast or the subnet's directed broadcast.
    pub fn is_broadcast(&self, addr: Ipv4Addr) -> bool {
        addr.is_broadcast() || Some(addr) == self.subnet_broadcast()
    }

    /// One of our own unicast addresses: the interface address or anything in 127.0.0.0/8.
    pub fn is_local(&self, addr: Ipv4Addr) -> bool {
        addr == self.addr || addr.is_loopback()
    }

    fn clamped(mut self) -> Self {
        self.prefix_len = self.prefix_len.min(32);
        self.mtu = self.mtu.clamp(
            crate::wire::ipv4::MIN_MTU,
            crate::wire::ipv4::MAX_PACKET_LEN,
        );
        self
    }
}

/// A datagram a transport asks the interface to send.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Send<'a> {
    /// Source address; `None` picks one: 127.0.0.1 towards 127/8, else the interface address.
    /// A given address must be local (the interface address, or 127/8 towards a local
    /// destination).
    pub src: Option<Ipv4Addr>,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    /// 1..=255 (RFC 1122 3.2.1.7: never send TTL 0).
    pub ttl: u8,
    pub tos: u8,
    /// Refuse to fragment: a datagram larger than the MTU fails with
    /// [`SendError::MessageTooLong`] (how path MTU discovery learns the local MTU).
    pub dont_fragment: bool,
    /// The transport header and data (everything after the IPv4 header).
    pub payload: &'a [u8],
}

/// A TCP datagram larger than the MTU that the device cuts into `segments` datagrams of
/// `segment_size` TCP payload bytes each (segmentation offload); see
/// [`Interface::send_ipv4_segmented`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmentation {
    pub segment_size: u16,
    pub segments: u16,
}

/// Why a datagram was not sent. Each maps onto the errno Linux gives in the same case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Off-link destination and no gateway (ENETUNREACH).
    NoRoute,
    /// 0.0.0.0 as destination (EINVAL).
    InvalidDestination,
    /// The source address is not ours, or is 127/8 towards the network (EINVAL/EADDRNOTAVAIL).
    InvalidSource,
    /// TTL 0 (EINVAL).
    InvalidTtl,
    /// Larger than 65535 bytes with its header (EMSGSIZE).
    PayloadTooLarge,
    /// DF set and larger than the MTU (EMSGSIZE); `mtu` is the link MTU.
    MessageTooLong { mtu: usize },
    /// The device queue is full (ENOBUFS).
    TxQueueFull,
    /// The loopback queue is full (ENOBUFS).
    LoopbackQueueFull,
    /// Too many bytes are already waiting for ARP resolution (ENOBUFS).
    ArpQueueFull,
    /// The neighbour cache is full of entries still resolving (ENOBUFS).
    NeighborCacheFull,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::NoRoute => f.write_str("no route to the destination network"),
            SendError::InvalidDestination => f.write_str("invalid destination address"),
            SendError::InvalidSource => f.write_str("source address is not local"),
            SendError::InvalidTtl => f.write_str("TTL 0 may not be sent"),
            SendError::PayloadTooLarge => f.write_str("datagram larger than 65535 bytes"),
            SendError::MessageTooLong { mtu } => {
                write!(f, "datagram larger than the MTU ({mtu}) with DF set")
            }
            SendError::TxQueueFull => f.write_str("device queue full"),
            SendError::LoopbackQueueFull => f.write_str("loopback queue full"),
            SendError::ArpQueueFull => f.write_str("too many datagrams waiting for ARP"),
            SendError::NeighborCacheFull => f.write_str("neighbour cache full"),
        }
    }
}

impl std::error::Error for SendError {}

/// Memory held by the interface's queues and caches, for bounds checks and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUsage {
    pub tx_frames: usize,
    pub loopback_datagrams: usize,
    pub loopback_bytes: usize,
    pub neighbor_entries: usize,
    pub neighbor_queued_bytes: usize,
    pub reassembly_datagrams: usize,
    /// Charged reassembly memory (buffer capacity plus per-datagram overhead).
    pub reassembly_bytes: usize,
}

/// One Ethernet interface with its IPv4 address. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Interface {
    /// The sending half: everything a transport needs to send, lent out as [`InterfaceTx`].
    egress: Egress,
    reassembler: Reassembler,
    /// Where echo replies are built (reused; grows to the largest echo seen).
    echo_buffer: Vec<u8>,
}

impl Interface {
    /// A new interface; queues a gratuitous ARP announcing `config.addr`. The IP
    /// identification generator is seeded from the OS; use [`Interface::with_seed`] for
    /// reproducible runs.
    pub fn new(config: InterfaceConfig, now: Instant) -> Interface {
        Interface::with_seed(config, now, rand::random())
    }

    /// Like [`Interface::new`] with an explicit seed for everything random in this layer.
    pub fn with_seed(config: InterfaceConfig, now: Instant, seed: u64) -> Interface {
        let mut egress = Egress::new(config.clamped(), now, seed);
        egress.send_gratuitous_arp();
        Interface {
            egress,
            reassembler: Reassembler::new(),
            echo_buffer: Vec::new(),
        }
    }

    /// Processes one Ethernet frame from the device. Never panics, whatever the bytes.
    pub fn receive_frame(&mut self, now: Instant, frame: &[u8], transport: &mut dyn Transport) {
        self.egress.observe(now);
        self.ethernet_input(now, frame, false, transport);
    }

    /// Like [`Interface::receive_frame`] for a frame whose transport checksum the device
    /// vouches for: an offloading TAP hands over data from kernel memory with the checksum
    /// left to do (it never crossed a wire), or says the kernel verified it. Linux treats
    /// such packets as checked too (`CHECKSUM_PARTIAL`/`CHECKSUM_UNNECESSARY`); the IPv4
    /// header checksum is still verified.
    pub fn receive_frame_verified(
        &mut self,
        now: Instant,
        frame: &[u8],
        transport: &mut dyn Transport,
    ) {
        self.egress.observe(now);
        self.ethernet_input(now, frame, true, transport);
    }

    /// Runs the timers that are due: ARP retries, resolution failures (which send ICMP host
    /// unreachable to the local senders, delivered through the loopback), stale-entry
    /// expiry, and reassembly timeouts (which send ICMP time exceeded when the first fragment
    /// had arrived, RFC 1122 3.3.2).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.egress.observe(now);
        self.egress.handle_neighbor_timeouts(now);
        let egress = &mut self.egress;
        self.reassembler.expire(now, &mut |expired| {
            egress.reassembly_timed_out(now, expired)
        });
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; "now or earlier" if frames
    /// or loopback datagrams are waiting. `None`: nothing to do until the next input.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.egress.has_output() {
            return Some(self.egress.last_now());
        }
        [
            self.egress.next_deadline(),
            self.reassembler.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Hands queued frames to the device in order; `send` returns false when the device is
    /// full, in which case that frame stays queued. Frame buffers are recycled (no allocation
    /// per frame in steady state).
    pub fn transmit(&mut self, send: &mut dyn FnMut(&[u8]) -> bool) {
        self.egress.transmit(send);
    }

    /// Like [`Interface::transmit`] for a device that segments TCP itself: a super-frame from
    /// [`Interface::send_ipv4_segmented`] comes as one frame with `Some(segment_size)`, for
    /// the device to cut and checksum (`send` may rewrite checksum fields for the device).
    /// Through `transmit` the same frame is cut and checksummed in software.
    pub fn transmit_offload(&mut self, send: &mut dyn FnMut(&mut [u8], Option<u16>) -> bool) {
        self.egress.transmit_offload(send);
    }

    /// Delivers the datagrams queued on the stack's own loopback (127.0.0.0/8 and our own
    /// address) before this call to `transport`.
    pub fn process_loopback(&mut self, now: Instant, transport: &mut dyn Transport) {
        self.egress.observe(now);
        let queued = self.egress.loopback_len();
        for _ in 0..queued {
            let Some(datagram) = self.egress.pop_loopback() else {
                break;
            };
            self.ipv4_input(now, &datagram, ingress::Arrival::Loopback, transport);
            self.egress.recycle_loopback(datagram);
        }
    }

    /// For transports: routes, resolves (ARP, with a bounded queue while resolving),
    /// fragments if larger than the MTU, or loops back to ourselves.
    pub fn send_ipv4(&mut self, now: Instant, packet: Ipv4Send<'_>) -> Result<(), SendError> {
        self.egress.observe(now);
        self.egress.send_ipv4(now, &packet, &[], None)
    }

    /// Sends a TCP super-segment as one frame for the device to segment and checksum (its TCP
    /// checksum field may be anything: the device, or the software segmentation in
    /// [`Interface::transmit`], computes each segment's). Through the loopback it is
    /// delivered whole, and not verified there. Each segment must fit the MTU
    /// ([`SendError::MessageTooLong`] otherwise).
    pub fn send_ipv4_segmented(
        &mut self,
        now: Instant,
        packet: Ipv4Send<'_>,
        segmentation: Segmentation,
    ) -> Result<(), SendError> {
        self.egress.observe(now);
        self.egress.send_ipv4(now, &packet, &[], Some(segmentation))
    }

    /// The source address a datagram to `dst` would carry, `requested` being the socket's
    /// bound address if any (the route's preferred source otherwise).
    pub fn source_for(
        &self,
        dst: Ipv4Addr,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, SendError> {
        let config = self.egress.config();
        let route = route::route(config, dst)?;
        route::select_source(config, route, dst, requested)
    }

    /// The MTU towards `dst`: 65535 through the loopback, the link MTU otherwise (what TCP
    /// derives its MSS from).
    pub fn mtu_for(&self, dst: Ipv4Addr) -> usize {
        self.egress.mtu_for(dst)
    }

    /// A transport saw forward progress from `remote` (e.g. TCP data or a new ACK from it):
    /// the neighbour towards it is reachable, so no ARP probe is needed while traffic flows —
    /// Linux's `dst_confirm`. Without it a busy entry is re-validated by unicast ARP every
    /// reachable time, and a lossy link can fail a healthy connection's neighbour.
    pub fn confirm_reachable(&mut self, now: Instant, remote: Ipv4Addr) {
        self.egress.confirm_reachable(now, remote);
    }

    pub fn stats(&self) -> &Stats {
        self.egress.stats()
    }

    pub fn config(&self) -> &InterfaceConfig {
        self.egress.config()
    }

    /// The MAC the neighbour cache holds for `ip`, if resolved.
    pub fn neighbor(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.egress.neighbor(ip)
    }

    /// What the queues and caches hold right now.
    pub fn memory(&self) -> MemoryUsage {
        let mut usage = self.egress.memory();
        usage.reassembly_datagrams = self.reassembler.datagrams();
        usage.reassembly_bytes = self.reassembler.memory();
        usage
    }
}
