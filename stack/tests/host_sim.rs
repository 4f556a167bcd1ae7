//! Two whole ustack hosts (Ethernet, ARP, IPv4, TCP) over an in-memory link through the
//! seeded fault injector, in virtual time: each run transfers data both ways over one TCP
//! connection, then both sides close. Every byte must arrive once and in order, and both
//! connections must be gone (through TIME-WAIT) at the end — for every seed and fault mix.
//!
//! `USTACK_SIM_RUNS` raises the number of runs per fault mix (default 25 → 200 runs in all);
//! `USTACK_SIM_BYTES` the bytes sent each way (default 1 MiB).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use tapdev::fault::{FaultConfig, FaultInjector, Faults};
use tapdev::memory::{MemoryEndpoint, MemoryLink};
use tapdev::offload::prepare_segmentation;
use tapdev::{Capabilities, Device, MAX_FRAME_LEN};
use ustack::host::{Host, HostConfig};
use ustack::iface::InterfaceConfig;
use ustack::tcp::config::TcpConfig;
use ustack::tcp::connection::{RecvError, SendError};
use ustack::tcp::layer::ConnHandle;
use ustack::time::Instant;
use ustack::wire::ethernet::EthernetAddress;
use SendError::NotYetConnected;

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PORT: u16 = 5001;
/// Virtual time a run may take before it counts as stuck.
const VIRTUAL_TIME_LIMIT: Duration = Duration::from_secs(3600);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One side: a host, its end of the link, and the application's transfer state.
struct Side {
    host: Host,
    link: FaultInjector<MemoryEndpoint>,
    conn: Option<ConnHandle>,
    /// Where the client connects to; `None` on the server.
    remote: Option<SocketAddrV4>,
    /// Connection attempts made (the client retries one that fails before it is established).
    attempts: u32,
    to_send: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    eof: bool,
    closed: bool,
    /// Build TCP super-segments and hand them to the link as such (segmentation offload);
    /// the fault injector cuts them into wire frames, then applies its faults to each.
    tso: bool,
    /// Super-segments handed to the link.
    super_frames: usize,
}

impl Side {
    fn new(
        ip: Ipv4Addr,
        mac: u8,
        link: FaultInjector<MemoryEndpoint>,
        data: Vec<u8>,
        seed: u64,
        tso: bool,
    ) -> Side {
        let config = HostConfig {
            iface: InterfaceConfig {
                mac: EthernetAddress([0x02, 0, 0, 0, 0, mac]),
                addr: ip,
                prefix_len: 24,
                gateway: None,
                mtu: 1500,
            },
            tcp: TcpConfig {
                time_wait: Duration::from_secs(2),
                gso_max_payload: if tso { 65535 - 80 } else { 0 },
                secret: seed.to_le_bytes().repeat(2).try_into().unwrap_or([7; 16]),
                ..TcpConfig::default()
            },
            services: false,
        };
        Side {
            host: Host::new(config, Instant::ZERO),
            link,
            conn: None,
            remote: None,
            attempts: 0,
            to_send: data,
            sent: 0,
            received: Vec::new(),
            eof: false,
            closed: false,
            tso,
            super_frames: 0,
        }
    }

    /// Device in, application, stack, device out. Returns whether anything moved.
    fn step(&mut self, now: Instant, buf: &mut [u8]) -> bool {
        let mut progress = false;
        let at = now.as_duration();
        while let Ok(Some(len)) = self.link.recv(at, buf) {
            self.host.receive_frame(now, &buf[..len]);
            progress = true;
        }
        progress |= self.application(now);
        self.host.poll(now);
        progress |= self.application(now);
        self.host.poll(now);
        let link = &mut self.link;
        if self.tso {
            let super_frames = &mut self.super_frames;
            self.host.transmit_offload(&mut |frame, segment_size| {
                progress = true;
                match segment_size {
                    Some(size) => match prepare_segmentation(frame, size) {
                        Ok(offload) => {
                            *super_frames += 1;
                            link.send_offload(at, frame, &offload).is_ok()
                        }
                        Err(e) => panic!("the stack built a super-frame it cannot segment: {e}"),
                    },
                    None => link.send(at, frame).is_ok(),
                }
            });
        } else {
            self.host.transmit(&mut |frame| {
                progress = true;
                link.send(at, frame).is_ok()
            });
        }
        progress
    }

    fn connect(&mut self, now: Instant) -> Result<(), String> {
        let remote = self.remote.ok_or("the server does not connect")?;
        let tcp = self.host.tcp_mut();
        let options = tcp.config().default_socket_options();
        let conn = tcp
            .connect(None, remote, options, now)
            .map_err(|e| format!("connect: {e:?}"))?;
        self.conn = Some(conn);
        self.attempts += 1;
        Ok(())
    }

    fn application(&mut self, now: Instant) -> bool {
        let Some(conn) = self.conn else {
            return false;
        };
        if self.closed {
            return false;
        }
        let tcp = self.host.tcp_mut();
        // An application retries a connect that failed before the handshake completed (ARP
        // can give up under heavy loss; Linux then fails the connect with EHOSTUNREACH).
        if self.remote.is_some() && self.sent == 0 && self.attempts < 5 {
            if let Some(error) = tcp.send(conn, &[]).err().filter(|e| *e != NotYetConnected) {
                let _ = tcp.abort(conn);
                self.connect(now)
                    .unwrap_or_else(|e| panic!("reconnect after {error:?}: {e}"));
                return true;
            }
        }
        let tcp = self.host.tcp_mut();
        let mut progress = false;
        while self.sent < self.to_send.len() {
            match tcp.send(conn, &self.to_send[self.sent..]) {
                Ok(0) | Err(SendError::NotYetConnected) => break,
                Ok(n) => {
                    self.sent += n;
                    progress = true;
                    if self.sent == self.to_send.len() {
                        let _ = tcp.shutdown_write(conn);
                    }
                }
                Err(e) => panic!("send failed: {e:?}"),
            }
        }
        let mut chunk = [0u8; 16384];
        while !self.eof {
            match tcp.recv(conn, &mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.received.extend_from_slice(&chunk[..n]);
                    progress = true;
                }
                Err(RecvError::WouldBlock) => break,
                Err(e) => panic!("recv failed after {} bytes: {e:?}", self.received.len()),
            }
        }
        if self.eof && self.sent == self.to_send.len() && !self.closed {
            let _ = tcp.close(conn);
            self.closed = true;
            progress = true;
        }
        progress
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let device = self.link.poll_at().map(Instant::from_duration);
        match (self.host.poll_at(), device) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

struct Outcome {
    virtual_time: Instant,
    super_frames: usize,
}

fn run(seed: u64, faults: &str, bytes: usize, tso: bool) -> Result<Outcome, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut client_data = vec![0u8; bytes];
    let mut server_data = vec![0u8; bytes];
    rng.fill_bytes(&mut client_data);
    rng.fill_bytes(&mut server_data);

    let caps = Capabilities {
        mtu: 1500,
        max_burst: 64,
    };
    let (end_a, end_b) = MemoryLink::pair_with_queue(caps, 4096);
    // Every frame passes two injectors: the sender's egress and the receiver's ingress. The
    // spec applies to both directions of an injector, so only egress keeps it: with both,
    // each fault would strike twice per direction ("drop=0.2" would lose 36% of the frames,
    // "delay=1ms" would be 2 ms one way).
    let config = |salt: u64| -> FaultConfig {
        let spec = format!("seed={},{faults}", seed.wrapping_mul(31).wrapping_add(salt));
        let parsed: FaultConfig = spec
            .parse()
            .unwrap_or_else(|e| panic!("fault spec {spec}: {e}"));
        FaultConfig {
            rx: Faults::NONE,
            ..parsed
        }
    };
    let mut client = Side::new(
        CLIENT_IP,
        1,
        FaultInjector::new(end_a, config(1)),
        client_data.clone(),
        seed,
        tso,
    );
    let mut server = Side::new(
        SERVER_IP,
        2,
        FaultInjector::new(end_b, config(2)),
        server_data.clone(),
        seed ^ 0xffff,
        tso,
    );

    let listen_addr = SocketAddrV4::new(SERVER_IP, PORT);
    let options = server.host.tcp().config().default_socket_options();
    let listener = server
        .host
        .tcp_mut()
        .listen(listen_addr, 16, options)
        .map_err(|e| format!("listen: {e:?}"))?;
    client.remote = Some(listen_addr);
    client.connect(Instant::ZERO)?;

    let mut now = Instant::ZERO;
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    loop {
        let mut progress = client.step(now, &mut buf);
        progress |= server.step(now, &mut buf);
        if server.conn.is_none() {
            if let Some((conn, _peer)) = server.host.tcp_mut().accept(listener) {
                server.conn = Some(conn);
                progress = true;
            }
        }
        let done = client.closed
            && server.closed
            && client.host.tcp().connection_count() == 0
            && server.host.tcp().connection_count() == 0;
        if done {
            break;
        }
        if progress {
            continue;
        }
        let next = [client.next_wakeup(), server.next_wakeup()]
            .into_iter()
            .flatten()
            .min()
            .ok_or_else(|| {
                format!(
                    "stalled at {now}: nothing scheduled (client got {}/{}, server got {}/{})",
                    client.received.len(),
                    bytes,
                    server.received.len(),
                    bytes
                )
            })?;
        // A deadline at or before `now` that produced no progress must not spin forever.
        now = if next > now {
            next
        } else {
            now + Duration::from_micros(100)
        };
        if now.as_duration() > VIRTUAL_TIME_LIMIT {
            return Err(format!(
                "not finished after {VIRTUAL_TIME_LIMIT:?} virtual (client got {}/{bytes}, server got {}/{bytes}, closed {} {}, connections {} {})",
                client.received.len(),
                server.received.len(),
                client.closed,
                server.closed,
                client.host.tcp().connection_count(),
                server.host.tcp().connection_count(),
            ));
        }
    }
    if client.received != server_data {
        return Err(format!(
            "client received {} bytes, differing from what the server sent",
            client.received.len()
        ));
    }
    if server.received != client_data {
        return Err(format!(
            "server received {} bytes, differing from what the client sent",
            server.received.len()
        ));
    }
    Ok(Outcome {
        virtual_time: now,
        super_frames: client.super_frames + server.super_frames,
    })
}

/// The fault mixes: each runs for `USTACK_SIM_RUNS` seeds. Every mix has a 1 ms one-way delay
/// so the connection has a real RTT; rates are per frame and per direction (applied once, on
/// the sender's side: see `run`).
const MIXES: &[(&str, &str)] = &[
    ("clean", "delay=1ms"),
    ("loss 1%", "delay=1ms,drop=0.01"),
    ("loss 5%", "delay=1ms,drop=0.05"),
    ("loss 20%", "delay=1ms,drop=0.2"),
    ("reorder 5%", "delay=1ms,reorder=0.05"),
    ("duplicate 5%", "delay=1ms,dup=0.05"),
    ("corrupt 2%", "delay=1ms,corrupt=0.02"),
    (
        "slow lossy link",
        "delay=20ms,jitter=5ms,rate=20mbit,drop=0.02,reorder=0.01,dup=0.01,corrupt=0.005",
    ),
];

fn run_mix(name: &str, faults: &str, first_seed: u64) {
    run_mix_with(name, faults, first_seed, false);
}

/// The same mix with TCP segmentation offload on both hosts (other seeds).
fn run_mix_tso(name: &str, faults: &str, first_seed: u64) {
    run_mix_with(name, faults, first_seed + 500, true);
}

fn run_mix_with(name: &str, faults: &str, first_seed: u64, tso: bool) {
    let runs = env_usize("USTACK_SIM_RUNS", 25) as u64;
    let bytes = env_usize("USTACK_SIM_BYTES", 1 << 20);
    let mut slowest = Instant::ZERO;
    let mut super_frames = 0;
    let mode = if tso { ", TSO" } else { "" };
    for seed in first_seed..first_seed + runs {
        match run(seed, faults, bytes, tso) {
            Ok(outcome) => {
                slowest = slowest.max(outcome.virtual_time);
                super_frames += outcome.super_frames;
            }
            Err(e) => panic!("{name}{mode} ({faults}), seed {seed}: {e}"),
        }
    }
    // The TSO runs must have sent super-segments, or they tested nothing new.
    assert_eq!(
        tso,
        super_frames > 0,
        "{name}{mode}: {super_frames} super-segments"
    );
    println!(
        "{name}{mode}: {runs} runs of {bytes} bytes each way, slowest took {slowest} virtual, \
         {super_frames} super-segments"
    );
}

#[test]
fn clean_link() {
    run_mix(MIXES[0].0, MIXES[0].1, 0);
}

#[test]
fn loss_1_percent() {
    run_mix(MIXES[1].0, MIXES[1].1, 1000);
}

#[test]
fn loss_5_percent() {
    run_mix(MIXES[2].0, MIXES[2].1, 2000);
}

#[test]
fn loss_20_percent() {
    run_mix(MIXES[3].0, MIXES[3].1, 3000);
}

#[test]
fn reordering() {
    run_mix(MIXES[4].0, MIXES[4].1, 4000);
}

#[test]
fn duplication() {
    run_mix(MIXES[5].0, MIXES[5].1, 5000);
}

#[test]
fn corruption() {
    run_mix(MIXES[6].0, MIXES[6].1, 6000);
}

#[test]
fn slow_lossy_link() {
    run_mix(MIXES[7].0, MIXES[7].1, 7000);
}

#[test]
fn clean_link_tso() {
    run_mix_tso(MIXES[0].0, MIXES[0].1, 0000);
}

#[test]
fn loss_1_percent_tso() {
    run_mix_tso(MIXES[1].0, MIXES[1].1, 1000);
}

#[test]
fn loss_5_percent_tso() {
    run_mix_tso(MIXES[2].0, MIXES[2].1, 2000);
}

#[test]
fn loss_20_percent_tso() {
    run_mix_tso(MIXES[3].0, MIXES[3].1, 3000);
}

#[test]
fn reordering_tso() {
    run_mix_tso(MIXES[4].0, MIXES[4].1, 4000);
}

#[test]
fn duplication_tso() {
    run_mix_tso(MIXES[5].0, MIXES[5].1, 5000);
}

#[test]
fn corruption_tso() {
    run_mix_tso(MIXES[6].0, MIXES[6].1, 6000);
}

#[test]
fn slow_lossy_link_tso() {
    run_mix_tso(MIXES[7].0, MIXES[7].1, 7000);
}
