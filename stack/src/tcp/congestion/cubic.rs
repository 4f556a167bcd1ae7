//! CUBIC congestion control (RFC 9438), Linux's default.
//!
//! In congestion avoidance cwnd follows a cubic function of the time since the last
//! congestion event (RFC 9438 4.2, Figure 1), in segments and seconds:
//!
//! ```text
//! W_cubic(t) = C * (t - K)^3 + W_max        K = cbrt((W_max - cwnd_epoch) / C)
//! ```
//!
//! It rises quickly towards the window at the last loss (W_max), flattens around it (concave
//! region, 4.4) and then probes beyond it (convex region, 4.5). A Reno estimate W_est runs
//! alongside; when the cubic curve is below it the flow is in the Reno-friendly region (4.3)
//! and cwnd follows W_est. A loss multiplies the window by beta_cubic = 0.7 (4.6); fast
//! convergence (4.7) lowers W_max further when losses come before it is reached again. On a
//! timeout cwnd collapses to one segment as in Reno, with ssthresh from beta_cubic (4.8), and
//! the first congestion avoidance stage after it uses K = 0 and W_max = cwnd at its start.
//! Slow start is Reno's (4.10); HyStart++ is not implemented.
//!
//! cwnd is kept in bytes; the formulas are evaluated with MSS-sized segments as the RFC's
//! unit. Time comes only from the `now` arguments; RTT from the samples passed to `on_ack`.

use std::time::Duration;

use super::{
    grow_in_slow_start, initial_window, rescale_bytes, restart_window, sane_mss, CongestionControl,
    INITIAL_SSTHRESH,
};
use crate::time::Instant;

/// RFC 9438 5.1: C = 0.4 (segments / second^3).
pub const C: f64 = 0.4;
/// RFC 9438 4.6: beta_cubic = 0.7, the multiplicative decrease factor.
pub const BETA_CUBIC: f64 = 0.7;
/// beta_cubic as the exact fraction 7/10, for integer byte counts.
const BETA_CUBIC_NUM: usize = 7;
const BETA_CUBIC_DEN: usize = 10;
/// RFC 9438 4.3: alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic), the additive increase
/// that makes W_est as aggressive as Reno on average.
pub const ALPHA_CUBIC: f64 = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC);
/// RFC 9438 4.7: fast convergence is on (as in Linux).
pub const FAST_CONVERGENCE: bool = true;

/// One congestion avoidance stage: where its cubic curve is anchored.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    /// t_epoch: when this congestion avoidance stage started.
    start: Instant,
    /// K in seconds.
    k_secs: f64,
    /// The plateau of the curve (W_max for this stage), in bytes.
    origin: f64,
}

/// RFC 9438 CUBIC state.
#[derive(Debug, Clone)]
pub struct Cubic {
    /// SMSS in bytes, at least 1.
    mss: usize,
    /// cwnd in bytes, at least `mss`.
    cwnd: usize,
    /// ssthresh in bytes.
    ssthresh: usize,
    /// Fractional bytes of growth not yet added to `cwnd`; in [0, 1).
    cwnd_carry: f64,
    /// W_max in bytes: the window before the last reduction, lowered by fast convergence.
    /// Zero before any congestion event.
    w_max: f64,
    /// cwnd_prior: cwnd just before the last reduction (RFC 9438 4.6); 0 before any.
    cwnd_prior: usize,
    /// W_est in bytes: the Reno-friendly estimate (RFC 9438 4.3).
    w_est: f64,
    /// The current congestion avoidance stage; `None` until its first ACK.
    epoch: Option<Epoch>,
    /// The last congestion event was a timeout (RFC 9438 4.8 applies to the next stage).
    after_timeout: bool,
    /// Smoothed RTT from the samples given to `on_ack` (gain 1/8, RFC 6298 style).
    srtt: Option<Duration>,
    /// A timeout happened and no new data has been acknowledged since: a further timeout
    /// must not lower ssthresh again (RFC 5681 3.1).
    in_rto_backoff: bool,
    /// No event has happened yet, so a new MSS just recomputes the initial window.
    pristine: bool,
}

impl Cubic {
    /// CUBIC at the RFC 6928 initial window for `mss`.
    pub fn new(mss: usize, _now: Instant) -> Self {
        let mss = sane_mss(mss);
        Cubic {
            mss,
            cwnd: initial_window(mss),
            ssthresh: INITIAL_SSTHRESH,
            cwnd_carry: 0.0,
            w_max: 0.0,
            cwnd_prior: 0,
            w_est: 0.0,
            epoch: None,
            after_timeout: false,
            srtt: None,
            in_rto_backoff: false,
            pristine: true,
        }
    }

    /// W_max in bytes (zero before the first congestion event).
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// RFC 9438 Figure 1 in bytes: W_cubic(t) = C * (t - K)^3 + W_max for this stage.
    fn w_cubic(&self, epoch: &Epoch, t_secs: f64) -> f64 {
        let offset = t_secs - epoch.k_secs;
        C * self.mss as f64 * offset * offset * offset + epoch.origin
    }

    /// Starts a congestion avoidance stage at `now` with cwnd_epoch = cwnd.
    fn start_epoch(&mut self, now: Instant) -> Epoch {
        let cwnd_epoch = self.cwnd as f64;
        let epoch = if self.after_timeout {
            // RFC 9438 4.8: the first stage after a timeout uses K = 0 and W_max = cwnd at
            // its beginning.
            self.after_timeout = false;
            self.w_max = cwnd_epoch;
            Epoch {
                start: now,
                k_secs: 0.0,
                origin: cwnd_epoch,
            }
        } else if self.w_max <= cwnd_epoch {
            // No congestion event yet, or already above the old W_max (e.g. after an idle
            // restart): the plateau is here, probe upwards at once (as Linux's bictcp_update).
            Epoch {
                start: now,
                k_secs: 0.0,
                origin: cwnd_epoch,
            }
        } else {
            // RFC 9438 Figure 2: K = cbrt((W_max - cwnd_epoch) / C), in segments.
            let gap_segments = (self.w_max - cwnd_epoch) / self.mss as f64;
            Epoch {
                start: now,
                k_secs: (gap_segments / C).cbrt(),
                origin: self.w_max,
            }
        };
        // RFC 9438 4.3: W_est = cwnd_epoch at the start of the stage.
        self.w_est = cwnd_epoch;
        self.epoch = Some(epoch);
        epoch
    }

    /// RFC 9438 4.3-4.5: growth in congestion avoidance for `acked` new bytes.
    fn congestion_avoidance(&mut self, now: Instant, acked: usize) {
        let epoch = match self.epoch {
            Some(epoch) => epoch,
            None => self.start_epoch(now),
        };
        let cwnd = self.cwnd as f64;
        let mss = self.mss as f64;
        // One ACK counts for at most a window's worth of segments.
        let acked = acked.min(self.cwnd) as f64;
        let t = now.saturating_duration_since(epoch.start).as_secs_f64();
        let rtt = self.srtt.map_or(0.0, |d| d.as_secs_f64());

        // RFC 9438 4.3: W_est += alpha_cubic * segments_acked / cwnd (in segments), with
        // alpha_cubic = 1 once W_est has reached cwnd_prior.
        let alpha = if self.w_est >= self.cwnd_prior as f64 {
            1.0
        } else {
            ALPHA_CUBIC
        };
        self.w_est += alpha * acked * mss / cwnd;

        if self.w_cubic(&epoch, t) < self.w_est {
            // RFC 9438 4.3: Reno-friendly region: cwnd = W_est.
            if self.w_est > cwnd {
                self.cwnd = (self.w_est as usize).max(self.cwnd);
                self.cwnd_carry = 0.0;
            }
            return;
        }
        // RFC 9438 4.4/4.5: target = W_cubic(t + RTT) bounded to [cwnd, 1.5*cwnd]; cwnd grows
        // by (target - cwnd) / cwnd per acknowledged segment.
        let target = self.w_cubic(&epoch, t + rtt).clamp(cwnd, 1.5 * cwnd);
        let growth = ((target - cwnd) * acked / cwnd).min(target - cwnd);
        let total = growth + self.cwnd_carry;
        if total.is_finite() && total >= 0.0 {
            let whole = total.floor();
            self.cwnd_carry = total - whole;
            self.cwnd = self.cwnd.saturating_add(whole as usize);
        } else {
            self.cwnd_carry = 0.0;
        }
    }

    /// RFC 9438 4.6/4.7: the reduction common to loss and timeout (ssthresh, W_max,
    /// cwnd_prior). The caller sets cwnd.
    fn reduce(&mut self, bytes_in_flight: usize) {
        let cwnd = self.cwnd as f64;
        // RFC 9438 4.7: with fast convergence, a loss below the previous W_max releases
        // bandwidth: W_max = cwnd * (1 + beta_cubic) / 2; otherwise W_max = cwnd.
        self.w_max = if FAST_CONVERGENCE && cwnd < self.w_max {
            cwnd * (1.0 + BETA_CUBIC) / 2.0
        } else {
            cwnd
        };
        // RFC 9438 4.6: ssthresh = flight_size * beta_cubic, at least 2 segments, where the
        // RFC lets an implementation use cwnd instead if cwnd cannot grow while the flight is
        // smaller (our `is_cwnd_limited`). Linux does (`cubictcp_recalc_ssthresh`), and it
        // matters: an application-limited sender's flight at the moment of a loss can be a
        // few segments, and basing ssthresh on it collapses the window for the whole
        // recovery. `bytes_in_flight` still bounds it from below.
        let base = self.cwnd.max(bytes_in_flight);
        let reduced = base / BETA_CUBIC_DEN * BETA_CUBIC_NUM
            + base % BETA_CUBIC_DEN * BETA_CUBIC_NUM / BETA_CUBIC_DEN;
        self.ssthresh = reduced.max(self.mss.saturating_mul(2));
        self.cwnd_prior = self.cwnd;
        self.epoch = None;
        self.cwnd_carry = 0.0;
    }
}

impl CongestionControl for Cubic {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn on_ack(
        &mut self,
        now: Instant,
        acked: usize,
        rtt: Option<Duration>,
        bytes_in_flight: usize,
    ) {
        if let Some(sample) = rtt {
            self.srtt = Some(match self.srtt {
                None => sample,
                Some(srtt) => (srtt * 7 + sample) / 8,
            });
        }
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
        self.congestion_avoidance(now, acked);
    }

    fn on_fast_retransmit(&mut self, _now: Instant, bytes_in_flight: usize) {
        self.pristine = false;
        self.reduce(bytes_in_flight);
        // RFC 9438 4.6: cwnd = max(ssthresh, 2 segments) on loss (ssthresh already >= 2).
        self.cwnd = self.ssthresh;
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        if self.ssthresh != INITIAL_SSTHRESH {
            self.cwnd = self.ssthresh.max(self.mss);
        }
        self.cwnd_carry = 0.0;
        self.epoch = None;
    }

    fn on_retransmit_timeout(&mut self, _now: Instant, bytes_in_flight: usize) {
        self.pristine = false;
        // RFC 9438 4.8: ssthresh as in 4.6; RFC 5681 3.1: held on a repeated timeout.
        if !self.in_rto_backoff {
            self.reduce(bytes_in_flight);
        }
        self.in_rto_backoff = true;
        // RFC 9438 4.8 / RFC 5681 3.1: cwnd = 1 segment.
        self.cwnd = self.mss;
        self.cwnd_carry = 0.0;
        self.epoch = None;
        self.after_timeout = true;
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        // RFC 2861 3 and RFC 5681 4.1, as Reno. The next congestion avoidance stage starts a
        // new curve, so idle time is not counted as growth time (RFC 9438 5.8).
        self.ssthresh = super::idle_ssthresh(self.ssthresh, self.cwnd);
        self.cwnd = restart_window(self.cwnd, self.mss);
        self.cwnd_carry = 0.0;
        self.epoch = None;
    }

    fn set_mss(&mut self, mss: usize) {
        let mss = sane_mss(mss);
        if self.pristine {
            self.cwnd = initial_window(mss);
        } else {
            let scale = mss as f64 / self.mss as f64;
            self.cwnd = rescale_bytes(self.cwnd, self.mss, mss);
            self.ssthresh = rescale_bytes(self.ssthresh, self.mss, mss);
            if self.cwnd_prior != 0 {
                self.cwnd_prior = rescale_bytes(self.cwnd_prior, self.mss, mss);
            }
            self.w_max *= scale;
            self.w_est *= scale;
            self.cwnd_carry = 0.0;
            self.epoch = None;
        }
        self.mss = mss;
    }

    fn name(&self) -> &'static str {
        "cubic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: usize = 1000;

    fn segments(bytes: usize) -> f64 {
        bytes as f64 / MSS as f64
    }

    /// Drives a cwnd-limited sender for one round trip of `rtt` starting at `*now`: every
    /// segment of the window it had at the start is acknowledged individually, spread evenly
    /// over the round trip, with the window refilled after each ACK.
    fn round_trip(cc: &mut Cubic, now: &mut Instant, rtt: Duration) {
        let acks = (cc.window() / MSS).max(1);
        let step = rtt / acks as u32;
        for _ in 0..acks {
            *now += step;
            let flight = cc.window();
            cc.on_ack(*now, MSS, Some(rtt), flight);
        }
    }

    /// A controller in congestion avoidance right after a loss at `w_max_segments`.
    fn after_loss(w_max_segments: usize, now: Instant) -> Cubic {
        let mut cc = Cubic::new(MSS, Instant::ZERO);
        cc.cwnd = w_max_segments * MSS;
        cc.pristine = false;
        cc.on_fast_retransmit(now, w_max_segments * MSS);
        cc.on_recovery_exit(now);
        cc
    }

    #[test]
    fn constants_match_rfc() {
        assert!((ALPHA_CUBIC - 0.9 / 1.7).abs() < 1e-12);
        assert_eq!(BETA_CUBIC_NUM as f64 / BETA_CUBIC_DEN as f64, BETA_CUBIC);
    }

    #[test]
    fn slow_start_doubles_per_round_trip() {
        let mut cc = Cubic::new(MSS, Instant::ZERO);
        let mut now = Instant::ZERO;
        for _ in 0..4 {
            let before = cc.window();
            round_trip(&mut cc, &mut now, Duration::from_millis(100));
            assert_eq!(cc.window(), 2 * before);
        }
    }

    #[test]
    fn loss_reduces_by_beta_and_fast_convergence_lowers_w_max() {
        let mut cc = after_loss(100, Instant::ZERO);
        assert_eq!(cc.ssthresh(), 70 * MSS);
        assert_eq!(cc.window(), 70 * MSS);
        assert_eq!(cc.w_max(), (100 * MSS) as f64);
        assert_eq!(cc.cwnd_prior, 100 * MSS);
        // A second loss at 80 segments, below W_max = 100: fast convergence.
        cc.cwnd = 80 * MSS;
        cc.on_fast_retransmit(Instant::ZERO, 80 * MSS);
        assert!((cc.w_max() - 80.0 * MSS as f64 * 0.85).abs() < 1e-6);
        assert_eq!(cc.window(), 56 * MSS);
        // ssthresh comes from cwnd (as in Linux), not from a smaller application-limited
        // flight...
        cc.on_fast_retransmit(Instant::ZERO, 10 * MSS);
        assert_eq!(cc.ssthresh(), 56 * MSS * 7 / 10);
        // ...and is never below 2 segments.
        cc.cwnd = 2 * MSS;
        cc.on_fast_retransmit(Instant::ZERO, MSS);
        assert_eq!(cc.ssthresh(), 2 * MSS);
    }

    #[test]
    fn timeout_collapses_to_one_segment() {
        let mut cc = Cubic::new(MSS, Instant::ZERO);
        let mut now = Instant::ZERO;
        round_trip(&mut cc, &mut now, Duration::from_millis(50));
        assert_eq!(cc.window(), 20 * MSS);
        cc.on_retransmit_timeout(now, 20 * MSS);
        assert_eq!(cc.window(), MSS);
        assert_eq!(cc.ssthresh(), 14 * MSS);
        cc.on_retransmit_timeout(now, MSS);
        assert_eq!(cc.ssthresh(), 14 * MSS, "repeated timeout holds ssthresh");
        // Slow start back to ssthresh, then the first stage starts with K = 0 at that cwnd.
        while cc.window() < cc.ssthresh() {
            let flight = cc.window();
            cc.on_ack(now, MSS, None, flight);
        }
        assert_eq!(cc.window(), 14 * MSS);
        assert!(cc.epoch.is_none());
        round_trip(&mut cc, &mut now, Duration::from_millis(50));
        let epoch = cc.epoch.expect("in congestion avoidance");
        assert_eq!(epoch.k_secs, 0.0);
        assert_eq!(cc.w_max(), (14 * MSS) as f64);
        assert!(cc.window() > 14 * MSS);
    }

    #[test]
    fn k_matches_rfc_formula() {
        let mut cc = after_loss(100, Instant::ZERO);
        let mut now = Instant::ZERO;
        round_trip(&mut cc, &mut now, Duration::from_millis(100));
        let epoch = cc.epoch.expect("in congestion avoidance");
        // K = cbrt((100 - 70) / 0.4) = cbrt(75)
        assert!(
            (epoch.k_secs - 75f64.cbrt()).abs() < 1e-9,
            "K = {}",
            epoch.k_secs
        );
        assert_eq!(epoch.origin, (100 * MSS) as f64);
    }

    #[test]
    fn window_follows_the_cubic_curve() {
        // Loss at 1000 segments, RTT 100 ms: K = cbrt(300 / 0.4) = 9.09 s, and the cubic
        // region dominates (W_est grows only ~0.53 segments per RTT, far below the curve).
        // cwnd chases W_cubic(t + RTT) one ACK at a time, which keeps it within half a
        // segment of W_cubic(t).
        let rtt = Duration::from_millis(100);
        let mut cc = after_loss(1000, Instant::ZERO);
        let mut now = Instant::ZERO;
        let k = 750f64.cbrt();
        let w_cubic = |t: f64| C * (t - k).powi(3) + 1000.0;
        let mut checked = 0;
        for step in 1..=140 {
            round_trip(&mut cc, &mut now, rtt);
            let t = now.as_micros() as f64 / 1e6;
            if step % 10 == 0 {
                let got = segments(cc.window());
                assert!(
                    (got - w_cubic(t)).abs() <= 0.5,
                    "t = {t:.1}s: cwnd {got:.2} segments, W_cubic(t) {:.2}",
                    w_cubic(t)
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 14);
        // Concave below K, plateau around W_max, convex beyond (t = 14 s).
        assert!(segments(cc.window()) > 1040.0);
    }

    #[test]
    fn reno_friendly_region_on_short_rtt() {
        // Small W_max and a 1 ms RTT: the cubic curve grows slower than Reno would, so cwnd
        // follows W_est: alpha_cubic segments per RTT until W_est reaches cwnd_prior, then 1.
        let rtt = Duration::from_millis(1);
        let mut cc = after_loss(20, Instant::ZERO);
        let mut now = Instant::ZERO;
        assert_eq!(cc.window(), 14 * MSS);
        for _ in 0..10 {
            round_trip(&mut cc, &mut now, rtt);
        }
        // 10 RTTs at ~0.53 segments each: about 14 + 5.3 (W_cubic(10ms) is ~14.0).
        let got = segments(cc.window());
        assert!((got - (14.0 + 10.0 * ALPHA_CUBIC)).abs() <= 1.0, "{got}");
        for _ in 0..20 {
            round_trip(&mut cc, &mut now, rtt);
        }
        // Past cwnd_prior (20) the increase is one segment per RTT.
        let before = segments(cc.window());
        assert!(before >= 20.0);
        for _ in 0..10 {
            round_trip(&mut cc, &mut now, rtt);
        }
        let after = segments(cc.window());
        assert!((after - before - 10.0).abs() <= 1.0, "{before} -> {after}");
    }

    #[test]
    fn application_limited_sender_does_not_grow() {
        let mut cc = after_loss(100, Instant::ZERO);
        for i in 0..1000 {
            cc.on_ack(Instant::from_millis(i * 10), MSS, None, 2 * MSS);
        }
        assert_eq!(cc.window(), 70 * MSS);
    }

    #[test]
    fn idle_restart_and_mss_change() {
        let mut cc = after_loss(100, Instant::ZERO);
        cc.on_idle_restart(Instant::from_millis(5_000));
        assert_eq!(cc.window(), 10 * MSS);
        assert_eq!(cc.ssthresh(), 70 * MSS);
        cc.set_mss(500);
        assert_eq!(cc.window(), 10 * 500);
        assert_eq!(cc.ssthresh(), 70 * 500);
        assert_eq!(cc.w_max(), 100.0 * 500.0);

        let mut fresh = Cubic::new(536, Instant::ZERO);
        fresh.set_mss(1460);
        assert_eq!(fresh.window(), 14_600);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Ack(usize, Option<u64>, usize, u64),
        FastRetransmit(usize),
        RecoveryExit,
        Timeout(usize),
        Idle,
        Mss(usize),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => (any::<usize>(), proptest::option::of(any::<u64>()), any::<usize>(), any::<u64>())
                .prop_map(|(a, r, f, dt)| Event::Ack(a, r, f, dt)),
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
            let mut cc = Cubic::new(mss, Instant::ZERO);
            let mut now = Instant::ZERO;
            for e in events {
                match e {
                    Event::Ack(a, r, f, dt) => {
                        now += Duration::from_micros(dt);
                        cc.on_ack(now, a, r.map(Duration::from_micros), f);
                    }
                    Event::FastRetransmit(f) => cc.on_fast_retransmit(now, f),
                    Event::RecoveryExit => cc.on_recovery_exit(now),
                    Event::Timeout(f) => cc.on_retransmit_timeout(now, f),
                    Event::Idle => cc.on_idle_restart(now),
                    Event::Mss(m) => cc.set_mss(m),
                }
                prop_assert!(cc.window() >= cc.mss);
                prop_assert!(cc.ssthresh() >= cc.mss);
                prop_assert!(cc.cwnd_carry.is_finite());
            }
        }

        #[test]
        fn realistic_acks_only_grow(
            w_max in 2usize..10_000,
            rtt_ms in 1u64..1_000,
            rounds in 1usize..50,
        ) {
            let mut cc = after_loss(w_max, Instant::ZERO);
            let mut now = Instant::ZERO;
            let mut last = cc.window();
            for _ in 0..rounds {
                round_trip(&mut cc, &mut now, Duration::from_millis(rtt_ms));
                prop_assert!(cc.window() >= last);
                // Never more than 1.5x per round trip (RFC 9438 4.4/4.5 target bound) plus
                // the Reno-friendly step.
                prop_assert!(cc.window() <= last + last / 2 + 2 * MSS);
                last = cc.window();
            }
        }
    }
}
