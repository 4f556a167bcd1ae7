//! Reassembly against the fragments of a kernel `ping -s 3000` (captured with tcpdump): every
//! arrival order, duplicates, overlaps, the timeout with its ICMP time exceeded, the 65535-byte
//! limit and the memory bound. A completed request is answered with the kernel's fragments.

mod frames_fixtures;
mod frames_support;

use std::time::Duration;

use frames_fixtures as fx;
use frames_support::*;
use ustack::iface::{limits, Interface, NoTransport};
use ustack::time::Instant;
use ustack::wire::ethernet::HEADER_LEN as ETH;
use ustack::wire::icmpv4::{Icmpv4Repr, TimeExceeded};
use ustack::wire::EtherType;

fn captured() -> [&'static [u8]; 3] {
    [
        &fx::FRAG_REQUEST_0,
        &fx::FRAG_REQUEST_1,
        &fx::FRAG_REQUEST_2,
    ]
}

/// All orderings of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            all.push(p);
        }
    }
    all
}

/// Feeds frames in order; returns what the interface sent.
fn feed(iface: &mut Interface, now: Instant, frames: &[&[u8]]) -> Vec<Vec<u8>> {
    for frame in frames {
        iface.receive_frame(now, frame, &mut NoTransport);
    }
    drain(iface)
}

fn assert_kernel_reply(frames: &[Vec<u8>]) {
    assert_eq!(frames.len(), 3);
    for (ours, kernel) in
        frames
            .iter()
            .zip([&fx::FRAG_REPLY_0[..], &fx::FRAG_REPLY_1, &fx::FRAG_REPLY_2])
    {
        assert_same_but_ident(ours, kernel);
    }
}

#[test]
fn every_order_of_three_fragments_is_reassembled() {
    let orders = permutations(3);
    assert_eq!(orders.len(), 6);
    for order in orders {
        let mut iface = host_knowing_peer();
        let frames: Vec<&[u8]> = order.iter().map(|&i| captured()[i]).collect();
        let sent = feed(&mut iface, Instant::ZERO, &frames);
        assert_kernel_reply(&sent);
        let s = iface.stats();
        assert_eq!(
            (s.ipv4_fragments_in, s.ipv4_reassembled),
            (3, 1),
            "order {order:?}"
        );
        assert_eq!(iface.memory().reassembly_bytes, 0, "order {order:?}");
        // The only timer left is the ARP re-validation of the peer's entry (used at t=0).
        assert_eq!(iface.poll_at(), Some(secs(5)), "order {order:?}");
    }
}

#[test]
fn duplicated_fragments_are_ignored_in_every_order() {
    // Each of the 6 orders with the first or the second fragment to arrive sent twice in a
    // row (a copy of the last one would arrive after completion, see below): one reply.
    for order in permutations(3) {
        for position in 0..2 {
            let mut frames: Vec<&[u8]> = order.iter().map(|&i| captured()[i]).collect();
            frames.insert(position + 1, frames[position]);
            let mut iface = host_knowing_peer();
            let sent = feed(&mut iface, Instant::ZERO, &frames);
            assert_kernel_reply(&sent);
            assert_eq!(
                iface.stats().ipv4_reassembly_duplicate,
                1,
                "{order:?} at {position}"
            );
        }
    }
    // A copy arriving after completion starts a new partial datagram that times out quietly.
    let mut iface = host_knowing_peer();
    let sent = feed(
        &mut iface,
        Instant::ZERO,
        &[captured()[0], captured()[1], captured()[2], captured()[1]],
    );
    assert_kernel_reply(&sent);
    assert_eq!(iface.memory().reassembly_datagrams, 1);
    iface.handle_timeout(secs(30));
    let sent = drain(&mut iface);
    assert!(
        sent.iter().all(|f| eth(f).ethertype == EtherType::Arp),
        "no time exceeded without fragment zero (only the peer's ARP re-validation)"
    );
    assert_eq!(iface.stats().icmp_time_exceeded_out, 0);
    assert_eq!(iface.stats().ipv4_reassembly_timeout, 1);
}

#[test]
fn a_partly_overlapping_fragment_discards_the_datagram() {
    let payload = big_echo_request_payload();
    // The middle fragment moved 8 bytes earlier: it overlaps fragment 0's last 8 bytes.
    let overlapping = fragment(&fx::FRAG_REQUEST_1, 1472, &payload[1472..2960], true);
    for order in permutations(3) {
        let frames: Vec<Vec<u8>> = order
            .iter()
            .map(|&i| match i {
                1 => overlapping.clone(),
                i => captured()[i].to_vec(),
            })
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut iface = host_knowing_peer();
        let sent = feed(&mut iface, Instant::ZERO, &refs);
        let s = iface.stats().clone();
        if order[2] == 1 {
            // Arriving last, the overlap kills the datagram at once.
            assert!(sent.is_empty(), "{order:?}");
            assert_eq!(
                (
                    s.ipv4_reassembly_overlap,
                    iface.memory().reassembly_datagrams
                ),
                (1, 0)
            );
        } else {
            // Arriving earlier, it overlaps whichever neighbour comes after it; either way
            // nothing is answered and no partial state leaks past the timeout.
            assert!(sent.is_empty(), "{order:?}");
            assert_eq!(s.ipv4_reassembly_overlap, 1, "{order:?}");
            iface.handle_timeout(secs(30));
            assert_eq!(iface.memory().reassembly_datagrams, 0);
        }
        assert_eq!(s.icmp_echo_replies_out, 0);
    }
}

#[test]
fn a_fragment_inside_received_data_is_a_duplicate_and_the_first_copy_wins() {
    let payload = big_echo_request_payload();
    let mut altered = payload[1480..1496].to_vec();
    altered.iter_mut().for_each(|b| *b ^= 0xff);
    let inside = fragment(&fx::FRAG_REQUEST_1, 1480, &altered, true);
    let mut iface = host_knowing_peer();
    let sent = feed(
        &mut iface,
        Instant::ZERO,
        &[captured()[1], &inside, captured()[0], captured()[2]],
    );
    assert_kernel_reply(&sent);
    assert_eq!(iface.stats().ipv4_reassembly_duplicate, 1);
}

#[test]
fn refragmented_pieces_reassemble() {
    // The same datagram cut into 8-byte-aligned pieces of different sizes, in reverse order.
    let payload = big_echo_request_payload();
    let cuts = [0usize, 8, 1000, 1480, 2000, 2952, 3008];
    let mut frames: Vec<Vec<u8>> = cuts
        .windows(2)
        .map(|w| {
            fragment(
                &fx::FRAG_REQUEST_0,
                w[0],
                &payload[w[0]..w[1]],
                w[1] < payload.len(),
            )
        })
        .collect();
    frames.reverse();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut iface = host_knowing_peer();
    assert_kernel_reply(&feed(&mut iface, Instant::ZERO, &refs));
}

#[test]
fn timeout_sends_time_exceeded_when_fragment_zero_arrived() {
    let mut iface = host_knowing_peer();
    let t0 = Instant::from_millis(250);
    assert!(feed(&mut iface, t0, &[captured()[0], captured()[2]]).is_empty());
    assert_eq!(
        iface.poll_at(),
        Some(t0 + Duration::from_secs(30)),
        "Linux ipfrag_time"
    );
    iface.handle_timeout(t0 + Duration::from_secs(29));
    assert!(drain(&mut iface).is_empty());
    iface.handle_timeout(t0 + Duration::from_secs(30));
    let sent = drain(&mut iface);
    assert_eq!(sent.len(), 1);
    let packet = ip(&sent[0]);
    assert_eq!(
        (packet.repr.src_addr, packet.repr.dst_addr),
        (HOST_IP, PEER_IP)
    );
    assert_eq!(packet.repr.tos, 0xc0);
    assert!(packet.repr.total_len() <= 576);
    match Icmpv4Repr::parse(packet.payload).unwrap() {
        Icmpv4Repr::TimeExceeded { reason, quoted } => {
            assert_eq!(reason, TimeExceeded::FragmentReassembly);
            // Fragment zero's header and as much of its data as fits in 576 bytes.
            assert_eq!(&quoted[..20], &fx::FRAG_REQUEST_0[ETH..ETH + 20]);
            assert_eq!(
                &quoted[20..],
                &fx::FRAG_REQUEST_0[ETH + 20..ETH + 20 + quoted.len() - 20]
            );
            assert_eq!(quoted.len(), 576 - 28);
        }
        other => panic!("expected time exceeded, got {other:?}"),
    }
    let s = iface.stats();
    assert_eq!(
        (s.ipv4_reassembly_timeout, s.icmp_time_exceeded_out),
        (1, 1)
    );
    assert_eq!(iface.memory().reassembly_bytes, 0);
    // Only the ARP re-validation of the peer (used for the ICMP error) is left.
    assert_eq!(iface.poll_at(), Some(t0 + Duration::from_secs(35)));
}

#[test]
fn no_time_exceeded_about_an_icmp_error() {
    // Fragment zero of an ICMP destination unreachable (type 3) that never completes.
    let mut error_fragment = fx::FRAG_REQUEST_0;
    error_fragment[ETH + 20] = 3;
    let mut iface = host_knowing_peer();
    iface.receive_frame(Instant::ZERO, &error_fragment, &mut NoTransport);
    iface.handle_timeout(secs(30));
    assert!(
        drain(&mut iface).is_empty(),
        "RFC 1122 3.2.2: never an error about an error"
    );
    assert_eq!(iface.stats().icmp_error_suppressed, 1);
}

#[test]
fn reassembly_beyond_65535_bytes_is_refused() {
    let payload = big_echo_request_payload();
    // Ping of death: a last fragment at offset 65528 carrying 48 bytes.
    let too_far = fragment(&fx::FRAG_REQUEST_2, 65528, &payload[2960..], false);
    let mut iface = host_knowing_peer();
    assert!(feed(&mut iface, Instant::ZERO, &[captured()[0], &too_far]).is_empty());
    let s = iface.stats();
    assert_eq!(s.ipv4_reassembly_oversize, 1);
    assert_eq!(iface.memory().reassembly_datagrams, 0);
    // The largest legal end (65535 - 20 = 65515) is accepted.
    let last = fragment(&fx::FRAG_REQUEST_2, 65512, &payload[..3], false);
    iface.receive_frame(Instant::ZERO, &last, &mut NoTransport);
    assert_eq!(iface.memory().reassembly_datagrams, 1);
}

#[test]
fn inconsistent_fragments_discard_the_datagram() {
    let payload = big_echo_request_payload();
    let mut iface = host_knowing_peer();
    // Two different ends.
    let other_end = fragment(&fx::FRAG_REQUEST_2, 2968, &payload[2960..], false);
    feed(&mut iface, Instant::ZERO, &[captured()[2], &other_end]);
    // A zero-length fragment.
    let empty = fragment(&fx::FRAG_REQUEST_1, 1480, &[], true);
    feed(&mut iface, Instant::ZERO, &[captured()[0], &empty]);
    assert_eq!(iface.stats().ipv4_reassembly_inconsistent, 2);
    assert_eq!(iface.memory().reassembly_datagrams, 0);
}

#[test]
fn memory_stays_bounded_under_a_fragment_flood() {
    let payload = big_echo_request_payload();
    let mut iface = host_knowing_peer();
    for ident in 0..3000u16 {
        let mut frame = fragment(&fx::FRAG_REQUEST_1, 60000, &payload[..8], true);
        frame[ETH + 4..ETH + 6].copy_from_slice(&ident.to_be_bytes());
        fix_ip_checksum(&mut frame);
        iface.receive_frame(Instant::ZERO, &frame, &mut NoTransport);
        let m = iface.memory();
        assert!(m.reassembly_bytes <= limits::REASSEMBLY_MEMORY);
        assert!(m.reassembly_datagrams <= limits::REASSEMBLY_DATAGRAMS);
    }
    assert!(iface.stats().ipv4_reassembly_overflow > 0);
    // Legitimate traffic resumes once the flood times out.
    iface.handle_timeout(secs(30));
    assert_eq!(iface.memory().reassembly_bytes, 0);
    assert_kernel_reply(&feed(&mut iface, secs(30), &captured()));
}
