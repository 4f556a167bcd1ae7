//! ICMP against frames captured from the Linux kernel: echo replies compared field by field
//! with the kernel's own replies (plain, with Record Route, fragmented, and at the IPv4
//! maximum), error generation (port and protocol unreachable) with the RFC 1122 exceptions and
//! the rate limit, and incoming errors parsed for the transport.

mod frames_fixtures;
mod frames_support;

use frames_fixtures as fx;
use frames_support::*;
use ustack::iface::{IcmpErrorKind, Interface, InterfaceConfig, Ipv4Send, NoTransport, SendError};
use ustack::time::Instant;
use ustack::wire::checksum;
use ustack::wire::ethernet::HEADER_LEN as ETH;
use ustack::wire::icmpv4::{DstUnreachable, Icmpv4Repr};
use ustack::wire::IpProtocol;

#[test]
fn echo_reply_matches_the_kernels_field_by_field() {
    let mut iface = host_knowing_peer();
    iface.receive_frame(Instant::ZERO, &fx::ECHO_REQUEST, &mut NoTransport);
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    let ours = &frames[0];
    assert_same_but_ident(ours, &fx::ECHO_REPLY);

    // The same, spelled out: IPv4 header...
    let packet = ip(ours);
    assert_eq!(
        (packet.repr.src_addr, packet.repr.dst_addr),
        (HOST_IP, PEER_IP)
    );
    assert_eq!((packet.repr.ttl, packet.repr.tos), (64, 0));
    assert!(!packet.repr.dont_fragment, "Linux replies without DF");
    assert_eq!(checksum::checksum(packet.header), 0);
    // ...and ICMP: type 0, code 0, identifier, sequence number and data echoed, checksum.
    let icmp = packet.payload;
    assert_eq!((icmp[0], icmp[1]), (0, 0));
    assert_eq!(checksum::checksum(icmp), 0, "ICMP checksum verifies");
    assert_eq!(
        &icmp[2..4],
        &ip(&fx::ECHO_REPLY).payload[2..4],
        "same checksum as the kernel"
    );
    let request = Icmpv4Repr::parse(ip(&fx::ECHO_REQUEST).payload).unwrap();
    let Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data,
    } = request
    else {
        panic!("fixture is an echo request");
    };
    assert_eq!(
        Icmpv4Repr::parse(icmp).unwrap(),
        Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data
        }
    );
    let s = iface.stats();
    assert_eq!((s.icmp_echo_requests_in, s.icmp_echo_replies_out), (1, 1));
    assert_eq!(s.get("icmp_echo_replies_out"), Some(1));
}

#[test]
fn echo_with_record_route_is_reflected_like_the_kernel() {
    let mut iface = host_knowing_peer();
    iface.receive_frame(Instant::ZERO, &fx::RR_ECHO_REQUEST, &mut NoTransport);
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    // RR with our address recorded on arrival and on departure, then EOL (header length 60).
    assert_same_but_ident(&frames[0], &fx::RR_ECHO_REPLY);
}

#[test]
fn fragmented_echo_is_answered_with_the_kernels_fragments() {
    let mut iface = host_knowing_peer();
    for frame in [
        &fx::FRAG_REQUEST_0[..],
        &fx::FRAG_REQUEST_1,
        &fx::FRAG_REQUEST_2,
    ] {
        iface.receive_frame(Instant::ZERO, frame, &mut NoTransport);
    }
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 3);
    for (ours, kernel) in
        frames
            .iter()
            .zip([&fx::FRAG_REPLY_0[..], &fx::FRAG_REPLY_1, &fx::FRAG_REPLY_2])
    {
        assert_same_but_ident(ours, kernel);
    }
    let idents: Vec<u16> = frames.iter().map(|f| ip(f).repr.ident).collect();
    assert!(
        idents.iter().all(|&i| i == idents[0]),
        "one datagram, one identification"
    );
    let s = iface.stats();
    assert_eq!(
        (s.ipv4_reassembled, s.ipv4_fragmented, s.ipv4_fragments_out),
        (1, 1, 3)
    );
}

#[test]
fn largest_echo_goes_both_ways_fragmented() {
    // The peer (10.77.0.1) pings the host with 65507 data bytes, the most IPv4 allows:
    // 8 + 65507 + 20 = 65535. Both sides are ustack interfaces wired back to back.
    let mut peer = Interface::with_seed(
        InterfaceConfig {
            mac: PEER_MAC,
            addr: PEER_IP,
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        },
        Instant::ZERO,
        2,
    );
    let mut host = host();
    let data: Vec<u8> = (0..65507u32).map(|i| (i * 7 + 3) as u8).collect();
    let request = Icmpv4Repr::EchoRequest {
        ident: 0x1ace,
        seq_no: 9,
        data: &data,
    };
    let mut icmp = vec![0u8; request.buffer_len()];
    request.emit(&mut icmp);
    let send = |iface: &mut Interface, payload: &[u8]| {
        iface.send_ipv4(
            Instant::ZERO,
            Ipv4Send {
                src: None,
                dst: HOST_IP,
                protocol: IpProtocol::Icmp,
                ttl: 64,
                tos: 0,
                dont_fragment: false,
                payload,
            },
        )
    };
    send(&mut peer, &icmp).unwrap();
    // One byte more does not fit in an IPv4 datagram.
    icmp.push(0);
    assert_eq!(send(&mut peer, &icmp), Err(SendError::PayloadTooLarge));
    icmp.pop();

    // Wire the two together until both are quiet.
    let mut t = NoTransport;
    let mut reply_frames = Vec::new();
    for _ in 0..10 {
        for frame in drain(&mut peer) {
            host.receive_frame(Instant::ZERO, &frame, &mut t);
        }
        for frame in drain(&mut host) {
            if ip_protocol(&frame) == Some(IpProtocol::Icmp) {
                reply_frames.push(frame.clone());
            }
            peer.receive_frame(Instant::ZERO, &frame, &mut t);
        }
    }
    assert_eq!(
        reply_frames.len(),
        45,
        "65515 bytes of ICMP in 1480-byte pieces"
    );
    for frame in &reply_frames {
        assert!(frame.len() <= ETH + 1500);
        let r = ip(frame).repr;
        assert!(r.frag_offset & 7 == 0 && (!r.more_fragments || r.payload_len & 7 == 0));
    }
    let reply = reassemble(&reply_frames);
    assert_eq!(
        Icmpv4Repr::parse(&reply).unwrap(),
        Icmpv4Repr::EchoReply {
            ident: 0x1ace,
            seq_no: 9,
            data: &data
        }
    );
    assert_eq!(host.stats().icmp_echo_replies_out, 1);
    assert_eq!(peer.stats().icmp_echo_replies_in, 1);
    assert_eq!(peer.stats().ipv4_reassembled, 1);
}

fn ip_protocol(frame: &[u8]) -> Option<IpProtocol> {
    (eth(frame).ethertype == ustack::wire::EtherType::Ipv4).then(|| ip(frame).repr.protocol)
}

#[test]
fn broadcast_echo_is_ignored_like_the_kernel() {
    let mut iface = host_knowing_peer();
    iface.receive_frame(Instant::ZERO, &fx::BROADCAST_ECHO_REQUEST, &mut NoTransport);
    assert!(drain(&mut iface).is_empty());
    assert_eq!(iface.stats().icmp_echo_broadcast_ignored, 1);
}

#[test]
fn bad_icmp_checksum_and_short_messages_are_dropped() {
    let mut iface = host_knowing_peer();
    let mut corrupted = fx::ECHO_REQUEST;
    corrupted[60] ^= 0x10;
    iface.receive_frame(Instant::ZERO, &corrupted, &mut NoTransport);
    // An ICMP message of 4 bytes (IP total length 24, header checksum fixed).
    let mut short = fx::ECHO_REQUEST[..ETH + 24].to_vec();
    short[ETH + 3] = 24;
    fix_ip_checksum(&mut short);
    iface.receive_frame(Instant::ZERO, &short, &mut NoTransport);
    assert!(drain(&mut iface).is_empty());
    let s = iface.stats();
    assert_eq!(
        (
            s.icmp_bad_checksum,
            s.icmp_truncated,
            s.icmp_echo_replies_out
        ),
        (1, 1, 0)
    );
}

#[test]
fn port_unreachable_matches_the_kernels() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder::default();
    iface.receive_frame(Instant::ZERO, &fx::UDP_TO_CLOSED_PORT, &mut transport);
    // The transport saw the datagram (header + payload) and refused it.
    assert_eq!(transport.udp.len(), 1);
    let (meta, datagram) = &transport.udp[0];
    assert_eq!(
        (meta.src, meta.dst, meta.broadcast),
        (PEER_IP, HOST_IP, false)
    );
    assert_eq!(&datagram[..], &fx::UDP_TO_CLOSED_PORT[ETH + 20..]);
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    // Type 3 code 3, TOS 0xc0, the whole datagram quoted: as the kernel.
    assert_same_but_ident(&frames[0], &fx::ICMP_PORT_UNREACHABLE);
    let s = iface.stats();
    assert_eq!(
        (s.udp_in, s.udp_no_port, s.icmp_dest_unreachable_out),
        (1, 1, 1)
    );
}

#[test]
fn accepted_udp_gets_no_error() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder {
        accept_udp: true,
        ..Recorder::default()
    };
    iface.receive_frame(Instant::ZERO, &fx::UDP_TO_CLOSED_PORT, &mut transport);
    assert!(drain(&mut iface).is_empty());
    assert_eq!(iface.stats().udp_no_port, 0);
}

#[test]
fn no_port_unreachable_for_broadcast_udp() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder::default();
    iface.receive_frame(Instant::ZERO, &fx::BROADCAST_UDP, &mut transport);
    assert_eq!(transport.udp.len(), 1);
    assert!(transport.udp[0].0.broadcast);
    assert!(
        drain(&mut iface).is_empty(),
        "RFC 1122 3.2.2: never about a broadcast"
    );
    assert_eq!(iface.stats().icmp_error_suppressed, 1);
}

#[test]
fn port_unreachable_is_rate_limited() {
    let mut iface = host_knowing_peer();
    for _ in 0..10 {
        iface.receive_frame(Instant::ZERO, &fx::UDP_TO_CLOSED_PORT, &mut NoTransport);
    }
    assert_eq!(drain(&mut iface).len(), 6, "burst of 6 per destination");
    assert_eq!(iface.stats().icmp_rate_limited, 4);
    iface.receive_frame(
        secs(1) - std::time::Duration::from_millis(1),
        &fx::UDP_TO_CLOSED_PORT,
        &mut NoTransport,
    );
    assert!(drain(&mut iface).is_empty());
    iface.receive_frame(secs(1), &fx::UDP_TO_CLOSED_PORT, &mut NoTransport);
    assert_eq!(drain(&mut iface).len(), 1, "one token per second");
}

#[test]
fn unknown_protocol_gets_protocol_unreachable() {
    let mut iface = host_knowing_peer();
    let mut frame = fx::UDP_TO_CLOSED_PORT;
    frame[ETH + 9] = 99;
    fix_ip_checksum(&mut frame);
    iface.receive_frame(Instant::ZERO, &frame, &mut NoTransport);
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    let reply = ip(&frames[0]);
    assert_eq!(reply.repr.dst_addr, PEER_IP);
    match Icmpv4Repr::parse(reply.payload).unwrap() {
        Icmpv4Repr::DstUnreachable { reason, quoted, .. } => {
            assert_eq!(reason, DstUnreachable::ProtocolUnreachable);
            assert_eq!(quoted, &frame[ETH..]);
        }
        other => panic!("expected protocol unreachable, got {other:?}"),
    }
    assert_eq!(iface.stats().ipv4_unknown_protocol, 1);
}

/// The peer's side: an interface at 10.77.0.1 that sent UDP_TO_CLOSED_PORT.
fn peer_with_transport() -> Interface {
    let mut iface = Interface::with_seed(
        InterfaceConfig {
            mac: PEER_MAC,
            addr: PEER_IP,
            prefix_len: 24,
            gateway: None,
            mtu: 1500,
        },
        Instant::ZERO,
        3,
    );
    drain(&mut iface);
    iface
}

/// Sets the ICMP type/code and rest-of-header of a captured ICMP frame and fixes its checksum.
fn retype(frame: &[u8], msg_type: u8, code: u8, rest: [u8; 4]) -> Vec<u8> {
    let mut frame = frame.to_vec();
    let icmp = ETH + 20;
    frame[icmp] = msg_type;
    frame[icmp + 1] = code;
    frame[icmp + 4..icmp + 8].copy_from_slice(&rest);
    frame[icmp + 2] = 0;
    frame[icmp + 3] = 0;
    let sum = checksum::checksum(&frame[icmp..]);
    frame[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
    frame
}

#[test]
fn the_kernels_port_unreachable_reaches_the_transport() {
    let mut iface = peer_with_transport();
    let mut transport = Recorder::default();
    iface.receive_frame(Instant::ZERO, &fx::ICMP_PORT_UNREACHABLE, &mut transport);
    assert_eq!(transport.errors.len(), 1);
    let error = &transport.errors[0];
    assert_eq!(
        error.kind,
        IcmpErrorKind::DstUnreachable(DstUnreachable::PortUnreachable)
    );
    assert_eq!((error.icmp_type, error.code, error.from), (3, 3, HOST_IP));
    assert_eq!(
        (error.protocol, error.src, error.dst),
        (IpProtocol::Udp, PEER_IP, HOST_IP)
    );
    assert_eq!((error.src_port, error.dst_port), (Some(60517), Some(9)));
    assert_eq!(error.next_hop_mtu, None);
    assert_eq!(
        error.quoted_transport(),
        &fx::UDP_TO_CLOSED_PORT[ETH + 20..ETH + 28]
    );
    assert!(
        drain(&mut iface).is_empty(),
        "never an error about an error"
    );
    assert_eq!(iface.stats().icmp_errors_delivered, 1);
}

#[test]
fn fragmentation_needed_carries_the_next_hop_mtu() {
    let mut iface = peer_with_transport();
    let mut transport = Recorder::default();
    let frag_needed = retype(&fx::ICMP_PORT_UNREACHABLE, 3, 4, [0, 0, 0x05, 0x78]);
    iface.receive_frame(Instant::ZERO, &frag_needed, &mut transport);
    let error = &transport.errors[0];
    assert_eq!(
        error.kind,
        IcmpErrorKind::DstUnreachable(DstUnreachable::FragmentationNeeded)
    );
    assert_eq!(error.next_hop_mtu, Some(1400));
}

#[test]
fn time_exceeded_and_parameter_problem_reach_the_transport() {
    let mut iface = peer_with_transport();
    let mut transport = Recorder::default();
    iface.receive_frame(
        Instant::ZERO,
        &retype(&fx::ICMP_PORT_UNREACHABLE, 11, 0, [0; 4]),
        &mut transport,
    );
    iface.receive_frame(
        Instant::ZERO,
        &retype(&fx::ICMP_PORT_UNREACHABLE, 12, 0, [8, 0, 0, 0]),
        &mut transport,
    );
    let kinds: Vec<_> = transport.errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            IcmpErrorKind::TimeExceeded(ustack::wire::icmpv4::TimeExceeded::TtlExceeded),
            IcmpErrorKind::ParameterProblem { pointer: 8 },
        ]
    );
}

#[test]
fn source_quench_redirect_and_foreign_quotes_are_not_passed_on() {
    let mut iface = peer_with_transport();
    let mut transport = Recorder::default();
    iface.receive_frame(
        Instant::ZERO,
        &retype(&fx::ICMP_PORT_UNREACHABLE, 4, 0, [0; 4]),
        &mut transport,
    );
    iface.receive_frame(
        Instant::ZERO,
        &retype(&fx::ICMP_PORT_UNREACHABLE, 5, 1, [10, 77, 0, 254]),
        &mut transport,
    );
    // A port unreachable about a datagram someone else sent (quoted source 10.77.0.7).
    let mut foreign = fx::ICMP_PORT_UNREACHABLE.to_vec();
    foreign[ETH + 28 + 15] = 7;
    let foreign = retype(&foreign, 3, 3, [0; 4]);
    iface.receive_frame(Instant::ZERO, &foreign, &mut transport);
    // A quote too short to hold an IPv4 header.
    let mut short = retype(
        &fx::ICMP_PORT_UNREACHABLE[..ETH + 20 + 8 + 12],
        3,
        3,
        [0; 4],
    );
    short[ETH + 3] = 40;
    fix_ip_checksum(&mut short);
    let short = retype(&short, 3, 3, [0; 4]);
    iface.receive_frame(Instant::ZERO, &short, &mut transport);
    assert!(transport.errors.is_empty());
    let s = iface.stats();
    assert_eq!(
        (
            s.icmp_source_quench_in,
            s.icmp_redirect_in,
            s.icmp_error_bad_quote
        ),
        (1, 1, 2)
    );
}

#[test]
fn tcp_is_delivered_and_answered_from_inside_the_callback() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder {
        // The kernel's RST+ACK, sent back from inside Transport::tcp.
        tcp_answer: Some(fx::TCP_RST[ETH + 20..].to_vec()),
        ..Recorder::default()
    };
    iface.receive_frame(Instant::ZERO, &fx::TCP_SYN, &mut transport);
    assert_eq!(transport.tcp.len(), 1);
    let (meta, segment) = &transport.tcp[0];
    assert_eq!(
        (meta.src, meta.dst, meta.protocol),
        (PEER_IP, HOST_IP, IpProtocol::Tcp)
    );
    assert_eq!(&segment[..], &fx::TCP_SYN[ETH + 20..]);
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    assert_same_but_ident(&frames[0], &fx::TCP_RST);
    assert_eq!(iface.stats().tcp_in, 1);
}
