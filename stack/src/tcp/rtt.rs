//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! [`RttEstimator`] keeps SRTT and RTTVAR from the RTT samples the connection feeds it and turns
//! them into the retransmission timeout (RTO), including the exponential backoff of RFC 6298
//! section 5.5. All arithmetic is integer microseconds, so results are exact and repeatable.
//!
//! Karn's algorithm (RFC 6298 section 3: never take a sample from a retransmitted segment) is
//! the caller's job: this type trusts every sample it is given.
//!
//! Linux differs from the RFC in its bounds: the minimum RTO is 200 ms (RFC 6298 2.4 says 1 s)
//! and the maximum 120 s. The bounds are constructor arguments; [`RttEstimator::linux`] uses
//! Linux's values. Linux also applies its 200 ms floor to the variance term rather than to the
//! whole RTO, so on a sub-millisecond path Linux's RTO is about SRTT + 200 ms while ours is
//! max(200 ms, SRTT + 4*RTTVAR); the difference is at most SRTT.

use std::time::Duration;

/// RFC 6298 2.3: alpha = 1/8, the gain of the SRTT filter (stored as its reciprocal).
pub const ALPHA_RECIPROCAL: u64 = 8;
/// RFC 6298 2.3: beta = 1/4, the gain of the RTTVAR filter (stored as its reciprocal).
pub const BETA_RECIPROCAL: u64 = 4;
/// RFC 6298 2.2/2.3: K = 4, the weight of RTTVAR in the RTO.
pub const K: u64 = 4;
/// RFC 6298 2.2: G, the clock granularity. Our clock has microsecond resolution but timers are
/// armed with millisecond precision by the daemon, so G is 1 ms.
pub const G: Duration = Duration::from_millis(1);

/// RFC 6298 2.1: the RTO before any sample, 1 s (Linux's TCP_TIMEOUT_INIT too).
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// RFC 6298 5.7: the RTO to use once data transfer begins if the SYN or SYN-ACK was
/// retransmitted and no sample was taken (Linux's TCP_TIMEOUT_FALLBACK).
pub const SYN_LOSS_FALLBACK_RTO: Duration = Duration::from_secs(3);
/// RFC 6298 2.4: the lower bound the RFC recommends.
pub const RFC6298_MIN_RTO: Duration = Duration::from_secs(1);
/// Linux's TCP_RTO_MIN: 200 ms.
pub const LINUX_MIN_RTO: Duration = Duration::from_millis(200);
/// Linux's TCP_RTO_MAX: 120 s (RFC 6298 2.5 allows any maximum of at least 60 s).
pub const LINUX_MAX_RTO: Duration = Duration::from_secs(120);

/// Samples above this are clamped, so the filters can never overflow (about 12.7 days).
const MAX_SAMPLE_MICROS: u64 = 1 << 40;
/// Backoff stops counting here; 2^32 times any RTO is beyond every sane maximum anyway.
const MAX_BACKOFF_SHIFT: u32 = 32;

/// RFC 6298 estimator of SRTT/RTTVAR and the retransmission timeout.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    /// Smoothed RTT in µs; `None` until the first sample (RFC 6298 2.1).
    srtt_micros: Option<u64>,
    /// RTT variation in µs; meaningful only once `srtt_micros` is `Some`.
    rttvar_micros: u64,
    /// Smallest sample ever seen, in µs.
    min_rtt_micros: Option<u64>,
    /// RTO used before the first sample.
    initial_rto: Duration,
    /// Lower clamp of the RTO (RFC 6298 2.4; Linux 200 ms). Invariant: `min_rto <= max_rto`.
    min_rto: Duration,
    /// Upper clamp of the RTO, backoff included (RFC 6298 2.5).
    max_rto: Duration,
    /// Number of times the timer has been backed off since the last sample (RFC 6298 5.5).
    backoff_shift: u32,
}

impl RttEstimator {
    /// A fresh estimator. `initial_rto` is used until the first sample; every RTO is clamped to
    /// `[min_rto, max_rto]` (if `min_rto > max_rto`, `max_rto` wins).
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt_micros: None,
            rttvar_micros: 0,
            min_rtt_micros: None,
            initial_rto,
            min_rto: min_rto.min(max_rto),
            max_rto,
            backoff_shift: 0,
        }
    }

    /// Linux's parameters: initial RTO 1 s, minimum 200 ms, maximum 120 s.
    pub fn linux() -> Self {
        RttEstimator::new(INITIAL_RTO, LINUX_MIN_RTO, LINUX_MAX_RTO)
    }

    /// Feed one RTT measurement (from a segment that was not retransmitted) and reset the
    /// backoff.
    pub fn sample(&mut self, rtt: Duration) {
        let r = duration_micros(rtt).min(MAX_SAMPLE_MICROS);
        match self.srtt_micros {
            // RFC 6298 2.2: first measurement R: SRTT <- R, RTTVAR <- R/2.
            None => {
                self.srtt_micros = Some(r);
                self.rttvar_micros = r / 2;
            }
            // RFC 6298 2.3: subsequent measurement R':
            //   RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|   (with the old SRTT)
            //   SRTT   <- (1 - alpha) * SRTT + alpha * R'
            Some(srtt) => {
                let deviation = srtt.abs_diff(r);
                self.rttvar_micros =
                    ((BETA_RECIPROCAL - 1) * self.rttvar_micros + deviation) / BETA_RECIPROCAL;
                self.srtt_micros = Some(((ALPHA_RECIPROCAL - 1) * srtt + r) / ALPHA_RECIPROCAL);
            }
        }
        self.min_rtt_micros = Some(self.min_rtt_micros.map_or(r, |m| m.min(r)));
        // RFC 6298 section 5 (note after rule 5.7): a new measurement recomputes the RTO,
        // "collapsing" it back down after exponential backoff.
        self.backoff_shift = 0;
    }

    /// The current RTO: RFC 6298 2.2/2.3 `SRTT + max(G, K*RTTVAR)` (or the initial RTO before
    /// any sample), clamped to `[min_rto, max_rto]`, then doubled once per backoff and capped at
    /// `max_rto` (RFC 6298 5.5).
    pub fn rto(&self) -> Duration {
        let base = self.unbacked_rto();
        let backed = base
            .checked_mul(1u32.checked_shl(self.backoff_shift).unwrap_or(u32::MAX))
            .unwrap_or(self.max_rto);
        backed.min(self.max_rto)
    }

    /// The RTO without the backoff factor, clamped to `[min_rto, max_rto]`.
    pub fn unbacked_rto(&self) -> Duration {
        let raw = match self.srtt_micros {
            None => self.initial_rto,
            Some(srtt) => {
                let variance_term = K.saturating_mul(self.rttvar_micros).max(duration_micros(G));
                Duration::from_micros(srtt.saturating_add(variance_term))
            }
        };
        raw.clamp(self.min_rto, self.max_rto)
    }

    /// RFC 6298 5.5: the retransmission timer expired; double the RTO (capped at `max_rto`).
    pub fn backoff(&mut self) {
        if self.backoff_shift < MAX_BACKOFF_SHIFT && self.rto() < self.max_rto {
            self.backoff_shift += 1;
        }
    }

    /// How many times the timer has been backed off since the last sample (Linux's
    /// `icsk_backoff`); saturates once the RTO reaches `max_rto`.
    pub fn backoff_count(&self) -> u32 {
        self.backoff_shift
    }

    /// RFC 6298 5.7: call when data transfer begins after the SYN (or SYN-ACK) had to be
    /// retransmitted. Without an RTT sample the RTO is re-initialised to 3 s.
    pub fn on_syn_retransmitted_handshake_done(&mut self) {
        if self.srtt_micros.is_none() {
            self.initial_rto = self.initial_rto.max(SYN_LOSS_FALLBACK_RTO);
            self.backoff_shift = 0;
        }
    }

    /// Smoothed RTT, `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_micros.map(Duration::from_micros)
    }

    /// RTT variation (zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_micros)
    }

    /// The smallest sample seen over the connection's life, `None` before the first sample.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt_micros.map(Duration::from_micros)
    }
}

impl Default for RttEstimator {
    fn default() -> Self {
        RttEstimator::linux()
    }
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn initial_rto_before_any_sample() {
        let est = RttEstimator::linux();
        assert_eq!(est.rto(), ms(1000));
        assert_eq!(est.srtt(), None);
        assert_eq!(est.min_rtt(), None);
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut est = RttEstimator::new(INITIAL_RTO, Duration::ZERO, LINUX_MAX_RTO);
        est.sample(ms(100));
        assert_eq!(est.srtt(), Some(ms(100)));
        assert_eq!(est.rttvar(), ms(50));
        // RTO = 100 + max(1, 4*50) = 300 ms.
        assert_eq!(est.rto(), ms(300));
    }

    #[test]
    fn second_sample_follows_rfc_formulas() {
        let mut est = RttEstimator::new(INITIAL_RTO, Duration::ZERO, LINUX_MAX_RTO);
        est.sample(ms(100));
        est.sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*|100-200| = 37.5 + 25 = 62.5 ms
        assert_eq!(est.rttvar(), Duration::from_micros(62_500));
        // SRTT = 7/8*100 + 1/8*200 = 112.5 ms
        assert_eq!(est.srtt(), Some(Duration::from_micros(112_500)));
        // RTO = 112.5 + 4*62.5 = 362.5 ms
        assert_eq!(est.rto(), Duration::from_micros(362_500));
        assert_eq!(est.min_rtt(), Some(ms(100)));
    }

    #[test]
    fn granularity_floor_applies_when_variance_vanishes() {
        let mut est = RttEstimator::new(INITIAL_RTO, Duration::ZERO, LINUX_MAX_RTO);
        for _ in 0..200 {
            est.sample(ms(10));
        }
        assert_eq!(est.rttvar(), Duration::ZERO);
        assert_eq!(est.rto(), ms(10) + G);
    }

    #[test]
    fn min_rto_clamps_like_linux() {
        let mut est = RttEstimator::linux();
        est.sample(Duration::from_micros(300));
        assert_eq!(est.rto(), LINUX_MIN_RTO);
    }

    #[test]
    fn backoff_doubles_and_caps_and_sample_resets() {
        let mut est = RttEstimator::linux();
        est.sample(ms(100)); // RTO 300 ms
        est.backoff();
        assert_eq!(est.rto(), ms(600));
        est.backoff();
        assert_eq!(est.rto(), ms(1200));
        for _ in 0..100 {
            est.backoff();
        }
        assert_eq!(est.rto(), LINUX_MAX_RTO);
        let count = est.backoff_count();
        assert!(
            count < MAX_BACKOFF_SHIFT,
            "stops counting at the cap: {count}"
        );
        est.sample(ms(100));
        assert_eq!(est.backoff_count(), 0);
        assert!(est.rto() < ms(400));
    }

    #[test]
    fn backoff_before_first_sample_uses_initial_rto() {
        let mut est = RttEstimator::linux();
        est.backoff();
        est.backoff();
        assert_eq!(est.rto(), ms(4000));
    }

    #[test]
    fn syn_loss_fallback_is_three_seconds_without_sample() {
        let mut est = RttEstimator::linux();
        est.backoff();
        est.on_syn_retransmitted_handshake_done();
        assert_eq!(est.rto(), SYN_LOSS_FALLBACK_RTO);

        let mut sampled = RttEstimator::linux();
        sampled.sample(ms(100));
        sampled.on_syn_retransmitted_handshake_done();
        assert_eq!(sampled.rto(), ms(300));
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_in_bounds(
            samples in proptest::collection::vec(any::<u64>(), 0..50),
            backoffs in 0u32..80,
            min_ms in 0u64..5_000,
            max_ms in 0u64..500_000,
        ) {
            let min = ms(min_ms);
            let max = ms(max_ms);
            let mut est = RttEstimator::new(INITIAL_RTO, min, max);
            for s in &samples {
                est.sample(Duration::from_micros(*s));
                let rto = est.rto();
                prop_assert!(rto <= max);
                prop_assert!(rto >= min.min(max));
            }
            for _ in 0..backoffs {
                let before = est.rto();
                est.backoff();
                prop_assert!(est.rto() >= before);
                prop_assert!(est.rto() <= max);
            }
        }
    }
}
