//! Congestion control: how much unacknowledged data a connection may have in flight.
//!
//! A [`CongestionControl`] owns the congestion window (cwnd) and the slow-start threshold
//! (ssthresh), both in bytes, and reacts to the events the connection reports: new data
//! acknowledged, loss detected by duplicate ACKs or SACK (fast retransmit), the end of
//! recovery, a retransmission timeout and a restart after idle. Two algorithms are provided:
//!
//! - [`reno::Reno`]: RFC 5681 slow start and congestion avoidance, with appropriate byte
//!   counting (RFC 3465, L = 2*SMSS).
//! - [`cubic::Cubic`]: RFC 9438 CUBIC, Linux's default.
//!
//! Both use the RFC 6928 initial window. Loss *detection* and recovery bookkeeping (NewReno's
//! partial ACKs, RFC 6582; SACK pipe, RFC 6675; dupack inflation) belong to the connection;
//! this module only decides the window sizes. Time comes only from the `now` arguments.
//!
//! The `bytes_in_flight` argument of [`CongestionControl::on_ack`] is the amount outstanding
//! when the ACK arrived (before removing the newly acknowledged bytes). It is used to stop
//! growing cwnd while the sender is not using it (application- or receiver-limited; RFC 7661,
//! RFC 9438 5.8), the way Linux's `tcp_is_cwnd_limited` does.

pub mod cubic;
pub mod reno;

use core::fmt;
use core::str::FromStr;
use std::time::Duration;

use crate::time::Instant;

/// The congestion control algorithms ustack implements (Linux's `tcp_congestion_control` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CongestionAlgorithm {
    /// RFC 5681 Reno (with RFC 3465 byte counting).
    Reno,
    /// RFC 9438 CUBIC, Linux's default.
    #[default]
    Cubic,
}

impl CongestionAlgorithm {
    /// The name Linux uses for the algorithm (`sysctl net.ipv4.tcp_congestion_control`).
    pub fn name(self) -> &'static str {
        match self {
            CongestionAlgorithm::Reno => "reno",
            CongestionAlgorithm::Cubic => "cubic",
        }
    }
}

impl fmt::Display for CongestionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A congestion control name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCongestionAlgorithm(pub String);

impl fmt::Display for UnknownCongestionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown congestion control algorithm {:?} (expected \"reno\" or \"cubic\")",
            self.0
        )
    }
}

impl std::error::Error for UnknownCongestionAlgorithm {}

impl FromStr for CongestionAlgorithm {
    type Err = UnknownCongestionAlgorithm;

    /// Accepts Linux's names, `"reno"` and `"cubic"`, exactly (the kernel is case-sensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reno" => Ok(CongestionAlgorithm::Reno),
            "cubic" => Ok(CongestionAlgorithm::Cubic),
            other => Err(UnknownCongestionAlgorithm(other.to_owned())),
        }
    }
}

/// The per-connection congestion controller. All sizes are bytes.
pub trait CongestionControl: core::fmt::Debug + Send {
    /// cwnd in bytes; never below one MSS.
    fn window(&self) -> usize;
    /// ssthresh in bytes (`usize::MAX` until the first congestion event: RFC 5681 3.1 lets
    /// the initial value be arbitrarily high).
    fn ssthresh(&self) -> usize;
    /// New data acknowledged outside recovery (`acked` bytes); `rtt` if a valid sample was
    /// taken; `bytes_in_flight` is the flight when the ACK arrived (see the module doc).
    fn on_ack(&mut self, now: Instant, acked: usize, rtt: Option<Duration>, bytes_in_flight: usize);
    /// Loss detected by dupacks/SACK: enter fast recovery (ssthresh = f(flight),
    /// cwnd = ssthresh; no dupack inflation here).
    fn on_fast_retransmit(&mut self, now: Instant, bytes_in_flight: usize);
    /// Recovery finished (RFC 6582 full ACK): deflate to ssthresh.
    fn on_recovery_exit(&mut self, now: Instant);
    /// RTO fired: ssthresh from the flight, cwnd = 1 MSS (RFC 5681 3.1). A repeated timeout
    /// with no new data acknowledged in between keeps ssthresh (RFC 5681 3.1, after eq. 4).
    fn on_retransmit_timeout(&mut self, now: Instant, bytes_in_flight: usize);
    /// Idle restart (RFC 5681 4.1, RFC 2861): called when sending after an idle > RTO.
    fn on_idle_restart(&mut self, now: Instant);
    /// The sender MSS changed (handshake, PMTU). Before any event the window is recomputed as
    /// the RFC 6928 initial window for the new MSS; afterwards cwnd keeps its size in segments
    /// (as Linux, whose cwnd counts packets).
    fn set_mss(&mut self, mss: usize);
    /// Linux's name for the algorithm ("reno", "cubic").
    fn name(&self) -> &'static str;
    /// Whether cwnd < ssthresh (RFC 5681 3.1: slow start).
    fn in_slow_start(&self) -> bool {
        self.window() < self.ssthresh()
    }
}

/// A boxed controller for `algorithm`, starting at the RFC 6928 initial window for `mss`.
pub fn new_controller(
    algorithm: CongestionAlgorithm,
    mss: usize,
    now: Instant,
) -> Box<dyn CongestionControl> {
    match algorithm {
        CongestionAlgorithm::Reno => Box::new(reno::Reno::new(mss, now)),
        CongestionAlgorithm::Cubic => Box::new(cubic::Cubic::new(mss, now)),
    }
}

/// RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)).
pub fn initial_window(mss: usize) -> usize {
    let mss = sane_mss(mss);
    mss.saturating_mul(10)
        .min(mss.saturating_mul(2).max(14_600))
}

/// The initial ssthresh: "arbitrarily high" (RFC 5681 3.1).
pub const INITIAL_SSTHRESH: usize = usize::MAX;

/// RFC 3465 2.2: L, the most slow start may grow cwnd per ACK, in segments.
pub const ABC_LIMIT_SEGMENTS: usize = 2;

/// An MSS of zero would make every division meaningless; treat it as one byte.
pub(crate) fn sane_mss(mss: usize) -> usize {
    mss.max(1)
}

/// RFC 5681 3.1 slow start with RFC 3465 byte counting: cwnd grows by the bytes acknowledged,
/// at most L*SMSS per ACK, and not past ssthresh. Returns the new cwnd and the acknowledged
/// bytes not used (to be counted by congestion avoidance, as Linux's `tcp_slow_start` does).
pub(crate) fn slow_start(cwnd: usize, ssthresh: usize, acked: usize, mss: usize) -> (usize, usize) {
    let limit = mss.saturating_mul(ABC_LIMIT_SEGMENTS);
    let growth = acked.min(limit);
    let grown = cwnd.saturating_add(growth);
    if grown > ssthresh && ssthresh >= cwnd {
        let used = ssthresh - cwnd;
        (ssthresh, acked - used)
    } else {
        (grown, acked - growth)
    }
}

/// Whether the sender used enough of cwnd for growth to be earned: at least half of it was in
/// flight when the ACK arrived. Adding `acked` keeps this right even if a caller passes the
/// flight after removing the acknowledged bytes. (Linux grows in slow start while cwnd <
/// 2*max_packets_out; RFC 7661 also ties growth to use.)
pub(crate) fn is_cwnd_limited(cwnd: usize, bytes_in_flight: usize, acked: usize) -> bool {
    bytes_in_flight.saturating_add(acked).saturating_mul(2) >= cwnd
}

/// The part of an ACK's growth both controllers share: nothing while the window is not being
/// used (RFC 7661, RFC 9438 5.8), then slow start up to ssthresh (RFC 5681 3.1). Returns the
/// acknowledged bytes left for congestion avoidance (0: nothing more to do).
pub(crate) fn grow_in_slow_start(
    cwnd: &mut usize,
    ssthresh: usize,
    acked: usize,
    mss: usize,
    bytes_in_flight: usize,
) -> usize {
    if !is_cwnd_limited(*cwnd, bytes_in_flight, acked) {
        return 0;
    }
    if *cwnd >= ssthresh {
        return acked;
    }
    let (grown, left_over) = slow_start(*cwnd, ssthresh, acked, mss);
    *cwnd = grown;
    left_over
}

/// RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS).
pub(crate) fn reno_ssthresh(bytes_in_flight: usize, mss: usize) -> usize {
    (bytes_in_flight / 2).max(mss.saturating_mul(2))
}

/// RFC 5681 4.1 restart window: RW = min(IW, cwnd).
pub(crate) fn restart_window(cwnd: usize, mss: usize) -> usize {
    cwnd.min(initial_window(mss))
}

/// RFC 2861 3: before collapsing cwnd after idle, remember it in ssthresh:
/// ssthresh = max(ssthresh, 3/4 * cwnd).
pub(crate) fn idle_ssthresh(ssthresh: usize, cwnd: usize) -> usize {
    ssthresh.max(cwnd / 4 * 3 + cwnd % 4 * 3 / 4)
}

/// Re-expresses a byte count kept for `old_mss`-sized segments for `new_mss`-sized ones,
/// keeping the number of segments (rounded down, at least one segment). `usize::MAX` (the
/// "infinite" ssthresh) stays infinite.
pub(crate) fn rescale_bytes(bytes: usize, old_mss: usize, new_mss: usize) -> usize {
    if bytes == usize::MAX {
        return usize::MAX;
    }
    let segments = (bytes / sane_mss(old_mss)).max(1);
    segments.saturating_mul(sane_mss(new_mss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for alg in [CongestionAlgorithm::Reno, CongestionAlgorithm::Cubic] {
            let text = alg.to_string();
            assert_eq!(text.parse::<CongestionAlgorithm>(), Ok(alg));
        }
        assert_eq!("reno".parse(), Ok(CongestionAlgorithm::Reno));
        assert_eq!("cubic".parse(), Ok(CongestionAlgorithm::Cubic));
        assert!("bbr".parse::<CongestionAlgorithm>().is_err());
        assert!("Cubic".parse::<CongestionAlgorithm>().is_err());
        assert_eq!(CongestionAlgorithm::default(), CongestionAlgorithm::Cubic);
    }

    #[test]
    fn initial_window_follows_rfc6928() {
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(536), 5_360);
        // Large MSS: max(2*MSS, 14600) caps it.
        assert_eq!(initial_window(8960), 17_920);
        assert_eq!(initial_window(4000), 14_600);
        assert_eq!(initial_window(0), 10);
        assert_eq!(initial_window(usize::MAX), usize::MAX);
    }

    #[test]
    fn new_controller_uses_initial_window() {
        let now = Instant::ZERO;
        for alg in [CongestionAlgorithm::Reno, CongestionAlgorithm::Cubic] {
            let cc = new_controller(alg, 1460, now);
            assert_eq!(cc.window(), 14_600);
            assert_eq!(cc.ssthresh(), INITIAL_SSTHRESH);
            assert_eq!(cc.name(), alg.name());
            assert!(cc.in_slow_start());
        }
    }

    #[test]
    fn slow_start_is_capped_per_ack_and_at_ssthresh() {
        assert_eq!(slow_start(10_000, usize::MAX, 1_000, 1_000), (11_000, 0));
        // L = 2*SMSS per ACK.
        assert_eq!(
            slow_start(10_000, usize::MAX, 5_000, 1_000),
            (12_000, 3_000)
        );
        // Stops at ssthresh; the rest goes to congestion avoidance.
        assert_eq!(slow_start(10_000, 10_500, 1_000, 1_000), (10_500, 500));
    }

    #[test]
    fn helpers_follow_their_rfcs() {
        assert_eq!(reno_ssthresh(20_000, 1_000), 10_000);
        assert_eq!(reno_ssthresh(1_000, 1_000), 2_000);
        assert_eq!(restart_window(100_000, 1460), 14_600);
        assert_eq!(restart_window(5_000, 1460), 5_000);
        assert_eq!(idle_ssthresh(1_000, 40_000), 30_000);
        assert_eq!(idle_ssthresh(50_000, 40_000), 50_000);
        assert_eq!(idle_ssthresh(0, usize::MAX), usize::MAX / 4 * 3 + 2);
        assert_eq!(rescale_bytes(14_600, 1460, 1000), 10_000);
        assert_eq!(rescale_bytes(500, 1460, 1000), 1000);
        assert_eq!(rescale_bytes(usize::MAX, 1460, 1000), usize::MAX);
    }
}
