//! UDP sockets on a `Host`, against frames captured from the Linux kernel (`nc -u`, the
//! kernel's port unreachable, a subnet broadcast) and over the stack's own loopback:
//! demultiplexing as Linux scores it, datagram boundaries, connected-socket filtering and
//! errors, receive-buffer limits, broadcast delivery, and the send-side checks.

mod frames_fixtures;
mod frames_support;

use std::net::{Ipv4Addr, SocketAddrV4};

use frames_fixtures as fx;
use frames_support::*;
use ustack::host::{Host, HostConfig, UdpSendError};
use ustack::iface::{InterfaceConfig, SendError};
use ustack::tcp::config::TcpConfig;
use ustack::tcp::connection::ConnectionError;
use ustack::time::Instant;
use ustack::udp::{UdpBinding, UdpHandle, MAX_PAYLOAD};
use ustack::wire::ethernet::HEADER_LEN as ETH;
use ustack::wire::IpProtocol;

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn host_as(mac: [u8; 6], addr: Ipv4Addr) -> Host {
    let mut host = Host::new(
        HostConfig {
            iface: InterfaceConfig {
                mac: ustack::wire::EthernetAddress(mac),
                addr,
                prefix_len: 24,
                gateway: None,
                mtu: 1500,
            },
            tcp: TcpConfig::default(),
            services: false,
        },
        Instant::ZERO,
    );
    take_frames(&mut host); // the gratuitous ARP
    host
}

/// The host 10.77.0.2 of the captures.
fn host() -> Host {
    host_as(fx::HOST_MAC, HOST_IP)
}

/// The host 10.77.0.2 after the captured ARP exchange: it knows the peer's MAC.
fn host_knowing_peer() -> Host {
    let mut host = host();
    host.receive_frame(Instant::ZERO, &fx::ARP_REQUEST);
    host.poll(Instant::ZERO);
    take_frames(&mut host); // the ARP reply
    host
}

fn take_frames(host: &mut Host) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    host.transmit(&mut |f| {
        frames.push(f.to_vec());
        true
    });
    frames
}

fn bind(host: &mut Host, ip: Ipv4Addr, port: u16) -> UdpHandle {
    host.udp_mut().open(UdpBinding {
        local: SocketAddrV4::new(ip, port),
        ipv4_native: true,
    })
}

fn recv_payload(host: &mut Host, socket: UdpHandle) -> Option<Vec<u8>> {
    host.udp_mut().recv(socket).map(|d| d.payload)
}

#[test]
fn captured_datagram_reaches_the_bound_socket() {
    let mut host = host();
    let socket = bind(&mut host, Ipv4Addr::UNSPECIFIED, 9);
    host.receive_frame(Instant::ZERO, &fx::UDP_TO_CLOSED_PORT);
    host.poll(Instant::ZERO);
    assert_eq!(host.udp_mut().take_ready(), vec![socket]);
    let datagram = host.udp_mut().recv(socket).expect("queued datagram");
    assert_eq!(datagram.from, SocketAddrV4::new(PEER_IP, 60517));
    assert_eq!(datagram.to, HOST_IP);
    assert_eq!(datagram.payload, b"hi\n");
    assert!(take_frames(&mut host).is_empty(), "no port unreachable");
    assert_eq!(host.udp().stats().in_datagrams, 1);
}

#[test]
fn closed_port_answers_with_port_unreachable() {
    let mut host = host_knowing_peer();
    bind(&mut host, Ipv4Addr::UNSPECIFIED, 10); // another port
    host.receive_frame(Instant::ZERO, &fx::UDP_TO_CLOSED_PORT);
    host.poll(Instant::ZERO);
    let frames = take_frames(&mut host);
    assert_eq!(frames.len(), 1);
    assert_same_but_ident(&frames[0], &fx::ICMP_PORT_UNREACHABLE);
}

#[test]
fn socket_bound_to_another_address_does_not_match() {
    let mut host = host_knowing_peer();
    let socket = bind(&mut host, LOCALHOST, 9);
    host.receive_frame(Instant::ZERO, &fx::UDP_TO_CLOSED_PORT);
    host.poll(Instant::ZERO);
    assert!(host.udp_mut().recv(socket).is_none());
    assert_eq!(take_frames(&mut host).len(), 1, "port unreachable");
}

/// The peer 10.77.0.1 of the captures sends "hi\n" from port 60517 to 10.77.0.2:9: our
/// datagram must be the kernel's, byte for byte (but the IP identification), and the kernel's
/// port unreachable must come back to the connected socket as ECONNREFUSED.
#[test]
fn sent_datagram_and_refusal_match_the_kernel() {
    let mut peer = host_as(fx::PEER_MAC, PEER_IP);
    let socket = bind(&mut peer, PEER_IP, 60517);
    let remote = SocketAddrV4::new(HOST_IP, 9);
    peer.udp_mut().set_peer(socket, Some(remote));
    peer.udp_send(Instant::ZERO, socket, None, b"hi\n").unwrap();
    peer.poll(Instant::ZERO);
    let arp = take_frames(&mut peer);
    assert_eq!(arp.len(), 1, "ARP request while the datagram waits");
    peer.receive_frame(Instant::ZERO, &fx::ARP_REPLY);
    peer.poll(Instant::ZERO);
    let frames = take_frames(&mut peer);
    assert_eq!(frames.len(), 1);
    assert_same_but_ident(&frames[0], &fx::UDP_TO_CLOSED_PORT);
    assert_eq!(peer.udp().stats().out_datagrams, 1);

    peer.receive_frame(Instant::ZERO, &fx::ICMP_PORT_UNREACHABLE);
    assert_eq!(peer.udp_mut().take_ready(), vec![socket]);
    assert_eq!(
        peer.udp_mut().take_error(socket),
        Some(ConnectionError::Refused)
    );
    assert_eq!(peer.udp_mut().take_error(socket), None, "reported once");
}

#[test]
fn unconnected_socket_ignores_port_unreachable() {
    let mut peer = host_as(fx::PEER_MAC, PEER_IP);
    let socket = bind(&mut peer, Ipv4Addr::UNSPECIFIED, 60517);
    peer.receive_frame(Instant::ZERO, &fx::ICMP_PORT_UNREACHABLE);
    assert!(peer.udp_mut().take_ready().is_empty());
    assert_eq!(peer.udp_mut().take_error(socket), None);
}

#[test]
fn socket_connected_elsewhere_ignores_the_error() {
    let mut peer = host_as(fx::PEER_MAC, PEER_IP);
    let socket = bind(&mut peer, Ipv4Addr::UNSPECIFIED, 60517);
    peer.udp_mut()
        .set_peer(socket, Some(SocketAddrV4::new(HOST_IP, 10)));
    peer.receive_frame(Instant::ZERO, &fx::ICMP_PORT_UNREACHABLE);
    assert_eq!(peer.udp_mut().take_error(socket), None);
}

#[test]
fn loopback_keeps_datagram_boundaries_and_source() {
    let mut host = host();
    let receiver = bind(&mut host, LOCALHOST, 5000);
    let sender = bind(&mut host, Ipv4Addr::UNSPECIFIED, 40000);
    let to = Some(SocketAddrV4::new(LOCALHOST, 5000));
    for len in [10usize, 0, 1472, MAX_PAYLOAD] {
        host.udp_send(Instant::ZERO, sender, to, &vec![len as u8; len])
            .unwrap();
    }
    host.poll(Instant::ZERO);
    for len in [10usize, 0, 1472, MAX_PAYLOAD] {
        let datagram = host.udp_mut().recv(receiver).expect("datagram");
        assert_eq!(datagram.payload.len(), len);
        assert!(datagram.payload.iter().all(|&b| b == len as u8));
        assert_eq!(datagram.from, SocketAddrV4::new(LOCALHOST, 40000));
    }
    assert!(host.udp_mut().recv(receiver).is_none());
    assert!(take_frames(&mut host).is_empty(), "nothing left the host");
}

#[test]
fn connected_socket_receives_only_from_its_peer() {
    let mut host = host();
    let socket = bind(&mut host, LOCALHOST, 5000);
    let peer = bind(&mut host, LOCALHOST, 5001);
    let stranger = bind(&mut host, LOCALHOST, 5002);
    host.udp_mut()
        .set_peer(socket, Some(SocketAddrV4::new(LOCALHOST, 5001)));
    let to = Some(SocketAddrV4::new(LOCALHOST, 5000));
    host.udp_send(Instant::ZERO, stranger, to, b"stranger")
        .unwrap();
    host.udp_send(Instant::ZERO, peer, to, b"peer").unwrap();
    host.poll(Instant::ZERO);
    assert_eq!(
        recv_payload(&mut host, socket).as_deref(),
        Some(&b"peer"[..])
    );
    assert_eq!(recv_payload(&mut host, socket), None);
    // The stranger's datagram found no socket: port unreachable back to the stranger, which
    // is not connected and so hears nothing of it.
    assert_eq!(host.udp_mut().take_error(stranger), None);
}

#[test]
fn connected_socket_to_a_closed_port_gets_econnrefused() {
    let mut host = host();
    let socket = bind(&mut host, LOCALHOST, 5000);
    host.udp_mut()
        .set_peer(socket, Some(SocketAddrV4::new(LOCALHOST, 5999)));
    host.udp_send(Instant::ZERO, socket, None, b"ping").unwrap();
    host.poll(Instant::ZERO);
    assert_eq!(
        host.udp_mut().take_error(socket),
        Some(ConnectionError::Refused)
    );
}

#[test]
fn specific_binding_beats_wildcard_and_ipv4_beats_dual_stack() {
    let mut host = host();
    let dual = host.udp_mut().open(UdpBinding {
        local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7000),
        ipv4_native: false,
    });
    let wildcard = bind(&mut host, Ipv4Addr::UNSPECIFIED, 7000);
    let sender = bind(&mut host, LOCALHOST, 7001);
    let to = Some(SocketAddrV4::new(LOCALHOST, 7000));
    host.udp_send(Instant::ZERO, sender, to, b"1").unwrap();
    host.poll(Instant::ZERO);
    assert_eq!(
        recv_payload(&mut host, wildcard).as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(recv_payload(&mut host, dual), None);

    let specific = bind(&mut host, LOCALHOST, 7000);
    host.udp_send(Instant::ZERO, sender, to, b"2").unwrap();
    host.poll(Instant::ZERO);
    assert_eq!(
        recv_payload(&mut host, specific).as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(recv_payload(&mut host, wildcard), None);

    // Among equals (SO_REUSEADDR), the most recent binding wins, as on Linux.
    let newer = bind(&mut host, LOCALHOST, 7000);
    host.udp_send(Instant::ZERO, sender, to, b"3").unwrap();
    host.poll(Instant::ZERO);
    assert_eq!(recv_payload(&mut host, newer).as_deref(), Some(&b"3"[..]));
    host.udp_mut().close(newer);
    host.udp_send(Instant::ZERO, sender, to, b"4").unwrap();
    host.poll(Instant::ZERO);
    assert_eq!(
        recv_payload(&mut host, specific).as_deref(),
        Some(&b"4"[..])
    );
}

#[test]
fn receive_buffer_overflow_drops_and_counts() {
    let mut host = host();
    let receiver = bind(&mut host, LOCALHOST, 5000);
    host.udp_mut().set_rcvbuf(receiver, 4096);
    let sender = bind(&mut host, LOCALHOST, 5001);
    let to = Some(SocketAddrV4::new(LOCALHOST, 5000));
    for _ in 0..10 {
        host.udp_send(Instant::ZERO, sender, to, &[0; 1000])
            .unwrap();
        host.poll(Instant::ZERO);
    }
    let queued = host.udp().queued(receiver);
    assert!((1..10).contains(&queued), "{queued} queued");
    assert_eq!(host.udp().stats().rcvbuf_errors, 10 - queued as u64);
    // Reading makes room again.
    while host.udp_mut().recv(receiver).is_some() {}
    host.udp_send(Instant::ZERO, sender, to, b"again").unwrap();
    host.poll(Instant::ZERO);
    assert_eq!(
        recv_payload(&mut host, receiver).as_deref(),
        Some(&b"again"[..])
    );
}

#[test]
fn broadcast_goes_to_every_wildcard_socket_and_is_never_refused() {
    let mut host = host();
    let a = bind(&mut host, Ipv4Addr::UNSPECIFIED, 9);
    let b = bind(&mut host, Ipv4Addr::UNSPECIFIED, 9);
    let unicast_only = bind(&mut host, HOST_IP, 9);
    host.receive_frame(Instant::ZERO, &fx::BROADCAST_UDP);
    host.poll(Instant::ZERO);
    assert_eq!(recv_payload(&mut host, a).as_deref(), Some(&b"hi\n"[..]));
    assert_eq!(recv_payload(&mut host, b).as_deref(), Some(&b"hi\n"[..]));
    assert_eq!(recv_payload(&mut host, unicast_only), None);

    let mut lonely = self::host();
    lonely.receive_frame(Instant::ZERO, &fx::BROADCAST_UDP);
    lonely.poll(Instant::ZERO);
    assert!(
        take_frames(&mut lonely).is_empty(),
        "no ICMP about a broadcast"
    );
}

#[test]
fn send_checks_match_linux() {
    let mut host = host();
    let socket = bind(&mut host, Ipv4Addr::UNSPECIFIED, 5000);
    let now = Instant::ZERO;
    assert_eq!(
        host.udp_send(now, socket, None, b"x"),
        Err(UdpSendError::NoDestination)
    );
    let closed = Some(SocketAddrV4::new(LOCALHOST, 9));
    assert_eq!(
        host.udp_send(now, socket, closed, &vec![0; MAX_PAYLOAD + 1]),
        Err(UdpSendError::TooLarge)
    );
    assert_eq!(
        host.udp_send(now, socket, Some(SocketAddrV4::new(LOCALHOST, 0)), b"x"),
        Err(UdpSendError::InvalidPort)
    );
    for broadcast in [Ipv4Addr::BROADCAST, Ipv4Addr::new(10, 77, 0, 255)] {
        let to = Some(SocketAddrV4::new(broadcast, 9));
        assert_eq!(
            host.udp_send(now, socket, to, b"x"),
            Err(UdpSendError::BroadcastNotAllowed)
        );
        host.udp_mut().set_broadcast(socket, true);
        assert_eq!(host.udp_send(now, socket, to, b"x"), Ok(()));
        host.udp_mut().set_broadcast(socket, false);
    }
    let loopback_bound = bind(&mut host, LOCALHOST, 5001);
    assert_eq!(
        host.udp_send(
            now,
            loopback_bound,
            Some(SocketAddrV4::new(PEER_IP, 9)),
            b"x"
        ),
        Err(UdpSendError::Interface(SendError::InvalidSource))
    );
    assert_eq!(
        host.udp_send(
            now,
            socket,
            Some(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9)),
            b"x"
        ),
        Err(UdpSendError::Interface(SendError::NoRoute))
    );
}

/// A datagram larger than the MTU leaves in fragments without DF (Linux's IP_PMTUDISC_WANT);
/// one that fits carries DF, as the kernel's own `nc -u` datagram does.
#[test]
fn large_datagrams_are_fragmented_small_ones_carry_df() {
    let mut host = host_knowing_peer();
    let socket = bind(&mut host, Ipv4Addr::UNSPECIFIED, 5000);
    let to = Some(SocketAddrV4::new(PEER_IP, 9));
    host.udp_send(Instant::ZERO, socket, to, &[7; 1472])
        .unwrap();
    host.udp_send(Instant::ZERO, socket, to, &[7; 1473])
        .unwrap();
    host.poll(Instant::ZERO);
    let frames = take_frames(&mut host);
    assert_eq!(frames.len(), 3);
    let first = ip(&frames[0]).repr;
    assert!(first.dont_fragment && !first.more_fragments);
    assert_eq!(first.protocol, IpProtocol::Udp);
    assert_eq!(frames[0].len(), ETH + 1500);
    let (a, b) = (ip(&frames[1]).repr, ip(&frames[2]).repr);
    assert!(!a.dont_fragment && a.more_fragments && a.frag_offset == 0);
    assert!(!b.dont_fragment && !b.more_fragments && b.frag_offset > 0);
    let reassembled = reassemble(&frames[1..]);
    assert_eq!(reassembled.len(), 8 + 1473);
}

#[test]
fn closed_socket_gets_nothing_and_its_handle_is_dead() {
    let mut host = host();
    let socket = bind(&mut host, LOCALHOST, 5000);
    let sender = bind(&mut host, LOCALHOST, 5001);
    host.udp_mut().close(socket);
    let reused = bind(&mut host, LOCALHOST, 5002);
    assert_ne!(socket, reused);
    assert_eq!(
        host.udp_send(
            Instant::ZERO,
            socket,
            Some(SocketAddrV4::new(LOCALHOST, 5001)),
            b"x"
        ),
        Err(UdpSendError::NoSocket)
    );
    host.udp_send(
        Instant::ZERO,
        sender,
        Some(SocketAddrV4::new(LOCALHOST, 5000)),
        b"x",
    )
    .unwrap();
    host.poll(Instant::ZERO);
    assert!(host.udp_mut().recv(reused).is_none());
    assert_eq!(host.udp().socket_count(), 2);
}
