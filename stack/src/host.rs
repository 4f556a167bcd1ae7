//! One host on one link: the interface (Ethernet/ARP/IPv4/ICMP) and the transports above it,
//! wired together. The daemon drives a `Host`; simulations drive two of them over an
//! in-memory link.
//!
//! # Driving contract
//!
//! Per loop turn, with `now` read once:
//! 1. [`Host::receive_frame`] for every frame the device delivered;
//! 2. application commands on [`Host::tcp_mut`] (listen, connect, send, recv, close, ...),
//!    [`Host::udp_mut`] and [`Host::udp_send`];
//! 3. [`Host::poll`]: loopback traffic, timers, built-in services, and moving the transports'
//!    output into IPv4 (and through ARP and fragmentation) — run it after any input or command;
//! 4. [`Host::transmit`] to hand queued frames to the device;
//! 5. sleep until [`Host::poll_at`] or new input. `poll_at` is `now` or earlier while anything
//!    is still queued, so a driver that sleeps until it never stalls.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::iface::{
    IcmpError, Interface, InterfaceConfig, InterfaceTx, Ipv4Meta, Ipv4Send, SendError, Transport,
};
use crate::services::Services;
use crate::tcp::config::TcpConfig;
use crate::tcp::layer::{TcpEvent, TcpLayer, IP_DONT_FRAGMENT, IP_TOS, IP_TTL};
use crate::time::Instant;
use crate::udp::{UdpHandle, UdpLayer, MAX_PAYLOAD};
use crate::wire::udp::UdpRepr;
use crate::wire::IpProtocol;

/// Loopback rounds per `poll` call: each round lets loopback segments be answered; bounded so
/// one call cannot run forever (the rest waits for the next turn, as `poll_at` reports).
const MAX_LOOPBACK_ROUNDS: usize = 64;

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub iface: InterfaceConfig,
    pub tcp: TcpConfig,
    /// Run the RFC 862/863/864 echo, discard and chargen services on TCP ports 7, 9 and 19.
    pub services: bool,
}

pub struct Host {
    iface: Interface,
    tcp: TcpLayer,
    udp: UdpLayer,
    services: Option<Services>,
    /// Scratch for building UDP datagrams.
    udp_buf: Vec<u8>,
    /// TCP readiness events for the application side (the services take theirs), kept only
    /// once someone has asked for them (a host driven without an application side would
    /// otherwise collect them forever).
    app_events: Vec<TcpEvent>,
    app_events_wanted: bool,
    events_scratch: Vec<TcpEvent>,
}

/// Why [`Host::udp_send`] refused a datagram (the errno Linux's `udp_sendmsg` returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpSendError {
    /// No such socket.
    NoSocket,
    /// No destination given and the socket is not connected [EDESTADDRREQ].
    NoDestination,
    /// Port 0 as destination [EINVAL].
    InvalidPort,
    /// More than [`MAX_PAYLOAD`] bytes [EMSGSIZE].
    TooLarge,
    /// A broadcast destination without SO_BROADCAST [EACCES].
    BroadcastNotAllowed,
    /// The interface refused it (no route, full queues, bad source).
    Interface(SendError),
}

/// The transports as the interface sees them.
struct Transports<'a> {
    tcp: &'a mut TcpLayer,
    udp: &'a mut UdpLayer,
    /// Datagrams handed up, so `Host::poll` knows when the loopback has gone quiet.
    delivered: usize,
}

impl Transport for Transports<'_> {
    fn tcp(&mut self, now: Instant, ip: &Ipv4Meta, segment: &[u8], tx: &mut InterfaceTx<'_>) {
        // Answers (ACKs, RSTs) are queued in the layer and leave in `Host::poll`.
        self.delivered += 1;
        let rejected =
            |s: &crate::tcp::stats::TcpLayerStats| s.bad_checksum + s.malformed + s.no_socket;
        let rejected_before = rejected(self.tcp.stats());
        self.tcp
            .receive_segment(now, ip.src, ip.dst, segment, ip.checksum_trusted);
        // A segment a connection accepted shows the path to its sender works.
        if rejected(self.tcp.stats()) == rejected_before {
            tx.confirm_reachable(now, ip.src);
        }
    }

    fn udp(&mut self, _now: Instant, ip: &Ipv4Meta, datagram: &[u8]) -> bool {
        self.delivered += 1;
        self.udp.receive(ip, datagram)
    }

    fn icmp_error(&mut self, now: Instant, error: &IcmpError) {
        self.delivered += 1;
        self.tcp.handle_interface_icmp_error(now, error);
        self.udp.handle_icmp_error(error);
    }
}

impl Host {
    pub fn new(config: HostConfig, now: Instant) -> Host {
        let mut tcp_config = config.tcp;
        tcp_config.mtu = config.iface.mtu;
        let mut tcp = TcpLayer::new(tcp_config);
        tcp.set_source_address(config.iface.addr);
        let services = config.services.then(|| Services::start(&mut tcp));
        Host {
            iface: Interface::new(config.iface, now),
            tcp,
            udp: UdpLayer::new(),
            services,
            udp_buf: Vec::new(),
            app_events: Vec::new(),
            app_events_wanted: false,
            events_scratch: Vec::new(),
        }
    }

    pub fn receive_frame(&mut self, now: Instant, frame: &[u8]) {
        let mut transports = Transports {
            tcp: &mut self.tcp,
            udp: &mut self.udp,
            delivered: 0,
        };
        self.iface.receive_frame(now, frame, &mut transports);
    }

    /// A frame whose transport checksum the device vouches for; see
    /// [`Interface::receive_frame_verified`].
    pub fn receive_frame_verified(&mut self, now: Instant, frame: &[u8]) {
        let mut transports = Transports {
            tcp: &mut self.tcp,
            udp: &mut self.udp,
            delivered: 0,
        };
        self.iface
            .receive_frame_verified(now, frame, &mut transports);
    }

    /// Runs everything that is due and moves transport output into IPv4.
    pub fn poll(&mut self, now: Instant) {
        for _ in 0..MAX_LOOPBACK_ROUNDS {
            if self.tcp.poll_at().is_some_and(|at| at <= now) {
                self.tcp.handle_timeout(now);
            }
            self.iface.handle_timeout(now);
            self.route_tcp_events();
            if let Some(services) = &mut self.services {
                services.poll(&mut self.tcp);
            }
            let iface = &mut self.iface;
            self.tcp
                .poll_transmit_offload(now, &mut |src, dst, segment, segmentation| {
                    let packet = Ipv4Send {
                        src: Some(src),
                        dst,
                        protocol: IpProtocol::Tcp,
                        ttl: IP_TTL,
                        tos: IP_TOS,
                        dont_fragment: IP_DONT_FRAGMENT,
                        payload: segment,
                    };
                    // A datagram that cannot be sent (no route, ARP queue full) is lost like
                    // on a wire; the interface counts the reason and TCP retransmits.
                    let _ = match segmentation {
                        Some(segmentation) => iface.send_ipv4_segmented(now, packet, segmentation),
                        None => iface.send_ipv4(now, packet),
                    };
                });
            let mut transports = Transports {
                tcp: &mut self.tcp,
                udp: &mut self.udp,
                delivered: 0,
            };
            self.iface.process_loopback(now, &mut transports);
            if transports.delivered == 0 {
                break;
            }
        }
    }

    /// Moves the TCP layer's readiness events to the services or the application side.
    fn route_tcp_events(&mut self) {
        let mut events = std::mem::take(&mut self.events_scratch);
        self.tcp.drain_events(&mut events);
        for event in events.drain(..) {
            let taken = self
                .services
                .as_mut()
                .is_some_and(|services| services.notify(event));
            if !taken && self.app_events_wanted {
                self.app_events.push(event);
            }
        }
        self.events_scratch = events;
    }

    /// The TCP readiness events for connections and listeners the application side holds
    /// (see [`TcpLayer::drain_events`]); use this rather than draining the layer directly.
    pub fn take_tcp_events(&mut self, out: &mut Vec<TcpEvent>) {
        self.app_events_wanted = true;
        self.route_tcp_events();
        out.append(&mut self.app_events);
    }

    /// Hands queued frames to the device; see [`Interface::transmit`].
    pub fn transmit(&mut self, send: &mut dyn FnMut(&[u8]) -> bool) {
        self.iface.transmit(send);
    }

    /// Hands queued frames to a device that segments TCP itself (for hosts whose
    /// `TcpConfig::gso_max_payload` is set); see [`Interface::transmit_offload`].
    pub fn transmit_offload(&mut self, send: &mut dyn FnMut(&mut [u8], Option<u16>) -> bool) {
        self.iface.transmit_offload(send);
    }

    /// When `poll` should run next without new input.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.iface.poll_at(), self.tcp.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    pub fn tcp(&self) -> &TcpLayer {
        &self.tcp
    }

    pub fn tcp_mut(&mut self) -> &mut TcpLayer {
        &mut self.tcp
    }

    pub fn udp(&self) -> &UdpLayer {
        &self.udp
    }

    pub fn udp_mut(&mut self) -> &mut UdpLayer {
        &mut self.udp
    }

    /// Sends `payload` from UDP socket `handle` to `dst`, or to its connected peer. Checked as
    /// Linux's `udp_sendmsg` checks; the datagram is fragmented if larger than the MTU, and
    /// carries DF when it is not (Linux's default IP_PMTUDISC_WANT). Loopback datagrams are
    /// delivered in the next [`Host::poll`].
    pub fn udp_send(
        &mut self,
        now: Instant,
        handle: UdpHandle,
        dst: Option<SocketAddrV4>,
        payload: &[u8],
    ) -> Result<(), UdpSendError> {
        let binding = self.udp.binding(handle).ok_or(UdpSendError::NoSocket)?;
        if payload.len() > MAX_PAYLOAD {
            return Err(UdpSendError::TooLarge);
        }
        let dst = match dst.or_else(|| self.udp.peer(handle)) {
            Some(dst) => dst,
            None => return Err(UdpSendError::NoDestination),
        };
        if dst.port() == 0 {
            return Err(UdpSendError::InvalidPort);
        }
        if self.iface.config().is_broadcast(*dst.ip()) && !self.udp.broadcast(handle) {
            return Err(UdpSendError::BroadcastNotAllowed);
        }
        let bound = Some(*binding.local.ip()).filter(|ip| !ip.is_unspecified());
        let src = self
            .iface
            .source_for(*dst.ip(), bound)
            .map_err(UdpSendError::Interface)?;
        let repr = UdpRepr {
            src_port: binding.local.port(),
            dst_port: dst.port(),
        };
        let len = repr.buffer_len(payload.len());
        self.udp_buf.resize(len, 0);
        repr.emit(&mut self.udp_buf, src, *dst.ip(), payload);
        let fits = len + crate::wire::ipv4::MIN_HEADER_LEN <= self.iface.mtu_for(*dst.ip());
        self.iface
            .send_ipv4(
                now,
                Ipv4Send {
                    src: Some(src),
                    dst: *dst.ip(),
                    protocol: IpProtocol::Udp,
                    ttl: IP_TTL,
                    tos: IP_TOS,
                    dont_fragment: fits,
                    payload: &self.udp_buf,
                },
            )
            .map_err(UdpSendError::Interface)?;
        self.udp.count_sent();
        Ok(())
    }

    pub fn address(&self) -> Ipv4Addr {
        self.iface.config().addr
    }

    /// Every counter of every layer with its stable name (`ustack stats`).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut counters = self.iface.stats().counters();
        let tcp = self.tcp.stats();
        counters.extend([
            ("tcp_segments_in", tcp.segments_in),
            ("tcp_segments_out", tcp.segments_out),
            ("tcp_bad_checksum", tcp.bad_checksum),
            ("tcp_malformed", tcp.malformed),
            ("tcp_resets_sent", tcp.resets_sent),
            ("tcp_no_socket", tcp.no_socket),
            ("tcp_active_opens", tcp.active_opens),
            ("tcp_passive_opens", tcp.passive_opens),
            ("tcp_listen_drops", tcp.listen_drops),
            ("tcp_listen_overflows", tcp.listen_overflows),
            ("tcp_icmp_errors", tcp.icmp_errors),
            ("tcp_connections", self.tcp.connection_count() as u64),
        ]);
        let udp = self.udp.stats();
        counters.extend([
            ("udp_in_datagrams", udp.in_datagrams),
            ("udp_out_datagrams", udp.out_datagrams),
            ("udp_rcvbuf_errors", udp.rcvbuf_errors),
            ("udp_icmp_errors", udp.icmp_errors),
            ("udp_sockets", self.udp.socket_count() as u64),
        ]);
        counters
    }
}
