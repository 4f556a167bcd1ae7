//! Loss recovery: fast retransmit / fast recovery with NewReno (RFC 6582) when the peer does
//! not SACK, and the RFC 6675 conservative SACK-based recovery when it does. Congestion window
//! sizes are the congestion controller's business; this file decides *when* recovery starts
//! and ends and *what* to retransmit, and estimates the data in flight ("pipe").

use std::time::Duration;

use super::scoreboard::DUP_THRESH;
use super::{Connection, Recovery};
use crate::tcp::seq::SeqNumber;
use crate::time::Instant;

impl Connection {
    /// Bytes in flight. Outside recovery: sent since the last go-back (SND.NXT), less what the
    /// peer SACKed. In recovery, RFC 6675 SetPipe: everything outstanding, less SACKed bytes,
    /// less holes deemed lost and not yet retransmitted; without SACK each duplicate ACK counts
    /// as one segment that left the network (the RFC 6582 inflation, expressed as pipe).
    pub(super) fn bytes_in_flight(&self) -> usize {
        let Some(_) = self.recovery else {
            let outstanding = self.snd_nxt.since(self.snd_una);
            return outstanding
                .saturating_sub(self.scoreboard.sacked_between(self.snd_una, self.snd_nxt));
        };
        let outstanding = self.snd_max.since(self.snd_una);
        if self.sack_ok {
            let sacked = self.scoreboard.sacked_between(self.snd_una, self.snd_max);
            let lost_not_resent: usize = self
                .scoreboard
                .holes(self.snd_una)
                .into_iter()
                .filter(|&(start, _)| self.scoreboard.is_lost(start, self.smss))
                .map(|(start, end)| end.since(start.max(self.high_rxt)))
                .sum();
            outstanding
                .saturating_sub(sacked)
                .saturating_sub(lost_not_resent)
        } else {
            outstanding.saturating_sub(self.dupacks as usize * self.smss)
        }
    }

    /// A duplicate ACK arrived (RFC 5681 2).
    pub(super) fn on_dupack(&mut self, now: Instant) {
        self.dupacks = self.dupacks.saturating_add(1);
        self.maybe_enter_recovery(now);
    }

    /// An ACK that did not advance SND.UNA but carried SACK information.
    pub(super) fn on_sack_progress(&mut self, now: Instant) {
        self.maybe_enter_recovery(now);
    }

    /// RFC 6675 5 / RFC 6582 3.2 step 1-2: enter recovery on DupThresh duplicate ACKs, or when
    /// SACK information says the first unacknowledged segment is lost.
    fn maybe_enter_recovery(&mut self, now: Instant) {
        if self.recovery.is_some() || self.snd_una == self.snd_max {
            return;
        }
        let by_dupacks = self.dupacks as usize >= DUP_THRESH;
        let by_sack = self.sack_ok && self.scoreboard.is_lost(self.snd_una, self.smss);
        if !(by_dupacks || by_sack) {
            return;
        }
        // RFC 6582 step 2: duplicate ACKs that do not cover `recover` of the previous recovery
        // are stale (they answer retransmissions) and do not start a new one.
        if !self.sack_ok {
            if let Some(last) = self.last_recover {
                if self.snd_una <= last {
                    return;
                }
            }
        }
        let flight = self.snd_max.since(self.snd_una);
        self.cc.on_fast_retransmit(now, flight);
        self.recovery = Some(Recovery {
            recover: self.snd_max,
        });
        self.counters.fast_recoveries += 1;
        // Recovery has its own clock (the ACKs); the timer is the recovery probe's PTO, for
        // when they stop (see `loss_probe.rs`), then the RTO.
        self.recovery_probe_sent = false;
        self.arm_retransmit_timer(now);
        self.high_rxt = self.snd_una;
        self.rxt_marker = None;
        self.retransmit_head = true;
        // Karn: the timed segment may be retransmitted now.
        self.rtt_probe = None;
    }

    /// The recovery side of an ACK of new data (`acked` sequence bytes).
    pub(super) fn on_ack_for_recovery(
        &mut self,
        now: Instant,
        acked: usize,
        rtt: Option<Duration>,
        flight_before: usize,
    ) {
        match self.recovery {
            Some(recovery) if self.snd_una >= recovery.recover => {
                // RFC 6582 3.2 step 3 / RFC 6675 5: a full ACK ends recovery.
                self.recovery = None;
                self.rxt_marker = None;
                self.last_recover = Some(recovery.recover);
                self.dupacks = 0;
                self.cc.on_recovery_exit(now);
            }
            Some(_) => {
                // Partial ACK: RFC 6582 3.2 step 3: retransmit the next unacknowledged segment
                // (with SACK, RFC 6675 NextSeg finds it through the scoreboard).
                self.dupacks = 0;
                if !self.sack_ok {
                    self.retransmit_head = true;
                }
            }
            None => {
                self.dupacks = 0;
                self.cc.on_ack(now, acked, rtt, flight_before);
            }
        }
    }

    /// Lost retransmissions (RFC 8985 6.2 applied to RFC 6675 recovery, as Linux's RACK
    /// marks them): RFC 6675 retransmits each hole once, so a lost retransmission would wait
    /// for the RTO. Once the peer SACKs data sent after the latest retransmission while holes
    /// below HighRxt stay open, those retransmissions are lost (no reordering window: Linux
    /// uses none in recovery until it has seen reordering); NextSeg walks them again.
    pub(super) fn detect_lost_retransmissions(&mut self) {
        let Some(marker) = self.rxt_marker else {
            return;
        };
        if self.recovery.is_none() || !self.sack_ok {
            return;
        }
        let delivered_later = self.scoreboard.sacked_between(marker, self.snd_max) > 0;
        let unrepaired = self.high_rxt.since(self.snd_una)
            > self.scoreboard.sacked_between(self.snd_una, self.high_rxt);
        if delivered_later && unrepaired {
            self.high_rxt = self.snd_una;
            self.rxt_marker = None;
            self.counters.lost_retransmits += 1;
        }
    }

    /// RFC 6675 NextSeg rule 1: the first hole at or above HighRxt that IsLost says is lost.
    /// Returns the sequence number and length to retransmit.
    pub(super) fn next_lost_hole(&self) -> Option<(SeqNumber, usize)> {
        if !self.sack_ok {
            return None;
        }
        self.scoreboard
            .holes(self.snd_una)
            .into_iter()
            .find_map(|(start, end)| {
                let from = start.max(self.high_rxt);
                (from < end && self.scoreboard.is_lost(from, self.smss))
                    .then(|| (from, end.since(from).min(self.smss)))
            })
    }

    /// Everything after an RTO (RFC 6298 5.4-5.6, RFC 5681 3.1, RFC 2018 8): congestion
    /// control collapses, the SACK scoreboard is cleared (the peer may renege), and sending
    /// restarts from SND.UNA (go-back-N, as Linux marks everything lost).
    pub(super) fn on_retransmission_timeout(&mut self, now: Instant) {
        let flight = self.snd_max.since(self.snd_una);
        self.cc.on_retransmit_timeout(now, flight);
        self.rtt.backoff();
        // RFC 6582 4.1 (and 6675 5.1): duplicate ACKs for what was sent before the timeout
        // must not start a fast retransmit.
        self.recovery = None;
        self.last_recover = Some(self.snd_max);
        self.dupacks = 0;
        self.retransmit_head = false;
        self.scoreboard.clear();
        self.rtt_probe = None;
        self.loss_probe_armed = false;
        self.loss_probe_due = None;
        self.tlp_high_seq = None;
        self.snd_nxt = self.snd_una;
        self.high_rxt = self.snd_una;
        self.rxt_marker = None;
        if self.ts_ok {
            self.rto_tsval = Some(self.ts_now(now));
        }
        self.counters.timeouts += 1;
    }
}
