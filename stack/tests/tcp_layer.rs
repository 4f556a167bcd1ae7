//! TcpLayer: demultiplexing, listeners (backlog, accept queue, overflow), connect with
//! ephemeral ports, RST for segments to no socket (RFC 9293 3.10.7.1), ICMP routing,
//! TIME-WAIT handling. Two layers talk over a lossless in-memory wire.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ustack::tcp::config::TcpConfig;
use ustack::tcp::connection::{ConnectionError, IcmpError, State};
use ustack::tcp::layer::{ConnHandle, ConnectError, ListenError, TcpLayer};
use ustack::tcp::seq::SeqNumber;
use ustack::time::Instant;
use ustack::wire::tcp::{TcpFlags, TcpHeader};

const A: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

fn config(secret: u8) -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(1),
        secret: [secret; 16],
        ..TcpConfig::default()
    }
}

struct Pair {
    a: TcpLayer,
    b: TcpLayer,
    now: Instant,
    /// Every segment that crossed the wire: (src, dst, header, payload length).
    log: Vec<(Ipv4Addr, Ipv4Addr, TcpHeader, usize)>,
}

impl Pair {
    fn new() -> Pair {
        let mut a = TcpLayer::new(config(1));
        a.set_source_address(A);
        let mut b = TcpLayer::new(config(2));
        b.set_source_address(B);
        Pair {
            a,
            b,
            now: Instant::from_millis(1),
            log: Vec::new(),
        }
    }

    /// Delivers segments both ways until both layers are quiet.
    fn exchange(&mut self) {
        loop {
            let mut to_b = Vec::new();
            let mut to_a = Vec::new();
            self.a.poll_transmit(self.now, &mut |s, d, bytes| {
                to_b.push((s, d, bytes.to_vec()))
            });
            self.b.poll_transmit(self.now, &mut |s, d, bytes| {
                to_a.push((s, d, bytes.to_vec()))
            });
            if to_a.is_empty() && to_b.is_empty() {
                return;
            }
            for (s, d, bytes) in to_b {
                self.record(s, d, &bytes);
                self.b.receive(self.now, s, d, &bytes);
            }
            for (s, d, bytes) in to_a {
                self.record(s, d, &bytes);
                self.a.receive(self.now, s, d, &bytes);
            }
        }
    }

    fn record(&mut self, s: Ipv4Addr, d: Ipv4Addr, bytes: &[u8]) {
        let (header, payload) = TcpHeader::parse(bytes, s, d).expect("layer emitted a bad segment");
        self.log.push((s, d, header, payload.len()));
    }

    /// Advances time, running timers, exchanging after each.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.a.poll_at(), self.b.poll_at()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.exchange();
                }
                _ => break,
            }
        }
        self.now = end;
    }
}

fn server_addr() -> SocketAddrV4 {
    SocketAddrV4::new(B, 7)
}

fn connect(p: &mut Pair) -> ConnHandle {
    let opts = p.a.config().default_socket_options();
    p.a.connect(None, server_addr(), opts, p.now).unwrap()
}

#[test]
fn listen_accept_echo_and_close() {
    let mut p = Pair::new();
    let opts = p.b.config().default_socket_options();
    let listener =
        p.b.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 8, opts)
            .unwrap();
    let client = connect(&mut p);
    assert_eq!(p.a.state(client), Some(State::SynSent));
    assert!(!p.a.readiness(client).unwrap().writable);
    p.exchange();
    assert_eq!(p.a.state(client), Some(State::Established));
    assert!(p.a.readiness(client).unwrap().writable);
    assert_eq!(p.b.accept_queue_len(listener), 1);
    let (server, peer) = p.b.accept(listener).unwrap();
    assert_eq!(*peer.ip(), A);
    assert!(
        (32768..=60999).contains(&peer.port()),
        "ephemeral port {}",
        peer.port()
    );
    assert!(p.b.accept(listener).is_none());

    p.a.send(client, b"ping").unwrap();
    p.exchange();
    let mut buf = [0u8; 16];
    assert_eq!(p.b.recv(server, &mut buf), Ok(4));
    p.b.send(server, &buf[..4]).unwrap();
    p.exchange();
    assert_eq!(p.a.recv(client, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"ping");

    p.a.close(client).unwrap();
    p.exchange();
    assert_eq!(p.b.recv(server, &mut buf), Ok(0));
    p.b.close(server).unwrap();
    p.exchange();
    // The server (passive closer) is gone; the client waits in TIME-WAIT, then is gone too.
    assert_eq!(p.b.connection_count(), 0);
    assert_eq!(p.a.connection_count(), 1);
    assert_eq!(p.a.all_info()[0].state, State::TimeWait);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.a.connection_count(), 0);
}

#[test]
fn syn_to_closed_port_gets_rst_ack_and_connect_is_refused() {
    let mut p = Pair::new();
    let client = connect(&mut p);
    p.exchange();
    assert_eq!(p.a.state(client), Some(State::Closed));
    assert_eq!(p.a.take_error(client), Some(ConnectionError::Refused));
    let (_, _, syn, _) = p.log[0];
    let (_, _, rst, _) = p.log[1];
    // RFC 9293 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    assert_eq!(rst.flags, TcpFlags::RST | TcpFlags::ACK);
    assert_eq!(rst.seq, SeqNumber(0));
    assert_eq!(rst.ack, syn.seq + 1);
    assert_eq!(p.b.stats().resets_sent, 1);
}

#[test]
fn ack_to_no_socket_gets_rst_with_its_ack_as_seq_and_rst_gets_nothing() {
    let mut layer = TcpLayer::new(config(3));
    let header = TcpHeader {
        src_port: 1234,
        dst_port: 80,
        seq: SeqNumber(10),
        ack: SeqNumber(777),
        flags: TcpFlags::ACK,
        window: 100,
        ..TcpHeader::default()
    };
    let now = Instant::ZERO;
    layer.receive(now, A, B, &header.to_bytes(b"data", A, B));
    let mut out = Vec::new();
    layer.poll_transmit(now, &mut |s, d, b| out.push((s, d, b.to_vec())));
    assert_eq!(out.len(), 1);
    let (s, d, bytes) = &out[0];
    assert_eq!((*s, *d), (B, A));
    let (rst, payload) = TcpHeader::parse(bytes, B, A).unwrap();
    assert_eq!(rst.flags, TcpFlags::RST);
    assert_eq!(rst.seq, SeqNumber(777));
    assert_eq!((rst.src_port, rst.dst_port), (80, 1234));
    assert!(payload.is_empty());

    let mut reset = header;
    reset.flags = TcpFlags::RST;
    layer.receive(now, A, B, &reset.to_bytes(&[], A, B));
    // A corrupted segment is dropped and counted, not answered.
    let mut corrupted = header.to_bytes(b"data", A, B);
    corrupted[20] ^= 1;
    layer.receive(now, A, B, &corrupted);
    layer.receive(now, A, B, &[0u8; 7]);
    out.clear();
    layer.poll_transmit(now, &mut |s, d, b| out.push((s, d, b.to_vec())));
    assert!(out.is_empty());
    assert_eq!(layer.stats().bad_checksum, 1);
    assert_eq!(layer.stats().malformed, 1);
}

fn no_cookie_pair(backlog: usize) -> (Pair, ustack::tcp::layer::ListenerHandle) {
    let mut p = Pair::new();
    let mut cfg = config(2);
    cfg.syn_cookies = false;
    p.b = TcpLayer::new(cfg);
    p.b.set_source_address(B);
    let opts = p.b.config().default_socket_options();
    let listener = p.b.listen(server_addr(), backlog, opts).unwrap();
    (p, listener)
}

#[test]
fn without_cookies_syns_beyond_the_backlog_are_dropped_and_retried() {
    let (mut p, listener) = no_cookie_pair(2);
    let clients: Vec<_> = (0..4).map(|_| connect(&mut p)).collect();
    p.exchange();
    assert_eq!(p.b.accept_queue_len(listener), 2);
    assert_eq!(p.b.stats().listen_drops, 2);
    let waiting = clients
        .iter()
        .filter(|&&c| p.a.state(c) == Some(State::SynSent))
        .count();
    assert_eq!(waiting, 2);
    // A SYN arriving while the accept queue is full is dropped too.
    let late = connect(&mut p);
    p.exchange();
    assert_eq!(p.a.state(late), Some(State::SynSent));
    // Accepting makes room: the SYN retransmissions (after 1 s) get through.
    p.b.accept(listener).unwrap();
    p.b.accept(listener).unwrap();
    p.advance(Duration::from_millis(1000));
    assert_eq!(p.b.accept_queue_len(listener), 2);
    for c in clients {
        assert_eq!(p.a.state(c), Some(State::Established));
    }
}

#[test]
fn handshake_ack_finding_the_accept_queue_full_is_dropped_and_retried() {
    let (mut p, listener) = no_cookie_pair(2);
    let first = connect(&mut p);
    p.exchange();
    assert_eq!(p.a.state(first), Some(State::Established));
    // Two more SYNs fit the SYN queue, but only one fits the accept queue.
    connect(&mut p);
    connect(&mut p);
    p.exchange();
    assert_eq!(p.b.accept_queue_len(listener), 2);
    assert!(p.b.stats().listen_overflows >= 1);
    let half_open =
        p.b.all_info()
            .iter()
            .filter(|i| i.state == State::SynReceived)
            .count();
    assert_eq!(half_open, 1);
    // Once the application accepts, the retransmitted SYN-ACK completes the last one.
    p.b.accept(listener).unwrap();
    p.advance(Duration::from_millis(1000));
    assert_eq!(p.b.accept_queue_len(listener), 2);
}

#[test]
fn backlog_is_clamped_to_somaxconn_and_listeners_conflict() {
    let mut cfg = config(4);
    cfg.somaxconn = 1;
    let mut layer = TcpLayer::new(cfg);
    let opts = layer.config().default_socket_options();
    layer.listen(server_addr(), 1000, opts.clone()).unwrap();
    assert_eq!(
        layer.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 1, opts.clone()),
        Err(ListenError::AddressInUse)
    );
    assert!(layer.listen(SocketAddrV4::new(B, 8), 1, opts).is_ok());
}

#[test]
fn demux_keeps_parallel_connections_apart() {
    let mut p = Pair::new();
    let opts = p.b.config().default_socket_options();
    let listener = p.b.listen(server_addr(), 16, opts).unwrap();
    let clients: Vec<_> = (0..10).map(|_| connect(&mut p)).collect();
    p.exchange();
    let mut servers = Vec::new();
    while let Some((h, peer)) = p.b.accept(listener) {
        servers.push((h, peer));
    }
    assert_eq!(servers.len(), 10);
    let ports: std::collections::HashSet<u16> = servers.iter().map(|(_, a)| a.port()).collect();
    assert_eq!(ports.len(), 10);
    for (i, &c) in clients.iter().enumerate() {
        p.a.send(c, format!("client {i}").as_bytes()).unwrap();
    }
    p.exchange();
    for (h, peer) in servers {
        let mut buf = [0u8; 32];
        let n = p.b.recv(h, &mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let i: usize = text.trim_start_matches("client ").parse().unwrap();
        let client_local = p.a.info(clients[i]).unwrap().local;
        assert_eq!(
            client_local, peer,
            "data of client {i} arrived on the wrong connection"
        );
    }
}

#[test]
fn connect_with_explicit_port_conflicts_on_same_tuple() {
    let mut p = Pair::new();
    let opts = p.a.config().default_socket_options();
    let local = SocketAddrV4::new(A, 5555);
    p.a.connect(Some(local), server_addr(), opts.clone(), p.now)
        .unwrap();
    assert_eq!(
        p.a.connect(Some(local), server_addr(), opts.clone(), p.now),
        Err(ConnectError::AddressInUse)
    );
    assert_eq!(
        p.a.connect(None, SocketAddrV4::new(B, 0), opts.clone(), p.now),
        Err(ConnectError::InvalidRemote)
    );
    let mut fresh = TcpLayer::new(config(9));
    assert_eq!(
        fresh.connect(None, server_addr(), opts, p.now),
        Err(ConnectError::NoSourceAddress)
    );
}

#[test]
fn icmp_port_unreachable_is_routed_to_the_connecting_socket() {
    let mut p = Pair::new();
    let client = connect(&mut p);
    let mut syn = Vec::new();
    p.a.poll_transmit(p.now, &mut |_, _, b| syn = b.to_vec());
    p.a.icmp_error(
        p.now,
        A,
        B,
        &syn[..8],
        IcmpError::Unreachable {
            code: 3,
            next_hop_mtu: 0,
        },
    );
    assert_eq!(p.a.state(client), Some(State::Closed));
    assert_eq!(p.a.take_error(client), Some(ConnectionError::Refused));
}

#[test]
fn closing_a_listener_resets_unaccepted_connections() {
    let mut p = Pair::new();
    let opts = p.b.config().default_socket_options();
    let listener = p.b.listen(server_addr(), 4, opts).unwrap();
    let client = connect(&mut p);
    p.exchange();
    assert_eq!(p.a.state(client), Some(State::Established));
    p.b.close_listener(listener);
    p.exchange();
    assert_eq!(p.a.state(client), Some(State::Closed));
    assert_eq!(p.a.take_error(client), Some(ConnectionError::Reset));
    assert_eq!(p.b.connection_count(), 0);
}

#[test]
fn new_syn_reuses_a_time_wait_tuple() {
    let mut p = Pair::new();
    let opts = p.b.config().default_socket_options();
    // The server closes first, so the server side holds TIME-WAIT.
    let listener = p.b.listen(server_addr(), 4, opts).unwrap();
    let local = SocketAddrV4::new(A, 40000);
    let aopts = p.a.config().default_socket_options();
    let client =
        p.a.connect(Some(local), server_addr(), aopts.clone(), p.now)
            .unwrap();
    p.exchange();
    let (server, _) = p.b.accept(listener).unwrap();
    p.b.close(server).unwrap();
    p.exchange();
    p.a.close(client).unwrap();
    p.exchange();
    assert_eq!(p.b.all_info()[0].state, State::TimeWait);
    assert_eq!(p.a.connection_count(), 0);
    // Same 4-tuple again, later (higher ISN): the TIME-WAIT entry gives way.
    p.now += Duration::from_millis(100);
    let again =
        p.a.connect(Some(local), server_addr(), aopts, p.now)
            .unwrap();
    p.exchange();
    assert_eq!(p.a.state(again), Some(State::Established));
    assert!(p.b.accept(listener).is_some());
}

/// A listener whose SYN queue holds `max_syn_backlog` (cookies on) and whose accept queue 16.
fn cookie_pair(max_syn_backlog: usize) -> (Pair, ustack::tcp::layer::ListenerHandle) {
    let mut p = Pair::new();
    let mut cfg = config(2);
    cfg.max_syn_backlog = max_syn_backlog;
    p.b = TcpLayer::new(cfg);
    p.b.set_source_address(B);
    let opts = p.b.config().default_socket_options();
    let listener = p.b.listen(server_addr(), 16, opts).unwrap();
    (p, listener)
}

#[test]
fn syn_queue_overflow_is_answered_with_cookies_that_open_working_connections() {
    let (mut p, listener) = cookie_pair(1);
    // All SYNs reach the server before any handshake completes.
    let clients: Vec<_> = (0..4).map(|_| connect(&mut p)).collect();
    p.exchange();
    assert_eq!(p.b.stats().syncookies_sent, 3, "{:?}", p.b.stats());
    assert_eq!(p.b.stats().syncookies_received, 3);
    let mut servers = Vec::new();
    while let Some((h, _)) = p.b.accept(listener) {
        servers.push(h);
    }
    assert_eq!(servers.len(), 4);
    for &c in &clients {
        assert_eq!(p.a.state(c), Some(State::Established));
        p.a.send(c, &[42u8; 5000]).unwrap();
    }
    p.exchange();
    for &s in &servers {
        let info = p.b.info(s).unwrap();
        // Timestamps carried window scale and SACK through the cookie.
        assert_eq!(info.snd_wscale, Some(7));
        assert!(info.sack && info.timestamps);
        assert_eq!(info.send_mss, 1460 - 12);
        let mut buf = [0u8; 8192];
        assert_eq!(p.b.recv(s, &mut buf), Ok(5000));
    }
}

#[test]
fn cookie_without_timestamps_loses_window_scale_and_sack() {
    let (mut p, listener) = cookie_pair(1);
    let mut cfg = config(1);
    cfg.timestamps = false;
    p.a = TcpLayer::new(cfg);
    p.a.set_source_address(A);
    connect(&mut p);
    connect(&mut p);
    p.exchange();
    assert_eq!(p.b.stats().syncookies_received, 1);
    // The accept queue holds them in the order their handshakes completed; the one rebuilt
    // from the cookie is the one without window scaling.
    let accepted: Vec<_> = (0..2).map(|_| p.b.accept(listener).unwrap().0).collect();
    let infos: Vec<_> = accepted.iter().map(|&h| p.b.info(h).unwrap()).collect();
    let from_cookie: Vec<_> = infos.iter().filter(|i| i.snd_wscale.is_none()).collect();
    assert_eq!(from_cookie.len(), 1, "{infos:?}");
    let info = from_cookie[0];
    assert!(!info.sack && !info.timestamps);
    assert_eq!(info.send_mss, 1460);
    let normal = infos.iter().find(|i| i.snd_wscale.is_some()).unwrap();
    assert!(normal.sack, "the SYN-RECEIVED one negotiated SACK");
}

#[test]
fn forged_or_stale_cookie_gets_rst_and_no_connection() {
    let (mut p, listener) = cookie_pair(0);
    // Make the listener send a cookie, then answer with a wrong one.
    let syn = TcpHeader {
        src_port: 1111,
        dst_port: 7,
        seq: SeqNumber(100),
        flags: TcpFlags::SYN,
        window: 1000,
        ..TcpHeader::default()
    };
    p.b.receive(p.now, A, B, &syn.to_bytes(&[], A, B));
    let mut out = Vec::new();
    p.b.poll_transmit(p.now, &mut |s, d, b| out.push((s, d, b.to_vec())));
    let (syn_ack, _) = TcpHeader::parse(&out[0].2, B, A).unwrap();
    assert_eq!(syn_ack.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(p.b.connection_count(), 0, "a cookie keeps no state");
    let mut ack = TcpHeader {
        src_port: 1111,
        dst_port: 7,
        seq: SeqNumber(101),
        ack: syn_ack.seq + 2,
        flags: TcpFlags::ACK,
        window: 1000,
        ..TcpHeader::default()
    };
    p.b.receive(p.now, A, B, &ack.to_bytes(&[], A, B));
    assert_eq!(p.b.stats().syncookies_failed, 1);
    assert_eq!(p.b.connection_count(), 0);
    out.clear();
    p.b.poll_transmit(p.now, &mut |s, d, b| out.push((s, d, b.to_vec())));
    let (rst, _) = TcpHeader::parse(&out[0].2, B, A).unwrap();
    assert_eq!(rst.flags, TcpFlags::RST);
    // The right cookie, but three minutes late.
    ack.ack = syn_ack.seq + 1;
    p.now += Duration::from_secs(180);
    p.b.receive(p.now, A, B, &ack.to_bytes(&[], A, B));
    assert_eq!(p.b.connection_count(), 0);
    // In time, it opens the connection.
    p.now = Instant::from_millis(1) + Duration::from_secs(1);
    p.b.receive(p.now, A, B, &ack.to_bytes(&[], A, B));
    assert_eq!(p.b.accept_queue_len(listener), 1);
}

#[test]
fn segments_for_a_closed_but_unreleased_connection_get_rst() {
    let mut p = Pair::new();
    let opts = p.b.config().default_socket_options();
    let listener = p.b.listen(server_addr(), 4, opts).unwrap();
    let client = connect(&mut p);
    p.exchange();
    let (server, peer) = p.b.accept(listener).unwrap();
    // The client aborts: the server's connection is reset but its handle is still held.
    p.a.abort(client).unwrap();
    p.exchange();
    assert_eq!(p.b.state(server), Some(State::Closed));
    // A stray segment on that 4-tuple is answered as for no socket.
    let stray = TcpHeader {
        src_port: peer.port(),
        dst_port: 7,
        seq: SeqNumber(1),
        ack: SeqNumber(99),
        flags: TcpFlags::ACK,
        window: 100,
        ..TcpHeader::default()
    };
    p.b.receive(p.now, A, B, &stray.to_bytes(b"x", A, B));
    let mut out = Vec::new();
    p.b.poll_transmit(p.now, &mut |s, d, b| out.push((s, d, b.to_vec())));
    assert_eq!(out.len(), 1);
    let (rst, _) = TcpHeader::parse(&out[0].2, B, A).unwrap();
    assert_eq!((rst.flags, rst.seq), (TcpFlags::RST, SeqNumber(99)));
}

#[test]
fn readiness_changes_are_reported_once_each() {
    use ustack::tcp::layer::TcpEvent;
    let mut p = Pair::new();
    let opts = p.b.config().default_socket_options();
    let listener = p.b.listen(server_addr(), 4, opts).unwrap();
    let client = connect(&mut p);
    let mut events = Vec::new();
    p.a.drain_events(&mut events);
    assert!(events.is_empty(), "nothing changed yet: {events:?}");
    p.exchange();
    p.a.drain_events(&mut events);
    let [TcpEvent::Connection(h, ready)] = events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(h, client);
    assert!(ready.connected && ready.writable && !ready.readable);
    events.clear();
    p.b.drain_events(&mut events);
    assert_eq!(events, vec![TcpEvent::Acceptable(listener)]);
    events.clear();
    let (server, _) = p.b.accept(listener).unwrap();
    p.a.send(client, b"data").unwrap();
    p.exchange();
    p.b.drain_events(&mut events);
    assert!(
        matches!(events[..], [TcpEvent::Connection(h, r)] if h == server && r.readable),
        "{events:?}"
    );
    events.clear();
    // Reading it all makes the connection not readable; the reader saw that itself, so no
    // event (edge-triggered, like epoll with EPOLLET: read until WouldBlock, then wait).
    let mut buf = [0u8; 8];
    p.b.recv(server, &mut buf).unwrap();
    assert!(p.b.recv(server, &mut buf).is_err());
    p.b.drain_events(&mut events);
    assert!(events.is_empty(), "{events:?}");
    // New data after that is news, even before the reader's last call was followed by a
    // drain: the readable edge is reported once.
    p.a.send(client, b"more").unwrap();
    p.exchange();
    p.b.drain_events(&mut events);
    assert!(
        matches!(events[..], [TcpEvent::Connection(h, r)] if h == server && r.readable),
        "{events:?}"
    );
    events.clear();
    p.b.drain_events(&mut events);
    assert!(events.is_empty());
}

/// Idle connections cost nothing per turn: with 2,000 established connections, a segment
/// for one of them makes `poll_transmit` look at that one only, and a timer due on one
/// connection runs that one only; `poll_at` is the earliest deadline throughout.
#[test]
fn work_per_turn_follows_activity_not_connection_count() {
    let mut p = Pair::new();
    let listener =
        p.b.listen(server_addr(), 4096, p.b.config().default_socket_options())
            .unwrap();
    let clients: Vec<ConnHandle> = (0..2000).map(|_| connect(&mut p)).collect();
    p.exchange();
    let servers: Vec<ConnHandle> = (0..2000).map(|_| p.b.accept(listener).unwrap().0).collect();
    // Let delayed ACKs and the like settle.
    p.advance(Duration::from_secs(1));
    let polled_before = p.b.stats().connections_polled;
    p.a.send(clients[1234], b"ping").unwrap();
    p.exchange();
    // The server looked at the one connection that got data (and answered with an ACK).
    let polled = p.b.stats().connections_polled - polled_before;
    assert!(
        polled <= 2,
        "the server polled {polled} connections for one segment"
    );
    let mut buf = [0u8; 16];
    let server = servers
        .iter()
        .copied()
        .find(|&s| p.b.recv(s, &mut buf) == Ok(4))
        .expect("one server connection got the data");
    assert_eq!(&buf[..4], b"ping");
    // Keepalive on one connection: its timer is the only deadline on the server.
    let mut opts = p.b.config().default_socket_options();
    opts.keepalive = true;
    opts.keepalive_idle = Duration::from_secs(5);
    p.b.set_options(server, opts, p.now).unwrap();
    p.exchange();
    let due = p.b.poll_at().expect("the keepalive timer");
    assert!(due <= p.now + Duration::from_secs(5), "{due:?}");
    let polled_before = p.b.stats().connections_polled;
    p.advance(Duration::from_secs(6));
    let polled = p.b.stats().connections_polled - polled_before;
    assert!(polled <= 4, "a keepalive round polled {polled} connections");
    assert_eq!(p.b.state(server), Some(State::Established));
}
