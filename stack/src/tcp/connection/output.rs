//! What to send next: control segments, SYN/SYN-ACK, retransmissions (head after RTO or
//! partial ACK, RFC 6675 lost holes), new data under Nagle (RFC 896), sender SWS avoidance
//! (RFC 1122 4.2.3.4), the congestion window and the peer's window, FIN, probes, and ACKs
//! (delayed, immediate, window updates) with SACK blocks (RFC 2018 4).

use super::loss_probe::ProbeKind;
use super::{AckState, Connection, Segment, State};
use crate::tcp::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::tcp::{SackBlocks, TcpFlags, Timestamps, MAX_SACK_BLOCKS};

impl Connection {
    /// The next segment to send, if any. Call until `None` after every input or command.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Segment> {
        if !self.control.is_empty() {
            let segment = self.control.remove(0);
            self.counters.segments_out += 1;
            return Some(segment);
        }
        let segment = match self.state {
            State::Closed => None,
            State::SynSent | State::SynReceived if self.syn_due => Some(self.syn_segment(now)),
            State::SynSent => None,
            _ => self.next_segment(now),
        }?;
        Some(self.finish_segment(now, segment))
    }

    fn syn_segment(&mut self, now: Instant) -> Segment {
        self.syn_due = false;
        let flags = if self.state == State::SynReceived {
            TcpFlags::SYN | TcpFlags::ACK
        } else {
            TcpFlags::SYN
        };
        let mut segment = self.make_segment(self.iss, flags);
        segment.header.options = self.syn_options(now);
        if self.snd_max == self.iss {
            self.snd_max = self.iss + 1;
            self.rtt_probe = Some((self.iss + 1, now));
        } else {
            self.counters.retransmits += 1;
            self.syn_retransmitted = true;
            self.rtt_probe = None;
        }
        self.snd_nxt = self.iss + 1;
        self.timers
            .set_if_idle(super::Timer::Retransmit, now + self.rtt.rto());
        segment
    }

    fn next_segment(&mut self, now: Instant) -> Option<Segment> {
        let sending_allowed = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        );
        if sending_allowed {
            if let Some(segment) = self.retransmit_head_segment(now) {
                return Some(segment);
            }
            if let Some(segment) = self.lost_hole_segment(now) {
                return Some(segment);
            }
            if let Some(segment) = self.loss_probe_segment(now) {
                return Some(segment);
            }
            if let Some(segment) = self.new_data_segment(now, false) {
                return Some(segment);
            }
        }
        if self.probe_due {
            self.probe_due = false;
            // Linux's tcp_xmit_probe_skb: an old sequence number makes the peer answer with
            // an ACK carrying its current window (zero-window probe, keepalive).
            return Some(self.make_segment(self.snd_una - 1, TcpFlags::ACK));
        }
        if self.ack_state == AckState::Now {
            return Some(self.make_segment(self.snd_max, TcpFlags::ACK));
        }
        None
    }

    /// The segment at SND.UNA, after an RTO (sent even beyond the peer's window, as Linux
    /// retransmits the head) or a NewReno partial ACK / recovery start.
    fn retransmit_head_segment(&mut self, now: Instant) -> Option<Segment> {
        if !self.retransmit_head {
            return None;
        }
        self.retransmit_head = false;
        if self.snd_una == self.snd_max {
            return None;
        }
        let seq = self.snd_una;
        let len = self.sendable_data_at(seq).min(self.segment_payload_limit());
        let len = self.cap_at_next_sacked(seq, len);
        let segment = self.build_data_segment(now, seq, len);
        let end = seq + segment.payload.len() + usize::from(segment.header.flags.fin());
        self.high_rxt = self.high_rxt.max(end);
        if self.snd_nxt < end {
            self.snd_nxt = end;
        }
        Some(segment)
    }

    /// RFC 6675 NextSeg rule 1 during SACK recovery, when cwnd has room (rule "cwnd - pipe
    /// >= 1 SMSS").
    fn lost_hole_segment(&mut self, now: Instant) -> Option<Segment> {
        self.recovery?;
        if self.cc.window() < self.bytes_in_flight() + self.smss {
            return None;
        }
        let (seq, len) = self.next_lost_hole()?;
        let len = self
            .sendable_data_at(seq)
            .min(len)
            .min(self.segment_payload_limit());
        let segment = self.build_data_segment(now, seq, len);
        let end = seq + segment.payload.len() + usize::from(segment.header.flags.fin());
        if end == seq {
            return None;
        }
        self.high_rxt = self.high_rxt.max(end);
        Some(segment)
    }

    /// RFC 8985 7.3, as Linux's `tcp_send_loss_probe`: once the PTO fired, one segment of new
    /// data if the peer's window takes it (cwnd does not hold a probe back), else the last
    /// segment sent again; the second probe of an episode is always the last segment again
    /// (see `loss_probe.rs`).
    fn loss_probe_segment(&mut self, now: Instant) -> Option<Segment> {
        let kind = self.loss_probe_due.take()?;
        if kind == ProbeKind::NewDataOrLast {
            if let Some(segment) = self.new_data_segment(now, true) {
                self.on_loss_probe_sent(now, false);
                return Some(segment);
            }
        }
        let data_start = self.send_buf_seq();
        let data_end = (data_start + self.send_buf.len()).min(self.snd_max);
        let first = self.snd_una.max(data_start);
        let seq = if data_end.since(first) > self.smss {
            data_end - self.smss
        } else {
            first
        };
        let fin_outstanding = self.fin_seq().is_some_and(|fin| fin < self.snd_max);
        let len = data_end.since(seq);
        if len == 0 && !fin_outstanding {
            return None;
        }
        let segment = self.build_data_segment(now, seq, len);
        self.on_loss_probe_sent(now, true);
        Some(segment)
    }

    /// New data (or data again after an RTO went back), within both windows, with Nagle
    /// and SWS avoidance; the FIN rides on the last byte. A loss probe (`probe`) is not
    /// limited by cwnd.
    fn new_data_segment(&mut self, now: Instant, probe: bool) -> Option<Segment> {
        let seq = self.scoreboard.skip_sacked(self.snd_nxt);
        self.snd_nxt = seq;
        let available = self.sendable_data_at(seq);
        let fin_seq = self.fin_seq();
        let fin_pending = fin_seq.is_some_and(|fin| seq <= fin);
        if available == 0 && !fin_pending {
            self.timers.stop(super::Timer::Persist);
            return None;
        }
        let window_end = self.snd_una + self.snd_wnd;
        let usable = window_end.since(seq);
        let cwnd_room = if probe {
            usize::MAX
        } else {
            self.cc.window().saturating_sub(self.bytes_in_flight())
        };
        let retransmission = seq < self.snd_max;
        let mss = self.segment_payload_limit();
        let burst = if retransmission || probe {
            mss
        } else {
            self.super_segment_limit(mss)
        };
        let len = available.min(burst).min(usable).min(cwnd_room);
        let len = self.cap_at_next_sacked(seq, len);
        // A super-segment carries whole segments, plus a short tail only when that tail is
        // the last of the queued data and Nagle would let it go alone (Linux's
        // `tcp_mss_split_point`); otherwise the tail waits as a small segment would.
        // RFC 896 as Linux applies it (Minshall's variant): a small segment waits while an
        // earlier small segment is unacknowledged, unless NODELAY or the FIN closes the stream.
        let nagle_ok = self.opts.nodelay || self.snd_sml <= self.snd_una || fin_pending;
        let len = if len > mss && (len < available || !nagle_ok) {
            len - len % mss
        } else {
            len
        };
        let with_fin = fin_seq == Some(seq + len) && usable > len;

        if len == 0 && !with_fin {
            self.arm_persist_if_stalled(now, usable);
            return None;
        }
        if !retransmission && !self.force_send && len < mss {
            let all_queued = len == available;
            // RFC 1122 4.2.3.4 (c): at least half the largest window the peer offered.
            let sws_ok = self.max_snd_wnd > 0 && len >= self.max_snd_wnd / 2;
            if !((all_queued && nagle_ok) || sws_ok) {
                self.arm_persist_if_stalled(now, usable);
                return None;
            }
        }
        self.force_send = false;
        // RFC 5681 4.1: restart from the restart window after an idle period of an RTO.
        if !retransmission
            && self.snd_una == self.snd_max
            && now.saturating_duration_since(self.last_sent_at) > self.rtt.rto()
        {
            self.cc.on_idle_restart(now);
        }
        let mut segment = self.build_data_segment(now, seq, len);
        if segment.payload.len() > mss {
            segment.segment_size = u16::try_from(mss).ok();
        }
        self.snd_nxt = seq + segment.payload.len() + usize::from(segment.header.flags.fin());
        self.timers.stop(super::Timer::Persist);
        Some(segment)
    }

    /// How much new data one segment may carry: the MSS, or with segmentation offload as many
    /// whole MSS as fit in the device's super-segment. Not while SACK blocks shorten the
    /// segments (every piece repeats the header, and the MSS would not be the piece size).
    fn super_segment_limit(&self, mss: usize) -> usize {
        if mss != self.smss || self.cfg.gso_max_payload < 2 * mss {
            return mss;
        }
        let limit = self.cfg.gso_max_payload - self.cfg.gso_max_payload % mss;
        limit.min(usize::from(u16::MAX) * mss)
    }

    /// Payload bytes that fit in the next segment: the MSS less the SACK blocks it will
    /// carry (what Linux's `tcp_current_mss` accounts for), so the segment never exceeds the
    /// path MTU.
    fn segment_payload_limit(&self) -> usize {
        if self.sack_ok && self.recv_buf.has_out_of_order() {
            let blocks = self.recv_buf.sack_ranges(self.max_sack_blocks()).len();
            self.smss.saturating_sub(4 + 8 * blocks).max(1)
        } else {
            self.smss
        }
    }

    /// RFC 2018 3: 3 blocks fit beside timestamps, 4 without.
    fn max_sack_blocks(&self) -> usize {
        if self.ts_ok {
            3
        } else {
            MAX_SACK_BLOCKS
        }
    }

    /// Data bytes in the send buffer from `seq` on.
    fn sendable_data_at(&self, seq: SeqNumber) -> usize {
        let start = self.send_buf_seq();
        let end = start + self.send_buf.len();
        end.since(seq.max(start))
    }

    /// Never resend what the peer has SACKed: stop at the next SACKed range.
    fn cap_at_next_sacked(&self, seq: SeqNumber, len: usize) -> usize {
        match self.scoreboard.next_sacked_start(seq) {
            Some(next) => len.min(next.since(seq)),
            None => len,
        }
    }

    /// Zero window (or a window too small to use) with nothing in flight: the persist timer
    /// makes sure we probe (RFC 9293 3.8.6.1) or send what fits (RFC 1122 4.2.3.4 override).
    fn arm_persist_if_stalled(&mut self, now: Instant, usable: usize) {
        // With a usable window the ACK clock will do (RFC 1122 4.2.3.4 only needs the
        // override when nothing is in flight, checked below).
        let _ = usable;
        if self.snd_una == self.snd_max && !self.timers.is_running(super::Timer::Retransmit) {
            let shift = self.persist_backoff.min(16);
            let timeout = self
                .rtt
                .rto()
                .checked_mul(1 << shift)
                .unwrap_or(self.cfg.max_rto)
                .min(self.cfg.max_rto);
            self.timers
                .set_if_idle(super::Timer::Persist, now + timeout);
        }
    }

    /// A data (and/or FIN) segment covering `[seq, seq + len)`: payload, flags, counters,
    /// RTT timing and the retransmission timer. Callers move SND.NXT / HighRxt.
    fn build_data_segment(&mut self, now: Instant, seq: SeqNumber, len: usize) -> Segment {
        let mut payload = Vec::with_capacity(len);
        let offset = seq.since(self.send_buf_seq());
        self.send_buf.append_to(offset, len, &mut payload);
        let end = seq + payload.len();
        let data_end = self.send_buf_seq() + self.send_buf.len();
        let mut flags = TcpFlags::ACK;
        if !payload.is_empty() && end == data_end {
            flags.insert(TcpFlags::PSH);
        }
        if self.fin_seq() == Some(end) {
            flags.insert(TcpFlags::FIN);
        }
        let seq_end = end + usize::from(flags.fin());
        // The last piece of a super-segment may be the short one.
        if payload.len() < self.smss || !payload.len().is_multiple_of(self.smss) {
            self.snd_sml = self.snd_sml.max(end);
        }
        if seq < self.snd_max {
            self.counters.retransmits += 1;
            if self.recovery.is_some() {
                self.rxt_marker = Some(self.snd_max);
            }
            if self.rtt_probe.is_some_and(|(probe_end, _)| probe_end > seq) {
                self.rtt_probe = None;
            }
        } else {
            self.counters.bytes_sent += payload.len() as u64;
            if self.rtt_probe.is_none() && !self.ts_ok {
                self.rtt_probe = Some((seq_end, now));
            }
        }
        if self.snd_una == self.snd_max {
            self.progress_at = now;
        }
        let new_data = seq_end > self.snd_max;
        self.snd_max = self.snd_max.max(seq_end);
        if !self.timers.is_running(super::Timer::Retransmit) {
            self.arm_retransmit_timer(now);
        } else if new_data {
            self.restart_loss_probe_timer(now);
        }
        let mut segment = self.make_segment(seq, flags);
        segment.payload = payload;
        segment
    }

    /// Fills what every outgoing segment carries: window, timestamps, SACK blocks; and
    /// records that an ACK went out.
    fn finish_segment(&mut self, now: Instant, mut segment: Segment) -> Segment {
        let header = &mut segment.header;
        let syn = header.flags.syn();
        header.window = self.window_field(syn);
        if !syn && self.ts_ok {
            header.options.timestamps = Some(Timestamps {
                tsval: self.ts_now(now),
                tsecr: self.ts_recent,
            });
        }
        if header.flags.ack() {
            header.ack = self.rcv_nxt;
            if !syn && self.sack_ok && self.recv_buf.has_out_of_order() {
                let mut blocks = SackBlocks::new();
                for (offset, len) in self.recv_buf.sack_ranges(self.max_sack_blocks()) {
                    let left = self.rcv_nxt + offset;
                    blocks.push(left, left + len);
                }
                header.options.sack = blocks;
            }
            self.last_ack_sent = self.rcv_nxt;
            self.ack_state = AckState::Idle;
            self.unacked_bytes = 0;
            self.timers.stop(super::Timer::DelayedAck);
        }
        self.counters.segments_out += segment.wire_segments() as u64;
        self.last_sent_at = now;
        segment
    }
}
