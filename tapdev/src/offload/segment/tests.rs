use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::super::fixtures::{
    hex, pattern, KERNEL_SUPER_FRAMES, KERNEL_SYN_FRAME, KERNEL_SYN_VNET, TX_CASES,
};
use super::*;

/// Checks a wire frame: IPv4 header checksum and transport checksum verify, lengths agree.
/// Returns the layout for further checks.
fn assert_valid(frame: &[u8]) -> Layout {
    let layout = Layout::parse(frame).expect("segment parses");
    assert_eq!(layout.end, frame.len(), "no bytes after the packet");
    if layout.version == IpVersion::V4 {
        assert_eq!(
            fold(add_words(0, &frame[layout.l3..layout.l4])),
            0xffff,
            "IPv4 header checksum"
        );
    }
    let l4_len = layout.end - layout.l4;
    let pseudo = layout.pseudo_header_sum(frame, l4_len).unwrap();
    assert_eq!(
        fold(add_words(u64::from(pseudo), &frame[layout.l4..])),
        0xffff,
        "transport checksum"
    );
    if layout.protocol == PROTOCOL_UDP {
        assert_eq!(read_u16(frame, layout.l4 + 4), Some(l4_len as u16));
    }
    layout
}

/// What forwarding did to the kernel's segments: new MAC addresses, TTL / hop limit - 1.
fn as_forwarded(mut frame: Vec<u8>, macs: &[u8]) -> Vec<u8> {
    frame[..12].copy_from_slice(macs);
    if frame[12..14] == [0x08, 0x00] {
        frame[22] -= 1;
        frame[24..26].fill(0);
        let checksum = !fold(add_words(0, &frame[14..34]));
        frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    } else {
        frame[21] -= 1;
    }
    frame
}

#[test]
fn our_segments_are_the_kernels_byte_for_byte() {
    for case in &TX_CASES {
        let offload = FrameOffload::parse(&hex(case.vnet)).unwrap();
        let gso = offload.gso.unwrap();
        let mut frame = hex(case.headers);
        let header_len = frame.len();
        frame.extend(pattern(0, case.payload_len));
        let ours = segment(&frame, &offload).unwrap();
        assert_eq!(ours.len(), case.segments.len(), "{}", case.name);
        let macs = &hex(case.segments[0].1)[..12];
        for (index, (ours, &(len, headers))) in ours.into_iter().zip(case.segments).enumerate() {
            let offset = index * usize::from(gso.segment_size);
            let mut expected = hex(headers);
            expected.extend(pattern(offset, len - header_len));
            assert_eq!(expected.len(), len);
            assert_valid(&ours);
            assert_eq!(
                as_forwarded(ours, macs),
                expected,
                "{} segment {index}",
                case.name
            );
        }
    }
}

#[test]
fn prepare_segmentation_builds_what_the_kernel_accepted() {
    for case in &TX_CASES {
        let mut sent = hex(case.headers);
        sent.extend(pattern(0, case.payload_len));
        let gso = FrameOffload::parse(&hex(case.vnet)).unwrap().gso.unwrap();
        // Start from a frame with a complete (here: scrambled) checksum field.
        let mut frame = sent.clone();
        let field = match gso.kind {
            GsoKind::UdpL4 => 34 + 6,
            GsoKind::TcpV4 => 34 + 16,
            GsoKind::TcpV6 => 54 + 16,
        };
        frame[field] ^= 0x5a;
        let offload = prepare_segmentation(&mut frame, gso.segment_size).unwrap();
        assert_eq!(offload.emit().to_vec(), hex(case.vnet), "{}", case.name);
        assert_eq!(frame, sent, "{}: pseudo-header sum in the field", case.name);
    }
}

#[test]
fn kernel_super_frames_complete_and_segment_into_valid_wire_frames() {
    for captured in &KERNEL_SUPER_FRAMES {
        let offload = FrameOffload::parse(&hex(captured.vnet)).unwrap();
        let mut frame = hex(captured.headers);
        let payload = pattern(captured.payload_offset, captured.frame_len - frame.len());
        frame.extend(&payload);
        assert_eq!(frame.len(), captured.frame_len);

        // As one big packet: completing the partial checksum makes it verify.
        let Checksum::Partial { start, offset } = offload.checksum else {
            panic!("kernel super-frames carry partial checksums");
        };
        let mut whole = frame.clone();
        complete_checksum(&mut whole, start, offset).unwrap();
        assert_valid(&whole);

        let segments = segment(&frame, &offload).unwrap();
        let mss = 1460;
        assert_eq!(segments.len(), payload.len().div_ceil(mss));
        let first_seq = read_u32(&frame, 38).unwrap();
        let first_id = read_u16(&frame, 18).unwrap();
        let flags = frame[47];
        let mut reassembled: Vec<u8> = Vec::new();
        for (index, wire) in segments.iter().enumerate() {
            assert!(wire.len() <= 1514, "wire-sized");
            let layout = assert_valid(wire);
            assert_eq!(
                read_u32(wire, 38),
                Some(first_seq.wrapping_add((index * mss) as u32))
            );
            assert_eq!(
                read_u16(wire, 18),
                Some(first_id.wrapping_add(index as u16))
            );
            let is_last = index == segments.len() - 1;
            let expected_flags = if is_last {
                flags
            } else {
                flags & !(TCP_FIN | TCP_PSH)
            };
            assert_eq!(wire[47], expected_flags);
            reassembled.extend(&wire[layout.payload..]);
        }
        assert_eq!(reassembled, payload);
    }
    // The FIN super-frame: FIN and PSH only on its last segment.
    assert_eq!(hex(KERNEL_SUPER_FRAMES[2].headers)[47], 0x19);
}

#[test]
fn kernel_syn_partial_checksum_completes() {
    let offload = FrameOffload::parse(&hex(KERNEL_SYN_VNET)).unwrap();
    let frame = hex(KERNEL_SYN_FRAME);
    assert_ne!(
        Layout::parse(&frame).map(|_| ()),
        Err(FallbackError::Truncated("TCP options"))
    );
    let wire = segment(&frame, &offload).unwrap();
    assert_eq!(wire.len(), 1);
    assert_valid(&wire[0]);
    // Only the checksum field changed.
    assert_eq!(wire[0][..50], frame[..50]);
    assert_eq!(wire[0][52..], frame[52..]);
    // A plain frame comes back as it is.
    assert_eq!(segment(&wire[0], &FrameOffload::NONE).unwrap(), wire);
}

/// An Ethernet + IP + TCP/UDP frame with complete checksums.
fn build(rng: &mut SmallRng, v6: bool, tcp: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    let mut l4 = Vec::new();
    if tcp {
        let options = rng.gen_range(0..=10) * 4;
        l4.extend(rng.gen::<[u8; 4]>()); // ports
        l4.extend(rng.gen::<[u8; 8]>()); // seq, ack
        l4.push((((20 + options) / 4) << 4) as u8);
        l4.push(rng.gen());
        l4.extend(rng.gen::<[u8; 2]>()); // window
        l4.extend([0, 0, 0, 0]);
        l4.extend((0..options).map(|_| 1u8)); // NOPs
    } else {
        l4.extend(rng.gen::<[u8; 4]>());
        l4.extend((8 + payload.len() as u16).to_be_bytes());
        l4.extend([0, 0]);
    }
    l4.extend(payload);
    let protocol = if tcp { 6 } else { 17 };
    if v6 {
        frame.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        frame.extend((l4.len() as u16).to_be_bytes());
        frame.extend([protocol, 64]);
        frame.extend(rng.gen::<[u8; 32]>());
    } else {
        frame.extend([0x08, 0x00, 0x45, 0]);
        frame.extend(((20 + l4.len()) as u16).to_be_bytes());
        frame.extend(rng.gen::<[u8; 2]>());
        frame.extend([0x40, 0, 64, protocol, 0, 0]);
        frame.extend(rng.gen::<[u8; 8]>());
        let checksum = !fold(add_words(0, &frame[14..34]));
        frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    }
    frame.extend(l4);
    let offload = prepare_partial_checksum(&mut frame).unwrap();
    let Checksum::Partial { start, offset } = offload.checksum else {
        unreachable!()
    };
    complete_checksum(&mut frame, start, offset).unwrap();
    frame
}

#[test]
fn random_super_frames_segment_and_reassemble() {
    let mut rng = SmallRng::seed_from_u64(6);
    for round in 0..300 {
        let v6 = rng.gen();
        let tcp = rng.gen();
        let len = if round % 10 == 0 {
            rng.gen_range(0..64)
        } else {
            rng.gen_range(0..=65_000)
        };
        let payload: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let frame = build(&mut rng, v6, tcp, &payload);
        assert_valid(&frame);
        let mss: u16 = rng.gen_range(1..=9000);
        let mut prepared = frame.clone();
        let offload = prepare_segmentation(&mut prepared, mss).unwrap();
        let segments = segment(&prepared, &offload).unwrap();
        let expected_count = payload.len().div_ceil(usize::from(mss)).max(1);
        assert_eq!(segments.len(), expected_count, "round {round}");
        let mut reassembled: Vec<u8> = Vec::new();
        for wire in &segments {
            let layout = assert_valid(wire);
            assert!(wire.len() - layout.payload <= usize::from(mss));
            reassembled.extend(&wire[layout.payload..]);
        }
        assert_eq!(reassembled, payload, "round {round}");
        if expected_count == 1 {
            assert_eq!(segments[0], frame, "one segment is the frame itself");
        }
    }
}

#[test]
fn padding_after_the_packet_is_not_payload() {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut frame = build(&mut rng, false, true, &[7; 10]);
    let unpadded = frame.clone();
    frame.extend([0; 6]);
    assert_eq!(segment_tcp_v4(&frame, 1460).unwrap(), vec![unpadded]);
    assert!(matches!(
        prepare_segmentation(&mut frame, 1460),
        Err(FallbackError::BadHeader(_))
    ));
}

#[test]
fn a_vlan_tag_is_kept_on_every_segment() {
    let mut rng = SmallRng::seed_from_u64(2);
    let plain = build(&mut rng, false, true, &pattern(0, 3000));
    let mut tagged = plain[..12].to_vec();
    tagged.extend([0x81, 0x00, 0x00, 0x2a]);
    tagged.extend(&plain[12..]);
    let segments = segment_tcp_v4(&tagged, 1000).unwrap();
    assert_eq!(segments.len(), 3);
    for wire in &segments {
        assert_eq!(wire[12..16], [0x81, 0x00, 0x00, 0x2a]);
        assert_eq!(assert_valid(wire).l3, 18);
    }
}

#[test]
fn broken_frames_are_errors_at_every_length() {
    let mut rng = SmallRng::seed_from_u64(3);
    for (v6, tcp) in [(false, true), (true, true), (false, false), (true, false)] {
        let frame = build(&mut rng, v6, tcp, &pattern(0, 100));
        let offload = FrameOffload {
            gso: Some(Gso {
                kind: match (v6, tcp) {
                    (false, true) => GsoKind::TcpV4,
                    (true, true) => GsoKind::TcpV6,
                    _ => GsoKind::UdpL4,
                },
                segment_size: 40,
                header_len: 0,
                ecn: false,
            }),
            checksum: Checksum::Complete,
        };
        assert_eq!(segment(&frame, &offload).unwrap().len(), 3);
        // Cut anywhere: every prefix is an error or (past the headers) a shorter packet that
        // the IP length field no longer matches; never a panic.
        for len in 0..frame.len() {
            assert!(
                segment(&frame[..len], &offload).is_err(),
                "{v6} {tcp} {len}"
            );
        }
    }
}

#[test]
fn unsupported_and_mismatched_frames_are_refused() {
    let mut rng = SmallRng::seed_from_u64(4);
    let v4 = build(&mut rng, false, true, &[1; 50]);
    let v6 = build(&mut rng, true, true, &[1; 50]);
    assert_eq!(segment_tcp_v4(&v4, 0), Err(FallbackError::ZeroSegmentSize));
    assert_eq!(
        segment_tcp_v6(&v4, 10),
        Err(FallbackError::KindMismatch(GsoKind::TcpV6))
    );
    assert_eq!(
        segment_tcp_v4(&v6, 10),
        Err(FallbackError::KindMismatch(GsoKind::TcpV4))
    );
    assert_eq!(
        segment_udp(&v4, 10),
        Err(FallbackError::KindMismatch(GsoKind::UdpL4))
    );

    let mut arp = v4.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(matches!(
        segment_tcp_v4(&arp, 10),
        Err(FallbackError::Unsupported(_))
    ));
    let mut fragment = v4.clone();
    fragment[20] |= 0x20; // more fragments
    assert!(matches!(
        segment_tcp_v4(&fragment, 10),
        Err(FallbackError::Unsupported(_))
    ));
    let mut extension = v6.clone();
    extension[20] = 0; // hop-by-hop options
    assert!(matches!(
        segment_tcp_v6(&extension, 10),
        Err(FallbackError::Unsupported(_))
    ));
    let mut short_ihl = v4.clone();
    short_ihl[14] = 0x44;
    assert!(matches!(
        segment_tcp_v4(&short_ihl, 10),
        Err(FallbackError::BadHeader(_))
    ));
    let mut long_total = v4.clone();
    long_total[16..18].copy_from_slice(&2000u16.to_be_bytes());
    assert!(matches!(
        segment_tcp_v4(&long_total, 10),
        Err(FallbackError::BadHeader(_))
    ));
    let mut bad_offset = v4.clone();
    bad_offset[46] = 0x40; // data offset 4 words
    assert!(matches!(
        segment_tcp_v4(&bad_offset, 10),
        Err(FallbackError::BadHeader(_))
    ));
    let mut partial_outside = FrameOffload::NONE;
    partial_outside.checksum = Checksum::Partial {
        start: 34,
        offset: 100,
    };
    assert!(matches!(
        segment(&v4, &partial_outside),
        Err(FallbackError::ChecksumOutsideFrame { .. })
    ));
}

#[test]
fn sequence_and_id_wrap_around() {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut frame = build(&mut rng, false, true, &pattern(0, 2500));
    frame[18..20].copy_from_slice(&0xffffu16.to_be_bytes());
    frame[38..42].copy_from_slice(&0xffff_fc00u32.to_be_bytes());
    let segments = segment_tcp_v4(&frame, 1000).unwrap();
    let ids: Vec<_> = segments.iter().map(|s| read_u16(s, 18).unwrap()).collect();
    let seqs: Vec<_> = segments.iter().map(|s| read_u32(s, 38).unwrap()).collect();
    assert_eq!(ids, [0xffff, 0, 1]);
    assert_eq!(seqs, [0xffff_fc00, 0xffff_ffe8, 0x0000_03d0]);
}
