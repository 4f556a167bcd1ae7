//! ustack's TCP against the Linux kernel over the TAP: the kernel's `nc` and a Python peer in
//! a private namespace talk to the daemon's built-in echo/discard/chargen services.

use std::process::Output;
use std::time::Duration;

use sha2::{Digest, Sha256};
use ustack_tests::{text, workspace_root, Daemon, Netns, STACK_IP, TAP};

const MB: usize = 1 << 20;

fn random_file(netns: &Netns, name: &str, len: usize) -> String {
    use rand::RngCore;
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    let path = netns.path(name);
    std::fs::write(&path, &data).expect("writing test data");
    path.to_string_lossy().into_owned()
}

fn sha256_file(path: &str) -> String {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    format!("{:x}", Sha256::digest(&data))
}

/// Sends `input` to the echo service with the kernel's nc and checks the echo byte for byte.
fn echo_through_kernel_nc(netns: &Netns, input: &str, timeout_secs: u32) {
    let output = format!("{input}.echo");
    let out = netns.run(
        "sh",
        &[
            "-c",
            &format!("timeout {timeout_secs} nc -N {STACK_IP} 7 < {input} > {output}"),
        ],
    );
    assert!(out.status.success(), "nc failed: {}", text(&out));
    let (sent, echoed) = (sha256_file(input), sha256_file(&output));
    let echoed_len = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    assert_eq!(sent, echoed, "echo differs ({echoed_len} bytes came back)");
}

fn peer(netns: &Netns, args: &[&str]) -> Output {
    let script = workspace_root().join("tests/peers/tcp_peer.py");
    let mut full = vec![script.to_str().unwrap_or_default()];
    full.extend_from_slice(args);
    netns.run("python3", &full)
}

/// Plain frames, one per system call (the daemon's default is offloads: see below).
#[test]
fn echo_50mb_both_ways_matches() {
    let netns = Netns::new("echo50");
    let _daemon = Daemon::start(&netns, &["--services", "--no-offloads"]);
    let input = random_file(&netns, "data", 50 * MB);
    echo_through_kernel_nc(&netns, &input, 120);
}

/// With `--offloads` TCP super-frames cross the TAP both ways: the kernel hands the stack its
/// coalesced segments with partial checksums, and the stack hands the kernel 64 KB segments to
/// cut. The echo still matches byte for byte, no checksum fails, and far fewer frames than
/// wire-sized segments were read and written.
#[test]
fn echo_with_offloads_matches() {
    let netns = Netns::new("offl");
    let daemon = Daemon::start(&netns, &["--services", "--offloads"]);
    let input = random_file(&netns, "data", 20 * MB);
    echo_through_kernel_nc(&netns, &input, 120);
    assert_eq!(daemon.counter("tcp_bad_checksum"), 0);
    assert_eq!(daemon.counter("ipv4_bad_checksum"), 0);
    let wire_segments = (20 * MB / 1448) as u64;
    let frames_in = daemon.counter("frames_in");
    assert!(
        frames_in < wire_segments * 3 / 4,
        "{frames_in} frames read for {wire_segments} wire-sized segments: no super-frames"
    );
    // Sent: the wire frames the kernel made of our super-frames, and the super-frames.
    let (frames_out, super_frames) = (
        daemon.counter("frames_out"),
        daemon.counter("tso_frames_out"),
    );
    assert!(frames_out >= wire_segments, "{frames_out} wire frames out");
    assert!(
        super_frames > 0 && super_frames < wire_segments / 2,
        "{super_frames} super-frames for {frames_out} wire frames"
    );
}

/// The same through the chargen and discard services, which send and receive only: a
/// sender that fills every window.
#[test]
fn chargen_with_offloads_arrives_whole() {
    let netns = Netns::new("offlcg");
    let daemon = Daemon::start(&netns, &["--services", "--offloads"]);
    let out = netns.run(
        "sh",
        &[
            "-c",
            &format!("timeout 30 nc {STACK_IP} 19 | head -c 50000000 | sha256sum"),
        ],
    );
    // chargen's stream is the RFC 864 pattern: rebuild the first 50 MB and compare.
    let mut expected = Vec::with_capacity(50_000_000);
    let mut line = 0usize;
    while expected.len() < 50_000_000 {
        for i in 0..72 {
            expected.push(b' ' + ((line + i) % 95) as u8);
        }
        expected.extend_from_slice(b"\r\n");
        line += 1;
    }
    expected.truncate(50_000_000);
    let want = format!("{:x}", Sha256::digest(&expected));
    assert!(
        text(&out).starts_with(&want),
        "chargen stream differs: {}",
        text(&out)
    );
    assert!(daemon.counter("tso_frames_out") > 0, "no super-frames sent");
}

/// 3% of frames dropped by nftables on tap0 in each direction.
#[test]
fn echo_50mb_with_kernel_side_loss() {
    let netns = Netns::new("loss");
    let _daemon = Daemon::start(&netns, &["--services"]);
    let rules = format!(
        "table inet ustack_loss {{
            chain input {{ type filter hook input priority 0; iifname \"{TAP}\" numgen random mod 100 < 3 drop; }}
            chain output {{ type filter hook output priority 0; oifname \"{TAP}\" numgen random mod 100 < 3 drop; }}
        }}"
    );
    let out = netns.run("nft", &[&rules]);
    assert!(out.status.success(), "nft: {}", text(&out));
    let input = random_file(&netns, "data", 50 * MB);
    echo_through_kernel_nc(&netns, &input, 300);
    // The rules really dropped frames (the transfer was not loss-free by accident).
    let listing = text(&netns.run("nft", &["list", "ruleset"]));
    assert!(listing.contains("numgen random mod 100 < 3"), "{listing}");
}

/// A slow link both ways: tbf on the kernel's side of the TAP, and the daemon's own rate limit.
#[test]
fn echo_over_rate_limited_link() {
    let netns = Netns::new("rate");
    let _daemon = Daemon::start(&netns, &["--services", "--faults", "tx.rate=40mbit"]);
    let out = netns.run(
        "tc",
        &[
            "qdisc", "add", "dev", TAP, "root", "tbf", "rate", "40mbit", "burst", "32kb",
            "latency", "50ms",
        ],
    );
    assert!(out.status.success(), "tc: {}", text(&out));
    let input = random_file(&netns, "data", 8 * MB);
    echo_through_kernel_nc(&netns, &input, 120);
}

/// The kernel's view of the negotiated options: `ss -ti` for window scale and MSS, and the
/// SYN-ACK on the wire for SACK and timestamps (this kernel's `ss` does not print the `ts` and
/// `sack` flags even between two kernel sockets).
#[test]
fn kernel_sees_negotiated_options() {
    let netns = Netns::new("opts");
    let _daemon = Daemon::start(&netns, &["--services"]);
    let pcap = netns.path("syn.pcap");
    let pcap_arg = pcap.to_string_lossy().into_owned();
    let mut tcpdump = netns.tcpdump(&pcap, &["tcp[tcpflags] & tcp-syn != 0"]);
    // A connection to discard that stays open while we look at it.
    let mut nc = netns.spawn("sh", &["-c", &format!("sleep 3 | nc -N {STACK_IP} 9")]);
    let mut ss = String::new();
    let seen = ustack_tests::wait_for(Duration::from_secs(3), || {
        ss = text(&netns.run("ss", &["-tin", "dst", STACK_IP]));
        ss.contains("ESTAB")
    });
    drop(nc.stop());
    std::thread::sleep(Duration::from_millis(200));
    tcpdump.stop_with(libc::SIGINT, Duration::from_secs(5));
    assert!(seen, "no established connection: {ss}");
    // Our window scale is 7; the MSS the kernel uses is 1460 less the 12-byte timestamp option.
    for option in ["wscale:7,", "mss:1448"] {
        assert!(ss.contains(option), "ss -ti lacks {option}: {ss}");
    }
    let syns = text(&netns.run("tcpdump", &["-nn", "-r", &pcap_arg]));
    let syn_ack = syns
        .lines()
        .find(|l| l.contains(&format!("{STACK_IP}.9 >")) && l.contains("Flags [S.]"))
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(pcap.with_extension("log")).unwrap_or_default();
            panic!("no SYN-ACK captured: {syns}\ntcpdump: {log}")
        });
    for option in ["mss 1460", "sackOK", "TS val", "wscale 7"] {
        assert!(
            syn_ack.contains(option),
            "SYN-ACK lacks {option}: {syn_ack}"
        );
    }
}

#[test]
fn closed_port_is_refused() {
    let netns = Netns::new("rst");
    let daemon = Daemon::start(&netns, &["--services"]);
    let out = netns.run("nc", &["-z", "-w", "3", STACK_IP, "81"]);
    assert!(!out.status.success());
    let out = peer(&netns, &["halfclose", STACK_IP, "81", "10"]);
    assert!(
        text(&out).contains("ConnectionRefusedError"),
        "expected ECONNREFUSED: {}",
        text(&out)
    );
    assert!(daemon.counter("tcp_resets_sent") >= 2);
}

#[test]
fn half_close_still_receives() {
    let netns = Netns::new("half");
    let _daemon = Daemon::start(&netns, &["--services"]);
    let out = peer(&netns, &["halfclose", STACK_IP, "7", "1000000"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn thousand_sequential_connections() {
    let netns = Netns::new("seq");
    let _daemon = Daemon::start(&netns, &["--services"]);
    let out = peer(&netns, &["sequential", STACK_IP, "7", "1000"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn two_hundred_concurrent_connections() {
    let netns = Netns::new("conc");
    let _daemon = Daemon::start(&netns, &["--services"]);
    let out = peer(&netns, &["concurrent", STACK_IP, "7", "200"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn chargen_and_discard_stream() {
    let netns = Netns::new("chargen");
    let _daemon = Daemon::start(&netns, &["--services"]);
    let out = netns.run(
        "sh",
        &[
            "-c",
            &format!("timeout 20 nc {STACK_IP} 19 | head -c 20000000 | wc -c"),
        ],
    );
    assert_eq!(text(&out).trim(), "20000000", "{}", text(&out));
    let input = random_file(&netns, "data", 20 * MB);
    let out = netns.run(
        "sh",
        &["-c", &format!("timeout 30 nc -N {STACK_IP} 9 < {input}")],
    );
    assert!(out.status.success(), "discard: {}", text(&out));
}

/// On a clean link the stack never goes into loss recovery: every data segment it sends in a
/// 20 MB chargen stream starts where the previous one ended (checked in a tcpdump capture),
/// except at most a few tail loss probes — the last segment sent again by the probe timer when
/// an ACK is a few ms late, as Linux does on a busy machine.
#[test]
fn clean_link_has_no_retransmissions() {
    let netns = Netns::new("noretx");
    let daemon = Daemon::start(&netns, &["--services"]);
    let pcap = netns.path("chargen.pcap");
    let pcap_arg = pcap.to_string_lossy().into_owned();
    // Headers only, and a large capture buffer, so tcpdump keeps up with the stream.
    let mut tcpdump = netns.tcpdump(
        &pcap,
        &["-s", "96", "-B", "65536", "tcp", "and", "src", "port", "19"],
    );
    let out = netns.run(
        "sh",
        &[
            "-c",
            &format!("timeout 30 nc {STACK_IP} 19 | head -c 20000000 | wc -c"),
        ],
    );
    assert_eq!(text(&out).trim(), "20000000", "{}", text(&out));
    std::thread::sleep(Duration::from_millis(300));
    tcpdump.stop_with(libc::SIGINT, Duration::from_secs(5));

    let decoded = text(&netns.run("tcpdump", &["-nn", "-S", "-r", &pcap_arg]));
    let mut next_expected: Option<u64> = None;
    // With offloads a capture line is a super-segment of up to ~45 wire segments: count bytes.
    let mut data_bytes = 0u64;
    let mut retransmissions = Vec::new();
    let mut tail_probes = Vec::new();
    for line in decoded.lines() {
        // "... 10.77.0.2.19 > 10.77.0.1.P: Flags [.], seq A:B, ack ..."
        let Some(range) = line.split(", seq ").nth(1) else {
            continue;
        };
        let range = range.split(',').next().unwrap_or_default();
        let Some((start, end)) = range.split_once(':') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (start.parse::<u64>(), end.parse::<u64>()) else {
            continue;
        };
        data_bytes += (end + (1 << 32) - start) % (1 << 32);
        if let Some(expected) = next_expected {
            // Bytes this segment starts before the highest sequence sent so far, modulo 2^32:
            // a retransmission if positive (less than half the space), a capture gap otherwise.
            let behind = (expected + (1 << 32) - start) % (1 << 32);
            if behind != 0 && behind < (1 << 31) {
                // The last segment sent, sent again: a tail loss probe (RFC 8985 7), which a
                // timer sends when an ACK is late, as Linux does; on a loaded machine the
                // receiver's ACK can be a few ms late. Anything else is loss recovery.
                if end % (1 << 32) == expected {
                    tail_probes.push(line.to_string());
                } else {
                    retransmissions.push(line.to_string());
                }
            }
        }
        let end = end % (1 << 32);
        let ahead = next_expected.is_none_or(|e| (end + (1 << 32) - e) % (1 << 32) < (1 << 31));
        if ahead {
            next_expected = Some(end);
        }
    }
    assert!(
        data_bytes > 14_000_000,
        "only {data_bytes} bytes of data segments captured"
    );
    assert!(
        retransmissions.is_empty(),
        "{} segments out of order/retransmitted on a clean link, first: {:?}",
        retransmissions.len(),
        retransmissions.first()
    );
    assert!(
        tail_probes.len() <= 3,
        "{} tail loss probes on a clean link: {:?}",
        tail_probes.len(),
        tail_probes.first()
    );
    drop(daemon);
}
