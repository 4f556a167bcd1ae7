//! ICMP errors for a connection, handled as Linux's `tcp_v4_err`: while connecting any
//! unreachable error ends the attempt; on a synchronized connection they are soft errors
//! (RFC 1122 4.2.3.9), reported only if the connection later times out. "Fragmentation
//! needed" lowers the MSS (RFC 1191 path MTU discovery).

use super::{Connection, ConnectionError, IcmpError, State, TIMESTAMP_OPTION_LEN};
use crate::tcp::config::MIN_MSS;
use crate::tcp::seq::SeqNumber;
use crate::time::Instant;

/// Linux's `icmp_err_convert` for destination-unreachable codes 0..=15: the error and whether
/// it is "fatal".
pub(crate) fn unreachable_error(code: u8) -> Option<(ConnectionError, bool)> {
    use ConnectionError::*;
    Some(match code {
        0 => (NetworkUnreachable, false),
        1 => (HostUnreachable, false),
        2 => (ProtocolUnavailable, true),
        3 => (Refused, true),
        5 => (Unsupported, false),
        6 => (NetworkUnreachable, true),
        7 => (HostDown, true),
        8 => (NoNetwork, true),
        9 => (NetworkUnreachable, true),
        10 => (HostUnreachable, true),
        11 => (NetworkUnreachable, false),
        12 => (HostUnreachable, false),
        13..=15 => (HostUnreachable, true),
        _ => return None,
    })
}

/// Destination unreachable code "fragmentation needed and DF set".
const FRAGMENTATION_NEEDED: u8 = 4;
/// IPv4 + TCP headers without options.
const HEADERS_LEN: usize = 40;
/// RFC 791 minimum MTU.
const MIN_MTU: usize = 68;

impl Connection {
    /// An ICMP error quoting one of our segments with sequence number `seq`.
    pub fn handle_icmp_error(&mut self, _now: Instant, error: IcmpError, seq: SeqNumber) {
        // RFC 5927 4.1: only errors quoting data in flight are believed.
        if !(seq >= self.snd_una && seq < self.snd_max.max(self.snd_una + 1)) {
            return;
        }
        let (conn_error, fatal) = match error {
            IcmpError::Unreachable {
                code: FRAGMENTATION_NEEDED,
                next_hop_mtu,
            } => {
                self.reduce_mtu(usize::from(next_hop_mtu));
                return;
            }
            IcmpError::Unreachable { code, .. } => match unreachable_error(code) {
                Some(found) => found,
                None => return,
            },
            IcmpError::TimeExceeded => (ConnectionError::HostUnreachable, false),
            IcmpError::ParameterProblem => (ConnectionError::ProtocolError, false),
        };
        match self.state {
            State::SynSent => self.fail(conn_error),
            // A listener's half-open connection is dropped on fatal errors (tcp_req_err).
            State::SynReceived if self.passive => {
                if fatal {
                    self.enter_closed();
                }
            }
            State::SynReceived => self.fail(conn_error),
            State::Closed | State::TimeWait => {}
            _ => self.soft_error = Some(conn_error),
        }
    }

    fn reduce_mtu(&mut self, mtu: usize) {
        if mtu < MIN_MTU {
            return;
        }
        let options = if self.ts_ok { TIMESTAMP_OPTION_LEN } else { 0 };
        let mss = mtu.saturating_sub(HEADERS_LEN + options).max(MIN_MSS);
        if mss < self.smss {
            self.smss = mss;
            self.cc.set_mss(mss);
            // Linux tcp_simple_retransmit: resend what was lost to the too-big path now.
            if self.snd_una != self.snd_max {
                self.snd_nxt = self.snd_una;
                self.retransmit_head = true;
            }
        }
    }
}
