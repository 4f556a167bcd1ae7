//! Option negotiation on the SYN exchange (RFC 9293 3.7.1 MSS, RFC 7323 window scale and
//! timestamps, RFC 2018 SACK-permitted) and the window field we advertise.

use super::{Connection, State, TIMESTAMP_OPTION_LEN};
use crate::tcp::config::{DEFAULT_PEER_MSS, MIN_MSS};
use crate::time::Instant;
use crate::wire::tcp::{TcpOptions, Timestamps};

/// RFC 7323 2.3: shift counts above 14 are treated as 14.
const MAX_WINDOW_SCALE: u8 = 14;

impl Connection {
    /// Takes the peer's SYN options. Each option is used only if we offer it too: on an active
    /// open our SYN offered everything the config enables; on a passive open the SYN-ACK
    /// echoes exactly what we accept here.
    pub(super) fn apply_syn_options(&mut self, options: &TcpOptions) {
        let peer_mss = options.mss.map_or(DEFAULT_PEER_MSS, usize::from);
        self.wscale_ok = self.cfg.window_scaling && options.window_scale.is_some();
        if self.wscale_ok {
            self.snd_wscale = options.window_scale.unwrap_or(0).min(MAX_WINDOW_SCALE);
        } else {
            self.snd_wscale = 0;
            self.rcv_wscale = 0;
        }
        self.sack_ok = self.cfg.sack && options.sack_permitted;
        self.ts_ok = self.cfg.timestamps && options.timestamps.is_some();
        if let Some(ts) = options.timestamps.filter(|_| self.ts_ok) {
            self.ts_recent = ts.tsval;
        }
        // RFC 6691: the MSS excludes options; timestamps take 12 bytes of every segment.
        let mut smss = peer_mss.min(self.cfg.local_mss());
        if self.ts_ok {
            smss = smss.saturating_sub(TIMESTAMP_OPTION_LEN);
        }
        self.smss = smss.max(MIN_MSS);
        self.cc.set_mss(self.smss);
    }

    /// Options of our SYN or SYN-ACK.
    pub(super) fn syn_options(&self, now: Instant) -> TcpOptions {
        let active = self.state == State::SynSent;
        let offer = |enabled: bool, negotiated: bool| enabled && (active || negotiated);
        let mut options = TcpOptions {
            mss: Some(u16::try_from(self.cfg.local_mss()).unwrap_or(u16::MAX)),
            ..TcpOptions::default()
        };
        if offer(self.cfg.window_scaling, self.wscale_ok) {
            options.window_scale = Some(self.rcv_wscale);
        }
        options.sack_permitted = offer(self.cfg.sack, self.sack_ok);
        if offer(self.cfg.timestamps, self.ts_ok) {
            options.timestamps = Some(Timestamps {
                tsval: self.ts_now(now),
                tsecr: if active { 0 } else { self.ts_recent },
            });
        }
        options
    }

    /// The window we can offer now, in bytes, with receiver-side SWS avoidance (RFC 1122
    /// 4.2.3.3): the right edge only moves when it can move by min(buffer/2, MSS).
    fn offerable_window(&self) -> usize {
        let free = self.recv_buf.window();
        let current = self.rcv_adv.since(self.rcv_nxt);
        let threshold = (self.recv_buf.capacity() / 2).min(self.cfg.local_mss());
        if free > current && free - current < threshold {
            current
        } else {
            free.max(current)
        }
    }

    /// True when reading made a window update worth an ACK on its own: the window we can
    /// offer is at least twice what the peer believes (Linux `tcp_cleanup_rbuf`) and grew by
    /// at least the SWS threshold.
    pub(super) fn window_update_worthwhile(&self) -> bool {
        let current = self.rcv_adv.since(self.rcv_nxt);
        let offer = self.offerable_window();
        offer > current && offer >= 2 * current && offer - current >= self.rcv_mss.min(offer)
    }

    /// The window field for an outgoing segment; records the advertised right edge.
    pub(super) fn window_field(&mut self, syn: bool) -> u16 {
        let window = self.offerable_window();
        if syn {
            // RFC 7323 2.2: the window of a SYN is never scaled.
            let field = u16::try_from(window).unwrap_or(u16::MAX);
            self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + usize::from(field));
            return field;
        }
        let shift = u32::from(self.rcv_wscale);
        let granularity = 1usize << shift;
        // Round up when that stays within the free space, so the edge never moves left.
        let rounded_up = window.div_ceil(granularity);
        let units = if rounded_up * granularity <= self.recv_buf.window().max(window) {
            rounded_up
        } else {
            window >> shift
        };
        let field = u16::try_from(units).unwrap_or(u16::MAX);
        let edge = self.rcv_nxt + (usize::from(field) << shift);
        self.rcv_adv = self.rcv_adv.max(edge);
        field
    }
}
