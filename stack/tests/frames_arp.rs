//! ARP (RFC 826) against frames captured from the Linux kernel: answering requests, the
//! gratuitous announcement, resolution with retries and a bounded queue, failure reported as
//! ICMP host unreachable to the local sender, and unicast re-validation of stale entries.

mod frames_fixtures;
mod frames_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use frames_fixtures as fx;
use frames_support::*;
use ustack::iface::{IcmpErrorKind, Interface, InterfaceConfig, Ipv4Send, SendError};
use ustack::time::Instant;
use ustack::wire::ethernet::HEADER_LEN as ETH;
use ustack::wire::icmpv4::DstUnreachable;
use ustack::wire::{ArpOperation, ArpRepr, EthernetAddress, IpProtocol};

/// An interface playing the peer, 10.77.0.1 with MAC 02:00:00:00:00:01: its ARP traffic must
/// be byte for byte what the kernel sent in that role.
fn peer() -> Interface {
    let config = InterfaceConfig {
        mac: PEER_MAC,
        addr: PEER_IP,
        prefix_len: 24,
        gateway: None,
        mtu: 1500,
    };
    Interface::with_seed(config, Instant::ZERO, 1)
}

fn udp_payload() -> &'static [u8] {
    &fx::UDP_TO_CLOSED_PORT[ETH + 20..]
}

fn send_udp(
    iface: &mut Interface,
    now: Instant,
    dst: Ipv4Addr,
    payload: &[u8],
) -> Result<(), SendError> {
    iface.send_ipv4(
        now,
        Ipv4Send {
            src: None,
            dst,
            protocol: IpProtocol::Udp,
            ttl: 64,
            tos: 0,
            dont_fragment: true,
            payload,
        },
    )
}

fn arp(frame: &[u8]) -> ArpRepr {
    ArpRepr::parse(&frame[ETH..]).expect("an ARP packet")
}

#[test]
fn answers_a_request_exactly_like_the_kernel() {
    let mut iface = host();
    iface.receive_frame(Instant::ZERO, &fx::ARP_REQUEST, &mut Recorder::default());
    assert_eq!(drain(&mut iface), [fx::ARP_REPLY.to_vec()]);
    // The requester is learned (RFC 826 merge; Linux creates a STALE entry).
    assert_eq!(iface.neighbor(PEER_IP), Some(PEER_MAC));
    let s = iface.stats();
    assert_eq!((s.arp_in, s.arp_requests_in, s.arp_replies_out), (1, 1, 1));
    assert_eq!(s.frames_out, 2, "the gratuitous ARP at start and the reply");
}

#[test]
fn answers_a_unicast_probe_like_the_kernel() {
    let mut iface = host();
    iface.receive_frame(
        Instant::ZERO,
        &fx::PEER_UNICAST_PROBE,
        &mut Recorder::default(),
    );
    assert_eq!(drain(&mut iface), [fx::PEER_UNICAST_PROBE_REPLY.to_vec()]);
}

#[test]
fn gratuitous_arp_at_start_is_the_kernels_announcement() {
    let mut iface = peer();
    assert!(iface.poll_at().is_some(), "output queued: poll now");
    assert_eq!(drain(&mut iface), [fx::GRATUITOUS_ARP.to_vec()]);
    assert_eq!(iface.stats().arp_requests_out, 1);
    assert_eq!(iface.poll_at(), None);
}

#[test]
fn resolves_with_the_kernels_request_and_flushes_the_queue_on_reply() {
    let mut iface = peer();
    drain(&mut iface);
    send_udp(&mut iface, Instant::ZERO, HOST_IP, udp_payload()).unwrap();
    // The datagram waits; the broadcast request is what the kernel sent.
    assert_eq!(drain(&mut iface), [fx::ARP_REQUEST.to_vec()]);
    assert_eq!(iface.poll_at(), Some(secs(1)), "first retry");
    iface.receive_frame(
        Instant::from_millis(3),
        &fx::ARP_REPLY,
        &mut Recorder::default(),
    );
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    assert_same_but_ident(&frames[0], &fx::UDP_TO_CLOSED_PORT);
    assert_eq!(iface.neighbor(HOST_IP), Some(HOST_MAC));
    assert_eq!(iface.stats().arp_resolved, 1);
    assert_eq!(iface.poll_at(), None, "resolved: no timer left");
    // Later datagrams go straight out.
    send_udp(&mut iface, Instant::from_millis(4), HOST_IP, udp_payload()).unwrap();
    assert_eq!(eth(&drain(&mut iface)[0]).dst, HOST_MAC);
}

#[test]
fn failed_resolution_retries_three_times_then_reports_host_unreachable() {
    let mut iface = peer();
    drain(&mut iface);
    let nobody = Ipv4Addr::new(10, 77, 0, 9);
    send_udp(&mut iface, Instant::ZERO, nobody, udp_payload()).unwrap();
    send_udp(&mut iface, Instant::ZERO, nobody, udp_payload()).unwrap();
    let mut requests = drain(&mut iface);
    for t in 1..=3 {
        assert_eq!(iface.poll_at(), Some(secs(t)));
        iface.handle_timeout(secs(t));
        requests.extend(drain(&mut iface));
    }
    // Three broadcast requests, one second apart (Linux mcast_solicit=3, retrans_time 1 s).
    assert_eq!(requests.len(), 3);
    for frame in &requests {
        assert_eq!(eth(frame).dst, EthernetAddress::BROADCAST);
        let request = arp(frame);
        assert_eq!(request.operation, ArpOperation::Request);
        assert_eq!(request.target_protocol_addr, nobody);
    }
    let s = iface.stats();
    assert_eq!(
        (s.arp_timeout, s.arp_queue_dropped, s.arp_requests_out),
        (1, 2, 4)
    );
    // The local sender hears about it through the loopback, not the device.
    assert_eq!(iface.poll_at(), Some(secs(3)));
    let mut transport = Recorder::default();
    iface.process_loopback(secs(3), &mut transport);
    assert!(drain(&mut iface).is_empty());
    assert_eq!(transport.errors.len(), 2);
    for error in &transport.errors {
        assert_eq!(
            error.kind,
            IcmpErrorKind::DstUnreachable(DstUnreachable::HostUnreachable)
        );
        assert_eq!((error.icmp_type, error.code), (3, 1));
        assert_eq!(
            (error.protocol, error.src, error.dst),
            (IpProtocol::Udp, PEER_IP, nobody)
        );
        assert_eq!((error.src_port, error.dst_port), (Some(60517), Some(9)));
        assert_eq!(error.from, PEER_IP);
    }
    assert_eq!(iface.poll_at(), None);
    assert_eq!(iface.neighbor(nobody), None);
}

#[test]
fn the_queue_keeps_the_newest_three_datagrams() {
    let mut iface = peer();
    drain(&mut iface);
    for marker in 0..5u8 {
        let mut payload = udp_payload().to_vec();
        payload[8] = marker; // first data byte
        payload[6] = 0; // no UDP checksum: the payload changes
        payload[7] = 0;
        send_udp(&mut iface, Instant::ZERO, HOST_IP, &payload).unwrap();
    }
    assert_eq!(iface.stats().arp_queue_full, 2);
    drain(&mut iface);
    iface.receive_frame(Instant::ZERO, &fx::ARP_REPLY, &mut Recorder::default());
    let markers: Vec<u8> = drain(&mut iface).iter().map(|f| ip(f).payload[8]).collect();
    assert_eq!(
        markers,
        [2, 3, 4],
        "Linux drops the oldest waiting datagram"
    );
}

#[test]
fn stale_entry_is_revalidated_with_the_kernels_unicast_probe() {
    let mut iface = host_knowing_peer();
    // Using the entry learned from the peer's request: the datagram goes out at once and the
    // entry is probed after the 5 s delay (Linux delay_first_probe_time).
    send_udp(&mut iface, Instant::ZERO, PEER_IP, udp_payload()).unwrap();
    assert_eq!(eth(&drain(&mut iface)[0]).dst, PEER_MAC);
    assert_eq!(iface.poll_at(), Some(secs(5)));
    iface.handle_timeout(secs(5));
    assert_eq!(drain(&mut iface), [fx::HOST_UNICAST_PROBE.to_vec()]);
    iface.receive_frame(
        secs(5),
        &fx::HOST_UNICAST_PROBE_REPLY,
        &mut Recorder::default(),
    );
    assert_eq!(iface.poll_at(), None, "confirmed: reachable for 30 s");
    // 30 s later the entry is stale again; unanswered probes remove it.
    send_udp(&mut iface, secs(35), PEER_IP, udp_payload()).unwrap();
    drain(&mut iface);
    for t in [40, 41, 42, 43] {
        iface.handle_timeout(secs(t));
    }
    let probes = drain(&mut iface);
    assert_eq!(probes.len(), 3, "ucast_solicit = 3");
    assert!(probes.iter().all(|f| eth(f).dst == PEER_MAC));
    assert_eq!(iface.neighbor(PEER_IP), None);
    assert_eq!(iface.stats().arp_timeout, 1);
    // The next datagram starts a broadcast resolution.
    send_udp(&mut iface, secs(44), PEER_IP, udp_payload()).unwrap();
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    assert_eq!(eth(&frames[0]).dst, EthernetAddress::BROADCAST);
}

#[test]
fn gratuitous_arp_updates_a_known_neighbour() {
    let mut iface = host_knowing_peer();
    let new_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x77]);
    let mut announcement = fx::GRATUITOUS_ARP;
    announcement[6..12].copy_from_slice(&new_mac.0);
    announcement[22..28].copy_from_slice(&new_mac.0);
    iface.receive_frame(Instant::ZERO, &announcement, &mut Recorder::default());
    assert_eq!(iface.neighbor(PEER_IP), Some(new_mac));
    assert!(
        drain(&mut iface).is_empty(),
        "announcements are not answered"
    );
    // An announcement from a host we do not know creates nothing (Linux arp_accept=0).
    let mut iface = host();
    iface.receive_frame(Instant::ZERO, &fx::GRATUITOUS_ARP, &mut Recorder::default());
    assert_eq!(iface.neighbor(PEER_IP), None);
}

#[test]
fn bad_and_foreign_arp_is_counted_not_answered() {
    let mut iface = host();
    let mut t = Recorder::default();
    // A request for another address.
    let mut other_target = fx::ARP_REQUEST;
    other_target[41] = 3;
    iface.receive_frame(Instant::ZERO, &other_target, &mut t);
    // Every truncation of the ARP packet.
    for len in ETH..fx::ARP_REQUEST.len() {
        iface.receive_frame(Instant::ZERO, &fx::ARP_REQUEST[..len], &mut t);
    }
    // A broadcast sender MAC.
    let mut bad_sender = fx::ARP_REQUEST;
    bad_sender[22..28].copy_from_slice(&[0xff; 6]);
    iface.receive_frame(Instant::ZERO, &bad_sender, &mut t);
    // Someone else claiming our address.
    let mut conflict = fx::GRATUITOUS_ARP;
    conflict[28..32].copy_from_slice(&HOST_IP.octets());
    conflict[38..42].copy_from_slice(&HOST_IP.octets());
    iface.receive_frame(Instant::ZERO, &conflict, &mut t);
    // An unknown opcode and an unsupported hardware type.
    let mut unknown_op = fx::ARP_REQUEST;
    unknown_op[21] = 9;
    iface.receive_frame(Instant::ZERO, &unknown_op, &mut t);
    let mut token_ring = fx::ARP_REQUEST;
    token_ring[15] = 6;
    iface.receive_frame(Instant::ZERO, &token_ring, &mut t);
    // A request unicast to another station's MAC.
    let mut not_our_mac = fx::PEER_UNICAST_PROBE;
    not_our_mac[5] = 0x33;
    iface.receive_frame(Instant::ZERO, &not_our_mac, &mut t);

    assert!(drain(&mut iface).is_empty());
    let s = iface.stats();
    assert_eq!(s.arp_truncated, 28);
    assert_eq!(s.arp_bad_sender, 1);
    assert_eq!(s.arp_address_conflict, 1);
    assert_eq!(s.arp_unknown_operation, 1);
    assert_eq!(s.arp_unsupported, 1);
    assert_eq!(s.eth_not_for_us, 1);
    assert_eq!(s.arp_replies_out, 0);
    assert_eq!(
        iface.neighbor(PEER_IP),
        None,
        "a request for someone else teaches nothing"
    );
}

#[test]
fn address_probe_from_zero_is_answered_without_learning() {
    // RFC 5227 probe: sender 0.0.0.0 asking for our address. Linux answers it.
    let mut iface = host();
    let mut probe = fx::ARP_REQUEST;
    probe[28..32].copy_from_slice(&[0, 0, 0, 0]);
    iface.receive_frame(Instant::ZERO, &probe, &mut Recorder::default());
    let frames = drain(&mut iface);
    assert_eq!(frames.len(), 1);
    let reply = arp(&frames[0]);
    assert_eq!(reply.operation, ArpOperation::Reply);
    assert_eq!(reply.target_protocol_addr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(reply.target_hardware_addr, PEER_MAC);
    assert_eq!(iface.neighbor(Ipv4Addr::UNSPECIFIED), None);
}

#[test]
fn arp_timers_drive_poll_at() {
    let mut iface = peer();
    drain(&mut iface);
    send_udp(&mut iface, Instant::ZERO, HOST_IP, udp_payload()).unwrap();
    assert_eq!(
        iface.poll_at(),
        Some(Instant::ZERO),
        "the request is waiting for the device"
    );
    drain(&mut iface);
    assert_eq!(iface.poll_at(), Some(secs(1)));
    iface.handle_timeout(secs(1) - Duration::from_millis(1));
    assert!(drain(&mut iface).is_empty(), "nothing before the deadline");
}
