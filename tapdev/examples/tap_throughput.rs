//! How fast TCP data crosses a TAP: one wire frame per system call vs 64 KB super-frames.
//!
//! Run as root: `cargo run --release -p tapdev --example tap_throughput [-- SECONDS]`.
//! It creates a namespace `ustk-tput-<pid>` with a persistent TAP `ttap0` (kernel side
//! 10.90.0.1/24, a static neighbour entry for our 10.90.0.2) and removes it afterwards, even on
//! failure. The measurement runs inside the namespace (the program re-runs itself under
//! `ip netns exec`).
//!
//! - **send**: we are a minimal TCP sender (handshake, sliding window from the kernel's ACKs,
//!   go-back-N after a stall) streaming to a kernel socket that reads and discards. *plain*
//!   writes 1514-byte frames with checksums computed in software on a TAP opened with
//!   `TapDevice::open`; *tso* writes 64 240-byte super-frames (44 x 1460) with partial
//!   checksums on a TAP opened with `open_with_offloads`. Goodput is what the kernel socket
//!   read.
//! - **receive**: a kernel client writes as fast as it can to our minimal receiver, which
//!   ACKs every frame. *plain* reads 1514-byte frames and verifies their TCP checksums (as a
//!   stack must); *offload* reads super-frames with `recv_offload`, whose partial checksums
//!   need no verification.
//!
//! Both sides share the machine's cores with the kernel's work, so numbers are for comparing
//! modes on one machine, not absolute.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapdev::offload::{
    complete_checksum, internet_checksum, prepare_partial_checksum, prepare_segmentation, Checksum,
    FrameOffload, MAX_OFFLOAD_FRAME_LEN,
};
use tapdev::tap::TapDevice;
use tapdev::{Device, MAX_FRAME_LEN};

const CHILD_FLAG: &str = "--in-namespace";
const TAP: &str = "ttap0";
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
const KERNEL_IP: [u8; 4] = [10, 90, 0, 1];
const OUR_IP: [u8; 4] = [10, 90, 0, 2];
const MSS: usize = 1460;
/// Payload of one super-frame: as many whole segments as fit in 64 KB, as Linux does.
const SUPER_PAYLOAD: usize = 44 * MSS;
/// Our receive window when we receive: 65535 << 7, about 8 MB.
const OUR_WSCALE: u8 = 7;
const T0: Duration = Duration::ZERO;
/// Our port when we send.
const SENDER_PORT: u16 = 50_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    if args.iter().any(|a| a == CHILD_FLAG) {
        run_measurements(Duration::from_secs(seconds));
        return;
    }
    let namespace = match Namespace::create() {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("tap_throughput: cannot set up a namespace (run as root): {e}");
            std::process::exit(1);
        }
    };
    let status = Command::new("ip")
        .args(["netns", "exec", &namespace.name])
        .arg(std::env::current_exe().expect("own path"))
        .arg(seconds.to_string())
        .arg(CHILD_FLAG)
        .status();
    drop(namespace);
    match status {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("tap_throughput: measurement failed: {other:?}");
            std::process::exit(1);
        }
    }
}

/// The namespace and its TAP, deleted on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    fn create() -> Result<Namespace, String> {
        let name = format!("ustk-tput-{}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        let ns = Namespace { name };
        let n = ns.name.as_str();
        run(&["ip", "-n", n, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", n, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
        run(&["ip", "-n", n, "addr", "add", "10.90.0.1/24", "dev", TAP])?;
        run(&["ip", "-n", n, "link", "set", TAP, "up"])?;
        run(&[
            "ip",
            "-n",
            n,
            "neigh",
            "add",
            "10.90.0.2",
            "lladdr",
            "02:00:00:00:0a:02",
            "dev",
            TAP,
            "nud",
            "permanent",
        ])?;
        Ok(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = run(&["ip", "-n", &self.name, "link", "del", TAP]);
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

fn run(argv: &[&str]) -> Result<(), String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| format!("{argv:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Offload,
}

fn open(mode: Mode) -> TapDevice {
    let tap = match mode {
        Mode::Plain => TapDevice::open(TAP),
        Mode::Offload => TapDevice::open_with_offloads(TAP),
    }
    .expect("attach to the TAP");
    wait_until_running();
    tap
}

fn run_measurements(duration: Duration) {
    println!(
        "{:<22} {:>10} {:>12} {:>12} {:>10}",
        "direction / mode", "Gbit/s", "writes/s", "reads/s", "retrans."
    );
    for (mode, port, label) in [
        (Mode::Plain, 5001, "send, plain 1514 B"),
        (Mode::Offload, 5002, "send, tso 64 KB"),
    ] {
        let result = measure_send(open(mode), mode, port, duration);
        result.print(label);
    }
    for (mode, port, label) in [
        (Mode::Plain, 5003, "receive, plain 1514 B"),
        (Mode::Offload, 5004, "receive, offload"),
    ] {
        let result = measure_receive(open(mode), mode, port, duration);
        result.print(label);
    }
}

struct Measured {
    bytes: u64,
    elapsed: Duration,
    writes: u64,
    reads: u64,
    retransmissions: u64,
    tap_rx_bytes: u64,
    tap_rx_packets: u64,
}

impl Measured {
    fn print(&self, label: &str) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{label:<22} {:>10.2} {:>12.0} {:>12.0} {:>10}   (TAP rx: {} packets, {:.2} Gbit/s)",
            self.bytes as f64 * 8.0 / secs / 1e9,
            self.writes as f64 / secs,
            self.reads as f64 / secs,
            self.retransmissions,
            self.tap_rx_packets,
            self.tap_rx_bytes as f64 * 8.0 / secs / 1e9,
        );
    }
}

/// Streams to a kernel socket for `duration`; returns what the socket read.
fn measure_send(mut tap: TapDevice, mode: Mode, port: u16, duration: Duration) -> Measured {
    let listener = TcpListener::bind((Ipv4Addr::from(KERNEL_IP), port)).expect("bind");
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&delivered);
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = vec![0u8; 1 << 20];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    });
    let kernel_mac = read_mac();

    // Handshake.
    let our_isn = 1u32;
    let syn = tcp_frame(
        kernel_mac,
        SENDER_PORT,
        port,
        our_isn,
        0,
        0x02,
        &[2, 4, 5, 0xb4, 1, 3, 3, OUR_WSCALE],
        &[],
    );
    let mut buf = vec![0u8; MAX_OFFLOAD_FRAME_LEN];
    let (kernel_isn, mut window, kernel_wscale) = loop {
        tap.send(T0, &finish(syn.clone())).expect("send SYN");
        if let Some(reply) = wait_for(&mut tap, &mut buf, SENDER_PORT, |t| t.flags & 0x12 == 0x12) {
            break (
                reply.seq,
                u32::from(reply.window),
                reply.wscale.unwrap_or(0),
            );
        }
    };
    // The window of a SYN segment is never scaled (RFC 7323 §2.2): `window` stays as read.
    let mut snd_una = our_isn.wrapping_add(1);
    let mut snd_nxt = snd_una;
    let rcv_nxt = kernel_isn.wrapping_add(1);
    tap.send(
        T0,
        &finish(tcp_frame(
            kernel_mac,
            SENDER_PORT,
            port,
            snd_nxt,
            rcv_nxt,
            0x10,
            &[],
            &[],
        )),
    )
    .expect("send ACK");

    let payload = pattern(SUPER_PAYLOAD);
    let chunk = match mode {
        Mode::Plain => MSS,
        Mode::Offload => SUPER_PAYLOAD,
    };
    let rx_before = tap_stats();
    let start = Instant::now();
    let delivered_before = delivered.load(Ordering::Relaxed);
    let mut writes = 0u64;
    let mut reads = 0u64;
    let mut retransmissions = 0u64;
    let mut last_progress = Instant::now();
    let mut frame = Vec::with_capacity(MAX_OFFLOAD_FRAME_LEN);
    while start.elapsed() < duration {
        // Fill the window.
        loop {
            let in_flight = snd_nxt.wrapping_sub(snd_una) as usize;
            let room = (window as usize).saturating_sub(in_flight);
            let len = chunk.min(room);
            if len < MSS.min(chunk) {
                break;
            }
            frame.clear();
            frame.extend_from_slice(&tcp_frame(
                kernel_mac,
                SENDER_PORT,
                port,
                snd_nxt,
                rcv_nxt,
                0x18,
                &[],
                &[],
            ));
            frame.extend_from_slice(&payload[..len]);
            fix_ip_length(&mut frame);
            match mode {
                Mode::Plain => {
                    let offload = prepare_partial_checksum(&mut frame).expect("TCP frame");
                    if let Checksum::Partial { start, offset } = offload.checksum {
                        complete_checksum(&mut frame, start, offset).expect("in frame");
                    }
                    tap.send(T0, &frame).expect("send");
                }
                Mode::Offload => {
                    let offload = prepare_segmentation(&mut frame, MSS as u16).expect("TCP frame");
                    tap.send_offload(T0, &frame, &offload).expect("send");
                }
            }
            writes += 1;
            snd_nxt = snd_nxt.wrapping_add(len as u32);
        }
        // Take in ACKs.
        let mut got_any = false;
        while let Some((n, _)) = tap.recv_offload(T0, &mut buf).expect("recv") {
            reads += 1;
            got_any = true;
            if let Some(ack) = parse_tcp(&buf[..n], SENDER_PORT) {
                let acked = ack.ack.wrapping_sub(snd_una) as i32;
                if acked > 0 && ack.ack.wrapping_sub(snd_nxt) as i32 <= 0 {
                    snd_una = ack.ack;
                    last_progress = Instant::now();
                }
                window = u32::from(ack.window) << kernel_wscale;
            }
        }
        if snd_una != snd_nxt && last_progress.elapsed() > Duration::from_millis(100) {
            // Something was dropped (a full queue somewhere): go back and resend.
            snd_nxt = snd_una;
            retransmissions += 1;
            last_progress = Instant::now();
        }
        if !got_any {
            wait_readable(&tap, 1);
        }
    }
    let elapsed = start.elapsed();
    let bytes = delivered.load(Ordering::Relaxed) - delivered_before;
    let rx_after = tap_stats();
    Measured {
        bytes,
        elapsed,
        writes,
        reads,
        retransmissions,
        tap_rx_bytes: rx_after.0 - rx_before.0,
        tap_rx_packets: rx_after.1 - rx_before.1,
    }
}

/// A kernel client streams to us for `duration`; returns the in-order bytes we received.
fn measure_receive(mut tap: TapDevice, mode: Mode, port: u16, duration: Duration) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_client = Arc::clone(&stop);
    std::thread::spawn(move || {
        let Ok(mut stream) = TcpStream::connect_timeout(
            &(Ipv4Addr::from(OUR_IP), port).into(),
            Duration::from_secs(10),
        ) else {
            return;
        };
        let data = pattern(1 << 20);
        while !stop_client.load(Ordering::Relaxed) {
            if stream.write_all(&data).is_err() {
                break;
            }
        }
    });
    let mut buf = vec![
        0u8;
        match mode {
            Mode::Plain => MAX_FRAME_LEN,
            Mode::Offload => MAX_OFFLOAD_FRAME_LEN,
        }
    ];
    let our_isn = 0x4000_0000u32;
    let mut rcv_nxt: Option<u32> = None;
    let mut received = 0u64;
    let mut reads = 0u64;
    let mut writes = 0u64;
    let mut start: Option<Instant> = None;
    let mut rx_before = tap_stats();
    let setup_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(start) = start {
            if start.elapsed() >= duration {
                break;
            }
        } else if Instant::now() > setup_deadline {
            panic!("the kernel client never connected");
        }
        let got = match mode {
            Mode::Plain => tap
                .recv(T0, &mut buf)
                .expect("recv")
                .map(|n| (n, FrameOffload::NONE)),
            Mode::Offload => tap.recv_offload(T0, &mut buf).expect("recv"),
        };
        let Some((n, offload)) = got else {
            wait_readable(&tap, 1);
            continue;
        };
        reads += 1;
        let frame = &buf[..n];
        let Some(segment) = parse_tcp(frame, port) else {
            continue;
        };
        // A stack verifies what it cannot trust: complete checksums from the wire.
        if offload.checksum == Checksum::Complete {
            assert!(tcp_checksum_ok(frame), "bad TCP checksum");
        }
        if segment.flags & 0x02 != 0 {
            rcv_nxt = Some(segment.seq.wrapping_add(1));
        } else if let Some(next) = rcv_nxt {
            if segment.seq == next {
                let len = frame.len() - segment.payload_start;
                received += len as u64;
                rcv_nxt = Some(next.wrapping_add(len as u32));
                if start.is_none() {
                    start = Some(Instant::now());
                    rx_before = tap_stats();
                }
            }
        } else {
            continue;
        }
        let (seq, flags, options): (u32, u8, &[u8]) = if segment.flags & 0x02 != 0 {
            (our_isn, 0x12, &[2, 4, 5, 0xb4, 1, 3, 3, OUR_WSCALE])
        } else {
            (our_isn.wrapping_add(1), 0x10, &[])
        };
        let reply = tcp_frame(
            frame[6..12].try_into().expect("6 bytes"),
            port,
            segment.src_port,
            seq,
            rcv_nxt.unwrap_or(0),
            flags,
            options,
            &[],
        );
        // Our replies come from OUR_IP:port to the kernel's port.
        tap.send(T0, &finish(reply)).expect("send ACK");
        writes += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let rx_after = tap_stats();
    Measured {
        bytes: received,
        elapsed: start.map_or(Duration::ZERO, |s| s.elapsed()),
        writes,
        reads,
        retransmissions: 0,
        tap_rx_bytes: rx_after.0 - rx_before.0,
        tap_rx_packets: rx_after.1 - rx_before.1,
    }
}

struct TcpSeen {
    src_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    wscale: Option<u8>,
    payload_start: usize,
}

/// A TCP segment from the kernel to OUR_IP:`port` (IPv4 without options, as Linux sends).
fn parse_tcp(frame: &[u8], port: u16) -> Option<TcpSeen> {
    let ours = frame.len() >= 54
        && frame[12..14] == [0x08, 0x00]
        && frame[14] == 0x45
        && frame[23] == 6
        && frame[26..30] == KERNEL_IP
        && frame[30..34] == OUR_IP
        && frame[36..38] == port.to_be_bytes();
    if !ours {
        return None;
    }
    let header_len = usize::from(frame[46] >> 4) * 4;
    let options = frame.get(54..34 + header_len)?;
    let mut wscale = None;
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => break,
            1 => i += 1,
            _ => {
                let len = usize::from(*options.get(i + 1)?).max(2);
                if kind == 3 {
                    wscale = options.get(i + 2).copied();
                }
                i += len;
            }
        }
    }
    let word =
        |at: usize| u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    Some(TcpSeen {
        src_port: u16::from_be_bytes([frame[34], frame[35]]),
        seq: word(38),
        ack: word(42),
        flags: frame[47],
        window: u16::from_be_bytes([frame[48], frame[49]]),
        wscale,
        payload_start: 34 + header_len,
    })
}

/// Ethernet + IPv4 + TCP from OUR_IP:`src_port` to KERNEL_IP:`dst_port`, checksum fields 0.
#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    kernel_mac: [u8; 6],
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = kernel_mac.to_vec();
    frame.extend(OUR_MAC);
    frame.extend([0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    frame.extend(OUR_IP);
    frame.extend(KERNEL_IP);
    frame.extend(src_port.to_be_bytes());
    frame.extend(dst_port.to_be_bytes());
    frame.extend(seq.to_be_bytes());
    frame.extend(ack.to_be_bytes());
    frame.push((((20 + options.len()) / 4) << 4) as u8);
    frame.push(flags);
    frame.extend(0xffffu16.to_be_bytes());
    frame.extend([0, 0, 0, 0]);
    frame.extend(options);
    frame.extend(payload);
    fix_ip_length(&mut frame);
    frame
}

/// Sets the IPv4 total length and header checksum from the frame's length.
fn fix_ip_length(frame: &mut [u8]) {
    let total = (frame.len() - 14) as u16;
    frame[16..18].copy_from_slice(&total.to_be_bytes());
    frame[24..26].fill(0);
    let checksum = internet_checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
}

/// Fills in the TCP checksum.
fn finish(mut frame: Vec<u8>) -> Vec<u8> {
    let offload = prepare_partial_checksum(&mut frame).expect("TCP frame");
    if let Checksum::Partial { start, offset } = offload.checksum {
        complete_checksum(&mut frame, start, offset).expect("in frame");
    }
    frame
}

fn tcp_checksum_ok(frame: &[u8]) -> bool {
    let l4 = &frame[34..];
    let mut pseudo = Vec::with_capacity(12 + l4.len());
    pseudo.extend_from_slice(&frame[26..34]);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(l4);
    internet_checksum(&pseudo) == 0
}

/// Reads until a segment for `port` satisfies `wanted`, for one second at most.
fn wait_for(
    tap: &mut TapDevice,
    buf: &mut [u8],
    port: u16,
    wanted: fn(&TcpSeen) -> bool,
) -> Option<TcpSeen> {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        match tap.recv_offload(T0, buf).expect("recv") {
            Some((n, _)) => {
                if let Some(seen) = parse_tcp(&buf[..n], port).filter(wanted) {
                    return Some(seen);
                }
            }
            None => {
                wait_readable(tap, 10);
            }
        }
    }
    None
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn wait_readable(tap: &TapDevice, timeout_ms: i32) -> bool {
    let mut pollfd = libc::pollfd {
        fd: tap.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pollfd` is a valid, initialised array of one element for the whole call.
    let ready = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
    ready == 1 && pollfd.revents & libc::POLLIN != 0
}

fn sysfs(attribute: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{TAP}/{attribute}"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn read_mac() -> [u8; 6] {
    let bytes: Vec<u8> = sysfs("address")
        .split(':')
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    bytes.try_into().expect("a MAC address in sysfs")
}

/// (rx_bytes, rx_packets) of the TAP's kernel side: what we wrote and the kernel took.
fn tap_stats() -> (u64, u64) {
    let read = |name: &str| sysfs(&format!("statistics/{name}")).parse().unwrap_or(0);
    (read("rx_bytes"), read("rx_packets"))
}

/// Attaching turns the carrier on; the kernel starts the transmit queue up to a second later.
fn wait_until_running() {
    let deadline = Instant::now() + Duration::from_secs(5);
    while sysfs("operstate") != "up" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}
