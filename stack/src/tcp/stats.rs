//! TCP statistics: a per-connection snapshot (what `ss -ti` shows) and host-wide counters
//! (what `nstat` shows for TCP).

use std::net::SocketAddrV4;
use std::time::Duration;

use crate::tcp::connection::State;

/// A snapshot of one connection, as `ustack ss` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: State,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// Smoothed RTT and its variation (RFC 6298); `None` before the first sample.
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    pub rto: Duration,
    /// Congestion window and slow-start threshold in bytes.
    pub cwnd: usize,
    pub ssthresh: usize,
    pub congestion: &'static str,
    /// MSS we send with (payload bytes per segment, options excluded).
    pub send_mss: usize,
    /// Window scale shifts: ours (for what we advertise) and the peer's; `None` when off.
    pub rcv_wscale: Option<u8>,
    pub snd_wscale: Option<u8>,
    pub sack: bool,
    pub timestamps: bool,
    /// The peer's current window and ours, in bytes.
    pub snd_wnd: usize,
    pub rcv_wnd: usize,
    /// Bytes sent but not yet acknowledged.
    pub unacked: usize,
    /// Bytes queued by the application and not yet acknowledged / not yet read.
    pub send_queue: usize,
    pub recv_queue: usize,
    pub counters: ConnCounters,
}

/// Counters kept by each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnCounters {
    pub segments_in: u64,
    pub segments_out: u64,
    /// Segments retransmitted (RTO, fast retransmit and SACK recovery).
    pub retransmits: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Entries into fast recovery.
    pub fast_recoveries: u64,
    /// Loss probes sent: tail loss probes (RFC 8985 7), the second probe of an episode and
    /// probes in SACK recovery (see `connection/loss_probe.rs`).
    pub loss_probes: u64,
    /// Retransmissions found lost during recovery and sent again (RFC 8985 6.2).
    pub lost_retransmits: u64,
    /// Payload bytes sent for the first time, and acknowledged.
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    /// Payload bytes received in order.
    pub bytes_received: u64,
    pub dup_acks_in: u64,
    /// Segments dropped by PAWS (RFC 7323 5).
    pub paws_drops: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Segments that arrived out of order.
    pub out_of_order: u64,
}

/// Host-wide TCP counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpLayerStats {
    pub segments_in: u64,
    pub segments_out: u64,
    pub bad_checksum: u64,
    pub malformed: u64,
    pub resets_sent: u64,
    pub no_socket: u64,
    pub active_opens: u64,
    pub passive_opens: u64,
    /// SYNs dropped because the SYN queue or the accept queue was full.
    pub listen_drops: u64,
    /// Handshake-completing ACKs dropped because the accept queue was full.
    pub listen_overflows: u64,
    pub icmp_errors: u64,
    /// SYN-ACKs sent with a cookie; ACKs that brought back a valid one; and ACKs to a listener
    /// whose cookie failed the check (answered with RST).
    pub syncookies_sent: u64,
    pub syncookies_received: u64,
    pub syncookies_failed: u64,
    /// Connections asked for output by `poll_transmit` (only those touched since: the cost
    /// of a turn follows the work, not the number of connections).
    pub connections_polled: u64,
}
