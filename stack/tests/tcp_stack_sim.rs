//! The whole stack in simulation: two hosts, each an IPv4 [`Interface`] with a [`TcpLayer`]
//! on top, joined by tapdev's in-memory Ethernet link wrapped in its seeded
//! [`FaultInjector`] (drop, duplicate, reorder, corrupt, delay, rate limit). Frames, ARP,
//! IPv4 and TCP all run for real, in virtual time. Each run moves `TRANSFER` bytes each way,
//! checks every byte, and ends with both TCP layers empty (CLOSED after TIME-WAIT).
//!
//! `USTACK_STACK_SIM_SEEDS=N` runs N seeds instead of the CI default.

mod tcp_sim;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tapdev::{
    Capabilities, Device, FaultConfig, FaultInjector, Faults, MemoryEndpoint, MemoryLink,
};
use tcp_sim::App;
use ustack::iface::{
    IcmpError, Interface, InterfaceConfig, InterfaceTx, Ipv4Meta, Ipv4Send, Transport,
};
use ustack::tcp::config::TcpConfig;
use ustack::tcp::connection::State;
use ustack::tcp::layer::{ListenerHandle, TcpLayer, IP_DONT_FRAGMENT, IP_TOS, IP_TTL};
use ustack::time::Instant;
use ustack::wire::{EthernetAddress, IpProtocol};

const TRANSFER: u64 = 1 << 20;
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const SERVER: SocketAddrV4 = SocketAddrV4::new(SERVER_IP, 9);

/// The TCP layer as the interface's transport.
struct TcpTransport<'a> {
    tcp: &'a mut TcpLayer,
}

impl Transport for TcpTransport<'_> {
    fn tcp(&mut self, now: Instant, ip: &Ipv4Meta, segment: &[u8], _tx: &mut InterfaceTx<'_>) {
        self.tcp.receive(now, ip.src, ip.dst, segment);
    }

    fn udp(&mut self, _now: Instant, _ip: &Ipv4Meta, _datagram: &[u8]) -> bool {
        false
    }

    fn icmp_error(&mut self, now: Instant, error: &IcmpError) {
        self.tcp.handle_interface_icmp_error(now, error);
    }
}

struct Host {
    iface: Interface,
    device: FaultInjector<MemoryEndpoint>,
    tcp: TcpLayer,
    frame: Vec<u8>,
}

impl Host {
    fn new(mac: u8, ip: Ipv4Addr, endpoint: MemoryEndpoint, faults: Faults, seed: u64) -> Host {
        let config = InterfaceConfig::new(EthernetAddress([2, 0, 0, 0, 0, mac]), ip, 24);
        let tcp_config = TcpConfig {
            time_wait: Duration::from_secs(1),
            syn_retries: 30,
            retries2: 30,
            secret: [mac.wrapping_add(seed as u8); 16],
            ..TcpConfig::default()
        };
        let mut tcp = TcpLayer::new(tcp_config);
        tcp.set_source_address(ip);
        let fault_config = FaultConfig {
            seed: seed.wrapping_mul(7).wrapping_add(u64::from(mac)),
            tx: faults,
            rx: Faults::NONE,
        };
        Host {
            iface: Interface::with_seed(config, Instant::ZERO, seed),
            device: FaultInjector::new(endpoint, fault_config),
            tcp,
            frame: vec![0; 2048],
        }
    }

    /// Frames in, timers.
    fn input(&mut self, now: Instant) {
        let at = now.as_duration();
        while let Ok(Some(len)) = self.device.recv(at, &mut self.frame) {
            let mut transport = TcpTransport { tcp: &mut self.tcp };
            self.iface
                .receive_frame(now, self.frame.get(..len).unwrap_or(&[]), &mut transport);
        }
        self.iface
            .process_loopback(now, &mut TcpTransport { tcp: &mut self.tcp });
        self.tcp.handle_timeout(now);
        self.iface.handle_timeout(now);
    }

    /// Segments out through IPv4 and the device.
    fn output(&mut self, now: Instant) {
        let iface = &mut self.iface;
        self.tcp.poll_transmit(now, &mut |src, dst, payload| {
            // A full queue loses the segment; TCP retransmits it like any loss.
            let result = iface.send_ipv4(
                now,
                Ipv4Send {
                    src: Some(src),
                    dst,
                    protocol: IpProtocol::Tcp,
                    ttl: IP_TTL,
                    tos: IP_TOS,
                    dont_fragment: IP_DONT_FRAGMENT,
                    payload,
                },
            );
            if std::env::var_os("USTACK_SIM_TRACE").is_some() {
                eprintln!(
                    "{now:?} {src} -> {dst}: {} bytes: {result:?}",
                    payload.len()
                );
            }
        });
        let device = &mut self.device;
        let at = now.as_duration();
        self.iface
            .transmit(&mut |frame| device.send(at, frame).is_ok());
        let _ = self.device.flush(at);
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.iface.poll_at(),
            self.tcp.poll_at(),
            // Instants are whole microseconds: round the device's deadline up, or a frame due
            // a fraction of a microsecond later would never come due.
            self.device
                .poll_at()
                .map(|d| Instant::from_micros(d.as_nanos().div_ceil(1000) as u64)),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

fn run(seed: u64, name: &str, faults: Faults) -> Result<(), String> {
    let caps = Capabilities {
        mtu: 1500,
        max_burst: 64,
    };
    let (a, b) = MemoryLink::pair_with_queue(caps, 4096);
    let mut client = Host::new(1, CLIENT_IP, a, faults, seed);
    let mut server = Host::new(2, SERVER_IP, b, faults, seed);
    let opts = server.tcp.config().default_socket_options();
    let listener: ListenerHandle = server
        .tcp
        .listen(SERVER, 16, opts)
        .map_err(|e| format!("{e:?}"))?;
    let mut client_app = App::new(seed, TRANSFER, TRANSFER);
    let mut server_app = App::new(seed ^ 0xaaaa, TRANSFER, TRANSFER);
    let mut now = Instant::from_millis(1);
    let deadline = now + Duration::from_secs(3600);
    let mut connects = 0;
    let mut turns_at_this_instant = 0u32;
    loop {
        client.input(now);
        server.input(now);
        // (Re)connect: a connection attempt can fail when ARP gives up under loss, as a
        // real client's would; the application then tries again.
        let failed = client_app.handle.is_some_and(|h| {
            client.tcp.state(h) == Some(State::Closed)
                && !client.tcp.readiness(h).is_some_and(|r| r.connected)
        });
        if client_app.handle.is_none() || failed {
            if let Some(h) = client_app.handle.take() {
                let _ = client.tcp.close(h);
            }
            connects += 1;
            if connects > 10 {
                return Err(format!("seed {seed} ({name}): could not connect"));
            }
            let opts = client.tcp.config().default_socket_options();
            let h = client
                .tcp
                .connect(None, SERVER, opts, now)
                .map_err(|e| format!("{e:?}"))?;
            client_app.handle = Some(h);
        }
        if server_app.handle.is_none() {
            if let Some((h, _)) = server.tcp.accept(listener) {
                server_app.handle = Some(h);
            }
        }
        client_app
            .run(&mut client.tcp, server_app.seed)
            .map_err(|e| format!("seed {seed} ({name}) client: {e}"))?;
        server_app
            .run(&mut server.tcp, client_app.seed)
            .map_err(|e| format!("seed {seed} ({name}) server: {e}"))?;
        client.output(now);
        server.output(now);
        if client_app.closed
            && server_app.closed
            && client.tcp.connection_count() == 0
            && server.tcp.connection_count() == 0
        {
            return Ok(());
        }
        // Frames already on the wire are handled at the same instant.
        if client.device.inner().pending() > 0 || server.device.inner().pending() > 0 {
            turns_at_this_instant += 1;
            if turns_at_this_instant > 100_000 {
                return Err(format!("seed {seed} ({name}): livelock at {now:?}"));
            }
            continue;
        }
        turns_at_this_instant = 0;
        let next = [client.next_deadline(), server.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(at) if at <= deadline => {
                if std::env::var_os("USTACK_SIM_TRACE").is_some() {
                    eprintln!(
                    "{now:?} -> {at:?} deadlines c {:?}/{:?}/{:?} s {:?}/{:?}/{:?} client {:?} server {:?}",
                    client.iface.poll_at(), client.tcp.poll_at(), client.device.poll_at(),
                    server.iface.poll_at(), server.tcp.poll_at(), server.device.poll_at(),
                    client_app.handle.and_then(|h| client.tcp.info(h)).map(|i| (i.state, i.unacked, i.cwnd)),
                    server_app.handle.and_then(|h| server.tcp.info(h)).map(|i| (i.state, i.unacked, i.cwnd)),
                );
                }
                now = now.max(at)
            }
            _ => {
                return Err(format!(
                    "seed {seed} ({name}): stalled at {now:?}: client {:?} server {:?}",
                    client_app.handle.and_then(|h| client.tcp.info(h)),
                    server_app.handle.and_then(|h| server.tcp.info(h)),
                ))
            }
        }
    }
}

fn profile(seed: u64) -> (&'static str, Faults) {
    let base = Faults {
        delay: Duration::from_millis(2 + seed % 10),
        ..Faults::NONE
    };
    match seed % 8 {
        0 => ("clean", base),
        1 => ("drop 1%", Faults { drop: 0.01, ..base }),
        2 => ("drop 5%", Faults { drop: 0.05, ..base }),
        3 => (
            "reorder",
            Faults {
                reorder: 0.05,
                ..base
            },
        ),
        4 => (
            "duplicate",
            Faults {
                duplicate: 0.05,
                ..base
            },
        ),
        5 => (
            "corrupt",
            Faults {
                corrupt: 0.02,
                ..base
            },
        ),
        6 => (
            "rate 20 MB/s, 64 KB queue, jitter",
            Faults {
                rate: Some(20_000_000),
                queue_bytes: 64 * 1024,
                jitter: Duration::from_millis(2),
                ..base
            },
        ),
        _ => (
            "everything",
            Faults {
                drop: 0.02,
                duplicate: 0.02,
                reorder: 0.02,
                corrupt: 0.01,
                jitter: Duration::from_millis(1),
                ..base
            },
        ),
    }
}

#[test]
fn bulk_transfer_over_faulty_ethernet() {
    let count: u64 = std::env::var("USTACK_STACK_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let only: Option<u64> = std::env::var("USTACK_STACK_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let seeds: Vec<u64> = match only {
        Some(seed) => vec![seed],
        None => (0..count).collect(),
    };
    let failures: Vec<String> = seeds
        .into_iter()
        .filter_map(|seed| {
            let (name, faults) = profile(seed);
            run(seed, name, faults).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
