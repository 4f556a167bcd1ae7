//! Scripted packet-level tests of one TCP connection: the test plays the peer, sends exact
//! segments and checks the exact segments that come back. Time moves only when the test
//! moves it.

mod tcp_support;

use std::time::Duration;

use tcp_support::*;
use ustack::tcp::connection::{ConnectionError, IcmpError, RecvError, SendError, State};
use ustack::tcp::seq::SeqNumber;
use ustack::wire::tcp::TcpFlags;

// ---------- opening ----------

#[test]
fn active_open_offers_linux_options_and_completes() {
    let mut h = Harness::client();
    let syn = h.expect();
    assert_eq!(syn.header.flags, TcpFlags::SYN);
    assert_eq!(seq_of(&syn), ISS);
    let o = syn.header.options;
    assert_eq!(o.mss, Some(1460));
    assert_eq!(o.window_scale, Some(7));
    assert!(o.sack_permitted);
    assert_eq!(o.timestamps.map(|t| t.tsecr), Some(0));
    h.expect_nothing();
    assert_eq!(h.conn.state(), State::SynSent);

    h.now += ms(10);
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .ack(ISS + 1)
            .win(65535)
            .options(linux_syn_options(777, 0)),
    );
    assert_eq!(h.conn.state(), State::Established);
    let ack = h.expect();
    assert_eq!(ack.header.flags, TcpFlags::ACK);
    assert_eq!(seq_of(&ack), ISS + 1);
    assert_eq!(ack_of(&ack), PEER_ISS + 1);
    assert_eq!(ack.header.options.timestamps.map(|t| t.tsecr), Some(777));
    h.expect_nothing();
    let info = h.conn.info();
    assert_eq!(info.snd_wscale, Some(7));
    assert_eq!(info.rcv_wscale, Some(7));
    assert!(info.sack && info.timestamps);
    assert_eq!(info.send_mss, 1460 - 12);
    assert!(h.conn.readiness().writable && h.conn.readiness().connected);
}

#[test]
fn passive_open_echoes_only_offered_options() {
    let cfg = config();
    let syn = seg(TcpFlags::SYN)
        .seq(PEER_ISS)
        .win(8192)
        .options(plain_syn_options(1000));
    let mut h = Harness::server_with(&cfg, cfg.default_socket_options(), syn);
    assert_eq!(h.conn.state(), State::SynReceived);
    let syn_ack = h.expect();
    assert_eq!(syn_ack.header.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(ack_of(&syn_ack), PEER_ISS + 1);
    assert_eq!(syn_ack.header.options.mss, Some(1460));
    assert_eq!(syn_ack.header.options.window_scale, None);
    assert!(!syn_ack.header.options.sack_permitted);
    assert_eq!(syn_ack.header.options.timestamps, None);
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1).win(8192));
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.info().send_mss, 1000);
    assert_eq!(h.conn.info().snd_wscale, None);
    h.expect_nothing();
}

#[test]
fn passive_open_with_linux_peer_negotiates_everything() {
    let cfg = config();
    let syn = seg(TcpFlags::SYN)
        .seq(PEER_ISS)
        .options(linux_syn_options(42, 0));
    let mut h = Harness::server_with(&cfg, cfg.default_socket_options(), syn);
    let syn_ack = h.expect();
    let o = syn_ack.header.options;
    assert_eq!(o.window_scale, Some(7));
    assert!(o.sack_permitted);
    assert_eq!(o.timestamps.map(|t| t.tsecr), Some(42));
    // A retransmitted SYN (our SYN-ACK was lost) gets the SYN-ACK again.
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .options(linux_syn_options(43, 0)),
    );
    let again = h.expect();
    assert_eq!(again.header.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(seq_of(&again), ISS);
}

#[test]
fn simultaneous_open() {
    let mut h = Harness::client();
    h.expect();
    // The peer's SYN crosses ours.
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .options(linux_syn_options(5, 0)),
    );
    assert_eq!(h.conn.state(), State::SynReceived);
    let syn_ack = h.expect();
    assert_eq!(syn_ack.header.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(seq_of(&syn_ack), ISS);
    assert_eq!(ack_of(&syn_ack), PEER_ISS + 1);
    // The peer's SYN-ACK for our SYN.
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .ack(ISS + 1)
            .options(linux_syn_options(6, 0)),
    );
    // RFC 9293: a SYN in SYN-RECEIVED with an acceptable ACK... the SYN bit makes it a
    // challenge (RFC 5961 4.2); the plain ACK completes the handshake.
    h.drain();
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1).ts(7, 0));
    assert_eq!(h.conn.state(), State::Established);
}

#[test]
fn syn_retries_back_off_and_time_out_after_127_seconds() {
    let mut h = Harness::client();
    h.expect();
    let mut gaps = Vec::new();
    loop {
        let gap = h.fire_next_timer();
        gaps.push(gap.as_secs());
        if h.conn.state() == State::Closed {
            break;
        }
        let syn = h.expect();
        assert_eq!(syn.header.flags, TcpFlags::SYN);
        assert_eq!(seq_of(&syn), ISS);
    }
    assert_eq!(gaps, vec![1, 2, 4, 8, 16, 32, 64]);
    assert_eq!(h.now.as_millis(), 127_000);
    assert_eq!(h.conn.error(), Some(ConnectionError::TimedOut));
    assert_eq!(h.conn.info().counters.retransmits, 6);
}

#[test]
fn rst_answering_syn_refuses_but_bad_ack_is_ignored() {
    let mut h = Harness::client();
    h.expect();
    // RST with an ACK that does not cover our SYN: ignored.
    h.input(seg(TcpFlags::RST).ack(ISS + 7));
    assert_eq!(h.conn.state(), State::SynSent);
    h.expect_nothing();
    // A SYN-ACK with a bad ACK gets <SEQ=SEG.ACK><CTL=RST>.
    h.input(seg(TcpFlags::SYN).seq(PEER_ISS).ack(ISS + 9));
    let rst = h.expect();
    assert_eq!(rst.header.flags, TcpFlags::RST);
    assert_eq!(seq_of(&rst), ISS + 9);
    assert_eq!(h.conn.state(), State::SynSent);
    h.input(seg(TcpFlags::RST).ack(ISS + 1));
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), Some(ConnectionError::Refused));
    let mut buf = [0u8; 4];
    assert_eq!(
        h.conn.recv(&mut buf),
        Err(RecvError::Failed(ConnectionError::Refused))
    );
}

#[test]
fn send_before_established_is_refused_with_in_progress() {
    let mut h = Harness::client();
    assert_eq!(h.conn.send(b"x"), Err(SendError::NotYetConnected));
    let mut buf = [0u8; 4];
    assert_eq!(h.conn.recv(&mut buf), Err(RecvError::WouldBlock));
}

// ---------- data ----------

#[test]
fn data_is_segmented_by_mss_and_acked() {
    let mut h = Harness::established_plain_client(1000, 65535);
    let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
    assert_eq!(h.conn.send(&data), Ok(2500));
    let segs = h.drain();
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[0].payload.len(), 1000);
    assert_eq!(segs[1].payload.len(), 1000);
    assert_eq!(segs[2].payload.len(), 500);
    assert!(segs[2].header.flags.psh());
    assert_eq!(seq_of(&segs[1]), ISS + 1 + 1000);
    let joined: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(joined, data);
    assert_eq!(h.conn.send_queue(), 2500);
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1 + 2500));
    assert_eq!(h.conn.send_queue(), 0);
    assert_eq!(
        h.conn.poll_at(),
        None,
        "no timer once everything is acknowledged"
    );
}

#[test]
fn received_data_is_delivered_and_acked_quickly_at_start() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.input(
        seg(TcpFlags::ACK | TcpFlags::PSH)
            .seq(PEER_ISS + 1)
            .ack(ISS + 1)
            .data(b"hello"),
    );
    // Quick-ACK mode at the start of a connection: ACK at once.
    let ack = h.expect();
    assert_eq!(ack_of(&ack), PEER_ISS + 1 + 5);
    let mut buf = [0u8; 16];
    assert_eq!(h.conn.recv(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(h.conn.recv(&mut buf), Err(RecvError::WouldBlock));
}

#[test]
fn delayed_ack_after_quickack_and_every_second_segment() {
    let mut cfg = config();
    cfg.quickack_segments = 0;
    let mut h = Harness::client_with(&cfg, cfg.default_socket_options());
    h.expect();
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .ack(ISS + 1)
            .options(plain_syn_options(1000)),
    );
    h.expect();
    let full = vec![7u8; 1000];
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 1)
            .data(&full),
    );
    h.expect_nothing();
    h.advance(ms(39));
    h.expect_nothing();
    h.advance(ms(1));
    let ack = h.expect();
    assert_eq!(ack_of(&ack), PEER_ISS + 1 + 1000);
    // Two full segments: the second is ACKed at once.
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1001)
            .ack(ISS + 1)
            .data(&full),
    );
    h.expect_nothing();
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 2001)
            .ack(ISS + 1)
            .data(&full),
    );
    assert_eq!(ack_of(&h.expect()), PEER_ISS + 3001);
}

#[test]
fn out_of_order_data_gets_immediate_dupack_with_sack_then_full_ack() {
    let mut h = Harness::established_client();
    let base = PEER_ISS + 1;
    let d = vec![1u8; 100];
    h.input(
        seg(TcpFlags::ACK)
            .seq(base + 100)
            .ack(ISS + 1)
            .ts(101, 0)
            .data(&d),
    );
    let dup = h.expect();
    assert_eq!(ack_of(&dup), base);
    let blocks: Vec<_> = dup.header.options.sack.iter().collect();
    assert_eq!(blocks, vec![(SeqNumber(base + 100), SeqNumber(base + 200))]);
    h.input(
        seg(TcpFlags::ACK)
            .seq(base + 300)
            .ack(ISS + 1)
            .ts(102, 0)
            .data(&d),
    );
    let dup2 = h.expect();
    let blocks: Vec<_> = dup2.header.options.sack.iter().collect();
    // RFC 2018 4: the block of the most recent segment first.
    assert_eq!(
        blocks,
        vec![
            (SeqNumber(base + 300), SeqNumber(base + 400)),
            (SeqNumber(base + 100), SeqNumber(base + 200))
        ]
    );
    h.input(
        seg(TcpFlags::ACK)
            .seq(base)
            .ack(ISS + 1)
            .ts(103, 0)
            .data(&d),
    );
    let ack = h.expect();
    assert_eq!(ack_of(&ack), base + 200);
    assert_eq!(ack.header.options.sack.len(), 1);
    assert_eq!(h.conn.recv_queue(), 200);
}

#[test]
fn duplicate_data_below_rcv_nxt_is_acked_not_delivered_twice() {
    let mut h = Harness::established_plain_client(1000, 65535);
    let base = PEER_ISS + 1;
    h.input(seg(TcpFlags::ACK).seq(base).ack(ISS + 1).data(b"abc"));
    h.drain();
    h.input(seg(TcpFlags::ACK).seq(base).ack(ISS + 1).data(b"abc"));
    assert_eq!(ack_of(&h.expect()), base + 3);
    // Overlapping retransmission: only the new part is kept.
    h.input(seg(TcpFlags::ACK).seq(base + 1).ack(ISS + 1).data(b"bcde"));
    h.drain();
    let mut buf = [0u8; 10];
    assert_eq!(h.conn.recv(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"abcde");
}

#[test]
fn rto_retransmits_with_backoff_and_karn() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.send(b"payload").unwrap();
    let first = h.expect();
    assert_eq!(first.payload, b"payload");
    // The handshake measured an RTT of 0: the RTO is Linux's 200 ms floor.
    assert_eq!(h.fire_next_timer(), ms(200));
    let again = h.expect();
    assert_eq!(seq_of(&again), seq_of(&first));
    assert_eq!(again.payload, b"payload");
    assert_eq!(h.fire_next_timer(), ms(400));
    h.expect();
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1 + 7));
    assert_eq!(h.conn.info().counters.retransmits, 2);
    assert_eq!(h.conn.poll_at(), None);
    // Karn: the ACK of a retransmitted segment gives no RTT sample, so the backed-off RTO
    // stays for the next segment (RFC 6298 5.7).
    h.conn.send(b"next").unwrap();
    h.expect();
    assert_eq!(h.fire_next_timer(), ms(800));
}

#[test]
fn established_connection_times_out_after_retries2() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.send(b"x").unwrap();
    h.expect();
    for _ in 0..15 {
        h.fire_next_timer();
        assert_eq!(h.conn.state(), State::Established);
        h.expect();
    }
    h.fire_next_timer();
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), Some(ConnectionError::TimedOut));
}

#[test]
fn fast_retransmit_on_three_dupacks_then_newreno_partial_ack() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.send(&vec![9u8; 6000]).unwrap();
    let segs = h.drain();
    assert_eq!(segs.len(), 6);
    let una = ISS + 1;
    for i in 0..2 {
        h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(una));
        assert!(h.output().is_none(), "dupack {i} must not retransmit");
    }
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(una));
    let rtx = h.expect();
    assert_eq!(seq_of(&rtx), una);
    assert_eq!(rtx.payload.len(), 1000);
    assert_eq!(h.conn.info().counters.fast_recoveries, 1);
    // Partial ACK (segment 3 was lost too): retransmit it at once.
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(una + 2000));
    let rtx2 = h.expect();
    assert_eq!(seq_of(&rtx2), una + 2000);
    // Full ACK ends recovery.
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(una + 6000));
    assert_eq!(h.conn.send_queue(), 0);
    assert_eq!(h.conn.info().unacked, 0);
}

#[test]
fn sack_recovery_retransmits_only_the_holes() {
    let mut h = Harness::established_client();
    let mss = h.conn.info().send_mss as u32; // 1448
    h.conn.send(&vec![3u8; 10 * mss as usize]).unwrap();
    let segs = h.drain();
    assert_eq!(segs.len(), 10);
    let una = ISS + 1;
    // Segments 0 and 2 lost; the peer SACKs 1 and 3..=9.
    let s = |i: u32| una + i * mss;
    let mut ts = 200;
    let mut sack_ack = |h: &mut Harness, blocks: &[(u32, u32)]| {
        ts += 1;
        h.input(
            seg(TcpFlags::ACK)
                .seq(PEER_ISS + 1)
                .ack(una)
                .ts(ts, 0)
                .win(1000)
                .sack(blocks),
        );
    };
    sack_ack(&mut h, &[(s(1), s(2))]);
    sack_ack(&mut h, &[(s(3), s(4)), (s(1), s(2))]);
    sack_ack(&mut h, &[(s(3), s(5)), (s(1), s(2))]);
    let mut out = h.drain();
    // Segment 2 has only two segments SACKed above it: not yet lost (RFC 6675 IsLost).
    assert_eq!(out.iter().map(seq_of).collect::<Vec<_>>(), vec![s(0)]);
    sack_ack(&mut h, &[(s(3), s(6)), (s(1), s(2))]);
    out.extend(h.drain());
    let seqs: Vec<u32> = out.iter().map(seq_of).collect();
    assert!(seqs.contains(&s(0)), "hole 0 retransmitted: {seqs:?}");
    assert!(seqs.contains(&s(2)), "hole 2 retransmitted: {seqs:?}");
    assert!(
        !seqs.contains(&s(1)) && !seqs.contains(&s(3)),
        "SACKed data resent: {seqs:?}"
    );
}

#[test]
fn nagle_holds_small_segments_until_ack_and_nodelay_does_not() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.send(b"a").unwrap();
    assert_eq!(h.expect().payload, b"a");
    h.conn.send(b"b").unwrap();
    h.expect_nothing();
    h.conn.send(b"c").unwrap();
    h.expect_nothing();
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 2));
    assert_eq!(h.expect().payload, b"bc");

    let cfg = config();
    let mut opts = cfg.default_socket_options();
    opts.nodelay = true;
    let mut h = Harness::client_with(&cfg, opts);
    h.expect();
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .ack(ISS + 1)
            .options(plain_syn_options(1000)),
    );
    h.expect();
    h.conn.send(b"a").unwrap();
    h.expect();
    h.conn.send(b"b").unwrap();
    assert_eq!(h.expect().payload, b"b");
}

#[test]
fn zero_window_is_probed_and_data_flows_when_it_opens() {
    let mut h = Harness::established_plain_client(1000, 0);
    h.conn.send(b"blocked").unwrap();
    h.expect_nothing();
    // Persist timer: the probe carries an old sequence number (SND.UNA - 1), no data.
    let waited = h.fire_next_timer();
    assert_eq!(waited, ms(200));
    let probe = h.expect();
    assert_eq!(seq_of(&probe), ISS);
    assert!(probe.payload.is_empty());
    h.expect_nothing();
    // Still zero: the next probe backs off.
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1).win(0));
    h.expect_nothing();
    assert_eq!(h.fire_next_timer(), ms(400));
    h.expect();
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1).win(100));
    assert_eq!(h.expect().payload, b"blocked");
}

#[test]
fn advertised_window_is_scaled_and_shrinks_as_data_waits() {
    let cfg = TcpConfig_small_recv();
    let mut h = Harness::client_with(&cfg, cfg.default_socket_options());
    let syn = h.expect();
    assert_eq!(syn.header.window, 4096);
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .ack(ISS + 1)
            .options(linux_syn_options(
                1,
                syn.header.options.timestamps.unwrap().tsval,
            )),
    );
    let ack = h.expect();
    assert_eq!(ack.header.window, 4096 >> 7);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 1)
            .ts(2, 0)
            .data(&[0u8; 1024]),
    );
    let ack = h.expect();
    assert_eq!(ack.header.window, 3072 >> 7);
}

#[allow(non_snake_case)]
fn TcpConfig_small_recv() -> ustack::tcp::config::TcpConfig {
    ustack::tcp::config::TcpConfig {
        recv_buffer: 4096,
        ..config()
    }
}

#[test]
fn paws_drops_old_timestamps_and_acks() {
    let mut h = Harness::established_client();
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 1)
            .ts(500, 0)
            .data(b"new"),
    );
    h.drain();
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 4)
            .ack(ISS + 1)
            .ts(400, 0)
            .data(b"old"),
    );
    let ack = h.expect();
    assert_eq!(ack_of(&ack), PEER_ISS + 4);
    assert_eq!(h.conn.recv_queue(), 3);
    assert_eq!(h.conn.info().counters.paws_drops, 1);
}

// ---------- RST and SYN validation (RFC 5961) ----------

#[test]
fn rst_must_match_rcv_nxt_exactly_else_challenge_ack() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.input(seg(TcpFlags::RST).seq(PEER_ISS + 10));
    assert_eq!(h.conn.state(), State::Established);
    let challenge = h.expect();
    assert_eq!(challenge.header.flags, TcpFlags::ACK);
    assert_eq!(ack_of(&challenge), PEER_ISS + 1);
    // Out of window entirely: silently dropped.
    h.input(seg(TcpFlags::RST).seq(PEER_ISS + 1_000_000));
    h.expect_nothing();
    h.input(seg(TcpFlags::RST).seq(PEER_ISS + 1));
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), Some(ConnectionError::Reset));
    assert_eq!(
        h.conn.send(b"x"),
        Err(SendError::Failed(ConnectionError::Reset))
    );
}

#[test]
fn syn_on_established_connection_gets_challenge_ack() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.input(seg(TcpFlags::SYN).seq(PEER_ISS + 1));
    assert_eq!(h.conn.state(), State::Established);
    let ack = h.expect();
    assert_eq!(ack.header.flags, TcpFlags::ACK);
    assert_eq!(h.conn.info().counters.challenge_acks, 1);
    // Rate limited: a second one within 500 ms gets nothing.
    h.input(seg(TcpFlags::SYN).seq(PEER_ISS + 1));
    h.expect_nothing();
}

#[test]
fn ack_of_unsent_data_is_challenged_and_dropped() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 500)
            .data(b"zz"),
    );
    assert_eq!(h.expect().header.flags, TcpFlags::ACK);
    assert_eq!(h.conn.recv_queue(), 0);
}

// ---------- closing ----------

#[test]
fn active_close_through_fin_wait_and_time_wait() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.close();
    assert_eq!(h.conn.state(), State::FinWait1);
    let fin = h.expect();
    assert_eq!(fin.header.flags, TcpFlags::FIN | TcpFlags::ACK);
    assert_eq!(seq_of(&fin), ISS + 1);
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 2));
    assert_eq!(h.conn.state(), State::FinWait2);
    h.input(
        seg(TcpFlags::FIN | TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 2),
    );
    assert_eq!(h.conn.state(), State::TimeWait);
    assert_eq!(ack_of(&h.expect()), PEER_ISS + 2);
    // A retransmitted FIN is ACKed again and restarts 2MSL.
    h.advance(ms(1500));
    h.input(
        seg(TcpFlags::FIN | TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 2),
    );
    assert_eq!(ack_of(&h.expect()), PEER_ISS + 2);
    h.advance(ms(1999));
    assert_eq!(h.conn.state(), State::TimeWait);
    h.advance(ms(1));
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), None);
}

#[test]
fn passive_close_through_close_wait_and_last_ack() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.input(
        seg(TcpFlags::FIN | TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 1),
    );
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(ack_of(&h.expect()), PEER_ISS + 2);
    let mut buf = [0u8; 4];
    assert_eq!(h.conn.recv(&mut buf), Ok(0), "EOF");
    assert!(h.conn.readiness().read_closed);
    // Half-close: we can still send.
    h.conn.send(b"late").unwrap();
    assert_eq!(h.expect().payload, b"late");
    h.conn.shutdown_write();
    assert_eq!(h.conn.state(), State::LastAck);
    let fin = h.expect();
    assert!(fin.header.flags.fin());
    assert_eq!(seq_of(&fin), ISS + 1 + 4);
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 2).ack(ISS + 1 + 5));
    assert_eq!(h.conn.state(), State::Closed);
    assert!(h.conn.readiness().hang_up);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.shutdown_write();
    h.expect();
    h.input(
        seg(TcpFlags::FIN | TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 1),
    );
    assert_eq!(h.conn.state(), State::Closing);
    h.expect();
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 2).ack(ISS + 2));
    assert_eq!(h.conn.state(), State::TimeWait);
}

#[test]
fn fin_with_data_after_a_hole_waits_for_the_hole() {
    let mut h = Harness::established_plain_client(1000, 65535);
    let base = PEER_ISS + 1;
    h.input(
        seg(TcpFlags::FIN | TcpFlags::ACK)
            .seq(base + 3)
            .ack(ISS + 1)
            .data(b"def"),
    );
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(ack_of(&h.expect()), base);
    h.input(seg(TcpFlags::ACK).seq(base).ack(ISS + 1).data(b"abc"));
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(ack_of(&h.expect()), base + 7);
    let mut buf = [0u8; 10];
    assert_eq!(h.conn.recv(&mut buf), Ok(6));
    assert_eq!(h.conn.recv(&mut buf), Ok(0));
}

#[test]
fn close_with_unread_data_sends_rst() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 1)
            .data(b"unread"),
    );
    h.drain();
    h.conn.close();
    let rst = h.expect();
    assert!(rst.header.flags.rst());
    assert_eq!(seq_of(&rst), ISS + 1);
    assert_eq!(h.conn.state(), State::Closed);
}

#[test]
fn data_after_close_is_answered_with_rst() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.close();
    h.expect();
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 2));
    assert_eq!(h.conn.state(), State::FinWait2);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 2)
            .data(b"more"),
    );
    assert!(h.expect().header.flags.rst());
    assert_eq!(h.conn.state(), State::Closed);
}

#[test]
fn orphaned_fin_wait_2_times_out() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.close();
    h.expect();
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 2));
    assert_eq!(h.conn.state(), State::FinWait2);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.conn.state(), State::Closed);
}

#[test]
fn linger_zero_close_sends_rst() {
    let mut h = Harness::established_plain_client(1000, 65535);
    let mut opts = h.conn.options().clone();
    opts.linger_zero = true;
    h.conn.set_options(opts, h.now);
    h.conn.close();
    assert!(h.expect().header.flags.rst());
    assert_eq!(h.conn.state(), State::Closed);
}

// ---------- keepalive, user timeout, ICMP ----------

#[test]
fn keepalive_probes_then_times_out() {
    let mut h = Harness::established_plain_client(1000, 65535);
    let mut opts = h.conn.options().clone();
    opts.keepalive = true;
    opts.keepalive_idle = Duration::from_secs(10);
    opts.keepalive_interval = Duration::from_secs(2);
    opts.keepalive_probes = 3;
    h.conn.set_options(opts, h.now);
    assert_eq!(h.fire_next_timer(), Duration::from_secs(10));
    let probe = h.expect();
    assert_eq!(seq_of(&probe), ISS);
    // An answer resets the count and the idle time.
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1));
    let answered_at = h.now;
    h.fire_next_timer();
    h.expect_nothing();
    // Now silence: 3 probes 2 s apart from 10 s after the answer, then RST and ETIMEDOUT.
    let mut probes = Vec::new();
    while h.conn.state() != State::Closed {
        h.fire_next_timer();
        for s in h.drain() {
            if s.header.flags.rst() {
                assert_eq!(h.conn.state(), State::Closed);
            } else {
                probes.push((h.now - answered_at).as_secs());
            }
        }
    }
    assert_eq!(probes, vec![10, 12, 14]);
    assert_eq!((h.now - answered_at).as_secs(), 16);
    assert_eq!(h.conn.error(), Some(ConnectionError::TimedOut));
}

#[test]
fn user_timeout_aborts_before_retries2() {
    let mut h = Harness::established_plain_client(1000, 65535);
    let mut opts = h.conn.options().clone();
    opts.user_timeout = Some(Duration::from_secs(5));
    h.conn.set_options(opts, h.now);
    h.conn.send(b"x").unwrap();
    h.expect();
    while h.conn.state() != State::Closed {
        h.fire_next_timer();
        h.drain();
        assert!(h.now.as_millis() <= 8_000, "user timeout ignored");
    }
    assert_eq!(h.conn.error(), Some(ConnectionError::TimedOut));
}

#[test]
fn icmp_port_unreachable_while_connecting_refuses() {
    let mut h = Harness::client();
    h.expect();
    // Wrong sequence number: ignored (RFC 5927).
    h.conn.handle_icmp_error(
        h.now,
        IcmpError::Unreachable {
            code: 3,
            next_hop_mtu: 0,
        },
        SeqNumber(ISS + 100),
    );
    assert_eq!(h.conn.state(), State::SynSent);
    h.conn.handle_icmp_error(
        h.now,
        IcmpError::Unreachable {
            code: 3,
            next_hop_mtu: 0,
        },
        SeqNumber(ISS),
    );
    assert_eq!(h.conn.error(), Some(ConnectionError::Refused));
}

#[test]
fn icmp_on_established_is_soft_and_reported_on_timeout() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.send(b"x").unwrap();
    h.expect();
    h.conn.handle_icmp_error(
        h.now,
        IcmpError::Unreachable {
            code: 1,
            next_hop_mtu: 0,
        },
        SeqNumber(ISS + 1),
    );
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.error(), None);
    while h.conn.state() != State::Closed {
        h.fire_next_timer();
        h.drain();
    }
    assert_eq!(h.conn.error(), Some(ConnectionError::HostUnreachable));
}

#[test]
fn soft_error_is_forgotten_once_an_ack_arrives() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.send(b"x").unwrap();
    h.expect();
    h.conn.handle_icmp_error(
        h.now,
        IcmpError::Unreachable {
            code: 1,
            next_hop_mtu: 0,
        },
        SeqNumber(ISS + 1),
    );
    // The path works again: the peer acknowledges. A later timeout has nothing to do with
    // the old ICMP error and reports ETIMEDOUT, as Linux clears `sk_err_soft` in `tcp_ack`.
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 2));
    h.conn.send(b"y").unwrap();
    h.expect();
    while h.conn.state() != State::Closed {
        h.fire_next_timer();
        h.drain();
    }
    assert_eq!(h.conn.error(), Some(ConnectionError::TimedOut));
}

#[test]
fn fragmentation_needed_lowers_mss_and_resends() {
    let mut h = Harness::established_plain_client(1460, 65535);
    h.conn.send(&vec![1u8; 1460]).unwrap();
    assert_eq!(h.expect().payload.len(), 1460);
    h.conn.handle_icmp_error(
        h.now,
        IcmpError::Unreachable {
            code: 4,
            next_hop_mtu: 1400,
        },
        SeqNumber(ISS + 1),
    );
    let again = h.drain();
    assert_eq!(again[0].payload.len(), 1360);
    assert_eq!(seq_of(&again[0]), ISS + 1);
}

// ---------- windows, urgent data, more timeouts ----------

#[test]
fn full_receive_buffer_advertises_zero_then_updates_after_read() {
    let cfg = TcpConfig_small_recv(); // 4096-byte receive buffer
    let mut h = Harness::client_with(&cfg, cfg.default_socket_options());
    h.expect();
    h.input(
        seg(TcpFlags::SYN)
            .seq(PEER_ISS)
            .ack(ISS + 1)
            .options(plain_syn_options(1024)),
    );
    assert_eq!(h.expect().header.window, 4096);
    let base = PEER_ISS + 1;
    for i in 0..4u32 {
        h.input(
            seg(TcpFlags::ACK)
                .seq(base + i * 1024)
                .ack(ISS + 1)
                .data(&[i as u8; 1024]),
        );
    }
    let acks = h.drain();
    let last = acks.last().unwrap();
    assert_eq!(ack_of(last), base + 4096);
    assert_eq!(last.header.window, 0);
    // Data beyond the window is not accepted; the ACK repeats the zero window.
    h.input(
        seg(TcpFlags::ACK)
            .seq(base + 4096)
            .ack(ISS + 1)
            .data(b"over"),
    );
    let ack = h.expect();
    assert_eq!((ack_of(&ack), ack.header.window), (base + 4096, 0));
    assert_eq!(h.conn.recv_queue(), 4096);
    // Reading a little does not reopen the window (receiver SWS avoidance)...
    let mut buf = [0u8; 4096];
    assert_eq!(h.conn.recv(&mut buf[..100]), Ok(100));
    h.expect_nothing();
    // ...reading half the buffer does, with an unsolicited window update.
    assert_eq!(h.conn.recv(&mut buf[..2000]), Ok(2000));
    let update = h.expect();
    assert_eq!(ack_of(&update), base + 4096);
    assert_eq!(update.header.window, 2100);
}

#[test]
fn passive_half_open_connection_gives_up_after_synack_retries() {
    let cfg = config();
    let syn = seg(TcpFlags::SYN)
        .seq(PEER_ISS)
        .options(plain_syn_options(1460));
    let mut h = Harness::server_with(&cfg, cfg.default_socket_options(), syn);
    h.expect();
    let mut resent = 0;
    while h.conn.state() != State::Closed {
        h.fire_next_timer();
        resent += h.drain().len();
    }
    assert_eq!(resent, 5);
    // A listener's half-open connection vanishes without an error for anyone.
    assert_eq!(h.conn.error(), None);
    assert_eq!(h.now.as_millis(), 63_000);
}

#[test]
fn urgent_data_is_delivered_inline() {
    let mut h = Harness::established_plain_client(1000, 65535);
    let mut s = seg(TcpFlags::ACK | TcpFlags::URG)
        .seq(PEER_ISS + 1)
        .ack(ISS + 1)
        .data(b"abc!");
    s.header.urgent = 4;
    h.input(s);
    h.drain();
    let mut buf = [0u8; 8];
    assert_eq!(h.conn.recv(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"abc!");
}

#[test]
fn lost_fin_is_retransmitted() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.send(b"bye").unwrap();
    h.conn.shutdown_write();
    let seg1 = h.expect();
    assert_eq!(seg1.payload, b"bye");
    assert!(
        seg1.header.flags.fin(),
        "FIN rides on the last data segment"
    );
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1 + 3));
    assert_eq!(h.conn.state(), State::FinWait1);
    h.fire_next_timer();
    let fin = h.expect();
    assert_eq!(fin.header.flags, TcpFlags::FIN | TcpFlags::ACK);
    assert_eq!(seq_of(&fin), ISS + 1 + 3);
    assert!(fin.payload.is_empty());
    h.input(seg(TcpFlags::ACK).seq(PEER_ISS + 1).ack(ISS + 1 + 4));
    assert_eq!(h.conn.state(), State::FinWait2);
}

#[test]
fn rst_in_time_wait_closes_quietly() {
    let mut h = Harness::established_plain_client(1000, 65535);
    h.conn.shutdown_write();
    h.expect();
    h.input(
        seg(TcpFlags::FIN | TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(ISS + 2),
    );
    assert_eq!(h.conn.state(), State::TimeWait);
    h.drain();
    h.input(seg(TcpFlags::RST).seq(PEER_ISS + 2));
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.error(), None);
}

#[test]
fn rto_clears_sack_scoreboard_and_goes_back_to_snd_una() {
    let mut h = Harness::established_client();
    let mss = h.conn.info().send_mss as u32;
    h.conn.send(&vec![1u8; 4 * mss as usize]).unwrap();
    assert_eq!(h.drain().len(), 4);
    let una = ISS + 1;
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(una)
            .ts(300, 0)
            .sack(&[(una + 2 * mss, una + 3 * mss)]),
    );
    h.drain();
    h.fire_next_timer();
    let rtx = h.expect();
    assert_eq!(seq_of(&rtx), una);
    assert_eq!(h.conn.info().counters.timeouts, 1);
    assert_eq!(h.conn.info().cwnd, mss as usize);
    h.expect_nothing();
    // The ACK of the head lets slow start resend the rest, SACKed segment included
    // (RFC 2018 8: SACK information is dropped on timeout).
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(una + mss)
            .ts(301, 0),
    );
    let seqs: Vec<u32> = h.drain().iter().map(seq_of).collect();
    assert_eq!(seqs, vec![una + mss, una + 2 * mss]);
}

#[test]
fn data_segments_shrink_to_make_room_for_sack_blocks() {
    // Found by the Ethernet-level simulation: a full-sized segment plus SACK blocks exceeded
    // the MTU and was refused by IPv4 (DF set).
    let mut h = Harness::established_client();
    let base = PEER_ISS + 1;
    for i in 0..3u32 {
        h.input(
            seg(TcpFlags::ACK)
                .seq(base + 100 + i * 200)
                .ack(ISS + 1)
                .ts(101 + i, 0)
                .data(&[5u8; 100]),
        );
    }
    h.drain();
    h.conn.send(&vec![1u8; 10_000]).unwrap();
    let segs = h.drain();
    assert!(!segs.is_empty());
    for s in &segs {
        assert_eq!(s.header.options.sack.len(), 3);
        let ip_payload = s.header.header_len() + s.payload.len();
        assert!(
            ip_payload <= 1480,
            "segment of {ip_payload} bytes exceeds MTU 1500"
        );
    }
    assert_eq!(segs[0].payload.len(), 1448 - 4 - 3 * 8);
}

#[test]
fn lost_tail_acks_are_recovered_by_a_loss_probe_not_the_rto() {
    // RFC 8985 7: every ACK for the last segments of a flight is lost. Without a probe only
    // the RTO (>= 200 ms) would restart the flow; the PTO (2*SRTT + 2 ms) fires first and the
    // probe carries new data, whose ACK acknowledges everything.
    let mut h = Harness::established_client();
    let mss = h.conn.info().send_mss as u32;
    let una = ISS + 1;
    h.now += ms(100);
    h.conn.send(&vec![7u8; 40 * mss as usize]).unwrap();
    let first = h.drain();
    assert_eq!(first.len(), 10, "initial window");
    // The peer ACKs the first two segments 10 ms later (an RTT sample of 10 ms).
    h.now += ms(10);
    let tsecr = first[0].header.options.timestamps.map_or(0, |t| t.tsval);
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(una + 2 * mss)
            .ts(300, tsecr),
    );
    let more = h.drain();
    assert!(!more.is_empty());
    let snd_max = more
        .last()
        .map_or(0, |s| seq_of(s) + s.payload.len() as u32);
    // Every later ACK is lost: the next timer is the PTO, well before the 200 ms RTO floor.
    let waited = h.fire_next_timer();
    assert!(waited <= ms(25), "PTO after {waited:?}");
    let probe = h.expect();
    assert_eq!(seq_of(&probe), snd_max, "the probe carries new data");
    assert_eq!(h.conn.info().counters.loss_probes, 1);
    assert_eq!(h.conn.info().counters.timeouts, 0);
    // Its ACK covers everything: no retransmission was needed at all.
    h.input(
        seg(TcpFlags::ACK)
            .seq(PEER_ISS + 1)
            .ack(snd_max + probe.payload.len() as u32)
            .ts(301, tsecr),
    );
    let info = h.conn.info();
    assert_eq!(info.counters.retransmits, 0);
    assert_eq!(info.counters.timeouts, 0);
}

#[test]
fn lost_fast_retransmission_is_sent_again_without_waiting_for_the_rto() {
    // RFC 6675 retransmits a hole once; if that retransmission is lost too, only the RTO would
    // repair it. The peer SACKing data sent *after* the retransmission while the hole stays
    // open shows the retransmission was lost (RFC 8985 6.2, Linux's RACK): send it again.
    let mut h = Harness::established_client();
    let mss = h.conn.info().send_mss as u32;
    let una = ISS + 1;
    let s = |i: u32| una + i * mss;
    h.conn.send(&vec![9u8; 30 * mss as usize]).unwrap();
    assert_eq!(h.drain().len(), 10);
    let mut tsval = 200;
    let mut sack_ack = |h: &mut Harness, upto: u32| {
        tsval += 1;
        h.input(
            seg(TcpFlags::ACK)
                .seq(PEER_ISS + 1)
                .ack(una)
                .ts(tsval, 0)
                .sack(&[(s(1), s(upto))]),
        );
        h.drain()
    };
    // Segment 0 is lost; SACKs for 1..=3 start recovery with its fast retransmission.
    let mut sent = Vec::new();
    for upto in 2..=4 {
        sent.extend(sack_ack(&mut h, upto));
    }
    let seqs: Vec<u32> = sent.iter().map(seq_of).collect();
    assert_eq!(seqs.iter().filter(|&&q| q == s(0)).count(), 1, "{seqs:?}");
    // SACKs for the rest of the flight let new data out, after the retransmission.
    let mut after = Vec::new();
    for upto in 5..=10 {
        after.extend(sack_ack(&mut h, upto));
    }
    assert!(after.iter().all(|x| seq_of(x) >= s(10)), "new data only");
    let first_new = after.iter().map(seq_of).min().unwrap_or(0);
    assert!(!after.is_empty());
    // The retransmission of segment 0 was lost; the peer SACKs the first segment sent
    // after it.
    let first_new_index = (first_new - una) / mss;
    let again = sack_ack(&mut h, first_new_index + 1);
    assert!(
        again.iter().any(|x| seq_of(x) == s(0)),
        "segment 0 sent again at once: {:?}",
        again.iter().map(seq_of).collect::<Vec<_>>()
    );
    let info = h.conn.info();
    assert_eq!(info.counters.lost_retransmits, 1);
    assert_eq!(info.counters.timeouts, 0);
}
