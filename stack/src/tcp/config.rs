//! TCP settings: host-wide defaults (Linux's sysctls) and per-socket options (SO_*/TCP_*).
//!
//! Every default is Linux's, named after the sysctl it mirrors, except the buffer sizes: Linux
//! autotunes its buffers (`tcp_rmem`/`tcp_wmem`), ustack does not, so it starts with the larger
//! fixed sizes below.

use std::time::Duration;

use crate::tcp::congestion::CongestionAlgorithm;

/// Host-wide TCP configuration, fixed when the [`crate::tcp::layer::TcpLayer`] is built.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// MTU of the interface TCP sends on: the MSS we announce is `mtu - 40` (RFC 6691).
    pub mtu: usize,
    /// Window scaling (RFC 7323), on in Linux (`tcp_window_scaling`).
    pub window_scaling: bool,
    /// Our shift count when scaling is negotiated (Linux picks 7 for its default buffers).
    pub window_scale: u8,
    /// SACK (RFC 2018), `tcp_sack`.
    pub sack: bool,
    /// Timestamps (RFC 7323), `tcp_timestamps`.
    pub timestamps: bool,
    /// RFC 6298 initial RTO (Linux `TCP_TIMEOUT_INIT`).
    pub initial_rto: Duration,
    /// Lower bound on the RTO (Linux `TCP_RTO_MIN`).
    pub min_rto: Duration,
    /// Upper bound on the RTO (Linux `TCP_RTO_MAX`).
    pub max_rto: Duration,
    /// SYN retransmissions before connect gives up (`tcp_syn_retries`; 6 gives ~127 s).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions before a half-open connection is dropped (`tcp_synack_retries`).
    pub synack_retries: u32,
    /// Data retransmissions before an established connection is aborted (`tcp_retries2`).
    pub retries2: u32,
    /// Delayed ACK timeout (Linux `TCP_DELACK_MIN`; its adaptive ATO starts here).
    pub delayed_ack: Duration,
    /// Segments acknowledged immediately at the start of a connection (Linux quick-ACK mode).
    pub quickack_segments: u32,
    /// How long a connection stays in TIME-WAIT (2*MSL; Linux `TCP_TIMEWAIT_LEN`).
    pub time_wait: Duration,
    /// How long an orphaned connection may stay in FIN-WAIT-2 (`tcp_fin_timeout`).
    pub fin_timeout: Duration,
    /// Upper bound for `listen` backlogs (`net.core.somaxconn`).
    pub somaxconn: usize,
    /// Bound on a listener's half-open connections besides its backlog (`tcp_max_syn_backlog`);
    /// beyond `min(backlog, max_syn_backlog)` SYNs are answered with SYN cookies, or dropped
    /// when `syn_cookies` is off (see `layer.rs`).
    pub max_syn_backlog: usize,
    /// SYN cookies when the SYN queue overflows (RFC 4987; Linux `tcp_syncookies = 1`).
    pub syn_cookies: bool,
    /// Default send and receive buffer sizes of new sockets, in bytes.
    pub send_buffer: usize,
    pub recv_buffer: usize,
    /// Out-of-order ranges a receive buffer tracks.
    pub max_ooo_ranges: usize,
    /// Default congestion control (`tcp_congestion_control`).
    pub congestion: CongestionAlgorithm,
    /// Keepalive defaults (`tcp_keepalive_time`, `_intvl`, `_probes`).
    pub keepalive_idle: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_probes: u32,
    /// Ephemeral port range (`ip_local_port_range`).
    pub ephemeral_ports: core::ops::RangeInclusive<u16>,
    /// Largest TCP payload of one super-segment the device cuts into MSS-sized segments (TCP
    /// segmentation offload); 0 sends every segment separately. Linux's `gso_max_size`.
    pub gso_max_payload: usize,
    /// Secret for ISNs, timestamp offsets and port selection. A configuration value so that
    /// simulations replay exactly; the daemon fills it from the OS's random source.
    pub secret: [u8; 16],
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mtu: 1500,
            window_scaling: true,
            window_scale: 7,
            sack: true,
            timestamps: true,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            syn_retries: 6,
            synack_retries: 5,
            retries2: 15,
            delayed_ack: Duration::from_millis(40),
            quickack_segments: 16,
            time_wait: Duration::from_secs(60),
            fin_timeout: Duration::from_secs(60),
            somaxconn: 4096,
            max_syn_backlog: 1024,
            syn_cookies: true,
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            max_ooo_ranges: 32,
            congestion: CongestionAlgorithm::Cubic,
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            ephemeral_ports: 32768..=60999,
            gso_max_payload: 0,
            secret: [0; 16],
        }
    }
}

impl TcpConfig {
    /// The MSS we announce: the MTU less 20 bytes of IPv4 and 20 of TCP header.
    pub fn local_mss(&self) -> usize {
        self.mtu
            .saturating_sub(40)
            .clamp(MIN_MSS, usize::from(u16::MAX))
    }

    /// The options a new socket starts with.
    pub fn default_socket_options(&self) -> SocketOptions {
        SocketOptions {
            nodelay: false,
            keepalive: false,
            keepalive_idle: self.keepalive_idle,
            keepalive_interval: self.keepalive_interval,
            keepalive_probes: self.keepalive_probes,
            user_timeout: None,
            linger_zero: false,
            send_buffer: self.send_buffer,
            recv_buffer: self.recv_buffer,
            congestion: self.congestion,
        }
    }
}

/// Smallest MSS we use whatever the peer says (Linux's `tcp_min_snd_mss` is 48).
pub const MIN_MSS: usize = 48;
/// MSS assumed when the peer's SYN has no MSS option (RFC 9293 3.7.1).
pub const DEFAULT_PEER_MSS: usize = 536;

/// Per-socket options (`setsockopt`). Changing them on a live connection takes effect at the
/// next event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// TCP_NODELAY: disable Nagle's algorithm (RFC 896).
    pub nodelay: bool,
    /// SO_KEEPALIVE and TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT.
    pub keepalive: bool,
    pub keepalive_idle: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_probes: u32,
    /// TCP_USER_TIMEOUT: abort when sent data stays unacknowledged this long.
    pub user_timeout: Option<Duration>,
    /// SO_LINGER with a zero timeout: `close` sends RST instead of FIN.
    pub linger_zero: bool,
    /// SO_SNDBUF / SO_RCVBUF in bytes.
    pub send_buffer: usize,
    pub recv_buffer: usize,
    /// TCP_CONGESTION; applies to connections opened after it is set.
    pub congestion: CongestionAlgorithm,
}
