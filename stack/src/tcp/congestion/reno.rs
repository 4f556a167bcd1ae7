//! Reno congestion control (RFC 5681) with appropriate byte counting (RFC 3465).
//!
//! - Slow start (cwnd < ssthresh): cwnd grows by the bytes acknowledged, at most 2*SMSS per
//!   ACK (RFC 3465 2.2, L = 2), so it doubles every round trip.
//! - Congestion avoidance: bytes acknowledged are counted, and each time a full cwnd's worth
//!   has been acknowledged cwnd grows by one SMSS (RFC 3465 2.1; RFC 5681 3.1), i.e. about one
//!   segment per round trip.
//! - Fast retransmit: ssthresh = max(FlightSize/2, 2*SMSS) (RFC 5681 eq. 4), cwnd = ssthresh.
//!   The connection does any dupack inflation and NewReno partial-ACK logic (RFC 6582).
//! - Retransmission timeout: same ssthresh, cwnd = 1 SMSS (the loss window, RFC 5681 3.1).

use std::time::Duration;

use super::{
    grow_in_slow_start, initial_window, reno_ssthresh, rescale_bytes, restart_window, sane_mss,
    CongestionControl, INITIAL_SSTHRESH,
};
use crate::time::Instant;

/// RFC 5681 Reno state.
#[derive(Debug, Clone)]
pub struct Reno {
    /// SMSS in bytes, at least 1.
    mss: usize,
    /// cwnd in bytes, at least `mss`.
    cwnd: usize,
    /// ssthresh in bytes.
    ssthresh: usize,
    /// RFC 3465 2.1 `bytes_acked` counter for congestion avoidance; kept below `cwnd`.
    bytes_acked: usize,
    /// A retransmission timeout happened and no new data has been acknowledged since: a
    /// further timeout must not lower ssthresh again (RFC 5681 3.1).
    in_rto_backoff: bool,
    /// No event has happened yet, so a new MSS just recomputes the initial window.
    pristine: bool,
}

impl Reno {
    /// Reno at the RFC 6928 initial window for `mss`.
    pub fn new(mss: usize, _now: Instant) -> Self {
        let mss = sane_mss(mss);
        Reno {
            mss,
            cwnd: initial_window(mss),
            ssthresh: INITIAL_SSTHRESH,
            bytes_acked: 0,
            in_rto_backoff: false,
            pristine: true,
        }
    }
}

impl CongestionControl for Reno {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn on_ack(
        &mut self,
        _now: Instant,
        acked: usize,
        _rtt: Option<Duration>,
        bytes_in_flight: usize,
    ) {
        if acked == 0 {
            return;
        }
        self.pristine = false;
        self.in_rto_backoff = false;
        // RFC 9438 4.10 / RFC 5681 3.1: slow start, and only when the window is in use.
        let acked = grow_in_slow_start(
            &mut self.cwnd,
            self.ssthresh,
            acked,
            self.mss,
            bytes_in_flight,
        );
        if acked == 0 {
            return;
        }
        // RFC 3465 2.1: congestion avoidance by byte counting. When bytes_acked reaches cwnd,
        // subtract cwnd and grow by one SMSS (at most once per ACK, so at most once per RTT).
        self.bytes_acked = self.bytes_acked.saturating_add(acked);
        if self.bytes_acked >= self.cwnd {
            self.bytes_acked -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(self.mss);
            self.bytes_acked = self.bytes_acked.min(self.cwnd - 1);
        }
    }

    fn on_fast_retransmit(&mut self, _now: Instant, bytes_in_flight: usize) {
        self.pristine = false;
        // RFC 5681 3.2 step 2 (eq. 4), then cwnd = ssthresh (the window once recovery ends;
        // the connection inflates it for dupacks if it implements RFC 5681 step 3/4).
        self.ssthresh = reno_ssthresh(bytes_in_flight, self.mss);
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        // RFC 6582 3.2 step 3 option 2 / RFC 5681 3.2 step 6: deflate to ssthresh.
        if self.ssthresh != INITIAL_SSTHRESH {
            self.cwnd = self.ssthresh.max(self.mss);
        }
        self.bytes_acked = 0;
    }

    fn on_retransmit_timeout(&mut self, _now: Instant, bytes_in_flight: usize) {
        self.pristine = false;
        // RFC 5681 3.1: on a timeout, ssthresh = max(FlightSize/2, 2*SMSS) (eq. 4) unless the
        // segment was already retransmitted by the timer, in which case ssthresh is held.
        if !self.in_rto_backoff {
            self.ssthresh = reno_ssthresh(bytes_in_flight, self.mss);
        }
        self.in_rto_backoff = true;
        // RFC 5681 3.1: cwnd = LW = 1 full-sized segment.
        self.cwnd = self.mss;
        self.bytes_acked = 0;
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        // RFC 2861 3 keeps a memory of the old window in ssthresh; RFC 5681 4.1 restarts at
        // RW = min(IW, cwnd).
        self.ssthresh = super::idle_ssthresh(self.ssthresh, self.cwnd);
        self.cwnd = restart_window(self.cwnd, self.mss);
        self.bytes_acked = 0;
    }

    fn set_mss(&mut self, mss: usize) {
        let mss = sane_mss(mss);
        if self.pristine {
            self.cwnd = initial_window(mss);
        } else {
            self.cwnd = rescale_bytes(self.cwnd, self.mss, mss);
            self.ssthresh = rescale_bytes(self.ssthresh, self.mss, mss);
            self.bytes_acked = 0;
        }
        self.mss = mss;
    }

    fn name(&self) -> &'static str {
        "reno"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: usize = 1000;

    /// One round trip of a cwnd-limited sender: every segment of the window it had at the
    /// start is acknowledged individually, and the sender refills the window after each ACK,
    /// so the flight is the whole cwnd whenever an ACK arrives. Returns the number of ACKs.
    fn round_trip_with_mss(cc: &mut Reno, mss: usize, now: Instant) -> usize {
        let segments = cc.window() / mss;
        for _ in 0..segments {
            let in_flight = cc.window();
            cc.on_ack(now, mss, None, in_flight);
        }
        segments
    }

    fn round_trip(cc: &mut Reno, now: Instant) -> usize {
        round_trip_with_mss(cc, MSS, now)
    }

    #[test]
    fn slow_start_doubles_per_round_trip() {
        let mut cc = Reno::new(MSS, Instant::ZERO);
        assert_eq!(cc.window(), 10 * MSS);
        for rtt in 1..=4u64 {
            let before = cc.window();
            round_trip(&mut cc, Instant::from_millis(rtt * 100));
            assert_eq!(cc.window(), 2 * before);
        }
    }

    #[test]
    fn slow_start_with_delayed_acks_grows_by_two_segments_per_ack() {
        // RFC 3465 L = 2: an ACK for two segments grows cwnd by two segments.
        let mut cc = Reno::new(MSS, Instant::ZERO);
        cc.on_ack(Instant::ZERO, 2 * MSS, None, 10 * MSS);
        assert_eq!(cc.window(), 12 * MSS);
        // An ACK for five segments still grows by only two.
        cc.on_ack(Instant::ZERO, 5 * MSS, None, 12 * MSS);
        assert_eq!(cc.window(), 14 * MSS);
    }

    #[test]
    fn congestion_avoidance_grows_one_segment_per_round_trip() {
        let mut cc = Reno::new(MSS, Instant::ZERO);
        cc.on_fast_retransmit(Instant::ZERO, 40 * MSS);
        assert_eq!(cc.ssthresh(), 20 * MSS);
        assert_eq!(cc.window(), 20 * MSS);
        assert!(!cc.in_slow_start());
        for rtt in 1..=10u64 {
            let before = cc.window();
            round_trip(&mut cc, Instant::from_millis(rtt * 100));
            assert_eq!(cc.window(), before + MSS, "round trip {rtt}");
        }
    }

    #[test]
    fn fast_retransmit_halves_flight() {
        let mut cc = Reno::new(MSS, Instant::ZERO);
        for _ in 0..3 {
            round_trip(&mut cc, Instant::ZERO);
        }
        assert_eq!(cc.window(), 80 * MSS);
        cc.on_fast_retransmit(Instant::ZERO, 60 * MSS);
        assert_eq!(cc.ssthresh(), 30 * MSS);
        assert_eq!(cc.window(), 30 * MSS);
        cc.on_recovery_exit(Instant::ZERO);
        assert_eq!(cc.window(), 30 * MSS);
        // Tiny flight: the 2*SMSS floor.
        cc.on_fast_retransmit(Instant::ZERO, MSS);
        assert_eq!(cc.ssthresh(), 2 * MSS);
    }

    #[test]
    fn timeout_collapses_to_one_segment_and_holds_ssthresh_when_repeated() {
        let mut cc = Reno::new(MSS, Instant::ZERO);
        round_trip(&mut cc, Instant::ZERO);
        cc.on_retransmit_timeout(Instant::ZERO, 20 * MSS);
        assert_eq!(cc.window(), MSS);
        assert_eq!(cc.ssthresh(), 10 * MSS);
        // The retransmission is lost too: flight is now one segment, ssthresh must not drop.
        cc.on_retransmit_timeout(Instant::ZERO, MSS);
        assert_eq!(cc.window(), MSS);
        assert_eq!(cc.ssthresh(), 10 * MSS);
        // New data acknowledged: slow start again, and a later timeout recomputes ssthresh.
        cc.on_ack(Instant::ZERO, MSS, None, MSS);
        assert_eq!(cc.window(), 2 * MSS);
        cc.on_retransmit_timeout(Instant::ZERO, 2 * MSS);
        assert_eq!(cc.ssthresh(), 2 * MSS);
    }

    #[test]
    fn application_limited_sender_does_not_grow() {
        let mut cc = Reno::new(MSS, Instant::ZERO);
        for _ in 0..100 {
            // Only one segment in flight out of ten allowed.
            cc.on_ack(Instant::ZERO, MSS, None, MSS);
        }
        assert_eq!(cc.window(), 10 * MSS);
    }

    #[test]
    fn idle_restart_uses_restart_window_and_remembers_cwnd() {
        let mut cc = Reno::new(MSS, Instant::ZERO);
        for _ in 0..3 {
            round_trip(&mut cc, Instant::ZERO);
        }
        assert_eq!(cc.window(), 80 * MSS);
        cc.on_fast_retransmit(Instant::ZERO, 80 * MSS);
        cc.on_recovery_exit(Instant::ZERO);
        assert_eq!(cc.window(), 40 * MSS);
        cc.on_idle_restart(Instant::from_millis(10_000));
        assert_eq!(cc.window(), 10 * MSS);
        assert_eq!(cc.ssthresh(), 40 * MSS);
    }

    #[test]
    fn set_mss_recomputes_initial_window_then_keeps_segments() {
        let mut cc = Reno::new(536, Instant::ZERO);
        cc.set_mss(1460);
        assert_eq!(cc.window(), 14_600);
        round_trip_with_mss(&mut cc, 1460, Instant::ZERO);
        assert_eq!(cc.window(), 20 * 1460);
        cc.set_mss(1000);
        assert_eq!(cc.window(), 20 * 1000);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Ack(usize, usize),
        FastRetransmit(usize),
        RecoveryExit,
        Timeout(usize),
        Idle,
        Mss(usize),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => (any::<usize>(), any::<usize>()).prop_map(|(a, f)| Event::Ack(a, f)),
            1 => any::<usize>().prop_map(Event::FastRetransmit),
            1 => Just(Event::RecoveryExit),
            1 => any::<usize>().prop_map(Event::Timeout),
            1 => Just(Event::Idle),
            1 => any::<usize>().prop_map(Event::Mss),
        ]
    }

    proptest! {
        #[test]
        fn extreme_values_never_panic(
            mss in any::<usize>(),
            events in proptest::collection::vec(event(), 0..200),
        ) {
            let mut cc = Reno::new(mss, Instant::ZERO);
            for (i, e) in events.into_iter().enumerate() {
                let now = Instant::from_millis(i as u64);
                match e {
                    Event::Ack(a, f) => cc.on_ack(now, a, None, f),
                    Event::FastRetransmit(f) => cc.on_fast_retransmit(now, f),
                    Event::RecoveryExit => cc.on_recovery_exit(now),
                    Event::Timeout(f) => cc.on_retransmit_timeout(now, f),
                    Event::Idle => cc.on_idle_restart(now),
                    Event::Mss(m) => cc.set_mss(m),
                }
                prop_assert!(cc.window() >= cc.mss);
                prop_assert!(cc.ssthresh() >= cc.mss);
            }
        }
    }
}
