//! TCP segmentation offload on the sending side: with `gso_max_payload` set, new data leaves
//! as super-segments of whole MSS-sized pieces (the device cuts them), within the congestion
//! and peer windows, with Nagle deciding about a short tail as it would for a small segment;
//! retransmissions and probes stay single segments.

mod tcp_support;

use tcp_support::*;
use ustack::tcp::config::TcpConfig;
use ustack::tcp::connection::State;
use ustack::wire::tcp::TcpFlags;

const MSS: u16 = 1000;

fn offload_config() -> TcpConfig {
    TcpConfig {
        gso_max_payload: 65535 - 80,
        ..config()
    }
}

/// Active open with offload against a peer with MSS 1000, window `window` and no options.
fn established(nodelay: bool, window: u16) -> Harness {
    let cfg = offload_config();
    let mut opts = cfg.default_socket_options();
    opts.nodelay = nodelay;
    let mut h = Harness::client_with(&cfg, opts);
    h.expect();
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .ack(ISS + 1)
            .win(window)
            .options(plain_syn_options(MSS)),
    );
    h.expect();
    assert_eq!(h.conn.state(), State::Established);
    h
}

fn ack(h: &mut Harness, upto: u32) {
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(upto).win(65535));
}

#[test]
fn new_data_leaves_as_one_super_segment_per_congestion_window() {
    let mut h = established(false, 65535);
    let cwnd = h.conn.info().cwnd;
    assert_eq!(
        cwnd % usize::from(MSS),
        0,
        "initial window of whole segments"
    );
    h.conn.send(&vec![7u8; 50_000]).unwrap();
    let first = h.expect();
    assert_eq!(first.payload.len(), cwnd);
    assert_eq!(first.segment_size, Some(MSS));
    assert_eq!(first.wire_segments(), cwnd / usize::from(MSS));
    assert_eq!(seq_of(&first), ISS + 1);
    h.expect_nothing();
    let segments_before = h.conn.info().counters.segments_out;

    // The window opens (slow start doubles it): the next super-segment fills it.
    ack(&mut h, ISS + 1 + cwnd as u32);
    let grown = h.conn.info().cwnd;
    assert!(grown > cwnd);
    let second = h.expect();
    assert_eq!(seq_of(&second), ISS + 1 + cwnd as u32);
    assert_eq!(second.payload.len(), grown - grown % usize::from(MSS));
    assert_eq!(second.segment_size, Some(MSS));
    // Counters count what the wire carries.
    assert_eq!(
        h.conn.info().counters.segments_out - segments_before,
        second.wire_segments() as u64
    );
}

#[test]
fn the_peer_window_bounds_a_super_segment_to_whole_segments() {
    // 4500 bytes of window: four whole segments now; the half segment is left to the
    // sender's SWS rules, as without offload.
    let mut h = established(false, 4500);
    h.conn.send(&vec![1u8; 20_000]).unwrap();
    let s = h.expect();
    assert_eq!(s.payload.len(), 4000);
    assert_eq!(s.segment_size, Some(MSS));
}

#[test]
fn a_short_tail_rides_along_only_when_nagle_lets_it_go() {
    let mut h = established(false, 65535);
    // Nothing small in flight: all 2500 bytes go, the tail being the last piece.
    h.conn.send(&[2u8; 2500]).unwrap();
    let s = h.expect();
    assert_eq!((s.payload.len(), s.segment_size), (2500, Some(MSS)));
    // Now a small piece is unacknowledged: of the next 2500 bytes the tail waits.
    h.conn.send(&[3u8; 2500]).unwrap();
    let s = h.expect();
    assert_eq!((s.payload.len(), s.segment_size), (2000, Some(MSS)));
    h.expect_nothing();
    // The ACK of the small piece releases it.
    ack(&mut h, ISS + 1 + 2500);
    let tail = h.expect();
    assert_eq!(seq_of(&tail), ISS + 1 + 4500);
    assert_eq!((tail.payload.len(), tail.segment_size), (500, None));
}

#[test]
fn with_nodelay_the_tail_goes_at_once() {
    let mut h = established(true, 65535);
    h.conn.send(&[2u8; 2500]).unwrap();
    h.expect();
    h.conn.send(&[3u8; 2500]).unwrap();
    let s = h.expect();
    assert_eq!((s.payload.len(), s.segment_size), (2500, Some(MSS)));
}

#[test]
fn one_segment_of_data_is_not_a_super_segment() {
    let mut h = established(false, 65535);
    h.conn.send(&[4u8; 1000]).unwrap();
    let s = h.expect();
    assert_eq!(
        (s.payload.len(), s.segment_size, s.wire_segments()),
        (1000, None, 1)
    );
}

#[test]
fn retransmissions_are_single_segments() {
    let mut h = established(false, 65535);
    h.conn.send(&vec![5u8; 8000]).unwrap();
    let s = h.expect();
    assert_eq!((s.payload.len(), s.segment_size), (8000, Some(MSS)));
    h.fire_next_timer(); // RTO
    let rtx = h.expect();
    assert_eq!(seq_of(&rtx), ISS + 1);
    assert_eq!((rtx.payload.len(), rtx.segment_size), (1000, None));
    // Going back after the RTO resends segment by segment, in slow start from one segment.
    ack(&mut h, ISS + 1 + 1000);
    for s in h.drain() {
        assert_eq!(s.segment_size, None, "{s:?}");
        assert!(s.payload.len() <= usize::from(MSS));
    }
}

#[test]
fn fin_rides_on_the_last_super_segment() {
    let mut h = established(false, 65535);
    h.conn.send(&[6u8; 3000]).unwrap();
    h.conn.shutdown_write();
    let s = h.expect();
    assert_eq!((s.payload.len(), s.segment_size), (3000, Some(MSS)));
    assert!(s.header.flags.fin());
}

#[test]
fn without_offload_nothing_changes() {
    let mut h = Harness::established_plain_client(MSS, 65535);
    h.conn.send(&vec![7u8; 5000]).unwrap();
    let segments = h.drain();
    assert_eq!(segments.len(), 5);
    assert!(segments
        .iter()
        .all(|s| s.segment_size.is_none() && s.payload.len() == 1000));
}
