//! `ustackd`: the ustack daemon. Owns a TAP device and runs the protocol stack on it.

mod args;
mod control_server;
mod driver;
mod sockets;

use std::process::ExitCode;

use clap::Parser;
use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tapdev::fault::{FaultConfig, FaultInjector};
use tapdev::pcap::{PcapFile, PcapWriter, Rotation};
use tapdev::tap::TapDevice;
use tapdev::Device;
use ustack::host::{Host, HostConfig};
use ustack::iface::InterfaceConfig;
use ustack::tcp::config::TcpConfig;
use ustack::time::Instant;
use ustack::wire::ethernet::EthernetAddress;

use crate::args::Args;
use crate::control_server::ControlServer;
use crate::driver::{Clock, Driver, FIRST_CLIENT_TOKEN};

/// TCP payload of one super-segment: an IPv4 packet of at most 65535 bytes with the longest
/// IPv4 (20, no options on TCP) and TCP (60) headers.
const GSO_MAX_PAYLOAD: usize = 65535 - 20 - 60;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ustackd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    // Signals arrive through a signalfd in the event loop; block them before any thread starts
    // so none is delivered asynchronously. SIGPIPE is ignored: a client that went away shows up
    // as EPIPE on the write, which we handle.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    // SAFETY: installing SIG_IGN runs no Rust code in signal context.
    unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map_err(|e| format!("ignoring SIGPIPE: {e}"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;

    let clock = Clock::new();
    // With offloads, 64 KB TCP super-frames cross the TAP both ways (one system call instead
    // of ~44), with partial checksums. Faults apply per wire frame, so the fault injector
    // turns them off (it reports none). A kernel that refuses them leaves plain frames.
    let tap = if args.no_offloads || args.faults.is_some() {
        TapDevice::open(&args.tap)
    } else {
        // If the plain open fails too, its error (missing TAP, busy, ...) is the one to show.
        TapDevice::open_with_offloads(&args.tap).or_else(|offload_error| {
            TapDevice::open(&args.tap)
                .inspect(|_| tracing::warn!("{offload_error}; using plain frames"))
        })
    }
    .map_err(|e| e.to_string())?;
    let device_fd = std::os::fd::AsRawFd::as_raw_fd(&tap);
    let mut device: Box<dyn Device> = Box::new(tap);
    if let Some(spec) = &args.faults {
        let config: FaultConfig = spec.parse().map_err(|e| format!("--faults: {e}"))?;
        device = Box::new(FaultInjector::new(device, config));
    }
    if let Some(path) = &args.pcap {
        let wallclock_at_epoch = std::time::SystemTime::now() - clock.now();
        let file = match args.pcap_max_bytes {
            Some(max_bytes) => PcapFile::with_rotation(
                path,
                Rotation {
                    max_bytes,
                    max_files: args.pcap_files,
                },
            ),
            None => PcapFile::create(path),
        }
        .map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        device = Box::new(PcapWriter::with_file(device, file, wallclock_at_epoch));
    }

    let (addr, prefix_len) = args.addr;
    let mac = args.mac.unwrap_or_else(random_local_mac);
    let config = HostConfig {
        iface: InterfaceConfig {
            mac,
            addr,
            prefix_len,
            gateway: args.gateway,
            mtu: usize::from(args.mtu),
        },
        tcp: TcpConfig {
            secret: rand::random(),
            gso_max_payload: if driver::tcp_segmentation_offload(device.as_ref()) {
                GSO_MAX_PAYLOAD
            } else {
                0
            },
            ..TcpConfig::default()
        },
        services: args.services,
    };
    let host = Host::new(config, Instant::from_duration(clock.now()));
    let access = control_server::Access {
        owner: args.socket_owner,
        group: args.socket_group,
    };
    let control = ControlServer::bind(&args.socket, access, FIRST_CLIENT_TOKEN)
        .map_err(|e| format!("control socket {}: {e}", args.socket.display()))?;
    eprintln!(
        "ustackd: {addr}/{prefix_len} on {} (mac {mac}), control socket {}",
        args.tap,
        args.socket.display()
    );
    let driver = Driver {
        device,
        device_fd,
        host,
        control,
        sockets: sockets::AppSockets::new(rand::random()),
        signals,
        clock,
        busy_poll: std::time::Duration::from_micros(args.busy_poll_us),
    };
    driver.run().map_err(|e| e.to_string())
}

/// A random unicast, locally administered MAC (the 0x02 bit set, the 0x01 bit clear).
fn random_local_mac() -> EthernetAddress {
    let mut bytes: [u8; 6] = rand::random();
    bytes[0] = (bytes[0] & 0xfc) | 0x02;
    EthernetAddress(bytes)
}
