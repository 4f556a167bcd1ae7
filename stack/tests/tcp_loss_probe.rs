//! Tail loss probes (RFC 8985 7) in scripted exchanges: which timer runs after a flight, what
//! the probes carry, and that the RTO is not needed when only ACKs are missing.

mod tcp_support;

use tcp_support::*;
use ustack::wire::tcp::TcpFlags;

/// An established client with one RTT sample of 1 ms and nothing outstanding; returns the
/// harness, the MSS and the next sequence number to send.
fn idle_client_with_rtt_sample() -> (Harness, u32, u32) {
    let mut h = Harness::established_client();
    let mss = h.conn.info().send_mss as u32;
    let una = ISS + 1;
    // TSval 0 would read as "no echo": start later.
    h.now += ms(100);
    h.conn.send(&vec![1u8; mss as usize]).unwrap();
    let first = h.expect();
    h.now += ms(1);
    let tsecr = first.header.options.timestamps.map_or(0, |t| t.tsval);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(una + mss)
            .ts(200, tsecr),
    );
    h.expect_nothing();
    assert!(h.conn.info().srtt.is_some());
    assert!(h.conn.poll_at().is_none(), "nothing outstanding, no timer");
    (h, mss, una + mss)
}

#[test]
fn flight_begun_with_one_segment_is_probed_before_the_rto() {
    // The first segment of a flight arms the RTO (a lone segment's PTO includes the peer's
    // delayed ACK, so it is not shorter). The segments that follow at once make it a PTO
    // again (RFC 8985 7.2, Linux re-schedules after every transmission): when every ACK of
    // the flight is missing, a probe goes out after 2*SRTT + 2 ms, not after 200 ms.
    let (mut h, mss, next) = idle_client_with_rtt_sample();
    h.now += ms(50);
    h.conn.send(&vec![2u8; 20 * mss as usize]).unwrap();
    let flight = h.drain();
    assert!(flight.len() >= 2, "a flight of several segments");
    assert_eq!(seq_of(&flight[0]), next);
    let waited = h.fire_next_timer();
    assert!(waited <= ms(5), "PTO after {waited:?}, not the RTO");
    let probe = h.expect();
    let info = h.conn.info();
    assert_eq!(info.counters.loss_probes, 1);
    assert_eq!(info.counters.timeouts, 0);
    // The first probe carries new data (RFC 8985 7.3).
    let flight_end = flight
        .last()
        .map_or(0, |s| seq_of(s) + s.payload.len() as u32);
    assert_eq!(seq_of(&probe), flight_end);
    assert_eq!(info.counters.retransmits, 0);
}

#[test]
fn unanswered_new_data_probe_is_followed_by_the_last_segment_again() {
    // A receiver that holds its ACK for in-order data (Linux does while its reader lags,
    // until its delayed-ACK timer of 40 ms or more) ignores a probe of new data too. The
    // second probe repeats the last segment, which any receiver answers at once; its D-SACK
    // shows nothing was lost, so the window stays as it was.
    let (mut h, mss, _) = idle_client_with_rtt_sample();
    h.now += ms(50);
    h.conn.send(&vec![3u8; 20 * mss as usize]).unwrap();
    let flight = h.drain();
    h.fire_next_timer();
    let first_probe = h.expect();
    let cwnd_before = h.conn.info().cwnd;
    let waited = h.fire_next_timer();
    assert!(waited <= ms(5), "second PTO after {waited:?}");
    let second_probe = h.expect();
    assert_eq!(
        seq_of(&second_probe),
        seq_of(&first_probe),
        "the last segment sent, again"
    );
    assert_eq!(second_probe.payload.len(), first_probe.payload.len());
    h.expect_nothing();
    let info = h.conn.info();
    assert_eq!(info.counters.loss_probes, 2);
    assert_eq!(info.counters.retransmits, 1);
    // The answer: everything acknowledged, with a D-SACK for the duplicate.
    let end = seq_of(&second_probe) + second_probe.payload.len() as u32;
    h.now += ms(1);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(end)
            .ts(300, 0)
            .sack(&[(seq_of(&second_probe), end)]),
    );
    let info = h.conn.info();
    assert_eq!(info.unacked, 0);
    assert_eq!(info.counters.timeouts, 0);
    assert!(
        info.cwnd >= cwnd_before,
        "no congestion response to a D-SACKed probe"
    );
    assert!(flight.len() >= 2);
}

#[test]
fn two_unanswered_probes_leave_it_to_the_rto() {
    // At most two probes per episode: then the RTO, measured from the last probe.
    let (mut h, mss, _) = idle_client_with_rtt_sample();
    h.now += ms(50);
    h.conn.send(&vec![4u8; 20 * mss as usize]).unwrap();
    h.drain();
    h.fire_next_timer();
    h.expect();
    h.fire_next_timer();
    h.expect();
    h.expect_nothing();
    let waited = h.fire_next_timer();
    assert!(waited >= ms(200), "the RTO, after {waited:?}");
    let info = h.conn.info();
    assert_eq!(info.counters.loss_probes, 2);
    assert_eq!(info.counters.timeouts, 1);
}

#[test]
fn probe_answered_with_sack_starts_recovery_without_a_second_probe() {
    // The first probe's ACK SACKs it while the first segment of the flight stays missing:
    // that is a real loss; fast recovery repairs it and no second probe follows.
    let (mut h, mss, next) = idle_client_with_rtt_sample();
    h.now += ms(50);
    h.conn.send(&vec![5u8; 20 * mss as usize]).unwrap();
    let flight = h.drain();
    h.fire_next_timer();
    let probe = h.expect();
    let probe_end = seq_of(&probe) + probe.payload.len() as u32;
    let second = seq_of(&flight[1]);
    h.now += ms(1);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(next)
            .ts(300, 0)
            .sack(&[(second, probe_end)]),
    );
    let sent = h.drain();
    assert!(
        sent.iter().any(|s| seq_of(s) == next),
        "the hole is retransmitted: {:?}",
        sent.iter().map(seq_of).collect::<Vec<_>>()
    );
    let info = h.conn.info();
    assert_eq!(info.counters.fast_recoveries, 1);
    assert_eq!(info.counters.loss_probes, 1);
}

#[test]
fn silent_recovery_is_probed_at_snd_una_before_the_rto() {
    // Fast recovery sent the retransmission of segment 0, then the ACKs stop: the
    // retransmission or its ACK was lost, or the receiver holds the ACK. After a PTO the
    // segment at SND.UNA goes out again (one probe per stretch without progress), well before
    // the 200 ms RTO that would collapse cwnd to one segment.
    let (mut h, mss, next) = idle_client_with_rtt_sample();
    let s = |i: u32| next + i * mss;
    h.now += ms(50);
    h.conn.send(&vec![6u8; 20 * mss as usize]).unwrap();
    let flight = h.drain();
    assert!(flight.len() >= 8);
    let mut sent = Vec::new();
    for upto in 2..=4 {
        h.input(
            seg(TcpFlags::ACK)
                .seq(PEER_ISS + 1)
                .ack(next)
                .ts(300, 0)
                .sack(&[(s(1), s(upto))]),
        );
        sent.extend(h.drain());
    }
    assert_eq!(h.conn.info().counters.fast_recoveries, 1);
    assert!(
        sent.iter().any(|x| seq_of(x) == next),
        "fast retransmission"
    );
    let cwnd_in_recovery = h.conn.info().cwnd;
    let waited = h.fire_next_timer();
    assert!(waited <= ms(5), "recovery probe after {waited:?}");
    let probe = h.expect();
    assert_eq!(seq_of(&probe), next, "the segment at SND.UNA again");
    h.expect_nothing();
    let info = h.conn.info();
    assert_eq!(info.counters.loss_probes, 1);
    assert_eq!(info.counters.timeouts, 0);
    assert_eq!(info.cwnd, cwnd_in_recovery, "no collapse to one segment");
    // Only one per stretch: if this draws nothing either, the RTO follows.
    let waited = h.fire_next_timer();
    assert!(waited >= ms(200), "then the RTO, after {waited:?}");
    assert_eq!(h.conn.info().counters.timeouts, 1);
}

#[test]
fn recovery_probe_answered_ends_recovery_without_a_timeout() {
    let (mut h, mss, next) = idle_client_with_rtt_sample();
    let s = |i: u32| next + i * mss;
    h.now += ms(50);
    h.conn.send(&vec![7u8; 8 * mss as usize]).unwrap();
    let flight = h.drain();
    let flight_end = flight
        .last()
        .map_or(0, |x| seq_of(x) + x.payload.len() as u32);
    for upto in 2..=4 {
        h.input(
            seg(TcpFlags::ACK)
                .seq(PEER_ISS + 1)
                .ack(next)
                .ts(300, 0)
                .sack(&[(s(1), s(upto))]),
        );
        h.drain();
    }
    h.fire_next_timer();
    let probe = h.expect();
    assert_eq!(seq_of(&probe), next);
    // The receiver had everything (it held its ACK): a D-SACK and the full ACK.
    h.now += ms(1);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(flight_end)
            .ts(301, 0)
            .sack(&[(next, s(1))]),
    );
    let info = h.conn.info();
    assert_eq!(info.unacked, 0);
    assert_eq!(info.counters.timeouts, 0);
    assert!(h.conn.poll_at().is_none(), "nothing outstanding, no timer");
}
