//! The real TAP against the Linux kernel, in a private network namespace.
//!
//! Needs root (to create the namespace); prints "skipped: not root" otherwise. A process can
//! only attach to a TAP of its own network namespace and sysfs shows the namespace it was
//! mounted in, so the test re-runs itself under `ip netns exec` (which also remounts /sys),
//! exactly as the daemon is run; the parent creates and always removes the namespace.

mod support;

use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use support::{is_root, Netns};

use tapdev::tap::TapDevice;
use tapdev::{Device, MAX_FRAME_LEN};

/// Set in the child process that runs inside the namespace.
const CHILD_ENV: &str = "TAPDEV_TAP_TEST_IN_NETNS";
const TEST_NAME: &str = "tap_exchanges_frames_with_the_kernel";
/// Printed by the child when every check passed, so a child that ran no test cannot pass.
const DONE_MARKER: &str = "tap child: all checks passed";
const TAP: &str = "utap0";
const KERNEL_IP: [u8; 4] = [192, 0, 2, 1];
const OUR_IP: [u8; 4] = [192, 0, 2, 2];
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x77, 0x02];
const ECHO_ID: u16 = 0x7a7a;
const T0: Duration = Duration::ZERO;

#[test]
fn tap_exchanges_frames_with_the_kernel() {
    if std::env::var_os(CHILD_ENV).is_some() {
        inside_namespace();
        println!("{DONE_MARKER}");
        return;
    }
    if !is_root() {
        println!("skipped: not root");
        return;
    }
    let mut ns = match Netns::create(format!("ustk-tapdev-{}", std::process::id())) {
        Ok(ns) => ns,
        Err(e) => {
            println!("skipped: cannot create a network namespace: {e}");
            return;
        }
    };
    ns.add_tap(TAP);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", TAP]);
    ns.ip(&["link", "set", TAP, "up"]);

    ns.run_test_inside(TEST_NAME, CHILD_ENV, DONE_MARKER);
}

/// The checks, run inside the namespace where `utap0` exists with the kernel at 192.0.2.1.
fn inside_namespace() {
    let mut tap = TapDevice::open(TAP).unwrap();
    assert_eq!(tap.name(), TAP);
    assert_eq!(tap.capabilities().mtu, 1500);

    // Only one process may attach; a second attach is refused with a clear message.
    let busy = TapDevice::open(TAP).unwrap_err();
    assert!(busy.to_string().contains("already attached"), "{busy}");
    // Here sysfs is the namespace's own, and a missing device is still refused.
    let missing = TapDevice::open("utap9").unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);

    // ARP: we ask, the kernel answers to our MAC. Attaching turns the carrier on, but the
    // kernel activates the device's transmit queue only when its link watcher runs (up to a
    // second later, rate-limited); replies sent before that are dropped, so ask again until
    // answered, as any ARP implementation does.
    let reply = ask(&mut tap, &arp_request(), is_arp_reply).expect("no ARP reply from the kernel");
    let kernel_mac: [u8; 6] = reply[6..12].try_into().unwrap();

    // ICMP: three echo requests; the kernel learned our MAC from the ARP request and answers
    // each at once, so a single batch read picks up all three replies.
    for seq in 1..=3 {
        tap.send(T0, &echo_request(kernel_mac, seq)).unwrap();
    }
    assert!(wait_readable(&tap, 2000), "the fd never became readable");
    std::thread::sleep(Duration::from_millis(50));
    let mut bufs = vec![vec![0u8; MAX_FRAME_LEN]; 8];
    let mut lens = vec![0; 8];
    let mut first_batch = None;
    let mut seqs = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while seqs.len() < 3 && Instant::now() < deadline {
        let count = tap.recv_batch(T0, &mut bufs, &mut lens).unwrap();
        first_batch.get_or_insert(count);
        for (buf, &len) in bufs.iter().zip(&lens).take(count) {
            if let Some(seq) = echo_reply_seq(&buf[..len]) {
                seqs.insert(seq);
            }
        }
        if count == 0 {
            wait_readable(&tap, 100);
        }
    }
    assert_eq!(seqs.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    assert!(first_batch.unwrap_or(0) >= 3, "batch read {first_batch:?}");

    // Drained: EAGAIN reads as "nothing waiting", not as an error.
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut drained = false;
    for _ in 0..100 {
        if tap.recv(T0, &mut buf).unwrap().is_none() {
            drained = true;
            break;
        }
    }
    assert!(drained);

    // A frame shorter than an Ethernet header is an error, not a panic, and the device stays
    // usable.
    assert!(tap.send(T0, &[0u8; 5]).is_err());
    ask(&mut tap, &arp_request(), is_arp_reply).expect("device still works after an error");
}

/// Waits until the fd is readable (what the daemon's epoll does), at most `timeout_ms`.
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

/// Sends `request` every 250 ms and reads frames (skipping the kernel's own IPv6 chatter)
/// until one is `wanted`, for 5 s at most.
fn ask(tap: &mut TapDevice, request: &[u8], wanted: fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut next_send = Instant::now();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            tap.send(T0, request).unwrap();
            next_send += Duration::from_millis(250);
        }
        match tap.recv(T0, &mut buf).unwrap() {
            Some(len) if wanted(&buf[..len]) => return Some(buf[..len].to_vec()),
            Some(_) => {}
            None => {
                wait_readable(tap, 50);
            }
        }
    }
    None
}

fn ethernet(dst: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&OUR_MAC);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

/// RFC 826 request: who has KERNEL_IP? tell OUR_IP.
fn arp_request() -> Vec<u8> {
    let mut frame = ethernet([0xff; 6], 0x0806);
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&OUR_MAC);
    frame.extend_from_slice(&OUR_IP);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&KERNEL_IP);
    frame
}

fn is_arp_reply(frame: &[u8]) -> bool {
    frame.len() >= 42
        && frame[..6] == OUR_MAC
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 2]
        && frame[28..32] == KERNEL_IP
        && frame[38..42] == OUR_IP
}

/// RFC 1071 Internet checksum.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// ICMP echo request OUR_IP → KERNEL_IP with a 16-byte payload.
fn echo_request(kernel_mac: [u8; 6], seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&ECHO_ID.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend((0..16).map(|i| i as u8 ^ seq as u8));
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&seq.to_be_bytes()); // identification
    ip.extend_from_slice(&[0x40, 0, 64, 1, 0, 0]); // DF, TTL 64, ICMP, checksum 0
    ip.extend_from_slice(&OUR_IP);
    ip.extend_from_slice(&KERNEL_IP);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());

    let mut frame = ethernet(kernel_mac, 0x0800);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&icmp);
    frame
}

/// The sequence number of an echo reply KERNEL_IP → OUR_IP for our identifier.
fn echo_reply_seq(frame: &[u8]) -> Option<u16> {
    let is_reply = frame.len() >= 14 + 20 + 8 + 16
        && frame[..6] == OUR_MAC
        && frame[12..14] == [0x08, 0x00]
        && frame[14] == 0x45
        && frame[23] == 1
        && frame[26..30] == KERNEL_IP
        && frame[30..34] == OUR_IP
        && frame[34] == 0
        && frame[38..40] == ECHO_ID.to_be_bytes();
    if !is_reply {
        return None;
    }
    let seq = u16::from_be_bytes([frame[40], frame[41]]);
    let payload_ok = frame[42..58]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == i as u8 ^ seq as u8);
    payload_ok.then_some(seq)
}
