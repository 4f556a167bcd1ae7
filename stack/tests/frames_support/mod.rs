//! Helpers shared by the `frames_*` and `fuzz_*` tests: an interface configured as the host
//! 10.77.0.2 of the captures, a transport that records what it is given, and frame accessors.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use ustack::iface::{
    IcmpError, Interface, InterfaceConfig, InterfaceTx, Ipv4Meta, Ipv4Send, Transport,
};
use ustack::time::Instant;
use ustack::wire::checksum;
use ustack::wire::ethernet::HEADER_LEN as ETH;
use ustack::wire::{EthernetAddress, EthernetRepr, IpProtocol, Ipv4Packet};

use crate::frames_fixtures as fx;

pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const PEER_MAC: EthernetAddress = EthernetAddress(fx::PEER_MAC);
pub const HOST_MAC: EthernetAddress = EthernetAddress(fx::HOST_MAC);

/// 10.77.0.2/24 with MAC 02:00:00:00:00:02, gateway 10.77.0.1, MTU 1500: the kernel host of
/// the captures.
pub fn host_config() -> InterfaceConfig {
    InterfaceConfig {
        mac: HOST_MAC,
        addr: HOST_IP,
        prefix_len: 24,
        gateway: Some(PEER_IP),
        mtu: 1500,
    }
}

/// An interface playing 10.77.0.2 at t=0 whose start-up frames (the gratuitous ARP) have been
/// taken off.
pub fn host() -> Interface {
    let mut iface = Interface::with_seed(host_config(), Instant::ZERO, 1);
    drain(&mut iface);
    iface
}

/// An interface playing 10.77.0.2 that already knows the peer's MAC (as after the captured
/// ARP exchange).
pub fn host_knowing_peer() -> Interface {
    let mut iface = host();
    iface.receive_frame(Instant::ZERO, &fx::ARP_REQUEST, &mut Recorder::default());
    drain(&mut iface);
    assert_eq!(iface.neighbor(PEER_IP), Some(PEER_MAC));
    iface
}

/// Every frame the interface has queued, in order.
pub fn drain(iface: &mut Interface) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    iface.transmit(&mut |f| {
        frames.push(f.to_vec());
        true
    });
    frames
}

/// A frame's Ethernet header.
pub fn eth(frame: &[u8]) -> EthernetRepr {
    EthernetRepr::parse(frame).expect("Ethernet header").0
}

/// A frame's IPv4 datagram, validated (checksum included).
pub fn ip(frame: &[u8]) -> Ipv4Packet<'_> {
    Ipv4Packet::parse(&frame[ETH..]).expect("valid IPv4 datagram")
}

/// Asserts that two IPv4 frames are identical except for the IP identification and the
/// header checksum (which follows from it), and that our checksum verifies.
pub fn assert_same_but_ident(ours: &[u8], kernel: &[u8]) {
    assert_eq!(ours.len(), kernel.len(), "frame length");
    assert_eq!(&ours[..ETH], &kernel[..ETH], "Ethernet header");
    let ours_ip = ip(ours);
    let kernel_ip = ip(kernel);
    let (o, k) = (ours_ip.repr, kernel_ip.repr);
    assert_eq!(o.src_addr, k.src_addr, "source");
    assert_eq!(o.dst_addr, k.dst_addr, "destination");
    assert_eq!(o.protocol, k.protocol, "protocol");
    assert_eq!(o.tos, k.tos, "TOS");
    assert_eq!(o.ttl, k.ttl, "TTL");
    assert_eq!(o.dont_fragment, k.dont_fragment, "DF");
    assert_eq!(o.more_fragments, k.more_fragments, "MF");
    assert_eq!(o.frag_offset, k.frag_offset, "fragment offset");
    assert_eq!(o.header_len, k.header_len, "header length");
    assert_eq!(o.payload_len, k.payload_len, "total length");
    assert_eq!(ours_ip.options(), kernel_ip.options(), "options");
    assert_eq!(
        checksum::checksum(ours_ip.header),
        0,
        "header checksum verifies"
    );
    assert_eq!(ours_ip.payload, kernel_ip.payload, "payload");
}

/// Recomputes the IPv4 header checksum of a frame after a test edited the header.
pub fn fix_ip_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[ETH] & 0x0f) * 4;
    frame[ETH + 10] = 0;
    frame[ETH + 11] = 0;
    let sum = checksum::checksum(&frame[ETH..ETH + ihl]);
    frame[ETH + 10..ETH + 12].copy_from_slice(&sum.to_be_bytes());
}

/// A transport that records everything and optionally accepts UDP or answers TCP.
#[derive(Default)]
pub struct Recorder {
    pub tcp: Vec<(Ipv4Meta, Vec<u8>)>,
    pub udp: Vec<(Ipv4Meta, Vec<u8>)>,
    pub errors: Vec<IcmpError>,
    /// Claim every UDP datagram (no port unreachable).
    pub accept_udp: bool,
    /// Answer each TCP segment by sending this payload back from inside the callback.
    pub tcp_answer: Option<Vec<u8>>,
}

impl Transport for Recorder {
    fn tcp(&mut self, now: Instant, ip: &Ipv4Meta, segment: &[u8], tx: &mut InterfaceTx<'_>) {
        self.tcp.push((*ip, segment.to_vec()));
        if let Some(answer) = &self.tcp_answer {
            tx.send_ipv4(
                now,
                Ipv4Send {
                    src: Some(ip.dst),
                    dst: ip.src,
                    protocol: IpProtocol::Tcp,
                    ttl: 64,
                    tos: 0,
                    dont_fragment: true,
                    payload: answer,
                },
            )
            .expect("answer from inside tcp()");
        }
    }

    fn udp(&mut self, _: Instant, ip: &Ipv4Meta, datagram: &[u8]) -> bool {
        self.udp.push((*ip, datagram.to_vec()));
        self.accept_udp
    }

    fn icmp_error(&mut self, _: Instant, error: &IcmpError) {
        self.errors.push(*error);
    }
}

pub fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1000)
}

/// A fragment built on the IPv4 header of `template` (a captured frame without options):
/// same addresses, identification, TTL and protocol, with this offset, MF flag and data.
pub fn fragment(template: &[u8], offset: usize, data: &[u8], more: bool) -> Vec<u8> {
    let mut frame = template[..ETH + 20].to_vec();
    frame.extend_from_slice(data);
    let total = u16::try_from(20 + data.len()).expect("fragment fits");
    frame[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
    let mut flags = u16::try_from(offset / 8).expect("offset fits");
    if more {
        flags |= 0x2000;
    }
    frame[ETH + 6..ETH + 8].copy_from_slice(&flags.to_be_bytes());
    fix_ip_checksum(&mut frame);
    frame
}

/// The 3008-byte ICMP echo request of `ping -s 3000`, from its three captured fragments.
pub fn big_echo_request_payload() -> Vec<u8> {
    [
        &fx::FRAG_REQUEST_0[..],
        &fx::FRAG_REQUEST_1,
        &fx::FRAG_REQUEST_2,
    ]
    .iter()
    .flat_map(|f| ip(f).payload.to_vec())
    .collect()
}

/// Puts fragment frames back together (sorted by offset, checked contiguous): the payload.
pub fn reassemble(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut pieces: Vec<(u16, bool, Vec<u8>)> = frames
        .iter()
        .map(|f| {
            let p = ip(f);
            (
                p.repr.frag_offset,
                p.repr.more_fragments,
                p.payload.to_vec(),
            )
        })
        .collect();
    pieces.sort_by_key(|p| p.0);
    let mut payload = Vec::new();
    for (i, (offset, more, data)) in pieces.iter().enumerate() {
        assert_eq!(usize::from(*offset), payload.len(), "contiguous fragments");
        assert_eq!(*more, i + 1 < pieces.len(), "MF on all but the last");
        payload.extend_from_slice(data);
    }
    payload
}
