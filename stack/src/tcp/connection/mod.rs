//! One TCP connection as a sans-I/O state machine (RFC 9293 with RFC 7323, 2018, 5681, 6298,
//! 6582, 6675, 5961, 1122 behaviour, Linux defaults).
//!
//! # Driving contract
//!
//! A `Connection` never reads a clock and never does I/O. Its owner (the [`TcpLayer`]) calls:
//!
//! - **inputs**: [`Connection::handle_segment`] for each parsed segment of this 4-tuple,
//!   [`Connection::handle_timeout`] when `now >= poll_at()`, [`Connection::handle_icmp_error`];
//! - **application commands**: [`Connection::send`], [`Connection::recv`],
//!   [`Connection::shutdown_write`], [`Connection::close`], [`Connection::abort`], option
//!   setters;
//! - **outputs**: after *any* input or command, [`Connection::poll_transmit`] until it returns
//!   `None` (each call yields at most one segment), then [`Connection::poll_at`] for the next
//!   deadline. `poll_at` covers timers only: pending output is always drained by
//!   `poll_transmit` first, so a driver that sleeps until `poll_at` never leaves a segment
//!   waiting;
//! - **getters**: state, readiness ([`Connection::readiness`]), [`Connection::info`].
//!
//! [`TcpLayer`]: crate::tcp::layer::TcpLayer
//!
//! # Layout
//!
//! `input.rs` is segment arrival (RFC 9293 3.10.7), `output.rs` decides what to send (data with
//! Nagle / SWS / cwnd / rwnd, ACKs, probes, retransmissions), `options.rs` negotiates SYN
//! options, `recovery.rs` is loss recovery (NewReno and SACK), `loss_probe.rs` the tail loss
//! probe (RFC 8985 7), `scoreboard.rs` the SACK scoreboard, `timeout.rs` the timer events (RTO,
//! delayed ACK, persist, keepalive, TIME-WAIT), `timers.rs` the timer table.
//!
//! Urgent data: the urgent pointer is ignored and urgent bytes are delivered inline, as with
//! SO_OOBINLINE (RFC 6093 recommends against new uses of urgent data); nothing is dropped.

pub(crate) mod icmp;
mod input;
mod loss_probe;
mod options;
mod output;
mod recovery;
mod scoreboard;
mod state;
mod timeout;
mod timers;

pub use state::State;

use std::net::SocketAddrV4;
use std::time::Duration;

use crate::tcp::buffer::{RecvBuffer, SendBuffer};
use crate::tcp::config::{SocketOptions, TcpConfig, DEFAULT_PEER_MSS};
use crate::tcp::congestion::{new_controller, CongestionControl};
use crate::tcp::rtt::RttEstimator;
use crate::tcp::seq::SeqNumber;
use crate::tcp::stats::{ConnCounters, TcpInfo};
use crate::time::Instant;
use crate::wire::tcp::{TcpFlags, TcpHeader};

use scoreboard::Scoreboard;
use timers::{Timer, Timers};

/// A segment the connection wants sent: header (ports, numbers, flags, options) and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub header: TcpHeader,
    pub payload: Vec<u8>,
    /// `Some(mss)` for a super-segment (see [`TcpConfig::gso_max_payload`]): the device sends
    /// it as segments of `mss` payload bytes each, the last one possibly shorter.
    pub segment_size: Option<u16>,
}

impl Segment {
    /// How many segments this becomes on the wire.
    pub fn wire_segments(&self) -> usize {
        match self.segment_size {
            Some(size) if size > 0 => self.payload.len().div_ceil(usize::from(size)).max(1),
            _ => 1,
        }
    }
}

/// Why a connection failed. The socket layer maps these to errno values (given in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionError {
    /// RST in answer to our SYN, or ICMP port unreachable while connecting [ECONNREFUSED].
    Refused,
    /// RST on a synchronized connection [ECONNRESET].
    Reset,
    /// Retransmissions, keepalive probes or the user timeout ran out [ETIMEDOUT].
    TimedOut,
    /// ICMP errors [ENETUNREACH, EHOSTUNREACH, EHOSTDOWN, ENONET, ENOPROTOOPT, EOPNOTSUPP,
    /// EPROTO], as Linux's `icmp_err_convert` maps them.
    NetworkUnreachable,
    HostUnreachable,
    HostDown,
    NoNetwork,
    ProtocolUnavailable,
    Unsupported,
    ProtocolError,
    /// ICMP "fragmentation needed" on a connected UDP socket [EMSGSIZE] (TCP lowers its MSS
    /// instead).
    MessageTooLong,
}

/// Errors of [`Connection::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The handshake has not completed [EAGAIN for a non-blocking socket].
    NotYetConnected,
    /// Writes were shut down (shutdown, close, or the connection ended) [EPIPE].
    Shutdown,
    /// The connection failed.
    Failed(ConnectionError),
}

/// Errors of [`Connection::recv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// No data yet [EAGAIN].
    WouldBlock,
    /// The connection never got established or is gone [ENOTCONN].
    NotConnected,
    /// The connection failed.
    Failed(ConnectionError),
}

/// An ICMP error concerning this connection, already matched to it by the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable with its code (RFC 792, RFC 1812); `next_hop_mtu` for code 4.
    Unreachable {
        code: u8,
        next_hop_mtu: u16,
    },
    TimeExceeded,
    ParameterProblem,
}

/// What the application may do now (maps onto poll/epoll bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// recv would not block: data, EOF or an error [POLLIN].
    pub readable: bool,
    /// send would accept bytes [POLLOUT].
    pub writable: bool,
    /// The handshake completed at some point.
    pub connected: bool,
    /// An error is pending [POLLERR].
    pub error: bool,
    /// The peer sent FIN [POLLRDHUP].
    pub read_closed: bool,
    /// Both directions are closed or the connection is gone [POLLHUP].
    pub hang_up: bool,
}

/// What a SYN cookie handshake agreed to (see [`Connection::from_syn_cookie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieHandshake {
    pub iss: u32,
    pub irs: SeqNumber,
    pub mss: u16,
    pub peer_window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// The client's TSval when timestamps are in use.
    pub ts_recent: Option<u32>,
}

/// Pending acknowledgment work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckState {
    /// Nothing unacknowledged.
    Idle,
    /// Data arrived; the delayed-ACK timer runs.
    Delayed,
    /// Send an ACK at the next `poll_transmit`.
    Now,
}

/// Loss recovery in progress (RFC 6582 / RFC 6675).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recovery {
    /// RFC 6582 `recover`: SND.MAX when recovery started; an ACK beyond it ends recovery.
    recover: SeqNumber,
}

/// A TCP connection. See the module doc for the driving contract.
#[derive(Debug)]
pub struct Connection {
    state: State,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    cfg: TcpConfig,
    opts: SocketOptions,
    /// True for connections created from a listener's SYN (an RST in SYN-RECEIVED then only
    /// removes the half-open connection, RFC 9293 3.10.7.4).
    passive: bool,

    // Send sequence space (RFC 9293 3.3.1).
    iss: SeqNumber,
    /// Oldest unacknowledged sequence number.
    snd_una: SeqNumber,
    /// Next sequence number to send; below `snd_max` after an RTO (go-back-N).
    snd_nxt: SeqNumber,
    /// One past the highest sequence number ever sent.
    snd_max: SeqNumber,
    /// The peer's window in bytes (scaled), from the segment last used to update it.
    snd_wnd: usize,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// Largest window the peer ever offered (RFC 1122 4.2.3.4, RFC 5961 5.2).
    max_snd_wnd: usize,
    snd_wscale: u8,
    /// Bytes written by the application and not yet acknowledged. Byte 0 is at sequence
    /// number `send_buf_seq()`.
    send_buf: SendBuffer,
    /// The application shut down writes: a FIN follows the last byte of `send_buf`.
    fin_queued: bool,
    /// Sequence number of our FIN, fixed when `fin_queued` was set (no writes after it).
    fin_at: SeqNumber,
    /// End of the last sub-MSS segment sent (Minshall's Nagle variant, as Linux).
    snd_sml: SeqNumber,

    // Receive sequence space.
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Right edge of the window we last advertised; never moves left (RFC 9293 3.8.6.2.2).
    rcv_adv: SeqNumber,
    rcv_wscale: u8,
    recv_buf: RecvBuffer,
    /// Sequence number of the peer's FIN once seen (it may arrive before earlier data).
    peer_fin: Option<SeqNumber>,
    /// The peer's FIN was processed: no more data will arrive.
    fin_received: bool,
    /// RCV.NXT carried by our last ACK (RFC 7323 Last.ACK.sent).
    last_ack_sent: SeqNumber,
    /// Largest segment payload received (an estimate of the peer's MSS, for ACK pacing).
    rcv_mss: usize,

    // Negotiated options.
    /// Payload bytes per segment we send (options excluded).
    smss: usize,
    sack_ok: bool,
    ts_ok: bool,
    wscale_ok: bool,
    /// RFC 7323 TS.Recent.
    ts_recent: u32,
    ts_offset: u32,

    // Loss detection and congestion control.
    rtt: RttEstimator,
    cc: Box<dyn CongestionControl>,
    /// A segment being timed without timestamps: its end sequence number and send time.
    rtt_probe: Option<(SeqNumber, Instant)>,
    /// Consecutive RTO expirations without progress.
    rto_count: u32,
    /// When the oldest unacknowledged data was first sent or last made progress (for
    /// TCP_USER_TIMEOUT).
    progress_at: Instant,
    dupacks: u32,
    recovery: Option<Recovery>,
    /// RFC 6675 HighRxt: highest sequence number retransmitted in this recovery.
    high_rxt: SeqNumber,
    /// SND.MAX when the latest retransmission of this recovery went out: data SACKed above
    /// it was sent after every retransmission, so holes still open below HighRxt mean those
    /// retransmissions were lost (RFC 8985 6.2, Linux's RACK lost-retransmit detection).
    rxt_marker: Option<SeqNumber>,
    /// Our TSval at the last RTO, until an ACK echoes a later one: older echoes give no RTT
    /// sample.
    rto_tsval: Option<u32>,
    /// Retransmit the segment at SND.UNA at the next opportunity, whatever cwnd says.
    retransmit_head: bool,
    /// RFC 6582 step 2: `recover` of the last recovery, to avoid re-entering on stale dupacks.
    last_recover: Option<SeqNumber>,
    scoreboard: Scoreboard,
    /// The retransmission timer runs as the tail loss probe timeout (RFC 8985 7.2).
    loss_probe_armed: bool,
    /// A recovery probe went out since SND.UNA last advanced (one per stretch).
    recovery_probe_sent: bool,
    /// The PTO fired: send this loss probe at the next `poll_transmit`.
    loss_probe_due: Option<loss_probe::ProbeKind>,
    /// RFC 8985 TLP.end_seq: SND.NXT after the unanswered probe of this episode.
    tlp_high_seq: Option<SeqNumber>,
    /// That probe repeated the last segment (rather than sending new data).
    tlp_retransmitted: bool,
    /// SYN (or SYN-ACK) must be (re)sent.
    syn_due: bool,
    syn_retransmitted: bool,
    /// Bypass Nagle/SWS once (persist timer override, RFC 1122 4.2.3.4).
    force_send: bool,
    /// Send a zero-window or keepalive probe.
    probe_due: bool,
    persist_backoff: u32,
    keepalive_probes_sent: u32,
    last_received_at: Instant,
    last_sent_at: Instant,

    // Acknowledgments.
    ack_state: AckState,
    /// Payload bytes received since our last ACK.
    unacked_bytes: usize,
    quickack: u32,
    /// Last time we answered an out-of-window segment or sent a challenge ACK (rate limit).
    last_oow_ack: Option<Instant>,

    /// Segments to send before anything else (RSTs answering unacceptable segments).
    control: Vec<Segment>,
    timers: Timers,
    error: Option<ConnectionError>,
    /// RFC 1122 4.2.3.9 soft error: reported if the connection later times out.
    soft_error: Option<ConnectionError>,
    /// The handshake completed at some point.
    was_established: bool,
    /// The application closed the socket: no more reads (data arriving now is answered with
    /// RST as Linux does) and the FIN-WAIT-2 timeout applies.
    orphaned: bool,
    counters: ConnCounters,
}

/// Linux's `tcp_invalid_ratelimit`: at most one answer to out-of-window segments (and one
/// challenge ACK) per this interval.
const OOW_RATE_LIMIT: Duration = Duration::from_millis(500);
/// Option bytes taken by timestamps in every segment.
const TIMESTAMP_OPTION_LEN: usize = 12;

impl Connection {
    // The arguments are the connection's identity and clock inputs; bundling them in a struct
    // would only move the list elsewhere.
    #[allow(clippy::too_many_arguments)]
    fn new(
        cfg: &TcpConfig,
        opts: SocketOptions,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        ts_offset: u32,
        now: Instant,
        state: State,
    ) -> Connection {
        let iss = SeqNumber(iss);
        let smss = cfg.local_mss().min(DEFAULT_PEER_MSS);
        let cc = new_controller(opts.congestion, smss, now);
        Connection {
            state,
            local,
            remote,
            cfg: cfg.clone(),
            passive: state == State::SynReceived,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            snd_wscale: 0,
            send_buf: SendBuffer::with_capacity(opts.send_buffer),
            fin_queued: false,
            fin_at: iss,
            snd_sml: iss,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            // What we offer (RFC 7323 2.3: at most 14); reset to 0 if the peer does not scale.
            rcv_wscale: if cfg.window_scaling {
                cfg.window_scale.min(14)
            } else {
                0
            },
            recv_buf: RecvBuffer::with_capacity(opts.recv_buffer),
            peer_fin: None,
            fin_received: false,
            last_ack_sent: SeqNumber(0),
            rcv_mss: DEFAULT_PEER_MSS,
            smss,
            sack_ok: false,
            ts_ok: false,
            wscale_ok: false,
            ts_recent: 0,
            ts_offset,
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            cc,
            rtt_probe: None,
            rto_count: 0,
            progress_at: now,
            dupacks: 0,
            recovery: None,
            high_rxt: iss,
            rxt_marker: None,
            rto_tsval: None,
            retransmit_head: false,
            last_recover: None,
            scoreboard: Scoreboard::default(),
            loss_probe_armed: false,
            recovery_probe_sent: false,
            loss_probe_due: None,
            tlp_high_seq: None,
            tlp_retransmitted: false,
            syn_due: true,
            syn_retransmitted: false,
            force_send: false,
            probe_due: false,
            persist_backoff: 0,
            keepalive_probes_sent: 0,
            last_received_at: now,
            last_sent_at: now,
            ack_state: AckState::Idle,
            unacked_bytes: 0,
            quickack: cfg.quickack_segments,
            last_oow_ack: None,
            control: Vec::new(),
            timers: Timers::default(),
            error: None,
            soft_error: None,
            was_established: false,
            orphaned: false,
            counters: ConnCounters::default(),
            opts,
        }
    }

    /// Active open (RFC 9293 3.10.1): a connection in SYN-SENT whose SYN goes out at the next
    /// `poll_transmit`. `iss` and `ts_offset` come from the layer's RFC 6528 generator.
    pub fn connect(
        cfg: &TcpConfig,
        opts: SocketOptions,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        ts_offset: u32,
        now: Instant,
    ) -> Connection {
        Connection::new(
            cfg,
            opts,
            local,
            remote,
            iss,
            ts_offset,
            now,
            State::SynSent,
        )
    }

    /// Passive open: a listener received `syn` (RFC 9293 3.10.7.2). The connection starts in
    /// SYN-RECEIVED with the SYN-ACK due.
    #[allow(clippy::too_many_arguments)]
    pub fn accept_syn(
        cfg: &TcpConfig,
        opts: SocketOptions,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        ts_offset: u32,
        now: Instant,
        syn: &TcpHeader,
    ) -> Connection {
        let mut conn = Connection::new(
            cfg,
            opts,
            local,
            remote,
            iss,
            ts_offset,
            now,
            State::SynReceived,
        );
        conn.irs = syn.seq;
        conn.rcv_nxt = syn.seq + 1;
        conn.rcv_adv = conn.rcv_nxt;
        conn.last_ack_sent = conn.rcv_nxt;
        conn.apply_syn_options(&syn.options);
        // The SYN's window is never scaled (RFC 7323 2.2).
        conn.snd_wnd = usize::from(syn.window);
        conn.max_snd_wnd = conn.snd_wnd;
        conn.snd_wl1 = syn.seq;
        conn.last_received_at = now;
        conn
    }

    /// A connection rebuilt from a valid SYN cookie (RFC 4987): the final ACK `ack` of a
    /// handshake the listener answered without keeping state. `iss` is the cookie, `irs` the
    /// client's ISN; the options are what the cookie SYN-ACK agreed to.
    #[allow(clippy::too_many_arguments)]
    pub fn from_syn_cookie(
        cfg: &TcpConfig,
        opts: SocketOptions,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        ts_offset: u32,
        now: Instant,
        handshake: &CookieHandshake,
        ack: &TcpHeader,
    ) -> Connection {
        let mut conn = Connection::new(
            cfg,
            opts,
            local,
            remote,
            handshake.iss,
            ts_offset,
            now,
            State::SynReceived,
        );
        conn.irs = handshake.irs;
        conn.rcv_nxt = handshake.irs + 1;
        conn.rcv_adv = conn.rcv_nxt;
        conn.last_ack_sent = conn.rcv_nxt;
        let options = crate::wire::tcp::TcpOptions {
            mss: Some(handshake.mss),
            window_scale: handshake.peer_window_scale,
            sack_permitted: handshake.sack_permitted,
            timestamps: handshake
                .ts_recent
                .map(|tsval| crate::wire::tcp::Timestamps { tsval, tsecr: 0 }),
            ..Default::default()
        };
        conn.apply_syn_options(&options);
        conn.snd_una = conn.iss + 1;
        conn.snd_nxt = conn.snd_una;
        conn.snd_max = conn.snd_una;
        conn.high_rxt = conn.snd_una;
        conn.snd_wnd = usize::from(ack.window) << conn.snd_wscale;
        conn.max_snd_wnd = conn.snd_wnd;
        conn.snd_wl1 = ack.seq;
        conn.snd_wl2 = ack.ack;
        conn.last_received_at = now;
        conn.rtt_probe = None;
        conn.establish(now);
        conn
    }

    // ----- getters -----

    pub fn state(&self) -> State {
        self.state
    }
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }
    /// RCV.NXT: the next sequence number expected from the peer.
    pub fn rcv_nxt(&self) -> SeqNumber {
        self.rcv_nxt
    }
    pub fn is_passive(&self) -> bool {
        self.passive
    }
    /// The pending error, if any (SO_ERROR reads and clears it with [`Self::take_error`]).
    pub fn error(&self) -> Option<ConnectionError> {
        self.error
    }
    pub fn take_error(&mut self) -> Option<ConnectionError> {
        self.error.take()
    }
    pub fn options(&self) -> &SocketOptions {
        &self.opts
    }
    /// True once the connection holds no more state worth keeping: CLOSED with nothing left
    /// to send.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && self.control.is_empty()
    }
    /// The application has closed its handle.
    pub fn is_orphaned(&self) -> bool {
        self.orphaned
    }
    /// Bytes the application can read now.
    pub fn recv_queue(&self) -> usize {
        self.recv_buf.readable()
    }
    /// Bytes written but not yet acknowledged (SIOCOUTQ).
    pub fn send_queue(&self) -> usize {
        self.send_buf.len()
    }

    pub fn readiness(&self) -> Readiness {
        let closed = self.state == State::Closed;
        let write_shut = self.fin_queued || closed;
        Readiness {
            readable: self.recv_buf.readable() > 0
                || self.fin_received
                || self.error.is_some()
                || (closed && self.was_established),
            writable: self.state.can_send() && !self.fin_queued && self.send_buf.free() > 0
                || self.error.is_some()
                || (write_shut && self.was_established),
            connected: self.was_established,
            error: self.error.is_some(),
            read_closed: self.fin_received,
            hang_up: closed || (self.fin_received && self.fin_queued),
        }
    }

    /// A snapshot for `ustack ss` / TCP_INFO.
    pub fn info(&self) -> TcpInfo {
        TcpInfo {
            state: self.state,
            local: self.local,
            remote: self.remote,
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto(),
            cwnd: self.cc.window(),
            ssthresh: self.cc.ssthresh(),
            congestion: self.cc.name(),
            send_mss: self.smss,
            rcv_wscale: self.wscale_ok.then_some(self.rcv_wscale),
            snd_wscale: self.wscale_ok.then_some(self.snd_wscale),
            sack: self.sack_ok,
            timestamps: self.ts_ok,
            snd_wnd: self.snd_wnd,
            rcv_wnd: self.rcv_adv.since(self.rcv_nxt),
            unacked: self.snd_max.since(self.snd_una),
            send_queue: self.send_buf.len(),
            recv_queue: self.recv_buf.readable(),
            counters: self.counters,
        }
    }

    /// The next timer deadline. Pending output is not a deadline: see the driving contract.
    pub fn poll_at(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    // ----- application commands -----

    /// Queues bytes for sending; returns how many were accepted (0 when the buffer is full).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, SendError> {
        if let Some(error) = self.error {
            return Err(SendError::Failed(error));
        }
        match self.state {
            State::SynSent | State::SynReceived => Err(SendError::NotYetConnected),
            State::Established | State::CloseWait if !self.fin_queued => {
                Ok(self.send_buf.write(data))
            }
            _ => Err(SendError::Shutdown),
        }
    }

    /// Reads received bytes in order. `Ok(0)` with a non-empty `buf` means end of stream.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        if self.recv_buf.readable() > 0 && !buf.is_empty() {
            let n = self.recv_buf.read(buf);
            self.after_app_read();
            return Ok(n);
        }
        if self.fin_received {
            return Ok(0);
        }
        if let Some(error) = self.error {
            return Err(RecvError::Failed(error));
        }
        match self.state {
            State::Closed if self.was_established => Ok(0),
            State::Closed => Err(RecvError::NotConnected),
            _ => Err(RecvError::WouldBlock),
        }
    }

    /// Like `recv` without consuming (MSG_PEEK): up to `max` bytes as two slices.
    pub fn peek(&self, max: usize) -> (&[u8], &[u8]) {
        self.recv_buf.peek(max)
    }

    /// Drops `n` readable bytes (after a peek).
    pub fn consume(&mut self, n: usize) {
        self.recv_buf.consume(n.min(self.recv_buf.readable()));
        self.after_app_read();
    }

    /// shutdown(SHUT_WR): a FIN follows the queued data (RFC 9293 3.10.4 CLOSE).
    pub fn shutdown_write(&mut self) {
        match self.state {
            // Linux tcp_close_state: SYN-SENT goes straight to CLOSED.
            State::SynSent => self.enter_closed(),
            State::SynReceived | State::Established => {
                self.queue_fin();
                self.set_state(State::FinWait1);
            }
            State::CloseWait => {
                self.queue_fin();
                self.set_state(State::LastAck);
            }
            _ => {}
        }
    }

    /// close(): Linux's tcp_close. Unread data (or SO_LINGER 0) aborts with RST; otherwise a
    /// graceful FIN, and the connection lives on as an orphan until it finishes.
    pub fn close(&mut self) {
        self.orphaned = true;
        if self.recv_buf.readable() > 0 || self.opts.linger_zero {
            self.abort();
            return;
        }
        self.shutdown_write();
        if self.state == State::FinWait2 {
            self.timers
                .set(Timer::Close, self.last_received_at + self.cfg.fin_timeout);
        }
    }

    /// Drops the connection, sending RST if the peer knows about it (RFC 9293 3.10.5 ABORT).
    pub fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            let rst = self.make_segment(
                self.snd_nxt.max(self.snd_una),
                TcpFlags::RST | TcpFlags::ACK,
            );
            self.control.push(rst);
        }
        self.enter_closed();
    }

    /// Applies new socket options. Buffer sizes never drop stored bytes.
    pub fn set_options(&mut self, opts: SocketOptions, now: Instant) {
        self.send_buf.set_capacity(opts.send_buffer);
        self.recv_buf.set_capacity(opts.recv_buffer);
        let keepalive_changed = opts.keepalive != self.opts.keepalive
            || opts.keepalive_idle != self.opts.keepalive_idle;
        self.opts = opts;
        if keepalive_changed {
            self.arm_keepalive(now);
        }
    }

    // ----- shared helpers -----

    /// Sequence number of `send_buf`'s first byte: after the SYN until the SYN is acked.
    fn send_buf_seq(&self) -> SeqNumber {
        if self.snd_una == self.iss {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    fn queue_fin(&mut self) {
        if !self.fin_queued {
            self.fin_queued = true;
            self.fin_at = self.send_buf_seq() + self.send_buf.len();
        }
    }

    /// Sequence number of our FIN, if the application shut down writes.
    fn fin_seq(&self) -> Option<SeqNumber> {
        self.fin_queued.then_some(self.fin_at)
    }

    fn our_fin_acked(&self) -> bool {
        self.fin_seq().is_some_and(|fin| self.snd_una > fin)
    }

    fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// Every state change goes through here, so it is logged with the 4-tuple first.
    fn set_state(&mut self, state: State) {
        if state != self.state {
            tracing::debug!(
                "{} {}: {} -> {}{}",
                self.local,
                self.remote,
                self.state,
                state,
                self.error.map_or(String::new(), |e| format!(" ({e:?})")),
            );
            self.state = state;
        }
    }

    fn enter_closed(&mut self) {
        self.set_state(State::Closed);
        self.timers.stop_all();
        self.ack_state = AckState::Idle;
        self.syn_due = false;
        self.probe_due = false;
    }

    fn fail(&mut self, error: ConnectionError) {
        self.error = Some(error);
        self.enter_closed();
    }

    /// A segment with our current ACK fields (no options besides timestamps, which output
    /// fills in).
    fn make_segment(&self, seq: SeqNumber, flags: TcpFlags) -> Segment {
        Segment {
            header: TcpHeader {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq,
                ack: if flags.ack() {
                    self.rcv_nxt
                } else {
                    SeqNumber(0)
                },
                flags,
                window: 0,
                urgent: 0,
                options: Default::default(),
            },
            payload: Vec::new(),
            segment_size: None,
        }
    }

    fn after_app_read(&mut self) {
        if self.state.can_receive() && self.window_update_worthwhile() {
            self.ack_state = AckState::Now;
        }
    }

    fn arm_keepalive(&mut self, now: Instant) {
        if self.opts.keepalive && self.state.is_synchronized() && self.state != State::TimeWait {
            self.timers
                .set(Timer::Keepalive, now + self.opts.keepalive_idle);
        } else {
            self.timers.stop(Timer::Keepalive);
        }
    }
}
