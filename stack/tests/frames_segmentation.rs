//! TCP super-segments through the interface (segmentation offload): one frame larger than the
//! MTU for a device that segments TCP itself, or wire frames cut in software for any other;
//! the IP IDs the segments will carry are reserved; ARP and the loopback keep them whole.

mod frames_fixtures;
mod frames_support;

use std::net::Ipv4Addr;

use frames_fixtures as fx;
use frames_support::*;
use ustack::iface::{Interface, Ipv4Send, Segmentation, SendError};
use ustack::tcp::seq::SeqNumber;
use ustack::time::Instant;
use ustack::wire::ethernet::HEADER_LEN as ETH;
use ustack::wire::tcp::{TcpFlags, TcpHeader, TcpPacket};
use ustack::wire::IpProtocol;

const SEGMENT: u16 = 1000;

/// A TCP segment 10.77.0.2:40000 -> `dst`:80 with `len` bytes of patterned data, PSH set.
fn tcp_segment(dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let header = TcpHeader {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNumber(1_000_000),
        ack: SeqNumber(77),
        flags: TcpFlags::ACK | TcpFlags::PSH,
        window: 512,
        ..TcpHeader::default()
    };
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut out = vec![0; header.header_len() + len];
    let written = header.emit(&payload, HOST_IP, dst, &mut out).unwrap();
    out.truncate(written);
    out
}

fn packet(dst: Ipv4Addr, segment: &[u8]) -> Ipv4Send<'_> {
    Ipv4Send {
        src: None,
        dst,
        protocol: IpProtocol::Tcp,
        ttl: 64,
        tos: 0,
        dont_fragment: true,
        payload: segment,
    }
}

fn segmentation(segments: u16) -> Segmentation {
    Segmentation {
        segment_size: SEGMENT,
        segments,
    }
}

/// Frames as a segmenting device receives them: bytes and segment size.
fn drain_offload(iface: &mut Interface) -> Vec<(Vec<u8>, Option<u16>)> {
    let mut frames = Vec::new();
    iface.transmit_offload(&mut |frame, size| {
        frames.push((frame.to_vec(), size));
        true
    });
    frames
}

#[test]
fn a_device_that_segments_gets_one_frame() {
    let mut iface = host_knowing_peer();
    let counter = |iface: &Interface, name: &str| {
        iface
            .stats()
            .counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| v)
    };
    let (frames_before, ipv4_before) = (counter(&iface, "frames_out"), counter(&iface, "ipv4_out"));
    assert_eq!(counter(&iface, "tso_frames_out"), 0);
    let segment = tcp_segment(PEER_IP, 3500);
    iface
        .send_ipv4_segmented(Instant::ZERO, packet(PEER_IP, &segment), segmentation(4))
        .unwrap();
    let frames = drain_offload(&mut iface);
    assert_eq!(frames.len(), 1);
    let (frame, size) = &frames[0];
    assert_eq!(*size, Some(SEGMENT));
    assert_eq!(eth(frame).dst, PEER_MAC);
    let ip = ip(frame);
    assert_eq!(ip.repr.total_len(), 20 + 20 + 3500);
    assert!(ip.repr.dont_fragment && !ip.repr.more_fragments);
    assert_eq!(
        ip.payload,
        segment.as_slice(),
        "the segment as TCP built it"
    );
    // Counted as what the wire will carry.
    assert_eq!(counter(&iface, "frames_out") - frames_before, 4);
    assert_eq!(counter(&iface, "ipv4_out") - ipv4_before, 4);
    assert_eq!(counter(&iface, "tso_frames_out"), 1);
}

#[test]
fn any_other_device_gets_wire_frames_cut_in_software() {
    let mut iface = host_knowing_peer();
    let segment = tcp_segment(PEER_IP, 3500);
    iface
        .send_ipv4_segmented(Instant::ZERO, packet(PEER_IP, &segment), segmentation(4))
        .unwrap();
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 4);
    let first_ident = ip(&frames[0]).repr.ident;
    let mut data = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let ip = ip(frame); // validates the header checksum
        assert!(ip.repr.total_len() <= 1500);
        assert_eq!(ip.repr.ident, first_ident.wrapping_add(i as u16));
        let tcp = TcpPacket::new_checked(ip.payload).unwrap();
        assert!(
            tcp.verify_checksum(HOST_IP, PEER_IP),
            "segment {i} checksum"
        );
        assert_eq!(tcp.seq_number(), SeqNumber(1_000_000 + 1000 * i as u32));
        assert_eq!(tcp.flags().psh(), i == 3, "PSH on the last segment only");
        assert_eq!(tcp.payload().len(), if i == 3 { 500 } else { 1000 });
        data.extend_from_slice(tcp.payload());
    }
    assert_eq!(data, segment[20..]);
}

#[test]
fn the_next_datagram_does_not_reuse_the_segments_ids() {
    let mut iface = host_knowing_peer();
    let segment = tcp_segment(PEER_IP, 3500);
    iface
        .send_ipv4_segmented(Instant::ZERO, packet(PEER_IP, &segment), segmentation(4))
        .unwrap();
    let small = tcp_segment(PEER_IP, 10);
    iface
        .send_ipv4(Instant::ZERO, packet(PEER_IP, &small))
        .unwrap();
    let frames = drain_offload(&mut iface);
    let (first, next) = (ip(&frames[0].0).repr.ident, ip(&frames[1].0).repr.ident);
    assert_eq!(next, first.wrapping_add(4));
    assert_eq!(frames[1].1, None);
}

#[test]
fn segmentation_must_fit_the_mtu_and_match_the_data() {
    let mut iface = host_knowing_peer();
    // 1461 bytes of TCP payload per segment make 1501-byte datagrams.
    let segment = tcp_segment(PEER_IP, 4000);
    let too_big = Segmentation {
        segment_size: 1461,
        segments: 3,
    };
    assert_eq!(
        iface.send_ipv4_segmented(Instant::ZERO, packet(PEER_IP, &segment), too_big),
        Err(SendError::MessageTooLong { mtu: 1500 })
    );
    // The count must be what the device will make of the data.
    assert_eq!(
        iface.send_ipv4_segmented(Instant::ZERO, packet(PEER_IP, &segment), segmentation(3)),
        Err(SendError::MessageTooLong { mtu: 1500 })
    );
    assert!(drain_offload(&mut iface).is_empty());
}

#[test]
fn a_super_segment_that_fits_the_mtu_still_goes_to_the_device() {
    // Two segments of a small MSS fit one MTU; the device still cuts them, and computes the
    // checksum TCP left to it.
    let mut iface = host_knowing_peer();
    let segment = tcp_segment(PEER_IP, 900);
    let small = Segmentation {
        segment_size: 500,
        segments: 2,
    };
    iface
        .send_ipv4_segmented(Instant::ZERO, packet(PEER_IP, &segment), small)
        .unwrap();
    let frames = drain_offload(&mut iface);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].1, Some(500));
}

#[test]
fn software_segmentation_computes_the_checksums_tcp_left_out() {
    let mut iface = host_knowing_peer();
    let mut segment = tcp_segment(PEER_IP, 2500);
    segment[16..18].copy_from_slice(&[0, 0]);
    iface
        .send_ipv4_segmented(Instant::ZERO, packet(PEER_IP, &segment), segmentation(3))
        .unwrap();
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 3);
    for frame in &frames {
        let tcp = TcpPacket::new_checked(ip(frame).payload).unwrap();
        assert!(tcp.verify_checksum(HOST_IP, PEER_IP));
    }
}

#[test]
fn a_super_segment_waiting_for_arp_stays_whole() {
    let mut iface = host();
    let segment = tcp_segment(PEER_IP, 3500);
    iface
        .send_ipv4_segmented(Instant::ZERO, packet(PEER_IP, &segment), segmentation(4))
        .unwrap();
    let request = drain_offload(&mut iface);
    assert_eq!(request.len(), 1, "the ARP request");
    assert_eq!(request[0].0.len(), ETH + 28);
    // The peer's own request teaches us its address: the super-segment leaves.
    iface.receive_frame(Instant::ZERO, &fx::ARP_REQUEST, &mut Recorder::default());
    let frames = drain_offload(&mut iface);
    let supers: Vec<_> = frames.iter().filter(|(_, size)| size.is_some()).collect();
    assert_eq!(supers.len(), 1);
    assert_eq!(eth(&supers[0].0).dst, PEER_MAC);
    assert_eq!(ip(&supers[0].0).payload, segment.as_slice());
}

#[test]
fn through_the_loopback_the_datagram_arrives_whole() {
    let mut iface = host();
    let segment = tcp_segment(HOST_IP, 3500);
    iface
        .send_ipv4_segmented(Instant::ZERO, packet(HOST_IP, &segment), segmentation(4))
        .unwrap();
    let mut recorder = Recorder::default();
    iface.process_loopback(Instant::ZERO, &mut recorder);
    assert_eq!(recorder.tcp.len(), 1);
    assert_eq!(recorder.tcp[0].1, segment);
    assert!(drain_offload(&mut iface).is_empty());
}
