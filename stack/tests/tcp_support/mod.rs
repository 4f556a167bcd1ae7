//! Helpers for scripted packet-level TCP tests: a connection under test, segments built by the
//! test as "the peer", and time that moves only when the test moves it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ustack::tcp::config::{SocketOptions, TcpConfig};
use ustack::tcp::connection::{Connection, Segment, State};
use ustack::tcp::seq::SeqNumber;
use ustack::time::Instant;
use ustack::wire::tcp::{SackBlocks, TcpFlags, TcpHeader, TcpOptions, Timestamps};

pub const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
pub const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
/// Our ISS in every script.
pub const ISS: u32 = 1000;
/// The scripted peer's ISS.
pub const PEER_ISS: u32 = 5000;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn config() -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(2),
        ..TcpConfig::default()
    }
}

/// A segment from the peer (REMOTE -> LOCAL), built field by field.
#[derive(Clone)]
pub struct Seg {
    pub header: TcpHeader,
    pub payload: Vec<u8>,
}

pub fn seg(flags: TcpFlags) -> Seg {
    Seg {
        header: TcpHeader {
            src_port: REMOTE.port(),
            dst_port: LOCAL.port(),
            flags,
            window: 65535,
            ..TcpHeader::default()
        },
        payload: Vec::new(),
    }
}

impl Seg {
    pub fn seq(mut self, seq: u32) -> Self {
        self.header.seq = SeqNumber(seq);
        self
    }
    pub fn ack(mut self, ack: u32) -> Self {
        self.header.ack = SeqNumber(ack);
        self.header.flags.insert(TcpFlags::ACK);
        self
    }
    pub fn win(mut self, window: u16) -> Self {
        self.header.window = window;
        self
    }
    pub fn data(mut self, data: &[u8]) -> Self {
        self.payload = data.to_vec();
        self
    }
    pub fn ts(mut self, tsval: u32, tsecr: u32) -> Self {
        self.header.options.timestamps = Some(Timestamps { tsval, tsecr });
        self
    }
    pub fn sack(mut self, blocks: &[(u32, u32)]) -> Self {
        let mut sack = SackBlocks::new();
        for &(l, r) in blocks {
            sack.push(SeqNumber(l), SeqNumber(r));
        }
        self.header.options.sack = sack;
        self
    }
    pub fn options(mut self, options: TcpOptions) -> Self {
        self.header.options = options;
        self
    }
}

/// SYN options of a Linux peer: MSS 1460, SACK, TS, wscale 7.
pub fn linux_syn_options(tsval: u32, tsecr: u32) -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some(Timestamps { tsval, tsecr }),
        sack: SackBlocks::new(),
    }
}

/// SYN options of a minimal peer: MSS only.
pub fn plain_syn_options(mss: u16) -> TcpOptions {
    TcpOptions {
        mss: Some(mss),
        ..TcpOptions::default()
    }
}

pub struct Harness {
    pub conn: Connection,
    pub now: Instant,
}

impl Harness {
    pub fn client_with(cfg: &TcpConfig, opts: SocketOptions) -> Harness {
        let now = Instant::ZERO;
        Harness {
            conn: Connection::connect(cfg, opts, LOCAL, REMOTE, ISS, 0, now),
            now,
        }
    }

    pub fn client() -> Harness {
        let cfg = config();
        let opts = cfg.default_socket_options();
        Harness::client_with(&cfg, opts)
    }

    /// A passive connection created from `syn`.
    pub fn server_with(cfg: &TcpConfig, opts: SocketOptions, syn: Seg) -> Harness {
        let now = Instant::ZERO;
        Harness {
            conn: Connection::accept_syn(cfg, opts, LOCAL, REMOTE, ISS, 0, now, &syn.header),
            now,
        }
    }

    /// Feeds a segment from the peer.
    pub fn input(&mut self, s: Seg) {
        self.conn.handle_segment(self.now, &s.header, &s.payload);
    }

    /// The next segment the connection sends.
    pub fn output(&mut self) -> Option<Segment> {
        self.conn.poll_transmit(self.now)
    }

    /// The next segment, which must exist.
    #[track_caller]
    pub fn expect(&mut self) -> Segment {
        match self.output() {
            Some(s) => s,
            None => panic!(
                "expected a segment at {:?} in {}",
                self.now,
                self.conn.state()
            ),
        }
    }

    #[track_caller]
    pub fn expect_nothing(&mut self) {
        if let Some(s) = self.output() {
            panic!("unexpected segment at {:?}: {:?}", self.now, s);
        }
    }

    /// Drains everything pending.
    pub fn drain(&mut self) -> Vec<Segment> {
        std::iter::from_fn(|| self.output()).collect()
    }

    /// Moves time forward by `d`, running timers that fire on the way (in order).
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.conn.poll_at() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.conn.handle_timeout(self.now);
            if self.conn.poll_at() == Some(at) {
                break;
            }
        }
        self.now = end;
    }

    /// Moves time to exactly when the next timer fires and runs it; returns the elapsed time.
    pub fn fire_next_timer(&mut self) -> Duration {
        let at = self.conn.poll_at().expect("a timer is running");
        let elapsed = at - self.now;
        self.now = at;
        self.conn.handle_timeout(at);
        elapsed
    }

    /// Active open against a Linux-like peer; returns with the connection ESTABLISHED and
    /// our handshake ACK consumed. Peer's window 65535 << 7.
    pub fn established_client() -> Harness {
        let mut h = Harness::client();
        let syn = h.expect();
        assert!(syn.header.flags.syn());
        h.input(
            seg(TcpFlags::SYN)
                .seq(PEER_ISS)
                .ack(ISS + 1)
                .win(65535)
                .options(linux_syn_options(
                    100,
                    syn.header.options.timestamps.map_or(0, |t| t.tsval),
                )),
        );
        let ack = h.expect();
        assert_eq!(ack.header.flags, TcpFlags::ACK);
        assert_eq!(h.conn.state(), State::Established);
        h
    }

    /// Active open against a peer with MSS `mss` and no other options (no SACK/TS/WS).
    pub fn established_plain_client(mss: u16, window: u16) -> Harness {
        let mut h = Harness::client();
        h.expect();
        h.input(
            seg(TcpFlags::SYN)
                .seq(PEER_ISS)
                .ack(ISS + 1)
                .win(window)
                .options(plain_syn_options(mss)),
        );
        h.expect();
        assert_eq!(h.conn.state(), State::Established);
        h
    }
}

/// Sequence number of a segment as u32.
pub fn seq_of(s: &Segment) -> u32 {
    s.header.seq.0
}

pub fn ack_of(s: &Segment) -> u32 {
    s.header.ack.0
}
