//! pcap capture: files written through the wrapper are read back by `tcpdump` and by hand.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use tapdev::memory::MemoryLink;
use tapdev::pcap::{PcapFile, PcapWriter, Rotation, FLUSH_INTERVAL};
use tapdev::{Capabilities, Device};

const CAPS: Capabilities = Capabilities {
    mtu: 1500,
    max_burst: 32,
};
/// 2023-11-14T22:13:20Z.
const WALLCLOCK_SECS: u64 = 1_700_000_000;

fn wallclock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(WALLCLOCK_SECS)
}

/// ARP request: who has 192.0.2.1? tell 192.0.2.2 (from 02:00:00:00:00:02).
fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 192, 0, 2, 2]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 192, 0, 2, 1]);
    f
}

/// IPv4/UDP 192.0.2.2:4000 → 192.0.2.1:`port` with `payload_len` bytes of payload.
fn udp_frame(port: u16, payload_len: usize) -> Vec<u8> {
    let total = 20 + 8 + payload_len;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&[192, 0, 2, 2, 192, 0, 2, 1]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !((folded & 0xffff) + (folded >> 16)) as u16;
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp_len = (8 + payload_len) as u16;
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&4000u16.to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    f.extend((0..payload_len).map(|i| i as u8));
    f
}

/// Runs `tcpdump -nn -tt -r path`; returns its output lines, failing on any complaint.
fn tcpdump(path: &Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-nn", "-tt", "-r"])
        .arg(path)
        .output()
        .expect("tcpdump is installed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tcpdump failed: {stderr}");
    assert!(stderr.contains("link-type EN10MB"), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("truncated"), "{text}");
        assert!(!text.contains("[|"), "a header cut short: {text}");
    }
    stdout.lines().map(str::to_string).collect()
}

struct Record {
    seconds: u32,
    micros: u32,
    captured: Vec<u8>,
    original_len: u32,
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Checks the file header and splits the records.
fn parse_pcap(bytes: &[u8]) -> Vec<Record> {
    assert!(bytes.len() >= 24);
    assert_eq!(
        bytes[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "0xa1b2c3d4, little-endian"
    );
    assert_eq!(bytes[4..8], [2, 0, 4, 0], "version 2.4");
    assert_eq!(le32(bytes, 8), 0, "thiszone");
    assert_eq!(le32(bytes, 12), 0, "sigfigs");
    assert_eq!(le32(bytes, 16), 65535, "snaplen");
    assert_eq!(le32(bytes, 20), 1, "LINKTYPE_ETHERNET");
    let mut records = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let captured_len = le32(bytes, at + 8) as usize;
        records.push(Record {
            seconds: le32(bytes, at),
            micros: le32(bytes, at + 4),
            original_len: le32(bytes, at + 12),
            captured: bytes[at + 16..at + 16 + captured_len].to_vec(),
        });
        at += 16 + captured_len;
    }
    assert_eq!(at, bytes.len(), "no partial record");
    records
}

#[test]
fn wrapper_captures_both_directions_and_tcpdump_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.pcap");
    let (near, mut far) = MemoryLink::pair(CAPS);
    let mut dev = PcapWriter::new(near, &path, wallclock()).unwrap();

    let now = Duration::from_micros(1500);
    dev.send(now, &arp_request()).unwrap();
    let outgoing = [udp_frame(40001, 20), udp_frame(40002, 1472)];
    let refs: Vec<&[u8]> = outgoing.iter().map(|f| f.as_slice()).collect();
    assert_eq!(dev.send_batch(now, &refs).unwrap(), 2);

    let later = Duration::from_secs(2) + Duration::from_micros(7);
    far.send(later, &udp_frame(40060, 100)).unwrap();
    far.send(later, &udp_frame(40061, 0)).unwrap();
    far.send(later, &udp_frame(40062, 5)).unwrap();
    let mut buf = vec![0u8; 2048];
    assert_eq!(dev.recv(later, &mut buf).unwrap(), Some(14 + 28 + 100));
    let mut bufs = vec![vec![0u8; 2048]; 4];
    let mut lens = vec![0; 4];
    assert_eq!(dev.recv_batch(later, &mut bufs, &mut lens).unwrap(), 2);

    // The data path is unaffected: the far end got what was sent.
    let mut got = 0;
    while far.recv(later, &mut buf).unwrap().is_some() {
        got += 1;
    }
    assert_eq!(got, 3);
    assert_eq!(dev.stats().frames, 6);
    dev.flush();

    // Readable while the writer is still alive.
    let lines = tcpdump(&path);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines[0].starts_with("1700000000.001500 ARP, Request who-has 192.0.2.1 tell 192.0.2.2"));
    assert!(
        lines[2].contains("192.0.2.2.4000 > 192.0.2.1.40002: UDP, length 1472"),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("1700000002.000007 IP 192.0.2.2.4000 > 192.0.2.1.40060"));
    assert!(lines[5].contains(".40062: UDP, length 5"), "{}", lines[5]);

    let records = parse_pcap(&std::fs::read(&path).unwrap());
    assert_eq!(records.len(), 6);
    assert_eq!(records[0].captured, arp_request());
    assert_eq!(
        (records[0].seconds, records[0].micros),
        (1_700_000_000, 1500)
    );
    assert_eq!(records[2].captured, outgoing[1]);
    assert_eq!(records[2].original_len as usize, outgoing[1].len());
    assert_eq!((records[4].seconds, records[4].micros), (1_700_000_002, 7));
    drop(dev);
}

#[test]
fn buffered_frames_reach_the_file_when_the_device_runs_dry_or_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.pcap");
    let (near, mut far) = MemoryLink::pair(CAPS);
    let mut dev = PcapWriter::new(near, &path, wallclock()).unwrap();
    let file_len = || std::fs::metadata(&path).unwrap().len();
    assert_eq!(file_len(), 24, "the header is written at once");

    let t0 = Duration::from_secs(1);
    dev.send(t0, &arp_request()).unwrap();
    assert_eq!(file_len(), 24, "buffered");
    assert_eq!(
        dev.poll_at(),
        Some(t0 + FLUSH_INTERVAL),
        "asks to be woken to flush"
    );
    dev.send(t0 + FLUSH_INTERVAL, &arp_request()).unwrap();
    assert_eq!(
        file_len(),
        24 + 2 * (16 + 42),
        "flushed once data waited the interval"
    );
    assert_eq!(dev.poll_at(), None);

    far.send(t0, &udp_frame(9, 10)).unwrap();
    let mut buf = vec![0u8; 2048];
    let t1 = t0 + FLUSH_INTERVAL + Duration::from_millis(1);
    assert!(dev.recv(t1, &mut buf).unwrap().is_some());
    assert_eq!(dev.recv(t1, &mut buf).unwrap(), None);
    assert_eq!(tcpdump(&path).len(), 3, "flushed when the device ran dry");
}

#[test]
fn rotation_keeps_the_newest_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rot.pcap");
    let frame_len = 100;
    let rotation = Rotation {
        // The header and exactly four records of a 100-byte frame.
        max_bytes: 24 + 4 * (16 + frame_len as u64),
        max_files: 3,
    };
    let mut pcap = PcapFile::with_rotation(&path, rotation).unwrap();
    for id in 0..18u8 {
        let mut frame = udp_frame(41000 + u16::from(id), frame_len - 42);
        frame[frame_len - 1] = id;
        pcap.write_frame(wallclock(), &frame).unwrap();
    }
    drop(pcap);
    let ids = |p: &Path| -> Vec<u8> {
        let records = parse_pcap(&std::fs::read(p).unwrap());
        assert_eq!(tcpdump(p).len(), records.len());
        records.iter().map(|r| r.captured[frame_len - 1]).collect()
    };
    assert_eq!(ids(&path), [16, 17]);
    assert_eq!(ids(&dir.path().join("rot.pcap.1")), [12, 13, 14, 15]);
    assert_eq!(ids(&dir.path().join("rot.pcap.2")), [8, 9, 10, 11]);
    assert!(!dir.path().join("rot.pcap.3").exists());
}

#[test]
fn single_file_rotation_restarts_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.pcap");
    let rotation = Rotation {
        max_bytes: 200,
        max_files: 1,
    };
    let mut pcap = PcapFile::with_rotation(&path, rotation).unwrap();
    for port in 0..5 {
        pcap.write_frame(wallclock(), &udp_frame(port, 60)).unwrap();
    }
    pcap.flush().unwrap();
    let records = parse_pcap(&std::fs::read(&path).unwrap());
    assert_eq!(records.len(), 1, "each 118-byte record fills the file");
    assert!(!dir.path().join("one.pcap.1").exists());
}
