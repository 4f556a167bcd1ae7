//! Offloads on a real TAP, against the Linux kernel, in private network namespaces.
//!
//! Needs root; prints "skipped: not root" otherwise. Each test creates its own namespace with
//! two persistent TAPs: `otap0` (10.90.0.1/24, fd00:90::1/64 on the kernel side; we play
//! 10.90.0.2) and `otap1` (10.91.0.1/24, fd00:91::1/64; a fictitious host 10.91.0.2 /
//! fd00:91::2 behind it), forwarding on, static neighbour entries so no ARP/NDP is needed. The
//! test re-runs itself inside the namespace under `ip netns exec` (as the daemon is run); the
//! parent always deletes the namespace.
//!
//! - Receive: a kernel TCP client sends 1 MB to our minimal TCP peer on `otap0`; with offloads
//!   the kernel hands us super-frames with partial checksums, which must complete and segment
//!   into valid wire frames carrying exactly the bytes sent. A plain `recv` on the same TAP
//!   must deliver wire frames only.
//! - Send: super-frames we write into `otap0` for 10.91.0.2 are forwarded out of the plain
//!   `otap1`, so the kernel segments them in software; what comes out must equal, byte for byte,
//!   what our own segmentation makes of them (after forwarding's MAC rewrite and TTL - 1), and
//!   `otap0` must have counted one received packet per super-frame.
//! - A plain `open` after an offload session gets wire frames again.

mod support;

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{is_root, Netns};

use tapdev::offload::{
    complete_checksum, internet_checksum, prepare_partial_checksum, prepare_segmentation, segment,
    Checksum, FrameOffload, GsoKind, MAX_OFFLOAD_FRAME_LEN,
};
use tapdev::tap::TapDevice;
use tapdev::{Device, MAX_FRAME_LEN};

const CHILD_ENV: &str = "TAPDEV_OFFLOAD_TEST_IN_NETNS";
const DONE_MARKER: &str = "offload child: all checks passed";
const TAP: &str = "otap0";
const FAR_TAP: &str = "otap1";
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
const FAR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];
const KERNEL_IP: [u8; 4] = [10, 90, 0, 1];
const OUR_IP: [u8; 4] = [10, 90, 0, 2];
const FAR_IP: [u8; 4] = [10, 91, 0, 2];
const OUR_IP6: [u8; 16] = [0xfd, 0, 0, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const FAR_IP6: [u8; 16] = [0xfd, 0, 0, 0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// The MSS we announce, so the kernel's segments are 1460 bytes.
const MSS: u16 = 1460;
const T0: Duration = Duration::ZERO;

/// The namespace of these tests: two TAPs with IPv4 and IPv6 addresses, static neighbours for
/// the far ends, forwarding on.
fn offload_namespace(tag: &str) -> io::Result<Netns> {
    let mut ns = Netns::create(format!("ustk-off-{}-{tag}", std::process::id()))?;
    ns.ip(&["link", "set", "lo", "up"]);
    for (tap, v4, v6) in [
        (TAP, "10.90.0.1/24", "fd00:90::1/64"),
        (FAR_TAP, "10.91.0.1/24", "fd00:91::1/64"),
    ] {
        ns.add_tap(tap);
        ns.ip(&["addr", "add", v4, "dev", tap]);
        ns.ip(&["addr", "add", v6, "dev", tap, "nodad"]);
        ns.ip(&["link", "set", tap, "up"]);
    }
    for (addr, mac, tap) in [
        ("10.90.0.2", "02:00:00:00:0a:02", TAP),
        ("fd00:90::2", "02:00:00:00:0a:02", TAP),
        ("10.91.0.2", "02:00:00:00:0b:02", FAR_TAP),
        ("fd00:91::2", "02:00:00:00:0b:02", FAR_TAP),
    ] {
        ns.ip(&[
            "neigh",
            "add",
            addr,
            "lladdr",
            mac,
            "dev",
            tap,
            "nud",
            "permanent",
        ]);
    }
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sysctl", "-qw"])
        .args(["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
        .output()?;
    assert!(out.status.success(), "sysctl: {out:?}");
    Ok(ns)
}

/// Runs `checks` inside a fresh namespace (re-running this test binary there).
fn in_namespace(test_name: &str, tag: &str, checks: fn()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        checks();
        println!("{DONE_MARKER}");
        return;
    }
    if !is_root() {
        println!("skipped: not root");
        return;
    }
    let ns = match offload_namespace(tag) {
        Ok(ns) => ns,
        Err(e) => {
            println!("skipped: cannot create a network namespace: {e}");
            return;
        }
    };
    ns.run_test_inside(test_name, CHILD_ENV, DONE_MARKER);
}

#[test]
fn kernel_tcp_arrives_as_super_frames() {
    in_namespace("kernel_tcp_arrives_as_super_frames", "rx", || {
        let mut tap = TapDevice::open_with_offloads(TAP).unwrap();
        let offloads = tap.offloads();
        assert!(offloads.recv.tcp_v4 && offloads.recv.partial_checksum);
        assert!(offloads.send.tcp_v4 && offloads.send.tcp_v6);
        assert_eq!(offloads.max_frame_len, MAX_OFFLOAD_FRAME_LEN);
        // A buffer too small for a super-frame is refused, not silently truncated.
        let mut small = vec![0u8; MAX_FRAME_LEN];
        let err = tap.recv_offload(T0, &mut small).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        let stats = receive_stream(&mut tap, 7000, 1_000_000, Receive::Offload);
        println!("offload receive: {stats:?}");
        assert!(stats.super_frames > 0, "no super-frame from the kernel");
        assert_eq!(stats.largest_segment_size, MSS);
        assert!(stats.largest_frame > 10_000, "{stats:?}");
        assert!(stats.partial_checksums > 0);

        // The same TAP through the plain API: wire frames with complete checksums.
        let stats = receive_stream(&mut tap, 7001, 300_000, Receive::Plain);
        println!("plain receive on an offloading TAP: {stats:?}");
        assert!(stats.largest_frame <= 1514, "{stats:?}");
    });
}

#[test]
fn plain_open_after_an_offload_session_gets_wire_frames() {
    in_namespace(
        "plain_open_after_an_offload_session_gets_wire_frames",
        "plain",
        || {
            drop(TapDevice::open_with_offloads(TAP).unwrap());
            let mut tap = TapDevice::open(TAP).unwrap();
            assert!(!tap.offloads().any());
            let stats = receive_stream(&mut tap, 7002, 300_000, Receive::Plain);
            println!("plain open: {stats:?}");
            assert!(stats.largest_frame <= 1514, "{stats:?}");
        },
    );
}

#[test]
fn our_super_frames_leave_the_kernel_segmented_as_we_segment_them() {
    in_namespace(
        "our_super_frames_leave_the_kernel_segmented_as_we_segment_them",
        "tx",
        || {
            let mut tap = TapDevice::open_with_offloads(TAP).unwrap();
            let mut far = TapDevice::open(FAR_TAP).unwrap();
            wait_until_running(&[TAP, FAR_TAP]);
            let kernel_mac = read_mac(TAP);
            let far_kernel_mac = read_mac(FAR_TAP);

            let mut cases = vec![
                (
                    "tcp4",
                    tcp4(kernel_mac, 0x18, 0xfffe, 0x1122_3344, 10_500),
                    1000,
                ),
                // CWR (ECN) on the first segment only, FIN and PSH on the last only.
                (
                    "tcp4 cwr fin",
                    tcp4(kernel_mac, 0x99, 7, 0xffff_fc00, 1708),
                    536,
                ),
                ("tcp6", tcp6(kernel_mac, 0xffff_fc00, 4807), 1200),
                ("tcp4 one segment", tcp4(kernel_mac, 0x18, 9, 5, 900), 1000),
            ];
            if tap.offloads().send.udp_l4 {
                cases.push(("udp4", udp4(kernel_mac, 3010), 1000));
            } else {
                println!("kernel without UDP segmentation: udp case skipped");
            }
            for (name, mut frame, mss) in cases {
                let wire_before = frame.clone();
                let offload = prepare_segmentation(&mut frame, mss).unwrap();
                let rx_before = rx_packets(TAP);
                tap.send_offload(T0, &frame, &offload).unwrap();
                let ours = segment(&frame, &offload).unwrap();
                let theirs = read_frames(&mut far, ours.len());
                assert_eq!(
                    rx_packets(TAP) - rx_before,
                    1,
                    "{name}: one unit on the TAP"
                );
                assert_eq!(theirs.len(), ours.len(), "{name}");
                for (index, (ours, theirs)) in ours.into_iter().zip(&theirs).enumerate() {
                    let forwarded = as_forwarded(ours, far_kernel_mac);
                    assert_eq!(&forwarded, theirs, "{name} segment {index}");
                }
                if offload.gso.is_none() {
                    assert_eq!(theirs, [as_forwarded(wire_before, far_kernel_mac)]);
                }
                println!("{name}: {} segments match the kernel's", theirs.len());
            }

            // Garbage is the kernel's to refuse or drop; the TAP stays usable. A truncated
            // super-frame is taken and dropped later (its IP length is wrong), a checksum field
            // outside the frame is refused at once.
            let mut bogus = tcp4(kernel_mac, 0x10, 1, 1, 3000);
            let offload = prepare_segmentation(&mut bogus, 1000).unwrap();
            let _ = tap.send_offload(T0, &bogus[..100], &offload);
            let mut outside = offload;
            outside.checksum = Checksum::Partial {
                start: 34,
                offset: 4000,
            };
            let err = tap.send_offload(T0, &bogus, &outside).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
            let mut frame = tcp4(kernel_mac, 0x10, 2, 2, 2000);
            let offload = prepare_segmentation(&mut frame, 1000).unwrap();
            tap.send_offload(T0, &frame, &offload).unwrap();
            assert_eq!(read_frames(&mut far, 2).len(), 2);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// A minimal TCP receiver on the TAP: enough to make the kernel stream data to us.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Receive {
    /// `recv_offload`, checking super-frames and partial checksums.
    Offload,
    /// Plain `recv` with a wire-sized buffer: everything must be a finished wire frame.
    Plain,
}

#[derive(Debug, Default)]
struct StreamStats {
    frames: usize,
    super_frames: usize,
    partial_checksums: usize,
    largest_frame: usize,
    largest_segment_size: u16,
}

/// Has a kernel client send `len` bytes to OUR_IP:`port`, plays the receiver, and checks
/// every frame and the bytes.
fn receive_stream(tap: &mut TapDevice, port: u16, len: usize, how: Receive) -> StreamStats {
    let expected = pattern(len);
    let sent = expected.clone();
    let client = std::thread::spawn(move || -> io::Result<()> {
        let mut stream = TcpStream::connect_timeout(
            &(std::net::Ipv4Addr::from(OUR_IP), port).into(),
            Duration::from_secs(10),
        )?;
        stream.write_all(&sent)?;
        stream.shutdown(Shutdown::Write)
    });

    let mut stats = StreamStats::default();
    let mut received: Vec<u8> = Vec::with_capacity(len);
    let mut rcv_nxt: Option<u32> = None;
    let our_isn = 0x5000_0000u32;
    let mut fin = false;
    let mut buf = vec![
        0u8;
        match how {
            Receive::Offload => MAX_OFFLOAD_FRAME_LEN,
            Receive::Plain => MAX_FRAME_LEN,
        }
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fin && Instant::now() < deadline {
        let got = match how {
            Receive::Offload => tap.recv_offload(T0, &mut buf).unwrap(),
            Receive::Plain => tap
                .recv(T0, &mut buf)
                .unwrap()
                .map(|n| (n, FrameOffload::NONE)),
        };
        let Some((n, offload)) = got else {
            wait_readable(tap, 50);
            continue;
        };
        let mut frame = buf[..n].to_vec();
        let Some(tcp) = kernel_tcp_to(&frame, port) else {
            continue;
        };
        stats.frames += 1;
        stats.largest_frame = stats.largest_frame.max(n);
        if let Checksum::Partial { start, offset } = offload.checksum {
            stats.partial_checksums += 1;
            complete_checksum(&mut frame, start, offset).unwrap();
        }
        assert!(checksums_verify(&frame), "bad checksum: {offload:?}");
        if let Some(gso) = offload.gso {
            assert_eq!(gso.kind, GsoKind::TcpV4);
            stats.super_frames += 1;
            stats.largest_segment_size = stats.largest_segment_size.max(gso.segment_size);
            // Its segments must be valid wire frames carrying the same bytes.
            let mut payload: Vec<u8> = Vec::new();
            for wire in segment(&frame, &offload).unwrap() {
                assert!(wire.len() <= 1514);
                assert!(checksums_verify(&wire));
                payload.extend(&wire[54..]);
            }
            assert_eq!(payload, frame[54..]);
        }

        let reply_flags;
        if tcp.flags & 0x02 != 0 {
            rcv_nxt = Some(tcp.seq.wrapping_add(1));
            reply_flags = 0x12; // SYN-ACK
        } else {
            let Some(next) = rcv_nxt else { continue };
            if tcp.seq == next {
                received.extend(&frame[tcp.payload_start..]);
                let mut advance = (frame.len() - tcp.payload_start) as u32;
                if tcp.flags & 0x01 != 0 {
                    advance += 1;
                    fin = true;
                }
                rcv_nxt = Some(next.wrapping_add(advance));
            }
            reply_flags = 0x10;
        }
        let seq = if reply_flags == 0x12 {
            our_isn
        } else {
            our_isn.wrapping_add(1)
        };
        let reply = tcp_reply(
            &frame,
            tcp.src_port,
            port,
            seq,
            rcv_nxt.unwrap_or(0),
            reply_flags,
        );
        tap.send(T0, &reply).unwrap();
    }
    client.join().unwrap().unwrap();
    assert!(
        fin,
        "stream did not finish: {stats:?}, {} bytes",
        received.len()
    );
    assert!(received == expected, "payload differs");
    stats
}

struct TcpView {
    src_port: u16,
    seq: u32,
    flags: u8,
    payload_start: usize,
}

/// A TCP segment from the kernel to OUR_IP:`port` (IPv4 without options, as Linux sends).
fn kernel_tcp_to(frame: &[u8], port: u16) -> Option<TcpView> {
    let is_ours = frame.len() >= 54
        && frame[12..14] == [0x08, 0x00]
        && frame[14] == 0x45
        && frame[23] == 6
        && frame[26..30] == KERNEL_IP
        && frame[30..34] == OUR_IP
        && frame[36..38] == port.to_be_bytes();
    if !is_ours {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    assert_eq!(total + 14, frame.len(), "IP length covers the frame");
    Some(TcpView {
        src_port: u16::from_be_bytes([frame[34], frame[35]]),
        seq: u32::from_be_bytes([frame[38], frame[39], frame[40], frame[41]]),
        flags: frame[47],
        payload_start: 34 + usize::from(frame[46] >> 4) * 4,
    })
}

/// Our SYN-ACK (MSS 1460, window scale 7) or ACK to the kernel segment in `to`.
fn tcp_reply(to: &[u8], kernel_port: u16, port: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let options: &[u8] = if flags & 0x02 != 0 {
        &[2, 4, (MSS >> 8) as u8, MSS as u8, 1, 3, 3, 7]
    } else {
        &[]
    };
    let mut tcp = Vec::new();
    tcp.extend(port.to_be_bytes());
    tcp.extend(kernel_port.to_be_bytes());
    tcp.extend(seq.to_be_bytes());
    tcp.extend(ack.to_be_bytes());
    tcp.push((((20 + options.len()) / 4) << 4) as u8);
    tcp.push(flags);
    tcp.extend(0xffffu16.to_be_bytes());
    tcp.extend([0, 0, 0, 0]);
    tcp.extend(options);
    let mut frame = to[6..12].to_vec();
    frame.extend(OUR_MAC);
    frame.extend(ipv4(6, 1, OUR_IP, KERNEL_IP, &tcp));
    finish_checksum(frame)
}

// ---------------------------------------------------------------------------------------------
// Frame builders and checks.

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn ipv4(protocol: u8, id: u16, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x08, 0x00, 0x45, 0];
    packet.extend(((20 + l4.len()) as u16).to_be_bytes());
    packet.extend(id.to_be_bytes());
    packet.extend([0x40, 0, 64, protocol, 0, 0]);
    packet.extend(src);
    packet.extend(dst);
    let checksum = internet_checksum(&packet[2..22]);
    packet[12..14].copy_from_slice(&checksum.to_be_bytes());
    packet.extend(l4);
    packet
}

/// Fills in the transport checksum of a complete frame.
fn finish_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let offload = prepare_partial_checksum(&mut frame).unwrap();
    if let Checksum::Partial { start, offset } = offload.checksum {
        complete_checksum(&mut frame, start, offset).unwrap();
    }
    frame
}

fn tcp_segment(flags: u8, seq: u32, payload_len: usize) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend(40000u16.to_be_bytes());
    tcp.extend(7002u16.to_be_bytes());
    tcp.extend(seq.to_be_bytes());
    tcp.extend(0x5566_7788u32.to_be_bytes());
    tcp.extend([0x50, flags, 0x02, 0x00, 0, 0, 0, 0]);
    tcp.extend(pattern(payload_len));
    tcp
}

fn tcp4(kernel_mac: [u8; 6], flags: u8, id: u16, seq: u32, payload_len: usize) -> Vec<u8> {
    let mut frame = kernel_mac.to_vec();
    frame.extend(OUR_MAC);
    frame.extend(ipv4(
        6,
        id,
        OUR_IP,
        FAR_IP,
        &tcp_segment(flags, seq, payload_len),
    ));
    finish_checksum(frame)
}

fn tcp6(kernel_mac: [u8; 6], seq: u32, payload_len: usize) -> Vec<u8> {
    let tcp = tcp_segment(0x18, seq, payload_len);
    let mut frame = kernel_mac.to_vec();
    frame.extend(OUR_MAC);
    frame.extend([0x86, 0xdd, 0x60, 0x01, 0x23, 0x45]);
    frame.extend((tcp.len() as u16).to_be_bytes());
    frame.extend([6, 64]);
    frame.extend(OUR_IP6);
    frame.extend(FAR_IP6);
    frame.extend(tcp);
    finish_checksum(frame)
}

fn udp4(kernel_mac: [u8; 6], payload_len: usize) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend(40000u16.to_be_bytes());
    udp.extend(7003u16.to_be_bytes());
    udp.extend(((8 + payload_len) as u16).to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(pattern(payload_len));
    let mut frame = kernel_mac.to_vec();
    frame.extend(OUR_MAC);
    frame.extend(ipv4(17, 0x100, OUR_IP, FAR_IP, &udp));
    finish_checksum(frame)
}

/// What forwarding out of FAR_TAP does: new MACs, TTL / hop limit - 1 (IPv4 checksum redone).
fn as_forwarded(mut frame: Vec<u8>, far_kernel_mac: [u8; 6]) -> Vec<u8> {
    frame[..6].copy_from_slice(&FAR_MAC);
    frame[6..12].copy_from_slice(&far_kernel_mac);
    if frame[12..14] == [0x08, 0x00] {
        frame[22] -= 1;
        frame[24..26].fill(0);
        let checksum = internet_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    } else {
        frame[21] -= 1;
    }
    frame
}

/// IPv4 header and TCP/UDP checksums of an IPv4 frame without options verify.
fn checksums_verify(frame: &[u8]) -> bool {
    if internet_checksum(&frame[14..34]) != 0 {
        return false;
    }
    let l4 = &frame[34..];
    let mut pseudo = frame[26..34].to_vec();
    pseudo.extend([0, frame[23]]);
    pseudo.extend((l4.len() as u16).to_be_bytes());
    pseudo.extend(l4);
    internet_checksum(&pseudo) == 0
}

/// Reads frames for 10.91.0.2 / fd00:91::2 from the far TAP until `count` arrived or 3 s
/// passed (the kernel's own IPv6 chatter is skipped).
fn read_frames(far: &mut TapDevice, count: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let deadline = Instant::now() + Duration::from_secs(3);
    while frames.len() < count && Instant::now() < deadline {
        match far.recv(T0, &mut buf).unwrap() {
            Some(n) => {
                let frame = &buf[..n];
                let to_far = (frame[12..14] == [0x08, 0x00] && frame[30..34] == FAR_IP)
                    || (frame[12..14] == [0x86, 0xdd] && frame[38..54] == FAR_IP6);
                if to_far {
                    frames.push(frame.to_vec());
                }
            }
            None => {
                wait_readable(far, 50);
            }
        }
    }
    // Nothing beyond what we expected may follow.
    std::thread::sleep(Duration::from_millis(50));
    while let Some(n) = far.recv(T0, &mut buf).unwrap() {
        let frame = &buf[..n];
        assert!(
            !(frame[12..14] == [0x08, 0x00] && frame[30..34] == FAR_IP),
            "unexpected extra frame"
        );
    }
    frames
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

fn sysfs(dev: &str, attribute: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/{attribute}"))
        .unwrap()
        .trim()
        .to_string()
}

fn read_mac(dev: &str) -> [u8; 6] {
    let text = sysfs(dev, "address");
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn rx_packets(dev: &str) -> u64 {
    sysfs(dev, "statistics/rx_packets").parse().unwrap()
}

/// Attaching turns the carrier on, but the kernel starts a device's transmit queue only when
/// its link watcher runs (up to a second later); forwarded frames sent before are dropped.
fn wait_until_running(devs: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while devs.iter().any(|dev| sysfs(dev, "operstate") != "up") {
        assert!(Instant::now() < deadline, "TAPs never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}
