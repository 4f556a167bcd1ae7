//! One host on one link: the interface (Ethernet/ARP/IPv4/ICMP) and the transports above it,
//! wired together. The daemon drives a `Host`; simulations drive two of them over an
//! in-memory link.
//!
//! # Driving contract
//!
//! Per loop turn, with `now` read once:
//! 1. [`Host::receive_frame`] for every frame the device delivered;
//! 2. application commands on [`Host::tcp_mut`] (listen, connect, send, recv, close, ...);
//! 3. [`Host::poll`]: loopback traffic, timers, built-in services, and moving the transports'
//!    output into IPv4 (and through ARP and fragmentation) — run it after any input or command;
//! 4. [`Host::transmit`] to hand queued frames to the device;
//! 5. sleep until [`Host::poll_at`] or new input. `poll_at` is `now` or earlier while anything
//!    is still queued, so a driver that sleeps until it never stalls.

use std::net::Ipv4Addr;

use crate::iface::{
    IcmpError, Interface, InterfaceConfig, InterfaceTx, Ipv4Meta, Ipv4Send, Transport,
};
use crate::services::Services;
use crate::tcp::config::TcpConfig;
use crate::tcp::layer::{TcpLayer, IP_DONT_FRAGMENT, IP_TOS, IP_TTL};
use crate::time::Instant;
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
    services: Option<Services>,
}

/// The transports as the interface sees them.
struct Transports<'a> {
    tcp: &'a mut TcpLayer,
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
        self.tcp.receive(now, ip.src, ip.dst, segment);
        // A segment a connection accepted shows the path to its sender works.
        if rejected(self.tcp.stats()) == rejected_before {
            tx.confirm_reachable(now, ip.src);
        }
    }

    fn udp(&mut self, _now: Instant, _ip: &Ipv4Meta, _datagram: &[u8]) -> bool {
        false
    }

    fn icmp_error(&mut self, now: Instant, error: &IcmpError) {
        self.delivered += 1;
        self.tcp.handle_interface_icmp_error(now, error);
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
            services,
        }
    }

    pub fn receive_frame(&mut self, now: Instant, frame: &[u8]) {
        let mut transports = Transports {
            tcp: &mut self.tcp,
            delivered: 0,
        };
        self.iface.receive_frame(now, frame, &mut transports);
    }

    /// Runs everything that is due and moves transport output into IPv4.
    pub fn poll(&mut self, now: Instant) {
        for _ in 0..MAX_LOOPBACK_ROUNDS {
            if self.tcp.poll_at().is_some_and(|at| at <= now) {
                self.tcp.handle_timeout(now);
            }
            self.iface.handle_timeout(now);
            if let Some(services) = &mut self.services {
                services.poll(&mut self.tcp);
            }
            let iface = &mut self.iface;
            self.tcp.poll_transmit(now, &mut |src, dst, segment| {
                // A datagram that cannot be sent (no route, ARP queue full) is lost like on
                // a wire; the interface counts the reason and TCP retransmits.
                let _ = iface.send_ipv4(
                    now,
                    Ipv4Send {
                        src: Some(src),
                        dst,
                        protocol: IpProtocol::Tcp,
                        ttl: IP_TTL,
                        tos: IP_TOS,
                        dont_fragment: IP_DONT_FRAGMENT,
                        payload: segment,
                    },
                );
            });
            let mut transports = Transports {
                tcp: &mut self.tcp,
                delivered: 0,
            };
            self.iface.process_loopback(now, &mut transports);
            if transports.delivered == 0 {
                break;
            }
        }
    }

    /// Hands queued frames to the device; see [`Interface::transmit`].
    pub fn transmit(&mut self, send: &mut dyn FnMut(&[u8]) -> bool) {
        self.iface.transmit(send);
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
        counters
    }
}
