//! Segment arrival, RFC 9293 3.10.7 ("SEGMENT ARRIVES"), with RFC 5961 (RST/SYN/ACK
//! validation and challenge ACKs) and RFC 7323 (PAWS, TS.Recent).

use super::{AckState, Connection, ConnectionError, State, OOW_RATE_LIMIT};
use crate::tcp::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::tcp::{TcpFlags, TcpHeader};

impl Connection {
    /// Processes one segment addressed to this connection (already checksummed and demuxed).
    pub fn handle_segment(&mut self, now: Instant, seg: &TcpHeader, payload: &[u8]) {
        self.counters.segments_in += 1;
        match self.state {
            // The layer answers segments for closed connections (RFC 9293 3.10.7.1).
            State::Closed => {}
            State::SynSent => self.on_segment_syn_sent(now, seg, payload),
            _ => self.on_segment_synchronized(now, seg, payload),
        }
    }

    /// RFC 9293 3.10.7.3: SYN-SENT.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &TcpHeader, _payload: &[u8]) {
        let flags = seg.flags;
        // First: the ACK must acknowledge our SYN: ISS < SEG.ACK =< SND.NXT.
        let ack_acceptable = flags.ack() && seg.ack > self.iss && seg.ack <= self.snd_max;
        if flags.ack() && !ack_acceptable {
            if !flags.rst() {
                self.reply_rst(seg.ack);
            }
            return;
        }
        // Second: RST. RFC 5961 3.2 leaves SYN-SENT to the ACK check above.
        if flags.rst() {
            if ack_acceptable {
                self.fail(ConnectionError::Refused);
            }
            return;
        }
        // Fourth: SYN.
        if !flags.syn() {
            return;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.apply_syn_options(&seg.options);
        self.last_received_at = now;
        if ack_acceptable {
            // Our SYN is acknowledged: ESTABLISHED (a data-bearing SYN-ACK is rare; its data is
            // not kept and the peer retransmits it).
            self.take_rtt_sample_on_handshake(now, seg);
            self.snd_una = seg.ack;
            self.snd_nxt = self.snd_nxt.max(self.snd_una);
            self.snd_wnd = usize::from(seg.window);
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.establish(now);
            self.ack_state = AckState::Now;
        } else {
            // Simultaneous open: SYN-RECEIVED, answer with SYN-ACK (same ISS).
            self.set_state(State::SynReceived);
            self.snd_wnd = usize::from(seg.window);
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq;
            self.syn_due = true;
        }
    }

    /// RFC 9293 3.10.7.4: every state from SYN-RECEIVED to TIME-WAIT.
    fn on_segment_synchronized(&mut self, now: Instant, seg: &TcpHeader, payload: &[u8]) {
        let flags = seg.flags;
        // A retransmitted SYN in SYN-RECEIVED means our SYN-ACK was lost: resend it.
        if self.state == State::SynReceived
            && flags.syn()
            && !flags.ack()
            && !flags.rst()
            && seg.seq == self.irs
        {
            self.syn_due = true;
            return;
        }

        // RFC 7323 5.3 R1 (PAWS): an older timestamp than TS.Recent marks an old duplicate.
        if self.ts_ok && !flags.rst() {
            if let Some(ts) = seg.options.timestamps {
                if (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.counters.paws_drops += 1;
                    self.ack_out_of_window(now, payload.is_empty());
                    return;
                }
            }
        }

        // First: sequence number check.
        let seg_len = seg.segment_len(payload.len());
        let rcv_wnd = self.rcv_adv.since(self.rcv_nxt).max(self.recv_buf.window());
        let acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, wnd) => seg.seq.in_window(self.rcv_nxt, wnd),
            // RFC 9293: with a zero window, still process ACK/RST of a segment at RCV.NXT.
            (_, 0) => seg.seq == self.rcv_nxt,
            (len, wnd) => {
                seg.seq.in_window(self.rcv_nxt, wnd)
                    || (seg.seq + (len - 1)).in_window(self.rcv_nxt, wnd)
            }
        };
        if !acceptable {
            // A retransmission of data we already have, sent because our ACK was lost: echo
            // its timestamp, not the original's, so the sender's RTT sample is not inflated by
            // its RTO (what Linux gets by accepting segments ending at RCV.WUP).
            if let Some(ts) = seg
                .options
                .timestamps
                .filter(|_| self.ts_ok && !flags.rst())
            {
                if seg.seq <= self.last_ack_sent && seg_len > 0 {
                    self.ts_recent = ts.tsval;
                }
            }
            if !flags.rst() {
                if self.state == State::TimeWait && flags.fin() {
                    // The peer retransmitted its FIN: ACK it and restart 2MSL (3.10.7.4).
                    self.timers
                        .set(super::Timer::Close, now + self.cfg.time_wait);
                }
                self.ack_out_of_window(now, payload.is_empty() && !flags.fin());
            }
            return;
        }

        // Second: RST (RFC 5961 3.2): only an exact RCV.NXT match resets.
        if flags.rst() {
            if seg.seq == self.rcv_nxt {
                self.on_valid_rst();
            } else {
                self.challenge_ack(now);
            }
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 4.2): challenge ACK.
        if flags.syn() {
            self.challenge_ack(now);
            return;
        }

        // Fifth: ACK.
        if !flags.ack() {
            return;
        }
        self.last_received_at = now;
        self.keepalive_probes_sent = 0;
        if self.ts_ok {
            if let Some(ts) = seg.options.timestamps {
                // RFC 7323 4.3: update TS.Recent if the segment covers Last.ACK.sent.
                if seg.seq <= self.last_ack_sent {
                    self.ts_recent = ts.tsval;
                }
            }
        }
        if self.state == State::SynReceived {
            if seg.ack > self.snd_una && seg.ack <= self.snd_max {
                self.snd_wnd = usize::from(seg.window) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = seg.ack;
                self.take_rtt_sample_on_handshake(now, seg);
                self.snd_una = seg.ack;
                self.snd_nxt = self.snd_nxt.max(self.snd_una);
                self.timers.stop(super::Timer::Retransmit);
                self.establish(now);
                // A FIN queued during SYN-RECEIVED (shutdown before the handshake ended).
                if self.fin_queued {
                    self.set_state(State::FinWait1);
                }
            } else {
                self.reply_rst(seg.ack);
                return;
            }
        } else if !self.process_ack(now, seg, payload) {
            return;
        }
        if self.state == State::Closed {
            return;
        }

        // Sixth: URG is ignored; urgent bytes are delivered inline (module doc).
        // Seventh: segment text.
        let (data_seq, data) = self.trim_to_window(seg.seq, flags.syn(), payload);
        if data.len() < payload.len() && self.state.can_receive() {
            // Part of the segment lay outside the window (a probe of our zero window, or a
            // retransmission overlapping old data): tell the sender where we are.
            self.ack_state = AckState::Now;
        }
        if !data.is_empty() {
            self.on_data(now, data_seq, data);
            if self.state == State::Closed {
                return;
            }
        }
        // Eighth: FIN.
        if flags.fin() {
            let fin_seq = seg.seq + usize::from(flags.syn()) + payload.len();
            if fin_seq.in_window(self.rcv_nxt, rcv_wnd.max(1)) {
                self.peer_fin = Some(fin_seq);
            }
        }
        self.process_fin(now);
    }

    /// Processes the ACK field in a synchronized state (after SYN-RECEIVED). Returns false if
    /// the segment must be dropped.
    fn process_ack(&mut self, now: Instant, seg: &TcpHeader, payload: &[u8]) -> bool {
        let ack = seg.ack;
        // RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if ack > self.snd_max {
            self.challenge_ack(now);
            return false;
        }
        if ack < self.snd_una - self.max_snd_wnd.max(1) {
            self.challenge_ack(now);
            return false;
        }
        // Linux tcp_ack ("something worked"): an acceptable ACK shows the path works, so an
        // earlier ICMP soft error is forgotten and a later timeout reports its own cause.
        if ack >= self.snd_una {
            self.soft_error = None;
        }
        let window = usize::from(seg.window) << self.snd_wscale;
        if ack > self.snd_una {
            self.on_new_ack(now, seg, window);
        } else if ack == self.snd_una {
            self.record_sack_blocks(seg);
            // RFC 5681 2 "duplicate acknowledgment".
            let is_dupack = payload.is_empty()
                && !seg.flags.syn()
                && !seg.flags.fin()
                && window == self.snd_wnd
                && self.snd_max != self.snd_una;
            if is_dupack {
                self.counters.dup_acks_in += 1;
                self.on_dupack(now);
            } else if !self.scoreboard.is_empty() {
                self.on_sack_progress(now);
            }
        }
        // RFC 9293 3.10.7.4: update the send window from the newest segment.
        if ack >= self.snd_una
            && (self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && self.snd_wl2 <= ack))
        {
            let opened = window > self.snd_wnd;
            self.snd_wnd = window;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            if opened && window > 0 {
                self.timers.stop(super::Timer::Persist);
                self.persist_backoff = 0;
            }
        }
        // State changes caused by the ACK of our FIN.
        if self.our_fin_acked() {
            match self.state {
                State::FinWait1 => {
                    self.set_state(State::FinWait2);
                    if self.orphaned {
                        self.timers
                            .set(super::Timer::Close, now + self.cfg.fin_timeout);
                    }
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => {
                    self.enter_closed();
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    /// New data acknowledged: RTT, buffers, congestion control, recovery, timers.
    fn on_new_ack(&mut self, now: Instant, seg: &TcpHeader, window: usize) {
        let ack = seg.ack;
        let flight_before = self.bytes_in_flight();
        let acked_seq = ack.since(self.snd_una);
        // Data bytes: exclude our SYN (acked with the first ACK) and FIN.
        let data_start = self.send_buf_seq();
        let data_end = data_start + self.send_buf.len();
        let data_acked = ack.min(data_end).since(data_start);
        self.send_buf.ack(data_acked);
        self.counters.bytes_acked += data_acked as u64;

        let rtt = self.take_rtt_sample(now, seg);
        self.snd_una = ack;
        if self.snd_nxt < self.snd_una {
            self.snd_nxt = self.snd_una;
        }
        if self.high_rxt < self.snd_una {
            self.high_rxt = self.snd_una;
        }
        self.scoreboard.advance(ack);
        self.record_sack_blocks(seg);
        self.rto_count = 0;
        self.recovery_probe_sent = false;
        self.progress_at = now;
        self.persist_backoff = 0;
        let _ = window;

        self.on_ack_for_recovery(now, acked_seq, rtt, flight_before);
        self.on_ack_for_loss_probe(now, seg, flight_before);

        // RFC 6298 5.2/5.3: stop the timer when all is acknowledged, else restart it (as the
        // loss probe timeout when RFC 8985 7.2 allows one).
        if self.snd_una == self.snd_max {
            self.timers.stop(super::Timer::Retransmit);
            self.loss_probe_armed = false;
        } else {
            self.arm_retransmit_timer(now);
        }
    }

    fn record_sack_blocks(&mut self, seg: &TcpHeader) {
        if !self.sack_ok {
            return;
        }
        for (left, right) in seg.options.sack.iter() {
            self.scoreboard.add(left, right, self.snd_una, self.snd_max);
        }
        self.detect_lost_retransmissions();
    }

    /// Cuts what lies before RCV.NXT or beyond the window; returns the first data byte's
    /// sequence number and the data to store.
    fn trim_to_window<'p>(
        &self,
        seq: SeqNumber,
        syn: bool,
        payload: &'p [u8],
    ) -> (SeqNumber, &'p [u8]) {
        let data_seq = seq + usize::from(syn);
        let skip = self.rcv_nxt.since(data_seq).min(payload.len());
        let data = payload.get(skip..).unwrap_or(&[]);
        let data_seq = data_seq + skip;
        let room = (self.rcv_nxt + self.recv_buf.window()).since(data_seq);
        (data_seq, data.get(..room.min(data.len())).unwrap_or(&[]))
    }

    /// Seventh step: store in-window data and decide how to acknowledge it.
    fn on_data(&mut self, now: Instant, seq: SeqNumber, data: &[u8]) {
        match self.state {
            State::Established | State::FinWait1 | State::FinWait2 => {}
            // The peer's FIN was already processed; nothing more can be data.
            _ => return,
        }
        if self.orphaned {
            // Linux (tcp_rcv_state_process, TCPAbortOnData): data for a closed socket resets.
            let rst = self.make_segment(self.snd_nxt, TcpFlags::RST | TcpFlags::ACK);
            self.control.push(rst);
            self.enter_closed();
            return;
        }
        let offset = seq.since(self.rcv_nxt);
        let had_gaps = self.recv_buf.has_out_of_order();
        let advanced = self.recv_buf.write_at(offset, data);
        self.rcv_nxt += advanced;
        self.counters.bytes_received += advanced as u64;
        self.rcv_mss = self.rcv_mss.max(data.len()).min(self.cfg.local_mss());
        self.unacked_bytes += data.len();
        if offset > 0 || had_gaps {
            // RFC 5681 4.2: out-of-order data, or data filling a hole, is ACKed at once
            // (with SACK blocks describing what we hold).
            if offset > 0 {
                self.counters.out_of_order += 1;
            }
            self.ack_state = AckState::Now;
        } else if self.quickack > 0 {
            self.quickack -= 1;
            self.ack_state = AckState::Now;
        } else if self.unacked_bytes >= 2 * self.rcv_mss {
            // RFC 1122 4.2.3.2 / RFC 5681 4.2: an ACK for at least every second full segment.
            self.ack_state = AckState::Now;
        } else if self.ack_state == AckState::Idle {
            self.ack_state = AckState::Delayed;
            self.timers
                .set_if_idle(super::Timer::DelayedAck, now + self.cfg.delayed_ack);
        }
    }

    /// Eighth step: consume the peer's FIN once everything before it has arrived.
    fn process_fin(&mut self, now: Instant) {
        let Some(fin_seq) = self.peer_fin else { return };
        if self.fin_received || fin_seq != self.rcv_nxt {
            return;
        }
        self.fin_received = true;
        self.rcv_nxt += 1;
        self.ack_state = AckState::Now;
        match self.state {
            State::SynReceived | State::Established => self.set_state(State::CloseWait),
            State::FinWait1 => {
                if self.our_fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    self.set_state(State::Closing);
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    fn on_valid_rst(&mut self) {
        match self.state {
            // RFC 9293 3.10.7.4: a passive half-open connection just goes away (back to
            // LISTEN); an active one reports the refusal.
            State::SynReceived if self.passive => self.enter_closed(),
            State::SynReceived => self.fail(ConnectionError::Refused),
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                self.fail(ConnectionError::Reset)
            }
            // CLOSING, LAST-ACK, TIME-WAIT: close without error (Linux accepts RST in
            // TIME-WAIT, rfc1337 = 0).
            _ => self.enter_closed(),
        }
    }

    /// ESTABLISHED reached.
    pub(super) fn establish(&mut self, now: Instant) {
        self.set_state(State::Established);
        self.was_established = true;
        self.syn_due = false;
        self.rto_count = 0;
        self.timers.stop(super::Timer::Retransmit);
        if self.syn_retransmitted {
            self.rtt.on_syn_retransmitted_handshake_done();
        }
        self.high_rxt = self.snd_una;
        self.progress_at = now;
        if self.opts.keepalive {
            self.arm_keepalive(now);
        }
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(State::TimeWait);
        self.timers.stop_all();
        self.timers
            .set(super::Timer::Close, now + self.cfg.time_wait);
    }

    /// RFC 9293: an RST answering an unacceptable segment, `<SEQ=SEG.ACK><CTL=RST>`.
    fn reply_rst(&mut self, seq: SeqNumber) {
        let mut rst = self.make_segment(seq, TcpFlags::RST);
        rst.header.ack = SeqNumber(0);
        self.control.push(rst);
    }

    /// ACK answering an unacceptable segment. Pure control segments are rate limited like
    /// Linux's `tcp_oow_rate_limited`; data always gets an ACK (its sender needs it).
    fn ack_out_of_window(&mut self, now: Instant, rate_limited: bool) {
        if rate_limited {
            if let Some(last) = self.last_oow_ack {
                if now.saturating_duration_since(last) < OOW_RATE_LIMIT {
                    return;
                }
            }
            self.last_oow_ack = Some(now);
        }
        self.ack_state = AckState::Now;
    }

    /// RFC 5961 challenge ACK (rate limited, RFC 5961 7).
    fn challenge_ack(&mut self, now: Instant) {
        if let Some(last) = self.last_oow_ack {
            if now.saturating_duration_since(last) < OOW_RATE_LIMIT {
                return;
            }
        }
        self.last_oow_ack = Some(now);
        self.counters.challenge_acks += 1;
        self.ack_state = AckState::Now;
    }

    fn take_rtt_sample_on_handshake(&mut self, now: Instant, seg: &TcpHeader) {
        // Karn: no sample when the SYN was retransmitted, unless timestamps disambiguate.
        if self.syn_retransmitted && !(self.ts_ok && seg.options.timestamps.is_some()) {
            return;
        }
        if let Some(rtt) = self.rtt_from_segment(now, seg) {
            self.rtt.sample(rtt);
        }
    }

    /// An RTT sample for an ACK of new data: from TSecr when timestamps are on (RFC 7323 4.1),
    /// else from the timed segment (Karn's rule: the probe is dropped on retransmission).
    fn take_rtt_sample(&mut self, now: Instant, seg: &TcpHeader) -> Option<std::time::Duration> {
        let rtt = self.rtt_from_segment(now, seg)?;
        self.rtt.sample(rtt);
        Some(rtt)
    }

    fn rtt_from_segment(&mut self, now: Instant, seg: &TcpHeader) -> Option<std::time::Duration> {
        if self.ts_ok {
            let ts = seg.options.timestamps?;
            if ts.tsecr == 0 {
                return None;
            }
            let elapsed_ms = self.ts_now(now).wrapping_sub(ts.tsecr);
            // An echo from the future or older than ~10 min is bogus.
            if elapsed_ms > 600_000 {
                return None;
            }
            // Karn's rule for timestamps: after an RTO, an ACK echoing a transmission from
            // before it (the peer had the data; only its ACK was lost, and the retransmission
            // drew a duplicate ACK with the old TS.Recent) measures the timeout, not the path.
            // Such samples would inflate SRTT past the RTO and turn off the loss probe.
            if let Some(mark) = self.rto_tsval {
                if (ts.tsecr.wrapping_sub(mark) as i32) < 0 {
                    return None;
                }
                self.rto_tsval = None;
            }
            return Some(std::time::Duration::from_millis(u64::from(elapsed_ms)));
        }
        let (end, sent_at) = self.rtt_probe?;
        if seg.ack >= end {
            self.rtt_probe = None;
            return Some(now.saturating_duration_since(sent_at));
        }
        // The handshake: the SYN is timed by `last_sent_at` when no probe is running.
        None
    }
}
