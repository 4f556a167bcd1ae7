//! The TCP of one host: connection table (hash map keyed by 4-tuple), listeners with SYN and
//! accept queues, RSTs for segments to no socket (RFC 9293 3.10.7.1), ICMP error routing, and
//! the handle-based API the socket layer uses.
//!
//! # Driving contract
//!
//! - **inputs**: [`TcpLayer::receive`] for every TCP payload of an IPv4 datagram addressed to
//!   us, [`TcpLayer::icmp_error`] for ICMP errors quoting a TCP segment,
//!   [`TcpLayer::handle_timeout`] when `now >= poll_at()`;
//! - **commands**: `listen`, `accept`, `connect`, `send`, `recv`, `shutdown_write`, `close`,
//!   `abort`, option setters;
//! - **outputs**: after any input or command, [`TcpLayer::poll_transmit`] hands every pending
//!   segment (serialized, checksummed) to a callback with its IPv4 source and destination; the
//!   driver wraps it in IPv4 (protocol 6). Then [`TcpLayer::poll_at`] gives the next timer
//!   deadline. Pending output is never a deadline: it is drained by `poll_transmit`.
//!
//! # Cost per call
//!
//! Nothing scans the connection table on the hot path: a connection touched by an input,
//! command or timer is put on a *dirty* list (once), and only those are polled for output;
//! timer deadlines live in a min-heap with lazy deletion (an entry is stale when its
//! connection has since rescheduled or gone, and stale entries are dropped when they reach
//! the top). So `poll_transmit`, `handle_timeout` and `poll_at` cost what is due, not the
//! number of connections — 100,000 idle connections cost nothing per turn.
//!
//! # Listener overflow
//!
//! A listener keeps at most `backlog` (clamped to `somaxconn`) established connections
//! waiting for `accept`, and at most `min(backlog, max_syn_backlog)` half-open ones (the SYN
//! queue), as Linux's `inet_csk_reqsk_queue_is_full` does.
//!
//! - SYN queue full: the SYN is answered with a SYN cookie (RFC 4987, [`super::syncookie`])
//!   and no state is kept; the connection is rebuilt when a valid cookie comes back in the
//!   final ACK. This is Linux's default (`tcp_syncookies = 1`) and keeps a listener serving
//!   legitimate clients through a SYN flood, which a bounded queue with drops cannot: under a
//!   flood nearly every slot is taken by spoofed SYNs. With `syn_cookies` off, such SYNs are
//!   dropped instead (the client retransmits).
//! - Accept queue full: SYNs are dropped, and a handshake-completing ACK is dropped too,
//!   leaving the connection in SYN-RECEIVED so the SYN-ACK is retransmitted later — Linux's
//!   behaviour with `tcp_abort_on_overflow = 0`. Cookies do not help here: the application is
//!   the bottleneck.
//!
//! Cookies are checked only for listeners that sent one in the last two cookie periods, so a
//! stray ACK to a quiet listener still gets its RST without a hash computation.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::iface::Segmentation;
use crate::tcp::config::{SocketOptions, TcpConfig};
use crate::tcp::connection::{
    Connection, ConnectionError, IcmpError, Readiness, RecvError, SendError, State,
};
use crate::tcp::isn::IsnGenerator;
use crate::tcp::ports::EphemeralPorts;
use crate::tcp::seq::SeqNumber;
use crate::tcp::stats::{TcpInfo, TcpLayerStats};
use crate::tcp::syncookie::{self, SynCookies};
use crate::time::Instant;
use crate::wire::tcp::{self as wire, TcpFlags, TcpHeader, TcpParseError};

/// Where [`TcpLayer::poll_transmit_offload`] hands segments: source, destination, TCP bytes
/// and, for a super-segment, how the device is to cut it.
pub type EmitSegment<'a> = dyn FnMut(Ipv4Addr, Ipv4Addr, &[u8], Option<Segmentation>) + 'a;

/// IPv4 settings of every TCP segment, as Linux sends them: TTL 64 (`ip_default_ttl`), TOS 0,
/// and DF set (path MTU discovery, `ip_no_pmtu_disc = 0`).
pub const IP_TTL: u8 = 64;
pub const IP_TOS: u8 = 0;
pub const IP_DONT_FRAGMENT: bool = true;

const ICMP_DEST_UNREACHABLE: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETER_PROBLEM: u8 = 12;

/// A connection owned by the layer. Stale handles (of removed connections) are detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnHandle {
    index: u32,
    generation: u32,
}

/// A listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerHandle {
    index: u32,
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenError {
    /// Another listener has this address and port (or overlaps it through 0.0.0.0).
    AddressInUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The 4-tuple is already in use [EADDRNOTAVAIL / EADDRINUSE].
    AddressInUse,
    /// No ephemeral port is free for this destination [EADDRNOTAVAIL].
    NoPortsAvailable,
    /// No local address was given and none is configured [EADDRNOTAVAIL].
    NoSourceAddress,
    /// Remote port 0 or an unspecified/broadcast/multicast remote address [ECONNREFUSED /
    /// ENETUNREACH as Linux picks].
    InvalidRemote,
}

/// Errors of operations on handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// The handle does not name a live connection or listener [EBADF].
    Invalid,
}

/// Something the application side may want to react to (see [`TcpLayer::drain_events`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpEvent {
    /// The connection's [`Readiness`] changed (readable, writable, connected, error, hang-up).
    Connection(ConnHandle, Readiness),
    /// A listener's accept queue got a new connection.
    Acceptable(ListenerHandle),
}

impl ConnEntry {
    /// The application just called recv or send and so knows the current readiness (it
    /// reads until WouldBlock and writes until 0, like an edge-triggered epoll user): the
    /// next event is for a change after this point. Without it, data arriving between a
    /// draining recv and the next `drain_events` would restore the last reported value and
    /// raise no event, leaving the data unread.
    fn saw_readiness(&mut self) {
        self.reported = self.conn.readiness();
    }
}

#[derive(Debug)]
struct ConnEntry {
    /// Readiness last reported through an event.
    reported: Readiness,
    /// In `TcpLayer::changed` (at most once, so the event list stays bounded).
    change_pending: bool,
    conn: Connection,
    /// The listener that created it, until `accept` hands it out.
    listener: Option<ListenerHandle>,
    /// Moved to the listener's accept queue.
    in_accept_queue: bool,
    /// The application holds the handle (connect, or accept returned it).
    app_owned: bool,
    /// In `TcpLayer::dirty` (at most once).
    dirty: bool,
    /// The deadline this connection has in `TcpLayer::timers` (older heap entries for it
    /// are stale).
    timer_at: Option<Instant>,
}

/// A listener as `ustack ss` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerInfo {
    pub local: SocketAddrV4,
    /// Established connections waiting for accept().
    pub accept_queue: usize,
    /// The backlog after clamping (what Linux shows as Send-Q of a listener).
    pub backlog: usize,
}

#[derive(Debug)]
struct Listener {
    local: SocketAddrV4,
    backlog: usize,
    opts: SocketOptions,
    half_open: usize,
    accept_queue: VecDeque<ConnHandle>,
    /// When the last SYN cookie was sent (cookies are only checked after one was sent).
    last_cookie_sent: Option<Instant>,
    /// In `TcpLayer::acceptable`.
    accept_pending: bool,
}

/// How long after sending a cookie its answer is still checked (two 64 s cookie periods).
const COOKIE_CHECK_WINDOW: std::time::Duration = std::time::Duration::from_secs(128);

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// The TCP of one host. See the module doc for the driving contract.
#[derive(Debug)]
pub struct TcpLayer {
    cfg: TcpConfig,
    conns: Vec<Slot<ConnEntry>>,
    free_conns: Vec<u32>,
    by_tuple: HashMap<(SocketAddrV4, SocketAddrV4), ConnHandle>,
    listeners: Vec<Slot<Listener>>,
    by_listen_addr: HashMap<SocketAddrV4, ListenerHandle>,
    isn: IsnGenerator,
    cookies: SynCookies,
    ports: EphemeralPorts,
    /// Address used by `connect` without a local address (the interface's address).
    source_address: Option<Ipv4Addr>,
    /// Segments the layer itself sends (RSTs for no socket): source, destination, bytes.
    queued: VecDeque<(Ipv4Addr, Ipv4Addr, Vec<u8>)>,
    /// Scratch for building segments in `poll_transmit_offload`.
    segment_buf: Vec<u8>,
    /// Connections whose readiness may have changed, and listeners with new connections;
    /// each at most once (flags in the entries), so these never outgrow the tables.
    changed: Vec<ConnHandle>,
    acceptable: Vec<ListenerHandle>,
    /// Connections that may have output to send (see "Cost per call").
    dirty: Vec<ConnHandle>,
    /// Timer deadlines: (when, slot index, generation), earliest first.
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    stats: TcpLayerStats,
}

impl TcpLayer {
    pub fn new(cfg: TcpConfig) -> TcpLayer {
        TcpLayer {
            isn: IsnGenerator::new(cfg.secret),
            cookies: SynCookies::new(cfg.secret),
            ports: EphemeralPorts::new(cfg.secret, cfg.ephemeral_ports.clone()),
            cfg,
            conns: Vec::new(),
            free_conns: Vec::new(),
            by_tuple: HashMap::new(),
            listeners: Vec::new(),
            by_listen_addr: HashMap::new(),
            source_address: None,
            queued: VecDeque::new(),
            segment_buf: Vec::new(),
            changed: Vec::new(),
            acceptable: Vec::new(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            stats: TcpLayerStats::default(),
        }
    }

    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &TcpLayerStats {
        &self.stats
    }

    /// The address `connect` uses when given none (loopback destinations use 127.0.0.1).
    pub fn set_source_address(&mut self, address: Ipv4Addr) {
        self.source_address = Some(address);
    }

    // ----- inputs -----

    /// A TCP segment from `src` to `dst` (the IPv4 payload).
    pub fn receive(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) {
        self.receive_segment(now, src, dst, segment, false);
    }

    /// Like [`TcpLayer::receive`]; with `checksum_trusted` the checksum is not computed
    /// again (see `Ipv4Meta::checksum_trusted`).
    pub fn receive_segment(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        segment: &[u8],
        checksum_trusted: bool,
    ) {
        self.stats.segments_in += 1;
        let parsed = if checksum_trusted {
            TcpHeader::parse_trusted(segment)
        } else {
            TcpHeader::parse(segment, src, dst)
        };
        let (header, payload) = match parsed {
            Ok(parsed) => parsed,
            Err(TcpParseError::BadChecksum) => {
                self.stats.bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let local = SocketAddrV4::new(dst, header.dst_port);
        let remote = SocketAddrV4::new(src, header.src_port);
        if let Some(&handle) = self.by_tuple.get(&(local, remote)) {
            let closed = self
                .entry(handle)
                .is_some_and(|e| e.conn.state() == State::Closed);
            if self.reopens_time_wait(handle, &header, local) {
                self.remove_conn(handle);
            } else if !closed {
                self.deliver(now, handle, &header, payload);
                return;
            }
            // A CLOSED connection the application has not released yet is no longer
            // reachable (Linux unhashes it): the segment is treated as for no socket.
        }
        match self.find_listener(local) {
            Some(listener) => self.listener_input(now, listener, local, remote, &header, payload),
            None => {
                self.stats.no_socket += 1;
                self.reset_for(local, remote, &header, payload.len());
            }
        }
    }

    /// An ICMP error quoting a segment we sent from `local_ip` to `remote_ip`; `quoted` is the
    /// start of the quoted TCP header (at least 8 bytes).
    pub fn icmp_error(
        &mut self,
        now: Instant,
        local_ip: Ipv4Addr,
        remote_ip: Ipv4Addr,
        quoted: &[u8],
        error: IcmpError,
    ) {
        let Some((src_port, dst_port, seq)) = wire::quoted_ports_and_seq(quoted) else {
            return;
        };
        self.stats.icmp_errors += 1;
        let key = (
            SocketAddrV4::new(local_ip, src_port),
            SocketAddrV4::new(remote_ip, dst_port),
        );
        if let Some(&handle) = self.by_tuple.get(&key) {
            if let Some(entry) = self.entry_mut(handle) {
                entry.conn.handle_icmp_error(now, error, seq);
            }
            self.after_event(handle);
        }
    }

    /// An ICMP error as the interface reports it (`Transport::icmp_error`); errors quoting
    /// other protocols are ignored.
    pub fn handle_interface_icmp_error(&mut self, now: Instant, error: &crate::iface::IcmpError) {
        if error.protocol != crate::wire::IpProtocol::Tcp {
            return;
        }
        let kind = match error.icmp_type {
            ICMP_DEST_UNREACHABLE => IcmpError::Unreachable {
                code: error.code,
                next_hop_mtu: error.next_hop_mtu.unwrap_or(0),
            },
            ICMP_TIME_EXCEEDED => IcmpError::TimeExceeded,
            ICMP_PARAMETER_PROBLEM => IcmpError::ParameterProblem,
            _ => return,
        };
        self.icmp_error(now, error.src, error.dst, error.quoted_transport(), kind);
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let handle = ConnHandle { index, generation };
            if let Some(entry) = self.entry_mut(handle) {
                if entry.timer_at == Some(at) {
                    entry.timer_at = None;
                    due.push(handle);
                }
            }
        }
        for handle in due {
            if let Some(entry) = self.entry_mut(handle) {
                entry.conn.handle_timeout(now);
            }
            self.after_event(handle);
        }
        self.drop_stale_timers();
    }

    // ----- outputs -----

    /// Hands every pending segment to `emit(source, destination, tcp_bytes)`. For a layer
    /// without segmentation offload (`gso_max_payload` 0), where every segment is a wire
    /// segment; see [`TcpLayer::poll_transmit_offload`].
    pub fn poll_transmit(&mut self, now: Instant, emit: &mut dyn FnMut(Ipv4Addr, Ipv4Addr, &[u8])) {
        self.poll_transmit_offload(now, &mut |src, dst, bytes, _| emit(src, dst, bytes));
    }

    /// Hands every pending segment to `emit(source, destination, tcp_bytes, segmentation)`;
    /// `segmentation` is given for a super-segment the device must cut into segments of the
    /// MSS (TCP segmentation offload, [`TcpConfig::gso_max_payload`]). Its checksum field is
    /// left 0 for the device (or the software segmentation) to fill in; through the stack's
    /// loopback, where checksums are not verified, it arrives as it is.
    pub fn poll_transmit_offload(&mut self, now: Instant, emit: &mut EmitSegment<'_>) {
        while let Some((src, dst, bytes)) = self.queued.pop_front() {
            self.stats.segments_out += 1;
            emit(src, dst, &bytes, None);
        }
        let handles = std::mem::take(&mut self.dirty);
        // Kept between calls and never shrunk, so building a segment does not zero memory.
        let mut buf = std::mem::take(&mut self.segment_buf);
        for handle in handles {
            if let Some(entry) = self.entry_mut(handle) {
                entry.dirty = false;
                self.stats.connections_polled += 1;
            }
            let Some(entry) = self.entry_mut(handle) else {
                continue;
            };
            let (local, remote) = (entry.conn.local(), entry.conn.remote());
            let mut sent = 0u64;
            while let Some(segment) = entry.conn.poll_transmit(now) {
                let needed = segment.header.header_len() + segment.payload.len();
                if buf.len() < needed {
                    buf.resize(needed, 0);
                }
                // A super-segment's checksum is the device's to compute (or the software
                // segmentation's, or nobody's on the loopback): see `poll_transmit_offload`.
                let written = if segment.segment_size.is_some() {
                    segment
                        .header
                        .emit_unchecksummed(&segment.payload, &mut buf)
                } else {
                    segment
                        .header
                        .emit(&segment.payload, *local.ip(), *remote.ip(), &mut buf)
                };
                if let Ok(len) = written {
                    let segments = segment.wire_segments();
                    let segmentation = segment.segment_size.map(|segment_size| Segmentation {
                        segment_size,
                        segments: u16::try_from(segments).unwrap_or(u16::MAX),
                    });
                    emit(
                        *local.ip(),
                        *remote.ip(),
                        buf.get(..len).unwrap_or(&[]),
                        segmentation,
                    );
                    sent += segments as u64;
                }
            }
            self.stats.segments_out += sent;
            self.settle(handle);
        }
        self.segment_buf = buf;
        self.drop_stale_timers();
    }

    /// Readiness changes since the last call: one event per application-owned connection
    /// whose readiness differs from what was last reported (with the current readiness), and
    /// one per listener whose accept queue grew. A daemon reacts to these instead of polling
    /// every handle.
    pub fn drain_events(&mut self, out: &mut Vec<TcpEvent>) {
        for listener in std::mem::take(&mut self.acceptable) {
            if let Some(l) = self.listener_mut(listener) {
                l.accept_pending = false;
                out.push(TcpEvent::Acceptable(listener));
            }
        }
        for handle in std::mem::take(&mut self.changed) {
            let Some(entry) = self.entry_mut(handle) else {
                continue;
            };
            entry.change_pending = false;
            let now_ready = entry.conn.readiness();
            if entry.app_owned && now_ready != entry.reported {
                entry.reported = now_ready;
                out.push(TcpEvent::Connection(handle, now_ready));
            }
        }
    }

    fn note_acceptable(&mut self, listener: ListenerHandle) {
        if let Some(l) = self.listener_mut(listener) {
            if !l.accept_pending {
                l.accept_pending = true;
                self.acceptable.push(listener);
            }
        }
    }

    /// The earliest timer deadline of all connections.
    pub fn poll_at(&self) -> Option<Instant> {
        // Every `&mut self` method leaves a live entry at the top (`drop_stale_timers`).
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    // ----- listeners -----

    /// listen(): `backlog` is clamped to `[1, somaxconn]` like Linux. A listener on 0.0.0.0
    /// receives connections to every local address.
    pub fn listen(
        &mut self,
        local: SocketAddrV4,
        backlog: usize,
        opts: SocketOptions,
    ) -> Result<ListenerHandle, ListenError> {
        let overlaps = self.by_listen_addr.keys().any(|l| {
            l.port() == local.port()
                && (l.ip() == local.ip() || l.ip().is_unspecified() || local.ip().is_unspecified())
        });
        if overlaps {
            return Err(ListenError::AddressInUse);
        }
        let listener = Listener {
            local,
            backlog: backlog.clamp(1, self.cfg.somaxconn.max(1)),
            opts,
            half_open: 0,
            accept_queue: VecDeque::new(),
            last_cookie_sent: None,
            accept_pending: false,
        };
        let handle = insert_slot(&mut self.listeners, listener);
        let handle = ListenerHandle {
            index: handle.0,
            generation: handle.1,
        };
        self.by_listen_addr.insert(local, handle);
        Ok(handle)
    }

    /// The next established connection and its peer, if any (accept()).
    pub fn accept(&mut self, listener: ListenerHandle) -> Option<(ConnHandle, SocketAddrV4)> {
        let handle = self.listener_mut(listener)?.accept_queue.pop_front()?;
        let entry = self.entry_mut(handle)?;
        entry.listener = None;
        entry.in_accept_queue = false;
        entry.app_owned = true;
        entry.reported = entry.conn.readiness();
        Some((handle, entry.conn.remote()))
    }

    /// Connections waiting in the accept queue (readable listener when > 0).
    pub fn accept_queue_len(&self, listener: ListenerHandle) -> usize {
        self.listener(listener).map_or(0, |l| l.accept_queue.len())
    }

    /// Closes a listener: connections not yet accepted are aborted (RST), as Linux does.
    pub fn close_listener(&mut self, listener: ListenerHandle) {
        let Some(l) = self.listener(listener) else {
            return;
        };
        let local = l.local;
        self.by_listen_addr.remove(&local);
        if let Some(slot) = self.listeners.get_mut(listener.index as usize) {
            slot.value = None;
        }
        let children: Vec<ConnHandle> = self
            .live_handles()
            .filter(|&h| self.entry(h).is_some_and(|e| e.listener == Some(listener)))
            .collect();
        for handle in children {
            if let Some(entry) = self.entry_mut(handle) {
                entry.listener = None;
                entry.in_accept_queue = false;
                entry.conn.abort();
            }
            self.after_event(handle);
        }
        self.drop_stale_timers();
    }

    // ----- connections -----

    /// Active open. `local` may leave the address (0.0.0.0) or port (0) unspecified: the
    /// source address is then the configured one (127.0.0.1 for loopback destinations) and
    /// the port an RFC 6056 ephemeral port.
    pub fn connect(
        &mut self,
        local: Option<SocketAddrV4>,
        remote: SocketAddrV4,
        opts: SocketOptions,
        now: Instant,
    ) -> Result<ConnHandle, ConnectError> {
        let ip = *remote.ip();
        if remote.port() == 0 || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Err(ConnectError::InvalidRemote);
        }
        let requested = local.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let local_ip = if !requested.ip().is_unspecified() {
            *requested.ip()
        } else if ip.is_loopback() {
            Ipv4Addr::LOCALHOST
        } else {
            self.source_address.ok_or(ConnectError::NoSourceAddress)?
        };
        let port = if requested.port() != 0 {
            if self
                .by_tuple
                .contains_key(&(SocketAddrV4::new(local_ip, requested.port()), remote))
            {
                return Err(ConnectError::AddressInUse);
            }
            requested.port()
        } else {
            let by_tuple = &self.by_tuple;
            let listeners = &self.by_listen_addr;
            self.ports
                .pick(local_ip, remote, |port| {
                    by_tuple.contains_key(&(SocketAddrV4::new(local_ip, port), remote))
                        || listeners.keys().any(|l| l.port() == port)
                })
                .ok_or(ConnectError::NoPortsAvailable)?
        };
        let local = SocketAddrV4::new(local_ip, port);
        let iss = self.isn.isn(now, local, remote);
        let ts_offset = self.isn.ts_offset(local, remote);
        let conn = Connection::connect(&self.cfg, opts, local, remote, iss, ts_offset, now);
        let handle = self.insert_conn(ConnEntry {
            reported: conn.readiness(),
            change_pending: false,
            conn,
            listener: None,
            in_accept_queue: false,
            app_owned: true,
            dirty: false,
            timer_at: None,
        });
        self.stats.active_opens += 1;
        Ok(handle)
    }

    pub fn send(&mut self, handle: ConnHandle, data: &[u8]) -> Result<usize, SendError> {
        let result = match self.entry_mut(handle) {
            Some(entry) => {
                let result = entry.conn.send(data);
                entry.saw_readiness();
                result
            }
            None => Err(SendError::Shutdown),
        };
        self.after_event(handle);
        result
    }

    pub fn recv(&mut self, handle: ConnHandle, buf: &mut [u8]) -> Result<usize, RecvError> {
        let result = match self.entry_mut(handle) {
            Some(entry) => {
                let result = entry.conn.recv(buf);
                entry.saw_readiness();
                result
            }
            None => Err(RecvError::NotConnected),
        };
        self.after_event(handle);
        result
    }

    pub fn shutdown_write(&mut self, handle: ConnHandle) -> Result<(), HandleError> {
        self.entry_mut(handle)
            .ok_or(HandleError::Invalid)?
            .conn
            .shutdown_write();
        self.after_event(handle);
        Ok(())
    }

    /// close(): the handle becomes invalid for the application; the connection finishes its
    /// close on its own (FIN, or RST with unread data / SO_LINGER 0).
    pub fn close(&mut self, handle: ConnHandle) -> Result<(), HandleError> {
        let entry = self.entry_mut(handle).ok_or(HandleError::Invalid)?;
        entry.conn.close();
        entry.app_owned = false;
        self.after_event(handle);
        Ok(())
    }

    /// Sends RST (if the peer knows the connection) and drops it.
    pub fn abort(&mut self, handle: ConnHandle) -> Result<(), HandleError> {
        let entry = self.entry_mut(handle).ok_or(HandleError::Invalid)?;
        entry.conn.abort();
        entry.app_owned = false;
        self.after_event(handle);
        Ok(())
    }

    pub fn readiness(&self, handle: ConnHandle) -> Option<Readiness> {
        self.entry(handle).map(|e| e.conn.readiness())
    }

    pub fn state(&self, handle: ConnHandle) -> Option<State> {
        self.entry(handle).map(|e| e.conn.state())
    }

    pub fn info(&self, handle: ConnHandle) -> Option<TcpInfo> {
        self.entry(handle).map(|e| e.conn.info())
    }

    /// Snapshots of every connection (for `ustack ss`).
    pub fn all_info(&self) -> Vec<TcpInfo> {
        self.live_handles()
            .filter_map(|h| self.entry(h).map(|e| e.conn.info()))
            .collect()
    }

    /// Every listener (for `ustack ss -l`).
    pub fn all_listeners(&self) -> Vec<ListenerInfo> {
        self.listeners
            .iter()
            .filter_map(|slot| slot.value.as_ref())
            .map(|l| ListenerInfo {
                local: l.local,
                accept_queue: l.accept_queue.len(),
                backlog: l.backlog,
            })
            .collect()
    }

    /// SO_ERROR: the pending error, cleared by reading it.
    pub fn take_error(&mut self, handle: ConnHandle) -> Option<ConnectionError> {
        self.entry_mut(handle).and_then(|e| e.conn.take_error())
    }

    pub fn options(&self, handle: ConnHandle) -> Option<&SocketOptions> {
        self.entry(handle).map(|e| e.conn.options())
    }

    pub fn set_options(
        &mut self,
        handle: ConnHandle,
        opts: SocketOptions,
        now: Instant,
    ) -> Result<(), HandleError> {
        self.entry_mut(handle)
            .ok_or(HandleError::Invalid)?
            .conn
            .set_options(opts, now);
        self.after_event(handle);
        Ok(())
    }

    /// Direct access for tests and diagnostics.
    pub fn connection(&self, handle: ConnHandle) -> Option<&Connection> {
        self.entry(handle).map(|e| &e.conn)
    }

    /// Number of connections in the table (any state, including TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.by_tuple.len()
    }

    // ----- internals -----

    fn deliver(&mut self, now: Instant, handle: ConnHandle, header: &TcpHeader, payload: &[u8]) {
        let accept_full = self.accept_queue_full_for(handle);
        let Some(entry) = self.entry_mut(handle) else {
            return;
        };
        // Linux (tcp_abort_on_overflow = 0): the ACK completing a handshake is dropped while
        // the accept queue is full; the SYN-ACK retransmission retries later.
        if accept_full
            && entry.conn.state() == State::SynReceived
            && header.flags.ack()
            && !header.flags.rst()
            && !header.flags.syn()
        {
            self.stats.listen_overflows += 1;
            return;
        }
        entry.conn.handle_segment(now, header, payload);
        self.after_event(handle);
    }

    fn accept_queue_full_for(&self, handle: ConnHandle) -> bool {
        self.entry(handle)
            .and_then(|e| e.listener)
            .and_then(|l| self.listener(l))
            .is_some_and(|l| l.accept_queue.len() >= l.backlog)
    }

    /// Linux's TIME-WAIT reuse (tcp_timewait_state_process): a new SYN whose sequence number
    /// is above the old connection's RCV.NXT may open a new connection on the same 4-tuple.
    fn reopens_time_wait(
        &self,
        handle: ConnHandle,
        header: &TcpHeader,
        local: SocketAddrV4,
    ) -> bool {
        let Some(entry) = self.entry(handle) else {
            return false;
        };
        header.flags.syn()
            && !header.flags.ack()
            && !header.flags.rst()
            && entry.conn.state() == State::TimeWait
            && header.seq > entry.conn.rcv_nxt()
            && self.find_listener(local).is_some()
    }

    fn listener_input(
        &mut self,
        now: Instant,
        listener: ListenerHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        header: &TcpHeader,
        payload: &[u8],
    ) {
        let flags = header.flags;
        // RFC 9293 3.10.7.2: RST ignored; ACK answered with RST (unless it returns a SYN
        // cookie); SYN opens.
        if flags.rst() {
            return;
        }
        if flags.ack() {
            if !flags.syn() && self.accept_cookie(now, listener, local, remote, header, payload) {
                return;
            }
            self.queue_rst(local, remote, header.ack, None);
            return;
        }
        if !flags.syn() || remote.ip().is_broadcast() || remote.ip().is_multicast() {
            return;
        }
        let max_half_open = self.cfg.max_syn_backlog;
        let Some(l) = self.listener(listener) else {
            return;
        };
        if l.accept_queue.len() >= l.backlog {
            self.stats.listen_drops += 1;
            return;
        }
        if l.half_open >= max_half_open.min(l.backlog) {
            if self.cfg.syn_cookies {
                self.send_cookie_syn_ack(now, listener, local, remote, header);
            } else {
                self.stats.listen_drops += 1;
            }
            return;
        }
        let opts = l.opts.clone();
        let iss = self.isn.isn(now, local, remote);
        let ts_offset = self.isn.ts_offset(local, remote);
        let conn =
            Connection::accept_syn(&self.cfg, opts, local, remote, iss, ts_offset, now, header);
        self.insert_conn(ConnEntry {
            reported: Readiness::default(),
            change_pending: false,
            conn,
            listener: Some(listener),
            in_accept_queue: false,
            app_owned: false,
            dirty: false,
            timer_at: None,
        });
        if let Some(l) = self.listener_mut(listener) {
            l.half_open += 1;
        }
        self.stats.passive_opens += 1;
    }

    /// RFC 4987 3.6: a SYN-ACK whose ISN is a cookie; nothing is stored. Options as Linux's
    /// cookie SYN-ACKs: MSS always; window scale and SACK only alongside timestamps, which
    /// carry them back (see `syncookie`).
    fn send_cookie_syn_ack(
        &mut self,
        now: Instant,
        listener: ListenerHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpHeader,
    ) {
        let peer_mss = syn.options.mss.unwrap_or(536);
        let cookie = self.cookies.encode(now, local, remote, syn.seq, peer_mss);
        let mut options = crate::wire::tcp::TcpOptions {
            mss: Some(u16::try_from(self.cfg.local_mss()).unwrap_or(u16::MAX)),
            ..Default::default()
        };
        if let Some(ts) = syn.options.timestamps.filter(|_| self.cfg.timestamps) {
            let peer_wscale = syn.options.window_scale.filter(|_| self.cfg.window_scaling);
            let sack = syn.options.sack_permitted && self.cfg.sack;
            let clock = (now.as_millis() as u32).wrapping_add(self.isn.ts_offset(local, remote));
            options.timestamps = Some(crate::wire::tcp::Timestamps {
                tsval: syncookie::encode_ts_options(clock, peer_wscale, sack),
                tsecr: ts.tsval,
            });
            options.sack_permitted = sack;
            if peer_wscale.is_some() {
                options.window_scale = Some(self.cfg.window_scale.min(14));
            }
        }
        let header = TcpHeader {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: SeqNumber(cookie),
            ack: syn.seq + 1,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: u16::try_from(self.cfg.recv_buffer).unwrap_or(u16::MAX),
            urgent: 0,
            options,
        };
        let bytes = header.to_bytes(&[], *local.ip(), *remote.ip());
        self.queued.push_back((*local.ip(), *remote.ip(), bytes));
        self.stats.syncookies_sent += 1;
        if let Some(l) = self.listener_mut(listener) {
            l.last_cookie_sent = Some(now);
        }
    }

    /// An ACK for a listener: if it returns a valid cookie, build the connection straight
    /// into the accept queue. Returns true if the segment was consumed.
    fn accept_cookie(
        &mut self,
        now: Instant,
        listener: ListenerHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        header: &TcpHeader,
        payload: &[u8],
    ) -> bool {
        let Some(l) = self.listener(listener) else {
            return false;
        };
        let recent = l
            .last_cookie_sent
            .is_some_and(|at| now.saturating_duration_since(at) <= COOKIE_CHECK_WINDOW);
        if !recent {
            return false;
        }
        let accept_full = l.accept_queue.len() >= l.backlog;
        let opts = l.opts.clone();
        let cookie = (header.ack - 1).0;
        let client_isn = header.seq - 1;
        let Some(data) = self.cookies.decode(now, local, remote, client_isn, cookie) else {
            self.stats.syncookies_failed += 1;
            return false;
        };
        if accept_full {
            // As for a half-open connection: drop, the client retransmits (Linux).
            self.stats.listen_overflows += 1;
            return true;
        }
        let (ts_recent, cookie_options) = match header.options.timestamps {
            Some(ts) if self.cfg.timestamps => {
                (Some(ts.tsval), syncookie::decode_ts_options(ts.tsecr))
            }
            _ => (None, syncookie::decode_ts_options(u32::MAX)),
        };
        let handshake = crate::tcp::connection::CookieHandshake {
            iss: cookie,
            irs: client_isn,
            mss: data.mss,
            peer_window_scale: cookie_options
                .peer_window_scale
                .filter(|_| ts_recent.is_some()),
            sack_permitted: cookie_options.sack_permitted && ts_recent.is_some(),
            ts_recent,
        };
        let ts_offset = self.isn.ts_offset(local, remote);
        let conn = Connection::from_syn_cookie(
            &self.cfg, opts, local, remote, ts_offset, now, &handshake, header,
        );
        let handle = self.insert_conn(ConnEntry {
            reported: Readiness::default(),
            change_pending: false,
            conn,
            listener: Some(listener),
            in_accept_queue: true,
            app_owned: false,
            dirty: false,
            timer_at: None,
        });
        if let Some(l) = self.listener_mut(listener) {
            l.accept_queue.push_back(handle);
        }
        self.note_acceptable(listener);
        self.stats.syncookies_received += 1;
        self.stats.passive_opens += 1;
        // The ACK may carry data (or a FIN): let the new connection process it.
        if let Some(entry) = self.entry_mut(handle) {
            entry.conn.handle_segment(now, header, payload);
        }
        self.after_event(handle);
        true
    }

    /// Bookkeeping after anything happened to a connection: listener queues and removal.
    /// After anything happened to a connection: it may have output, and its readiness,
    /// timers and place in the tables may change.
    fn after_event(&mut self, handle: ConnHandle) {
        if let Some(entry) = self.entry_mut(handle) {
            if !entry.dirty {
                entry.dirty = true;
                self.dirty.push(handle);
            }
        }
        self.settle(handle);
    }

    /// Readiness events, timer deadline, accept queue and removal after a change.
    fn settle(&mut self, handle: ConnHandle) {
        if let Some(entry) = self.entry_mut(handle) {
            let at = entry.conn.poll_at();
            if at != entry.timer_at {
                entry.timer_at = at;
                if let Some(at) = at {
                    self.timers
                        .push(Reverse((at, handle.index, handle.generation)));
                }
            }
        }
        if let Some(entry) = self.entry_mut(handle) {
            if entry.app_owned && !entry.change_pending && entry.conn.readiness() != entry.reported
            {
                entry.change_pending = true;
                self.changed.push(handle);
            }
        }
        let Some(entry) = self.entry(handle) else {
            return;
        };
        let state = entry.conn.state();
        if let (Some(listener), false) = (entry.listener, entry.in_accept_queue) {
            if state == State::SynReceived {
                return;
            }
            if let Some(l) = self.listener_mut(listener) {
                l.half_open = l.half_open.saturating_sub(1);
            }
            if state == State::Closed {
                // A half-open connection that failed never reaches the application.
                if let Some(entry) = self.entry_mut(handle) {
                    entry.listener = None;
                }
            } else {
                if let Some(l) = self.listener_mut(listener) {
                    l.accept_queue.push_back(handle);
                }
                self.note_acceptable(listener);
                if let Some(entry) = self.entry_mut(handle) {
                    entry.in_accept_queue = true;
                }
                return;
            }
        }
        let Some(entry) = self.entry(handle) else {
            return;
        };
        if !entry.app_owned && entry.listener.is_none() && entry.conn.is_finished() {
            self.remove_conn(handle);
        }
    }

    /// Pops heap entries at the top that no longer stand for a deadline, so that
    /// [`TcpLayer::poll_at`] can trust the top.
    fn drop_stale_timers(&mut self) {
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            let live = self
                .entry(ConnHandle { index, generation })
                .is_some_and(|e| e.timer_at == Some(at));
            if live {
                break;
            }
            self.timers.pop();
        }
    }

    fn find_listener(&self, local: SocketAddrV4) -> Option<ListenerHandle> {
        self.by_listen_addr
            .get(&local)
            .or_else(|| {
                self.by_listen_addr
                    .get(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port()))
            })
            .copied()
    }

    /// RFC 9293 3.10.7.1: the answer to a segment for no connection. An RST is never
    /// answered; an ACK gets `<SEQ=SEG.ACK><CTL=RST>`; anything else
    /// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
    fn reset_for(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        header: &TcpHeader,
        len: usize,
    ) {
        if header.flags.rst() {
            return;
        }
        if remote.ip().is_broadcast() || remote.ip().is_multicast() || remote.ip().is_unspecified()
        {
            return;
        }
        if header.flags.ack() {
            self.queue_rst(local, remote, header.ack, None);
        } else {
            let ack = header.seq + header.segment_len(len);
            self.queue_rst(local, remote, SeqNumber(0), Some(ack));
        }
    }

    fn queue_rst(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seq: SeqNumber,
        ack: Option<SeqNumber>,
    ) {
        let mut flags = TcpFlags::RST;
        if ack.is_some() {
            flags.insert(TcpFlags::ACK);
        }
        let header = TcpHeader {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack: ack.unwrap_or(SeqNumber(0)),
            flags,
            ..TcpHeader::default()
        };
        let bytes = header.to_bytes(&[], *local.ip(), *remote.ip());
        self.stats.resets_sent += 1;
        self.queued.push_back((*local.ip(), *remote.ip(), bytes));
    }

    fn insert_conn(&mut self, entry: ConnEntry) -> ConnHandle {
        let key = (entry.conn.local(), entry.conn.remote());
        let (index, generation) = match self.free_conns.pop() {
            Some(index) => {
                let slot = &mut self.conns[index as usize];
                slot.generation = slot.generation.wrapping_add(1);
                slot.value = Some(entry);
                (index, slot.generation)
            }
            None => {
                self.conns.push(Slot {
                    generation: 0,
                    value: Some(entry),
                });
                ((self.conns.len() - 1) as u32, 0)
            }
        };
        let handle = ConnHandle { index, generation };
        self.by_tuple.insert(key, handle);
        // A new connection has its SYN or SYN-ACK to send and its timers to arm.
        self.after_event(handle);
        self.drop_stale_timers();
        handle
    }

    fn remove_conn(&mut self, handle: ConnHandle) {
        let Some(slot) = self.conns.get_mut(handle.index as usize) else {
            return;
        };
        if slot.generation != handle.generation {
            return;
        }
        if let Some(entry) = slot.value.take() {
            let key = (entry.conn.local(), entry.conn.remote());
            if self.by_tuple.get(&key) == Some(&handle) {
                self.by_tuple.remove(&key);
            }
            if let Some(l) = entry.listener.and_then(|l| self.listener_mut(l)) {
                l.accept_queue.retain(|&h| h != handle);
            }
            self.free_conns.push(handle.index);
        }
    }

    fn live_handles(&self) -> impl Iterator<Item = ConnHandle> + '_ {
        self.conns.iter().enumerate().filter_map(|(i, slot)| {
            slot.value.as_ref().map(|_| ConnHandle {
                index: i as u32,
                generation: slot.generation,
            })
        })
    }

    fn entry(&self, handle: ConnHandle) -> Option<&ConnEntry> {
        let slot = self.conns.get(handle.index as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.value.as_ref()
    }

    fn entry_mut(&mut self, handle: ConnHandle) -> Option<&mut ConnEntry> {
        let slot = self.conns.get_mut(handle.index as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.value.as_mut()
    }

    fn listener(&self, handle: ListenerHandle) -> Option<&Listener> {
        let slot = self.listeners.get(handle.index as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.value.as_ref()
    }

    fn listener_mut(&mut self, handle: ListenerHandle) -> Option<&mut Listener> {
        let slot = self.listeners.get_mut(handle.index as usize)?;
        if slot.generation != handle.generation {
            return None;
        }
        slot.value.as_mut()
    }
}

fn insert_slot<T>(slots: &mut Vec<Slot<T>>, value: T) -> (u32, u32) {
    if let Some((index, slot)) = slots
        .iter_mut()
        .enumerate()
        .find(|(_, slot)| slot.value.is_none())
    {
        slot.generation = slot.generation.wrapping_add(1);
        slot.value = Some(value);
        return (index as u32, slot.generation);
    }
    slots.push(Slot {
        generation: 0,
        value: Some(value),
    });
    ((slots.len() - 1) as u32, 0)
}
