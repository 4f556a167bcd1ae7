//! Fuzz-style robustness test: a few hundred thousand random and mutated frames (mutations
//! of the kernel captures in `frames_fixtures`) go into one `Interface` while time advances,
//! the device sometimes refuses frames and a transport answers and sends at random.
//!
//! Checked after every step: no panic; every bound in `iface::limits` holds; `poll_at` is
//! "now or earlier" whenever output is queued; every frame the interface transmits is
//! well-formed (our MAC as source, a valid IPv4 header within the MTU, or a valid ARP packet).
//! At the end, after time has run on, all reassembly and ARP queues are empty again.
//!
//! `USTACK_FUZZ_FRAMES` sets the number of frames (default 300000, about 10 s in a debug
//! build), `USTACK_FUZZ_SEED` the seed (printed, so a failure can be replayed).

mod frames_fixtures;
mod frames_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use frames_fixtures as fx;
use frames_support::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ustack::iface::{limits, IcmpError, Interface, InterfaceTx, Ipv4Meta, Ipv4Send, Transport};
use ustack::time::Instant;
use ustack::wire::checksum;
use ustack::wire::ethernet::HEADER_LEN as ETH;
use ustack::wire::{ArpRepr, EtherType, EthernetRepr, IpProtocol, Ipv4Packet};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Addresses worth hitting: ours, the peer, broadcast, loopback, unspecified, multicast,
/// off-link, another on-link host.
const ADDRESSES: [Ipv4Addr; 9] = [
    HOST_IP,
    PEER_IP,
    Ipv4Addr::new(10, 77, 0, 255),
    Ipv4Addr::BROADCAST,
    Ipv4Addr::LOCALHOST,
    Ipv4Addr::UNSPECIFIED,
    Ipv4Addr::new(224, 0, 0, 1),
    Ipv4Addr::new(192, 0, 2, 7),
    Ipv4Addr::new(10, 77, 0, 9),
];

/// A transport that accepts UDP at random, answers TCP at random from inside the callback
/// (to the loopback too, so loopback traffic loops), and counts ICMP errors.
struct FuzzTransport {
    rng: SmallRng,
    errors: u64,
}

impl Transport for FuzzTransport {
    fn tcp(&mut self, now: Instant, ip: &Ipv4Meta, segment: &[u8], tx: &mut InterfaceTx<'_>) {
        if self.rng.gen_ratio(1, 3) {
            let len = self.rng.gen_range(0..segment.len().max(1) * 2);
            let payload = vec![0xab; len.min(4000)];
            let _ = tx.send_ipv4(
                now,
                Ipv4Send {
                    src: Some(ip.dst),
                    dst: ip.src,
                    protocol: IpProtocol::Tcp,
                    ttl: 64,
                    tos: 0,
                    dont_fragment: self.rng.gen(),
                    payload: &payload,
                },
            );
        }
    }

    fn udp(&mut self, _: Instant, _: &Ipv4Meta, _: &[u8]) -> bool {
        self.rng.gen_ratio(1, 4)
    }

    fn icmp_error(&mut self, _: Instant, _: &IcmpError) {
        self.errors += 1;
    }
}

fn fix_checksums(frame: &mut [u8], rng: &mut SmallRng) {
    if frame.len() < ETH + 20 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ihl = usize::from(frame[ETH] & 0x0f) * 4;
    if ihl < 20 || frame.len() < ETH + ihl {
        return;
    }
    fix_ip_checksum(frame);
    // Sometimes fix the ICMP or UDP checksum too, so mutations reach deeper.
    if rng.gen_ratio(1, 2) {
        let total = usize::from(u16::from_be_bytes([frame[ETH + 2], frame[ETH + 3]]));
        let end = (ETH + total).min(frame.len());
        if end <= ETH + ihl + 8 {
            return;
        }
        let (src, dst) = (
            Ipv4Addr::new(
                frame[ETH + 12],
                frame[ETH + 13],
                frame[ETH + 14],
                frame[ETH + 15],
            ),
            Ipv4Addr::new(
                frame[ETH + 16],
                frame[ETH + 17],
                frame[ETH + 18],
                frame[ETH + 19],
            ),
        );
        let l4 = ETH + ihl;
        match frame[ETH + 9] {
            1 => {
                frame[l4 + 2] = 0;
                frame[l4 + 3] = 0;
                let sum = checksum::checksum(&frame[l4..end]);
                frame[l4 + 2..l4 + 4].copy_from_slice(&sum.to_be_bytes());
            }
            17 => {
                frame[l4 + 6] = 0;
                frame[l4 + 7] = 0;
                let sum = checksum::transport_checksum(src, dst, 17, &frame[l4..end]);
                frame[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
            }
            _ => {}
        }
    }
}

fn mutate(rng: &mut SmallRng) -> Vec<u8> {
    let seed = fx::ALL[rng.gen_range(0..fx::ALL.len())];
    let mut frame = seed.to_vec();
    match rng.gen_range(0..10) {
        // Random bytes behind a plausible Ethernet header.
        0 => {
            let len = rng.gen_range(0..1600);
            frame = (0..len).map(|_| rng.gen()).collect();
            if frame.len() >= ETH && rng.gen() {
                frame[..6].copy_from_slice(&HOST_MAC.0);
                frame[6..12].copy_from_slice(&PEER_MAC.0);
                let ethertype: [u8; 2] = if rng.gen() {
                    [0x08, 0x00]
                } else {
                    [0x08, 0x06]
                };
                frame[12..14].copy_from_slice(&ethertype);
            }
        }
        // Bit flips and byte overwrites.
        1 | 2 => {
            for _ in 0..rng.gen_range(1..8) {
                if frame.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..frame.len());
                if rng.gen() {
                    frame[at] ^= 1 << rng.gen_range(0..8);
                } else {
                    frame[at] = rng.gen();
                }
            }
        }
        // Truncate or extend.
        3 => {
            if rng.gen() {
                frame.truncate(rng.gen_range(0..=frame.len()));
            } else {
                let extra = rng.gen_range(1..100);
                frame.extend((0..extra).map(|_| rng.gen::<u8>()));
            }
        }
        // One IPv4 header field set to an interesting value.
        4 | 5 => {
            if frame.len() >= ETH + 20 && frame[12..14] == [0x08, 0x00] {
                let interesting = [0u8, 1, 4, 5, 7, 8, 15, 0x40, 0x45, 0x4f, 0x7f, 0x80, 0xff];
                match rng.gen_range(0..6) {
                    0 => frame[ETH] = interesting[rng.gen_range(0..interesting.len())],
                    1 => {
                        let len: u16 = rng.gen_range(0..=frame.len() as u16 + 40);
                        frame[ETH + 2..ETH + 4].copy_from_slice(&len.to_be_bytes());
                    }
                    2 => {
                        frame[ETH + 6] = rng.gen::<u8>() & 0x3f | if rng.gen() { 0x20 } else { 0 };
                        frame[ETH + 7] = rng.gen();
                    }
                    3 => frame[ETH + 9] = [1, 6, 17, 2, 99][rng.gen_range(0..5)],
                    4 => {
                        let addr = ADDRESSES[rng.gen_range(0..ADDRESSES.len())];
                        let at = if rng.gen() { 12 } else { 16 };
                        frame[ETH + at..ETH + at + 4].copy_from_slice(&addr.octets());
                    }
                    _ => frame[ETH + 8] = interesting[rng.gen_range(0..interesting.len())],
                }
            }
            fix_checksums(&mut frame, rng);
        }
        // A fragment of a datagram with a small set of identifications, so some complete.
        6 | 7 => {
            let template = &fx::FRAG_REQUEST_0;
            let payload = big_echo_request_payload();
            let offset = rng.gen_range(0..payload.len() / 8) * 8;
            let end = (offset + rng.gen_range(0..2000)).min(payload.len());
            let more = end < payload.len() || rng.gen_ratio(1, 10);
            let far = if rng.gen_ratio(1, 20) { 62000 } else { 0 };
            frame = fragment(template, offset + far, &payload[offset..end], more);
            let ident: u16 = rng.gen_range(0..8);
            frame[ETH + 4..ETH + 6].copy_from_slice(&ident.to_be_bytes());
            if rng.gen_ratio(1, 4) {
                frame[ETH + 9] = [6, 17, 99][rng.gen_range(0..3)];
            }
            fix_ip_checksum(&mut frame);
        }
        // ARP with random operation, sender and target.
        8 => {
            let mut arp = fx::ARP_REQUEST.to_vec();
            arp[21] = [1, 2, 3][rng.gen_range(0..3)];
            let sender = if rng.gen() {
                Ipv4Addr::from(0x0a4d_0000 | rng.gen_range(0..256u32))
            } else {
                ADDRESSES[rng.gen_range(0..ADDRESSES.len())]
            };
            arp[28..32].copy_from_slice(&sender.octets());
            arp[22..28].copy_from_slice(&[0x02, 0, 0, 0, rng.gen(), rng.gen()]);
            if rng.gen_ratio(1, 8) {
                arp[22] = rng.gen();
            }
            let target = if rng.gen() {
                HOST_IP
            } else {
                ADDRESSES[rng.gen_range(0..ADDRESSES.len())]
            };
            arp[38..42].copy_from_slice(&target.octets());
            frame = arp;
        }
        // Splice two captures.
        _ => {
            let other = fx::ALL[rng.gen_range(0..fx::ALL.len())];
            let cut = rng.gen_range(0..=frame.len().min(other.len()));
            frame.truncate(cut);
            frame.extend_from_slice(&other[cut..]);
            if rng.gen() {
                fix_checksums(&mut frame, rng);
            }
        }
    }
    frame
}

/// Everything we transmit must be well-formed.
fn check_transmitted(frame: &[u8], mtu: usize) {
    let (eth, payload) = EthernetRepr::parse(frame).expect("Ethernet header");
    assert_eq!(eth.src, HOST_MAC);
    assert!(
        !eth.dst.is_unspecified(),
        "a frame left before its neighbour resolved"
    );
    match eth.ethertype {
        EtherType::Ipv4 => {
            let packet = Ipv4Packet::parse(payload).expect("valid IPv4 datagram");
            assert!(packet.repr.total_len() <= mtu);
            assert_eq!(packet.repr.total_len(), payload.len());
            assert!(packet.repr.ttl > 0);
            assert_eq!(packet.repr.src_addr, HOST_IP, "never 127/8 on the wire");
        }
        EtherType::Arp => {
            ArpRepr::parse(payload).expect("valid ARP packet");
        }
        other => panic!("unexpected EtherType {other:?}"),
    }
}

fn check_bounds(iface: &Interface) {
    let m = iface.memory();
    assert!(m.tx_frames <= limits::TX_QUEUE_FRAMES, "{m:?}");
    assert!(
        m.loopback_datagrams <= limits::LOOPBACK_QUEUE_DATAGRAMS,
        "{m:?}"
    );
    assert!(m.loopback_bytes <= limits::LOOPBACK_QUEUE_BYTES, "{m:?}");
    assert!(m.neighbor_entries <= limits::NEIGHBOR_ENTRIES, "{m:?}");
    assert!(
        m.neighbor_queued_bytes <= limits::NEIGHBOR_QUEUE_BYTES,
        "{m:?}"
    );
    assert!(
        m.reassembly_datagrams <= limits::REASSEMBLY_DATAGRAMS,
        "{m:?}"
    );
    assert!(m.reassembly_bytes <= limits::REASSEMBLY_MEMORY, "{m:?}");
}

#[test]
fn random_and_mutated_frames_never_panic_and_bounds_hold() {
    let frames = env_or("USTACK_FUZZ_FRAMES", 300_000);
    let seed = env_or("USTACK_FUZZ_SEED", 0x0057_ac4f_u64);
    println!("fuzz: {frames} frames, USTACK_FUZZ_SEED={seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut transport = FuzzTransport {
        rng: SmallRng::seed_from_u64(seed ^ 1),
        errors: 0,
    };
    let mut iface = Interface::with_seed(host_config(), Instant::ZERO, seed);
    let mtu = iface.config().mtu;
    let mut now = Instant::ZERO;
    let mut transmitted = 0u64;

    for step in 0..frames {
        // Time: mostly small steps, sometimes long jumps past every timer.
        now += match rng.gen_range(0..1000) {
            0..=899 => Duration::from_micros(rng.gen_range(0..2000)),
            900..=995 => Duration::from_millis(rng.gen_range(0..2000)),
            _ => Duration::from_secs(rng.gen_range(1..60)),
        };
        let frame = mutate(&mut rng);
        iface.receive_frame(now, &frame, &mut transport);

        // The transport side sends now and then.
        if rng.gen_ratio(1, 50) {
            let dst = ADDRESSES[rng.gen_range(0..ADDRESSES.len())];
            let len = [0, 8, 100, 1480, 1481, 3000, 65515, 65516][rng.gen_range(0..8)];
            let payload = vec![0x42; len];
            let _ = iface.send_ipv4(
                now,
                Ipv4Send {
                    src: None,
                    dst,
                    protocol: [IpProtocol::Udp, IpProtocol::Tcp, IpProtocol::Icmp]
                        [rng.gen_range(0..3)],
                    ttl: rng.gen_range(0..3) * 64,
                    tos: 0,
                    dont_fragment: rng.gen(),
                    payload: &payload,
                },
            );
        }
        if rng.gen_ratio(1, 4) {
            iface.process_loopback(now, &mut transport);
        }
        if iface.poll_at().is_some_and(|t| t <= now) || rng.gen_ratio(1, 16) {
            iface.handle_timeout(now);
        }
        // The device is sometimes full.
        if rng.gen_ratio(7, 8) {
            let budget = rng.gen_range(0..64);
            let mut taken = 0;
            iface.transmit(&mut |f| {
                if taken == budget {
                    return false;
                }
                check_transmitted(f, mtu);
                taken += 1;
                true
            });
            transmitted += taken;
        }
        check_bounds(&iface);
        let m = iface.memory();
        if m.tx_frames > 0 || m.loopback_datagrams > 0 {
            assert!(
                iface.poll_at().is_some_and(|t| t <= now),
                "step {step}: output waiting but poll_at {:?}",
                iface.poll_at()
            );
        }
    }

    // Let every timer run out: partial datagrams, resolutions and their queues all go away.
    for _ in 0..200 {
        now += Duration::from_secs(1);
        iface.handle_timeout(now);
        iface.process_loopback(now, &mut transport);
        iface.transmit(&mut |f| {
            check_transmitted(f, mtu);
            true
        });
    }
    let m = iface.memory();
    assert_eq!(
        (
            m.reassembly_datagrams,
            m.reassembly_bytes,
            m.neighbor_queued_bytes,
            m.tx_frames
        ),
        (0, 0, 0, 0)
    );
    let s = iface.stats();
    println!(
        "fuzz: frames_in {} transmitted {} delivered {} reassembled {} echo replies {} icmp errors to transport {}",
        s.frames_in, transmitted, s.ipv4_delivered, s.ipv4_reassembled, s.icmp_echo_replies_out, transport.errors
    );
    assert_eq!(s.frames_in, frames);
    // The mutations reached the deep paths, not only the first checks.
    assert!(s.ipv4_reassembled > 0 && s.icmp_echo_replies_out > 0 && s.arp_replies_out > 0);
    assert!(s.ipv4_bad_checksum > 0 && s.ipv4_reassembly_overlap > 0 && s.udp_no_port > 0);
}
