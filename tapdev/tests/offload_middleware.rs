//! Offloads through the middleware, over in-memory links.
//!
//! The fault injector must apply its faults per wire frame (it reports no offloads and cuts
//! super-frames before they enter its pipeline); the pcap writer passes offloads through and
//! records a super-frame as one record.

use std::time::{Duration, SystemTime};

use tapdev::fault::{FaultConfig, FaultInjector, Faults};
use tapdev::offload::{
    complete_checksum, prepare_segmentation, segment, Checksum, FrameOffload, OffloadSet, Offloads,
    MAX_OFFLOAD_FRAME_LEN,
};
use tapdev::pcap::{PcapWriter, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use tapdev::{Capabilities, Device, MemoryLink};

const CAPS: Capabilities = Capabilities {
    mtu: 1500,
    max_burst: 16,
};
const T0: Duration = Duration::ZERO;
const TCP_OFFLOADS: OffloadSet = OffloadSet {
    partial_checksum: true,
    tcp_v4: true,
    tcp_v6: true,
    tcp_ecn: true,
    udp_l4: false,
};
const TSO: Offloads = Offloads {
    send: TCP_OFFLOADS,
    recv: TCP_OFFLOADS,
    max_frame_len: MAX_OFFLOAD_FRAME_LEN,
};

/// An Ethernet + IPv4 + TCP super-frame of 40 segments of 1000 bytes.
fn super_frame() -> (Vec<u8>, FrameOffload) {
    let payload_len = 40_000;
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0];
    frame.extend(((20 + 20 + payload_len) as u16).to_be_bytes());
    frame.extend([0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
    let checksum = tapdev::offload::internet_checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    frame.extend([
        0x9c, 0x40, 0x1b, 0x58, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff,
    ]);
    frame.extend([0, 0, 0, 0]);
    frame.extend((0..payload_len).map(|i| (i % 251) as u8));
    let offload = prepare_segmentation(&mut frame, 1000).unwrap();
    assert!(offload.gso.is_some());
    (frame, offload)
}

fn faults(drop: f64) -> FaultConfig {
    FaultConfig::both(
        42,
        Faults {
            drop,
            ..Faults::default()
        },
    )
}

#[test]
fn fault_injector_drops_wire_frames_not_super_frames() {
    let (near, mut far) = MemoryLink::pair_with_offloads(CAPS, 1024, TSO);
    let mut injector = FaultInjector::new(near, faults(0.3));
    assert_eq!(injector.offloads(), Offloads::NONE);
    let (frame, offload) = super_frame();
    let wire = segment(&frame, &offload).unwrap();
    injector.send_offload(T0, &frame, &offload).unwrap();

    let stats = injector.tx_stats();
    assert_eq!(stats.passed + stats.dropped, 40, "{stats:?}");
    assert!(stats.dropped > 0 && stats.passed > 0, "{stats:?}");
    // What arrived are some of the wire frames, in order, whole.
    let mut buf = vec![0u8; MAX_OFFLOAD_FRAME_LEN];
    let mut expected = wire.iter();
    let mut arrived = 0;
    while let Some((len, got)) = far.recv_offload(T0, &mut buf).unwrap() {
        assert_eq!(got, FrameOffload::NONE);
        assert!(expected.any(|w| w[..] == buf[..len]), "not a wire frame");
        arrived += 1;
    }
    assert_eq!(arrived, stats.passed);
}

#[test]
fn fault_injector_receives_wire_frames_from_an_offloading_device() {
    let (near, mut far) = MemoryLink::pair_with_offloads(CAPS, 1024, TSO);
    let mut injector = FaultInjector::new(near, faults(0.3));
    let (frame, offload) = super_frame();
    far.send_offload(T0, &frame, &offload).unwrap();

    let mut buf = vec![0u8; MAX_OFFLOAD_FRAME_LEN];
    let mut arrived = 0;
    while let Some((len, got)) = injector.recv_offload(T0, &mut buf).unwrap() {
        assert_eq!(got, FrameOffload::NONE);
        assert!(len <= 1514);
        arrived += 1;
    }
    let stats = injector.rx_stats();
    assert_eq!(stats.passed + stats.dropped, 40, "{stats:?}");
    assert!(stats.dropped > 0);
    assert_eq!(arrived, stats.passed);
}

#[test]
fn pcap_writer_passes_offloads_through_and_records_super_frames_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tso.pcap");
    let (near, mut far) = MemoryLink::pair_with_offloads(CAPS, 1024, TSO);
    let mut writer = PcapWriter::new(near, &path, SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(writer.offloads(), TSO);
    let (frame, offload) = super_frame();

    writer.send_offload(T0, &frame, &offload).unwrap();
    far.send_offload(T0, &frame, &offload).unwrap();
    let mut buf = vec![0u8; MAX_OFFLOAD_FRAME_LEN];
    let (len, got) = writer.recv_offload(T0, &mut buf).unwrap().unwrap();
    assert_eq!((len, got), (frame.len(), offload));
    assert_eq!(
        far.recv_offload(T0, &mut buf).unwrap().map(|(_, o)| o),
        Some(offload)
    );
    drop(writer);

    // Captured whole, with the partial checksum completed in the capture's copy (the device
    // got the frame untouched, checked above), so tcpdump reports no checksum errors that are
    // only offloading.
    let Checksum::Partial { start, offset } = offload.checksum else {
        panic!("the fixture has a partial checksum");
    };
    let mut completed = frame.clone();
    complete_checksum(&mut completed, start, offset).unwrap();
    assert_ne!(completed, frame);
    let bytes = std::fs::read(&path).unwrap();
    let record_len = RECORD_HEADER_LEN + frame.len();
    assert_eq!(bytes.len(), FILE_HEADER_LEN + 2 * record_len);
    for record in bytes[FILE_HEADER_LEN..].chunks(record_len) {
        let original = u32::from_le_bytes(record[12..16].try_into().unwrap());
        assert_eq!(original as usize, frame.len());
        assert_eq!(&record[RECORD_HEADER_LEN..], &completed[..]);
    }
}
