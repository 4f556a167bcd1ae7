//! IPv4 and Ethernet input validation against frames captured from the Linux kernel (bad
//! checksums, truncated headers, bad fields, options, addressing), and the output side:
//! routing, fragmentation, DF, and the stack's own loopback.

mod frames_fixtures;
mod frames_support;

use std::net::Ipv4Addr;

use frames_fixtures as fx;
use frames_support::*;
use ustack::iface::{Interface, InterfaceConfig, Ipv4Send, NoTransport, SendError};
use ustack::stats::Stats;
use ustack::time::Instant;
use ustack::wire::ethernet::HEADER_LEN as ETH;
use ustack::wire::icmpv4::Icmpv4Repr;
use ustack::wire::{EtherType, IpProtocol, UdpRepr};

/// Every captured frame that carries IPv4 and is addressed to the host (10.77.0.2).
fn ipv4_frames_to_host() -> Vec<&'static [u8]> {
    vec![
        &fx::ECHO_REQUEST,
        &fx::FRAG_REQUEST_0,
        &fx::FRAG_REQUEST_1,
        &fx::FRAG_REQUEST_2,
        &fx::RR_ECHO_REQUEST,
        &fx::UDP_TO_CLOSED_PORT,
        &fx::TCP_SYN,
        &fx::BROADCAST_ECHO_REQUEST,
        &fx::BROADCAST_UDP,
    ]
}

/// Nothing reached the transport and nothing was sent.
fn assert_silent(iface: &mut Interface, transport: &Recorder) {
    assert!(drain(iface).is_empty(), "nothing may be sent");
    assert!(transport.tcp.is_empty() && transport.udp.is_empty() && transport.errors.is_empty());
    assert_eq!(iface.stats().ipv4_delivered, 0);
}

#[test]
fn every_truncation_of_every_captured_frame_is_dropped_and_counted() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder::default();
    let mut expected_eth = 0;
    let mut expected_ip = 0;
    for frame in ipv4_frames_to_host() {
        for len in 0..frame.len() {
            iface.receive_frame(Instant::ZERO, &frame[..len], &mut transport);
            if len < ETH {
                expected_eth += 1;
            } else {
                expected_ip += 1;
            }
        }
    }
    assert_silent(&mut iface, &transport);
    let s = iface.stats();
    assert_eq!(s.eth_truncated, expected_eth);
    assert_eq!(
        s.ipv4_truncated, expected_ip,
        "header or total length beyond the frame"
    );
    assert_eq!(s.ipv4_in, expected_ip);
}

#[test]
fn a_corrupted_header_fails_the_checksum() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder::default();
    let frames = ipv4_frames_to_host();
    for frame in &frames {
        let header_len = usize::from(frame[ETH] & 0x0f) * 4;
        // Flip one bit in each header byte but the version/IHL byte and the total length
        // (those are caught by earlier checks).
        for byte in (ETH + 4)..(ETH + header_len) {
            let mut bad = frame.to_vec();
            bad[byte] ^= 0x04;
            iface.receive_frame(Instant::ZERO, &bad, &mut transport);
        }
    }
    assert_silent(&mut iface, &transport);
    let expected: usize = frames
        .iter()
        .map(|f| usize::from(f[ETH] & 0x0f) * 4 - 4)
        .sum();
    assert_eq!(iface.stats().ipv4_bad_checksum, expected as u64);
}

#[test]
fn version_ihl_and_length_are_validated() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder::default();
    let with = |index: usize, value: u8| {
        let mut frame = fx::ECHO_REQUEST.to_vec();
        frame[ETH + index] = value;
        fix_ip_checksum(&mut frame);
        frame
    };
    iface.receive_frame(Instant::ZERO, &with(0, 0x65), &mut transport); // version 6
    iface.receive_frame(Instant::ZERO, &with(0, 0x44), &mut transport); // IHL 4
    iface.receive_frame(Instant::ZERO, &with(3, 19), &mut transport); // total length 19
    iface.receive_frame(Instant::ZERO, &with(3, 85), &mut transport); // one byte beyond
    assert_silent(&mut iface, &transport);
    let s = iface.stats();
    assert_eq!(
        (
            s.ipv4_bad_version,
            s.ipv4_bad_ihl,
            s.ipv4_bad_length,
            s.ipv4_truncated
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn ethernet_padding_after_the_datagram_is_ignored() {
    let mut iface = host_knowing_peer();
    let mut padded = fx::UDP_TO_CLOSED_PORT.to_vec();
    padded.resize(60, 0); // the minimum Ethernet frame, as a switch would pad it
    iface.receive_frame(Instant::ZERO, &padded, &mut NoTransport);
    let frames = drain(&mut iface);
    assert_same_but_ident(&frames[0], &fx::ICMP_PORT_UNREACHABLE);
}

#[test]
fn options_are_walked_safely() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder::default();
    // The captured Record Route request works (answered in frames_icmp). Malformed: the RR
    // length byte claims more than the header holds.
    let mut malformed = fx::RR_ECHO_REQUEST;
    malformed[ETH + 22] = 200;
    fix_ip_checksum(&mut malformed);
    iface.receive_frame(Instant::ZERO, &malformed, &mut transport);
    // A loose source route (kind 131) in place of the record route.
    let mut source_routed = fx::RR_ECHO_REQUEST;
    source_routed[ETH + 21] = 131;
    fix_ip_checksum(&mut source_routed);
    iface.receive_frame(Instant::ZERO, &source_routed, &mut transport);
    assert_silent(&mut iface, &transport);
    let s = iface.stats();
    assert_eq!((s.ipv4_bad_options, s.ipv4_source_routed), (1, 1));
    // Unknown options are skipped: kind 0x44 (timestamp) with a valid length.
    let mut unknown = fx::RR_ECHO_REQUEST;
    unknown[ETH + 21] = 0x44;
    fix_ip_checksum(&mut unknown);
    iface.receive_frame(Instant::ZERO, &unknown, &mut transport);
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1, "answered");
    assert!(
        ip(&frames[0]).options().is_empty(),
        "timestamp options are not reflected"
    );
}

#[test]
fn addresses_that_are_not_ours_or_not_hosts_are_dropped() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder::default();
    let with_addr = |offset: usize, addr: Ipv4Addr| {
        let mut frame = fx::ECHO_REQUEST.to_vec();
        frame[ETH + offset..ETH + offset + 4].copy_from_slice(&addr.octets());
        fix_ip_checksum(&mut frame);
        frame
    };
    let dst = |a| with_addr(16, a);
    let src = |a| with_addr(12, a);
    iface.receive_frame(
        Instant::ZERO,
        &dst(Ipv4Addr::new(10, 77, 0, 3)),
        &mut transport,
    );
    iface.receive_frame(
        Instant::ZERO,
        &dst(Ipv4Addr::new(224, 0, 0, 1)),
        &mut transport,
    );
    iface.receive_frame(Instant::ZERO, &dst(Ipv4Addr::LOCALHOST), &mut transport);
    for martian in [
        "127.0.0.1",
        "10.77.0.2",
        "224.0.0.1",
        "255.255.255.255",
        "10.77.0.255",
        "0.0.0.0",
        "240.0.0.1",
    ] {
        iface.receive_frame(
            Instant::ZERO,
            &src(martian.parse().unwrap()),
            &mut transport,
        );
    }
    // Our unicast address inside a broadcast Ethernet frame (RFC 1122 3.3.6).
    let mut in_broadcast = fx::ECHO_REQUEST;
    in_broadcast[..6].copy_from_slice(&[0xff; 6]);
    iface.receive_frame(Instant::ZERO, &in_broadcast, &mut transport);
    assert_silent(&mut iface, &transport);
    let s = iface.stats();
    assert_eq!(s.ipv4_not_for_us, 2);
    assert_eq!(s.ipv4_martian_destination, 1);
    assert_eq!(s.ipv4_martian_source, 7);
    assert_eq!(s.ipv4_unicast_in_link_broadcast, 1);
}

#[test]
fn ttl_zero_is_accepted_as_rfc_1122_requires() {
    let mut iface = host_knowing_peer();
    let mut frame = fx::ECHO_REQUEST;
    frame[ETH + 8] = 0;
    fix_ip_checksum(&mut frame);
    iface.receive_frame(Instant::ZERO, &frame, &mut NoTransport);
    assert_eq!(drain(&mut iface).len(), 1);
    assert_eq!(iface.stats().ipv4_ttl_zero_in, 1);
}

#[test]
fn ethernet_filtering() {
    let mut iface = host_knowing_peer();
    let mut transport = Recorder::default();
    let mut other_mac = fx::ECHO_REQUEST;
    other_mac[5] = 0x07;
    iface.receive_frame(Instant::ZERO, &other_mac, &mut transport);
    let mut multicast_src = fx::ECHO_REQUEST;
    multicast_src[6] = 0x01;
    iface.receive_frame(Instant::ZERO, &multicast_src, &mut transport);
    let mut ipv6 = fx::ECHO_REQUEST;
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    iface.receive_frame(Instant::ZERO, &ipv6, &mut transport);
    assert_silent(&mut iface, &transport);
    let s = iface.stats();
    assert_eq!(
        (s.eth_not_for_us, s.eth_unknown_ethertype, s.frames_in),
        (2, 1, 4)
    );
}

/// A UDP datagram from port 4000 to port 5000 with a valid checksum.
fn udp_datagram(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: 4000,
        dst_port: 5000,
    };
    let mut datagram = vec![0; repr.buffer_len(payload.len())];
    repr.emit(&mut datagram, src, dst, payload);
    datagram
}

fn udp(dst: Ipv4Addr, payload: &[u8]) -> Ipv4Send<'_> {
    Ipv4Send {
        src: None,
        dst,
        protocol: IpProtocol::Udp,
        ttl: 64,
        tos: 0,
        dont_fragment: false,
        payload,
    }
}

#[test]
fn fragmentation_on_send() {
    let mut iface = host_knowing_peer();
    let payload = big_echo_request_payload();
    // DF and too big: refused, as EMSGSIZE.
    let df = Ipv4Send {
        dont_fragment: true,
        ..udp(PEER_IP, &payload)
    };
    assert_eq!(
        iface.send_ipv4(Instant::ZERO, df),
        Err(SendError::MessageTooLong { mtu: 1500 })
    );
    assert_eq!(iface.stats().ipv4_fragmentation_needed, 1);
    assert!(drain(&mut iface).is_empty());
    // Without DF: the kernel's cut (1480 + 1480 + 48), one identification.
    iface
        .send_ipv4(Instant::ZERO, udp(PEER_IP, &payload))
        .unwrap();
    let frames = drain(&mut iface);
    let cut: Vec<_> = frames
        .iter()
        .map(|f| {
            (
                ip(f).repr.frag_offset,
                ip(f).repr.more_fragments,
                ip(f).repr.payload_len,
            )
        })
        .collect();
    assert_eq!(
        cut,
        [(0, true, 1480), (1480, true, 1480), (2960, false, 48)]
    );
    assert_eq!(reassemble(&frames), payload);
    // A datagram of exactly the MTU is not fragmented.
    iface
        .send_ipv4(Instant::ZERO, udp(PEER_IP, &payload[..1480]))
        .unwrap();
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].len(), ETH + 1500);
}

#[test]
fn a_small_mtu_cuts_on_eight_byte_boundaries() {
    let config = InterfaceConfig {
        mtu: 576,
        ..host_config()
    };
    let mut iface = Interface::with_seed(config, Instant::ZERO, 5);
    iface.receive_frame(Instant::ZERO, &fx::ARP_REQUEST, &mut NoTransport);
    drain(&mut iface);
    let payload = big_echo_request_payload();
    iface
        .send_ipv4(Instant::ZERO, udp(PEER_IP, &payload))
        .unwrap();
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 6); // 552 * 5 + 248
    for f in &frames {
        let r = ip(f).repr;
        assert!(r.total_len() <= 576);
        assert_eq!(r.frag_offset % 8, 0);
        assert!(!r.more_fragments || r.payload_len == 552);
    }
    assert_eq!(reassemble(&frames), payload);
    assert_eq!(iface.stats().ipv4_fragments_out, 6);
}

#[test]
fn routing_on_link_via_gateway_and_errors() {
    let mut iface = host_knowing_peer();
    // Off-link goes to the gateway's MAC (10.77.0.1 is the gateway and known).
    let remote = Ipv4Addr::new(192, 0, 2, 1);
    iface
        .send_ipv4(Instant::ZERO, udp(remote, b"12345678"))
        .unwrap();
    let frames = drain(&mut iface);
    assert_eq!(eth(&frames[0]).dst, PEER_MAC);
    assert_eq!(ip(&frames[0]).repr.dst_addr, remote);
    // Subnet broadcast goes to the Ethernet broadcast address without ARP.
    iface
        .send_ipv4(
            Instant::ZERO,
            udp(Ipv4Addr::new(10, 77, 0, 255), b"12345678"),
        )
        .unwrap();
    assert!(eth(&drain(&mut iface)[0]).dst.is_broadcast());
    // No gateway: no route.
    let mut isolated = Interface::with_seed(
        InterfaceConfig {
            gateway: None,
            ..host_config()
        },
        Instant::ZERO,
        1,
    );
    assert_eq!(
        isolated.send_ipv4(Instant::ZERO, udp(remote, b"x")),
        Err(SendError::NoRoute)
    );
    assert_eq!(isolated.stats().ipv4_no_route, 1);
    // Bad requests.
    let bad_src = Ipv4Send {
        src: Some(Ipv4Addr::new(10, 77, 0, 99)),
        ..udp(PEER_IP, b"x")
    };
    assert_eq!(
        iface.send_ipv4(Instant::ZERO, bad_src),
        Err(SendError::InvalidSource)
    );
    let lo_src = Ipv4Send {
        src: Some(Ipv4Addr::LOCALHOST),
        ..udp(PEER_IP, b"x")
    };
    assert_eq!(
        iface.send_ipv4(Instant::ZERO, lo_src),
        Err(SendError::InvalidSource)
    );
    let ttl0 = Ipv4Send {
        ttl: 0,
        ..udp(PEER_IP, b"x")
    };
    assert_eq!(
        iface.send_ipv4(Instant::ZERO, ttl0),
        Err(SendError::InvalidTtl)
    );
    assert_eq!(
        iface.send_ipv4(Instant::ZERO, udp(Ipv4Addr::UNSPECIFIED, b"x")),
        Err(SendError::InvalidDestination)
    );
    assert_eq!(iface.stats().ipv4_out_invalid, 4);
    assert!(drain(&mut iface).is_empty());
    assert_eq!(iface.mtu_for(PEER_IP), 1500);
    assert_eq!(iface.mtu_for(Ipv4Addr::LOCALHOST), 65535);
}

#[test]
fn loopback_never_touches_the_device() {
    let mut iface = host();
    let mut transport = Recorder {
        accept_udp: true,
        ..Recorder::default()
    };
    let small = udp_datagram(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, b"to lo");
    let big = udp_datagram(HOST_IP, HOST_IP, &[0x5a; 60000]);
    iface
        .send_ipv4(Instant::ZERO, udp(Ipv4Addr::LOCALHOST, &small))
        .unwrap();
    iface.send_ipv4(Instant::ZERO, udp(HOST_IP, &big)).unwrap();
    assert!(drain(&mut iface).is_empty(), "nothing for the device");
    assert_eq!(
        iface.poll_at(),
        Some(Instant::ZERO),
        "loopback work is due now"
    );
    iface.process_loopback(Instant::ZERO, &mut transport);
    assert_eq!(transport.udp.len(), 2);
    let (meta, data) = &transport.udp[0];
    assert!(meta.loopback);
    assert_eq!(
        (meta.src, meta.dst),
        (Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
    );
    assert_eq!(&data[..], &small[..]);
    let (meta, data) = &transport.udp[1];
    assert_eq!((meta.src, meta.dst), (HOST_IP, HOST_IP));
    assert_eq!(data.len(), 60008, "no fragmentation on the loopback");
    assert_eq!(iface.poll_at(), None);
    let s = iface.stats();
    assert_eq!((s.loopback_out, s.loopback_in, s.frames_out), (2, 2, 1));
}

#[test]
fn loopback_errors_and_echo_come_back_through_the_loopback() {
    let mut iface = host();
    let mut transport = Recorder::default();
    // UDP to a closed local port: port unreachable to ourselves.
    let mut datagram = fx::UDP_TO_CLOSED_PORT[ETH + 20..].to_vec();
    datagram[6] = 0; // no checksum: the addresses differ from the capture
    datagram[7] = 0;
    iface
        .send_ipv4(Instant::ZERO, udp(Ipv4Addr::new(127, 0, 0, 1), &datagram))
        .unwrap();
    iface.process_loopback(Instant::ZERO, &mut transport);
    assert_eq!(transport.udp.len(), 1);
    iface.process_loopback(Instant::ZERO, &mut transport);
    assert_eq!(transport.errors.len(), 1);
    assert_eq!(
        (transport.errors[0].dst_port, transport.errors[0].from),
        (Some(9), Ipv4Addr::LOCALHOST)
    );
    // An echo request to ourselves is answered.
    let echo = ip(&fx::ECHO_REQUEST).payload.to_vec();
    let ping = Ipv4Send {
        protocol: IpProtocol::Icmp,
        ..udp(HOST_IP, &echo)
    };
    iface.send_ipv4(Instant::ZERO, ping).unwrap();
    iface.process_loopback(Instant::ZERO, &mut transport);
    iface.process_loopback(Instant::ZERO, &mut transport);
    let s = iface.stats();
    assert_eq!((s.icmp_echo_replies_out, s.icmp_echo_replies_in), (1, 1));
    assert!(drain(&mut iface).is_empty());
}

#[test]
fn loopback_work_queued_during_processing_waits_for_the_next_call() {
    let mut iface = host();
    // A transport that answers every TCP segment: over the loopback that is an endless
    // ping-pong, which must advance one step per call.
    let mut transport = Recorder {
        tcp_answer: Some(vec![0u8; 20]),
        ..Recorder::default()
    };
    let segment = Ipv4Send {
        protocol: IpProtocol::Tcp,
        ..udp(Ipv4Addr::LOCALHOST, &[0u8; 20])
    };
    iface.send_ipv4(Instant::ZERO, segment).unwrap();
    for step in 1..=3 {
        iface.process_loopback(Instant::ZERO, &mut transport);
        assert_eq!(transport.tcp.len(), step);
        assert_eq!(iface.poll_at(), Some(Instant::ZERO));
    }
}

#[test]
fn every_counter_has_a_stable_name() {
    let iface = host();
    let names: Vec<&str> = iface.stats().counters().iter().map(|c| c.0).collect();
    for required in [
        "ipv4_bad_checksum",
        "frames_in",
        "frames_out",
        "icmp_echo_replies_out",
    ] {
        assert!(names.contains(&required), "{required}");
    }
    assert_eq!(names, Stats::NAMES);
    assert_eq!(eth(&fx::ECHO_REQUEST).ethertype, EtherType::Ipv4);
    assert!(matches!(
        Icmpv4Repr::parse(ip(&fx::ECHO_REQUEST).payload),
        Ok(Icmpv4Repr::EchoRequest { .. })
    ));
}
