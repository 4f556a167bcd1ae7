//! Tail loss probe (RFC 8985 7, as Linux's `tcp_schedule_loss_probe` / `tcp_send_loss_probe`
//! / `tcp_process_tlp_ack`). When the last segments of a flight, or every ACK for them, are
//! lost, no duplicate ACK ever arrives and only the RTO (at least 200 ms) would recover. A
//! probe sent about two smoothed RTTs after the last activity elicits an ACK instead: its SACK
//! blocks start fast recovery for a real loss, or it acknowledges everything when only the
//! ACKs were lost.
//!
//! A second probe, beyond RFC 8985 (which allows one per episode): when the first probe
//! carried new data and still drew no ACK after another PTO, the last segment is sent again.
//! Linux's receiver does not always ACK in-order data at once: measured on the TAP with 1%
//! loss (kernel 6.18), it now and then sends nothing for a whole flight until its delayed-ACK
//! timer (40 ms, inflating towards 200 ms; its DelayedACKs counter matched the stalls), and a
//! new-data probe is just more in-order data. A duplicate is answered at once (with a D-SACK,
//! RFC 2883), so the stall ends after two PTOs. Dozens of such stalls per 100 MB took most of
//! the transfer time; a Linux Reno sender over veth with the same loss suffers them too
//! (0.2 Gbit/s), only the paced BBR avoids them.
//!
//! A probe in SACK recovery, also beyond RFC 8985 (which leaves recovery to RACK and the RTO):
//! when the ACKs stop for a PTO while recovery waits, the segment at SND.UNA is sent again.
//! Either the fast retransmission was lost and this repairs it, or the receiver holds its ACK
//! (as above, also after the hole is filled) and the duplicate draws it at once. Without it
//! the RTO (200 ms) collapses cwnd to one segment; measured on the TAP with 1% loss, these
//! were the last RTOs left. One such probe per stretch without progress.
//!
//! The probe timeout (PTO) runs on the retransmission timer, as in Linux: `loss_probe_armed`
//! says the running deadline is a PTO, and its expiry sends a probe and arms the real RTO.

use std::time::Duration;

use super::timers::Timer;
use super::{Connection, State};
use crate::time::Instant;
use crate::wire::tcp::TcpHeader;

/// Linux's `TCP_TIMEOUT_MIN` (2 ms): slack added to 2*SRTT when several segments are out, so
/// a receiver's ACK scheduling jitter does not fire the probe on very short paths.
const PTO_SLACK: Duration = Duration::from_millis(2);

/// The probe the next PTO expiry sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbeKind {
    /// RFC 8985 7.3: new data if the peer's window takes it, else the last segment again.
    NewDataOrLast,
    /// The second probe of an episode (module doc): the last segment again.
    Last,
    /// In SACK recovery (module doc): the segment at SND.UNA again.
    RecoveryHead,
}

impl Connection {
    /// RFC 8985 7.2 conditions, as Linux checks them, less the one-probe-per-episode rule and
    /// the recovery rules: SACK in use, no RTO recovery under way, and data outstanding.
    fn loss_probe_conditions(&self) -> bool {
        self.sack_ok
            && self.rto_count == 0
            && self.snd_una != self.snd_max
            && matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::Closing
                    | State::LastAck
            )
    }

    /// Which probe a PTO would send now, if one is allowed: in fast recovery the recovery
    /// probe; otherwise (and not in Linux's CA_Loss after an RTO, until SND.UNA passes what
    /// was sent before it) the first probe of an episode, or the second after an unanswered
    /// new-data probe.
    fn next_probe(&self) -> Option<ProbeKind> {
        if !self.loss_probe_conditions() {
            return None;
        }
        if self.recovery.is_some() {
            return (!self.recovery_probe_sent).then_some(ProbeKind::RecoveryHead);
        }
        if self
            .last_recover
            .is_some_and(|recover| self.snd_una < recover)
        {
            return None;
        }
        match self.tlp_high_seq {
            None => Some(ProbeKind::NewDataOrLast),
            Some(_) if !self.tlp_retransmitted => Some(ProbeKind::Last),
            Some(_) => None,
        }
    }

    /// RFC 8985 7.2: PTO = 2*SRTT, plus the worst-case delayed ACK when a single segment is
    /// out (its ACK may be delayed; Linux adds TCP_RTO_MIN), else Linux's 2 ms slack.
    fn loss_probe_timeout(&self) -> Option<Duration> {
        self.next_probe()?;
        let srtt = self.rtt.srtt()?;
        let one_segment = self.snd_max.since(self.snd_una) <= self.smss;
        let slack = if one_segment {
            self.cfg.min_rto
        } else {
            PTO_SLACK
        };
        Some(srtt.saturating_mul(2).saturating_add(slack))
    }

    /// (Re)arms the retransmission timer for what is outstanding: the PTO when a probe is
    /// allowed and comes first (RFC 8985 7.2: "PTO = min(PTO, RTO)"), else the RTO.
    pub(super) fn arm_retransmit_timer(&mut self, now: Instant) {
        let rto = self.rtt.rto();
        let pto = self.loss_probe_timeout().filter(|&pto| pto < rto);
        self.loss_probe_armed = pto.is_some();
        self.timers.set(Timer::Retransmit, now + pto.unwrap_or(rto));
    }

    /// New data went out: RFC 8985 7.2 (re)starts the PTO from the last transmission. This
    /// also turns a running RTO into a PTO once one is allowed, as Linux re-schedules the
    /// probe after every transmission: a flight that began with a single segment armed the
    /// RTO (that segment's PTO, with its delayed-ACK allowance, was no shorter), and without
    /// this the rest of the flight would wait for the RTO when its tail or its ACKs are lost.
    /// The probe never fires later than the RTO it replaces (Linux `tcp_rto_delta_us`).
    pub(super) fn restart_loss_probe_timer(&mut self, now: Instant) {
        let Some(pto) = self.loss_probe_timeout() else {
            return;
        };
        let rto_at = match self.timers.get(Timer::Retransmit) {
            Some(at) if !self.loss_probe_armed => at,
            _ => now + self.rtt.rto(),
        };
        let probe_at = now + pto;
        if probe_at < rto_at {
            self.loss_probe_armed = true;
            self.timers.set(Timer::Retransmit, probe_at);
        }
    }

    /// The PTO expired (RFC 8985 7.3): queue the probe and arm the RTO behind it.
    pub(super) fn on_loss_probe_timeout(&mut self, now: Instant) {
        self.loss_probe_armed = false;
        match self.next_probe() {
            Some(ProbeKind::RecoveryHead) => {
                self.recovery_probe_sent = true;
                self.retransmit_head = true;
                self.counters.loss_probes += 1;
            }
            kind => self.loss_probe_due = kind,
        }
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
    }

    /// A probe went out; `retransmission` if it repeated the last segment rather than
    /// carrying new data. RFC 8985 7.3: TLP.end_seq = SND.NXT; the timer becomes the RTO, or
    /// the PTO of the second probe after a new-data probe (module doc).
    pub(super) fn on_loss_probe_sent(&mut self, now: Instant, retransmission: bool) {
        self.tlp_high_seq = Some(self.snd_max);
        self.tlp_retransmitted = retransmission;
        self.counters.loss_probes += 1;
        self.arm_retransmit_timer(now);
    }

    /// An ACK advanced SND.UNA (RFC 8985 7.4). Once it covers TLP.end_seq the episode ends.
    /// A retransmitted probe the receiver did not report as a duplicate (D-SACK, RFC 2883:
    /// a first SACK block at or below the ACK) repaired a real loss of the tail, which calls
    /// for the congestion response of a fast recovery (RFC 8985 7.4.2, Linux enters CWR).
    pub(super) fn on_ack_for_loss_probe(
        &mut self,
        now: Instant,
        seg: &TcpHeader,
        flight_before: usize,
    ) {
        let Some(end) = self.tlp_high_seq else { return };
        if self.snd_una < end {
            return;
        }
        self.tlp_high_seq = None;
        let dsack = seg
            .options
            .sack
            .iter()
            .next()
            .is_some_and(|(_, right)| right <= seg.ack);
        if self.tlp_retransmitted && !dsack && self.recovery.is_none() {
            self.cc.on_fast_retransmit(now, flight_before);
            self.cc.on_recovery_exit(now);
        }
    }
}
