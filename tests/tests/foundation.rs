//! The stack as an IPv4 host on a real TAP: a kernel peer in a private namespace resolves it
//! with ARP, pings it (also with fragmented pings), and both captures decode cleanly.

use std::time::Duration;

use ustack_tests::{text, wait_for, Daemon, Netns, KERNEL_IP, STACK_IP, TAP};

/// `ping` output → number of replies received.
fn received(ping_output: &str) -> u32 {
    ping_output
        .lines()
        .find_map(|line| {
            let (_, rest) = line.split_once(" transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

#[test]
fn kernel_ping_gets_every_reply() {
    let netns = Netns::new("ping");
    let daemon = Daemon::start(&netns, &[]);
    let out = netns.run("ping", &["-c", "5", "-i", "0.2", "-W", "2", STACK_IP]);
    let output = text(&out);
    assert_eq!(received(&output), 5, "{output}");
    assert!(daemon.counter("icmp_echo_replies_out") >= 5);
}

#[test]
fn fragmented_ping_gets_replies() {
    let netns = Netns::new("frag");
    let daemon = Daemon::start(&netns, &[]);
    // 8000 bytes of ICMP data: six fragments each way at MTU 1500.
    let out = netns.run(
        "ping",
        &["-c", "3", "-i", "0.2", "-W", "2", "-s", "8000", STACK_IP],
    );
    let output = text(&out);
    assert_eq!(received(&output), 3, "{output}");
    // The largest echo the kernel can send: 65507 bytes of data, 45 fragments.
    let out = netns.run(
        "ping",
        &["-c", "2", "-i", "0.2", "-W", "2", "-s", "65507", STACK_IP],
    );
    let output = text(&out);
    assert_eq!(received(&output), 2, "{output}");
    let stats = daemon.stats();
    assert!(stats["ipv4_reassembled"] >= 5, "{stats:?}");
    assert!(stats["ipv4_fragments_out"] >= 5 * 6, "{stats:?}");
}

#[test]
fn neighbour_table_shows_our_mac() {
    let netns = Netns::new("neigh");
    let mac = "02:00:00:77:00:02";
    let _daemon = Daemon::start(&netns, &["--mac", mac]);
    let out = netns.run("ping", &["-c", "1", "-W", "2", STACK_IP]);
    assert!(out.status.success(), "{}", text(&out));
    let out = netns.run("ip", &["neigh", "show", STACK_IP, "dev", TAP]);
    let neigh = text(&out);
    assert!(
        neigh.contains(&format!("lladdr {mac}")),
        "ip neigh: {neigh}"
    );
}

#[test]
fn captures_decode_cleanly() {
    let netns = Netns::new("pcap");
    let kernel_pcap = netns.path("kernel.pcap");
    let stack_pcap = netns.path("stack.pcap");
    let kernel_pcap_arg = kernel_pcap.to_string_lossy().into_owned();
    let stack_pcap_arg = stack_pcap.to_string_lossy().into_owned();
    // tcpdump on the kernel side of the TAP, started before the daemon so the gratuitous ARP
    // is in the capture too.
    let mut tcpdump = netns.tcpdump(&kernel_pcap, &[]);
    let mac = "02:00:00:77:00:02";
    let daemon = Daemon::start(&netns, &["--pcap", &stack_pcap_arg, "--mac", mac]);
    for size in ["56", "3000", "20000"] {
        let out = netns.run(
            "ping",
            &["-c", "2", "-i", "0.2", "-W", "2", "-s", size, STACK_IP],
        );
        assert_eq!(received(&text(&out)), 2, "ping -s {size}: {}", text(&out));
    }
    // UDP to a closed port draws an ICMP port unreachable.
    let out = netns.run(
        "sh",
        &["-c", &format!("echo hello | nc -u -w 1 {STACK_IP} 9999")],
    );
    drop(out);
    std::thread::sleep(Duration::from_millis(300));
    tcpdump.stop_with(libc::SIGINT, Duration::from_secs(5));
    drop(daemon);

    for (who, file) in [("kernel", &kernel_pcap_arg), ("stack", &stack_pcap_arg)] {
        let out = netns.run("tcpdump", &["-vv", "-nn", "-e", "-r", file]);
        let decoded = text(&out);
        assert!(out.status.success(), "tcpdump -r {who}: {decoded}");
        assert!(!decoded.contains("bad cksum"), "{who} capture: {decoded}");
        assert!(!decoded.contains("truncated"), "{who} capture: {decoded}");
        assert!(
            decoded.contains(&format!("{STACK_IP} > {KERNEL_IP}: ICMP echo reply")),
            "{who} capture has no echo reply: {decoded}"
        );
        assert!(
            decoded.contains(&format!("Reply {STACK_IP} is-at {mac}")),
            "{who} capture has no ARP reply from the stack: {decoded}"
        );
        assert!(
            decoded.contains("udp port 9999 unreachable"),
            "{who} capture has no port unreachable: {decoded}"
        );
    }
    let decoded = text(&netns.run("tcpdump", &["-nn", "-r", &kernel_pcap_arg]));
    assert!(
        decoded.contains(&format!("Request who-has {STACK_IP} tell {STACK_IP}")),
        "no gratuitous ARP at start: {decoded}"
    );
}

/// A frame with a corrupted IPv4 header checksum, sent from the kernel side through a raw
/// packet socket, is dropped (no reply) and counted.
#[test]
fn bad_ipv4_checksum_is_dropped_and_counted() {
    let netns = Netns::new("badsum");
    let mac = "02:00:00:77:00:02";
    let daemon = Daemon::start(&netns, &["--mac", mac]);
    // Resolve first so the kernel has a neighbour entry and the stack is known to answer.
    let out = netns.run("ping", &["-c", "1", "-W", "2", STACK_IP]);
    assert!(out.status.success(), "{}", text(&out));
    let before = daemon.stats();

    // An ICMP echo request from 10.77.0.1 whose IPv4 checksum is off by one.
    let script = format!(
        r#"
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
icmp = struct.pack('!BBHHH', 8, 0, 0, 0x77, 1) + b'ustack-bad-checksum'
icmp = icmp[:2] + struct.pack('!H', csum(icmp + b'\0'*(len(icmp)%2))) + icmp[4:]
src = socket.inet_aton('{KERNEL_IP}'); dst = socket.inet_aton('{STACK_IP}')
hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 0x1234, 0, 64, 1, 0, src, dst)
good = csum(hdr)
hdr = hdr[:10] + struct.pack('!H', (good + 1) & 0xffff) + hdr[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('{TAP}', 0))
ours = open('/sys/class/net/{TAP}/address').read().strip()
eth = bytes.fromhex('{mac}'.replace(':', '')) + bytes.fromhex(ours.replace(':', '')) + b'\x08\x00'
for _ in range(3):
    s.send(eth + hdr + icmp)
"#
    );
    let out = netns.run("python3", &["-c", &script]);
    assert!(out.status.success(), "raw send failed: {}", text(&out));

    assert!(
        wait_for(Duration::from_secs(3), || daemon
            .counter("ipv4_bad_checksum")
            >= before["ipv4_bad_checksum"] + 3),
        "bad checksums not counted: {:?}",
        daemon.stats()
    );
    let after = daemon.stats();
    assert_eq!(
        after["icmp_echo_replies_out"], before["icmp_echo_replies_out"],
        "a corrupted request was answered"
    );
}

#[test]
fn missing_tap_is_a_one_line_error() {
    let netns = Netns::new("notap");
    let socket = netns.path("ustackd.sock");
    let out = netns.run(
        &ustack_tests::binary("ustackd").to_string_lossy(),
        &[
            "--tap",
            "nosuchtap",
            "--addr",
            "10.77.0.2/24",
            "--socket",
            &socket.to_string_lossy(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains("nosuchtap"), "stderr: {stderr}");
    assert!(stderr.contains("scripts/netns.sh up"), "stderr: {stderr}");
}

#[test]
fn daemon_exits_cleanly_on_sigterm_and_sigint() {
    let netns = Netns::new("sig");
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut daemon = Daemon::start(&netns, &[]);
        let out = daemon.process.stop_with(signal, Duration::from_secs(5));
        assert!(out.status.success(), "exit status {:?}", out.status);
        assert!(!daemon.socket.exists(), "control socket left behind");
    }
}

/// CPU time (user + system, in clock ticks) a process has used.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// The daemon never spins: after traffic stops (and its busy-poll window has passed), an idle
/// daemon uses no CPU.
#[test]
fn idle_daemon_uses_no_cpu() {
    let netns = Netns::new("idle");
    let daemon = Daemon::start(&netns, &[]);
    let out = netns.run("ping", &["-c", "5", "-i", "0.01", "-q", STACK_IP]);
    assert_eq!(received(&text(&out)), 5, "{}", text(&out));
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(daemon.process.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(daemon.process.pid()) - before;
    // A tick is 10 ms: a spinning daemon would use ~200 in two seconds.
    assert!(used <= 2, "the idle daemon used {used} ticks of CPU in 2 s");
}
