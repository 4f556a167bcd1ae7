//! Timer events: retransmission timeout (RFC 6298 5.4-5.7, Linux's retry limits), delayed
//! ACK, persist (zero-window probes), keepalive (RFC 1122 4.2.3.6 with Linux's
//! TCP_KEEPIDLE/INTVL/CNT), TCP_USER_TIMEOUT (RFC 5482), TIME-WAIT and FIN-WAIT-2 expiry.

use super::timers::Timer;
use super::{AckState, Connection, ConnectionError, State};
use crate::time::Instant;
use crate::wire::tcp::TcpFlags;

impl Connection {
    /// Runs the timers that expired at `now`. Call when `now >= poll_at()`, then drain
    /// `poll_transmit`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.take_expired(now) {
            if self.state == State::Closed {
                return;
            }
            match timer {
                Timer::Retransmit if self.loss_probe_armed => self.on_loss_probe_timeout(now),
                Timer::Retransmit => self.on_rto(now),
                Timer::DelayedAck => {
                    if self.ack_state != AckState::Idle {
                        self.ack_state = AckState::Now;
                    }
                }
                Timer::Persist => self.on_persist(now),
                Timer::Keepalive => self.on_keepalive(now),
                Timer::Close => {
                    if matches!(self.state, State::TimeWait | State::FinWait2) {
                        self.enter_closed();
                    }
                }
            }
        }
    }

    fn user_timeout_expired(&self, now: Instant) -> bool {
        self.opts
            .user_timeout
            .is_some_and(|limit| now.saturating_duration_since(self.progress_at) >= limit)
    }

    /// The error reported when we give up: a soft ICMP error seen meanwhile, else ETIMEDOUT
    /// (Linux `sk_err_soft ? : ETIMEDOUT`).
    fn timeout_error(&self) -> ConnectionError {
        self.soft_error.unwrap_or(ConnectionError::TimedOut)
    }

    fn on_rto(&mut self, now: Instant) {
        match self.state {
            State::SynSent | State::SynReceived => {
                let limit = if self.state == State::SynSent {
                    self.cfg.syn_retries
                } else {
                    self.cfg.synack_retries
                };
                if self.rto_count >= limit || self.user_timeout_expired(now) {
                    if self.passive {
                        // A half-open passive connection just disappears.
                        self.enter_closed();
                    } else {
                        self.fail(self.timeout_error());
                    }
                    return;
                }
                self.rto_count += 1;
                self.counters.timeouts += 1;
                self.rtt.backoff();
                self.syn_due = true;
            }
            State::Closed | State::TimeWait => {}
            _ => {
                if self.snd_una == self.snd_max {
                    return;
                }
                if self.rto_count >= self.cfg.retries2 || self.user_timeout_expired(now) {
                    self.fail(self.timeout_error());
                    return;
                }
                self.rto_count += 1;
                self.on_retransmission_timeout(now);
                self.retransmit_head = true;
            }
        }
    }

    fn on_persist(&mut self, now: Instant) {
        if !self.state.is_synchronized() {
            return;
        }
        if self.user_timeout_expired(now) && self.snd_una != self.snd_nxt {
            self.fail(self.timeout_error());
            return;
        }
        let usable = (self.snd_una + self.snd_wnd).since(self.snd_nxt);
        if usable > 0 {
            self.force_send = true;
        } else {
            self.probe_due = true;
        }
        self.persist_backoff = self.persist_backoff.saturating_add(1);
    }

    fn on_keepalive(&mut self, now: Instant) {
        if !self.opts.keepalive
            || !matches!(
                self.state,
                State::Established | State::CloseWait | State::FinWait1 | State::FinWait2
            )
        {
            return;
        }
        // Linux: no keepalive while data is outstanding or queued; the RTO covers that.
        if self.snd_una != self.snd_max || !self.send_buf.is_empty() {
            self.timers
                .set(Timer::Keepalive, now + self.opts.keepalive_idle);
            return;
        }
        let idle = now.saturating_duration_since(self.last_received_at);
        if idle < self.opts.keepalive_idle {
            self.timers.set(
                Timer::Keepalive,
                self.last_received_at + self.opts.keepalive_idle,
            );
            return;
        }
        let exhausted = self.keepalive_probes_sent >= self.opts.keepalive_probes
            || (self.keepalive_probes_sent > 0 && self.user_timeout_expired_since_idle(now));
        if exhausted {
            // Linux tcp_keepalive_timer: RST, then ETIMEDOUT.
            let rst = self.make_segment(self.snd_max, TcpFlags::RST | TcpFlags::ACK);
            self.control.push(rst);
            self.fail(self.timeout_error());
            return;
        }
        self.probe_due = true;
        self.keepalive_probes_sent += 1;
        self.timers
            .set(Timer::Keepalive, now + self.opts.keepalive_interval);
    }

    /// TCP_USER_TIMEOUT also bounds keepalive: measured from the last segment received.
    fn user_timeout_expired_since_idle(&self, now: Instant) -> bool {
        self.opts
            .user_timeout
            .is_some_and(|limit| now.saturating_duration_since(self.last_received_at) >= limit)
    }
}
