//! A deterministic network simulation for the TCP engine: two [`TcpLayer`]s joined by a
//! seeded, faulty link (loss, duplication, reordering, corruption, delay with jitter, a rate
//! limit with a drop-tail queue), in virtual time. The link works on TCP segments (the bytes
//! the layer hands out), which is what the faults need; IPv4 and Ethernet are not involved.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ustack::tcp::config::TcpConfig;
use ustack::tcp::connection::{RecvError, State};
use ustack::tcp::layer::{ConnHandle, ListenerHandle, TcpLayer};
use ustack::tcp::stats::ConnCounters;
use ustack::time::Instant;

/// Fault and shape settings of one direction of the link.
#[derive(Debug, Clone, Copy)]
pub struct LinkProfile {
    pub loss: f64,
    pub duplicate: f64,
    /// Probability that a packet is held back by `reorder_delay` extra (so later ones pass it).
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Probability that one bit of the segment is flipped.
    pub corrupt: f64,
    pub delay: Duration,
    pub jitter: Duration,
    /// Bytes per second (0 = unlimited) and the most queueing delay before drop-tail.
    pub rate: u64,
    pub max_queue: Duration,
}

impl LinkProfile {
    pub fn clean(delay_ms: u64) -> Self {
        LinkProfile {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
            rate: 0,
            max_queue: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    bytes: Vec<u8>,
}

/// One direction of the link.
pub struct Link {
    profile: LinkProfile,
    rng: SmallRng,
    queue: BinaryHeap<Reverse<InFlight>>,
    busy_until: Instant,
    order: u64,
    pub sent: u64,
    pub dropped: u64,
}

impl Link {
    pub fn new(profile: LinkProfile, seed: u64) -> Self {
        Link {
            profile,
            rng: SmallRng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            busy_until: Instant::ZERO,
            order: 0,
            sent: 0,
            dropped: 0,
        }
    }

    pub fn send(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, bytes: &[u8]) {
        self.sent += 1;
        let p = self.profile;
        // The bottleneck: serialization at `rate`, drop-tail beyond `max_queue`.
        let mut depart = now;
        if let Some(wire) = ((bytes.len() as u64 + 40) * 1_000_000).checked_div(p.rate) {
            let start = self.busy_until.max(now);
            if start.saturating_duration_since(now) > p.max_queue {
                self.dropped += 1;
                return;
            }
            depart = start + Duration::from_micros(wire);
            self.busy_until = depart;
        }
        if self.rng.gen_bool(p.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.gen_bool(p.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let mut bytes = bytes.to_vec();
            if !bytes.is_empty() && self.rng.gen_bool(p.corrupt) {
                let bit = self.rng.gen_range(0..bytes.len() * 8);
                if let Some(b) = bytes.get_mut(bit / 8) {
                    *b ^= 1 << (bit % 8);
                }
            }
            let mut at = depart + p.delay;
            if p.jitter > Duration::ZERO {
                at += Duration::from_micros(self.rng.gen_range(0..=p.jitter.as_micros() as u64));
            }
            if self.rng.gen_bool(p.reorder) {
                at += p.reorder_delay;
            }
            self.order += 1;
            self.queue.push(Reverse(InFlight {
                at,
                order: self.order,
                src,
                dst,
                bytes,
            }));
        }
    }

    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(p)| p.at)
    }

    /// Packets due at `now`.
    pub fn due(&mut self, now: Instant) -> Vec<(Ipv4Addr, Ipv4Addr, Vec<u8>)> {
        let mut out = Vec::new();
        while self.queue.peek().is_some_and(|Reverse(p)| p.at <= now) {
            if let Some(Reverse(p)) = self.queue.pop() {
                out.push((p.src, p.dst, p.bytes));
            }
        }
        out
    }
}

/// A receiver that holds its ACKs of in-order data for a while, as Linux's was measured to do
/// on the TAP under 1% loss (no ACK for a whole flight until its delayed-ACK timer, 40 ms or
/// more; dozens of such stalls per 100 MB). Applied to the
/// server's pure ACKs: each one starts a hold with `probability`; during a hold the server's
/// pure ACKs are kept back and the last one goes out when the hold ends, unless a duplicate
/// data segment reaches the server first, which (like Linux's D-SACK answer) ends the hold at
/// once.
#[derive(Debug, Clone, Copy)]
pub struct AckHold {
    pub probability: f64,
    pub hold: Duration,
}

/// The state of an [`AckHold`].
struct AckHolder {
    config: AckHold,
    rng: SmallRng,
    until: Option<Instant>,
    held: Option<(Ipv4Addr, Ipv4Addr, Vec<u8>)>,
    /// End of the highest data the server was given (for spotting duplicates).
    highest_end: Option<u32>,
    pub holds: u64,
}

/// TCP header fields the hold needs: (seq, payload length, flags byte, carries SACK blocks),
/// if the bytes parse.
fn tcp_fields(bytes: &[u8]) -> Option<(u32, usize, u8, bool)> {
    let seq = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
    let header_len = usize::from(bytes.get(12)? >> 4) * 4;
    let flags = *bytes.get(13)?;
    let mut options = bytes.get(20..header_len)?;
    let mut sack = false;
    while let Some(&kind) = options.first() {
        match kind {
            0 => break,
            1 => options = options.get(1..)?,
            _ => {
                sack |= kind == 5;
                let len = usize::from(*options.get(1)?).max(2);
                options = options.get(len..)?;
            }
        }
    }
    Some((seq, bytes.len().checked_sub(header_len)?, flags, sack))
}

impl AckHolder {
    /// A data segment reaches the server.
    fn on_delivered_to_server(&mut self, bytes: &[u8]) {
        let Some((seq, len, _, _)) = tcp_fields(bytes) else {
            return;
        };
        if len == 0 {
            return;
        }
        let end = seq.wrapping_add(len as u32);
        match self.highest_end {
            Some(highest) if (end.wrapping_sub(highest) as i32) <= 0 => {
                // A duplicate: answered at once.
                self.until = None;
                self.held = None;
            }
            _ => self.highest_end = Some(end),
        }
    }

    /// A segment the server sends: passed on (true) or held (false).
    fn pass(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, bytes: &[u8]) -> bool {
        let Some((_, len, flags, sack)) = tcp_fields(bytes) else {
            return true;
        };
        // SYN, FIN, RST (0x02, 0x01, 0x04), data, and ACKs with SACK blocks (out-of-order
        // data: Linux answers at once) always pass.
        if len > 0 || flags & 0x07 != 0 || sack {
            return true;
        }
        if self.until.is_none() && self.rng.gen_bool(self.config.probability) {
            self.until = Some(now + self.config.hold);
            self.holds += 1;
        }
        if self.until.is_some() {
            self.held = Some((src, dst, bytes.to_vec()));
            return false;
        }
        true
    }

    /// The hold ended by time: the last held ACK, if any, goes out.
    fn expire(&mut self, now: Instant) -> Option<(Ipv4Addr, Ipv4Addr, Vec<u8>)> {
        if self.until.is_some_and(|until| until <= now) {
            self.until = None;
            return self.held.take();
        }
        None
    }
}

/// The byte at `index` of the stream a side sends (a seeded pattern, so the receiver can check
/// every byte without keeping a copy).
pub fn pattern(seed: u64, index: u64) -> u8 {
    let x = index
        .wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x ^ (x >> 29) ^ (x >> 47)) as u8
}

/// One application endpoint: writes `to_send` pattern bytes, then shuts down writes; reads
/// and checks everything, then closes when it saw EOF.
pub struct App {
    pub seed: u64,
    pub to_send: u64,
    pub sent: u64,
    pub received: u64,
    pub expected: u64,
    pub handle: Option<ConnHandle>,
    pub shut_down: bool,
    pub eof: bool,
    pub closed: bool,
    /// Pattern bytes generated but not yet accepted by `send`.
    pending: Vec<u8>,
}

impl App {
    pub fn new(seed: u64, to_send: u64, expected: u64) -> Self {
        App {
            seed,
            to_send,
            sent: 0,
            received: 0,
            expected,
            handle: None,
            shut_down: false,
            eof: false,
            closed: false,
            pending: Vec::new(),
        }
    }

    /// Does what the application can do now. Errors are test failures.
    pub fn run(&mut self, layer: &mut TcpLayer, peer_seed: u64) -> Result<(), String> {
        let Some(h) = self.handle else { return Ok(()) };
        if self.closed {
            return Ok(());
        }
        let mut buf = [0u8; 16384];
        while self.sent < self.to_send {
            if self.pending.is_empty() {
                let n = ((self.to_send - self.sent) as usize).min(16384);
                self.pending = (0..n as u64)
                    .map(|i| pattern(self.seed, self.sent + i))
                    .collect();
            }
            match layer.send(h, &self.pending) {
                Ok(0) => break,
                Ok(k) => {
                    self.sent += k as u64;
                    self.pending.drain(..k);
                }
                Err(e) => {
                    // Not connected yet is fine; anything else is a failure.
                    if matches!(e, ustack::tcp::SendError::NotYetConnected) {
                        break;
                    }
                    return Err(format!("send failed: {e:?}"));
                }
            }
        }
        if self.sent == self.to_send && !self.shut_down {
            layer.shutdown_write(h).map_err(|e| format!("{e:?}"))?;
            self.shut_down = true;
        }
        loop {
            match layer.recv(h, &mut buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    for (i, &b) in buf[..n].iter().enumerate() {
                        let at = self.received + i as u64;
                        if b != pattern(peer_seed, at) {
                            return Err(format!("byte {at} corrupted"));
                        }
                    }
                    self.received += n as u64;
                    if self.received > self.expected {
                        return Err("more bytes than sent".into());
                    }
                }
                Err(RecvError::WouldBlock) => break,
                Err(e) => return Err(format!("recv failed: {e:?} after {} bytes", self.received)),
            }
        }
        if self.eof && self.shut_down {
            if self.received != self.expected {
                return Err(format!(
                    "EOF after {} of {} bytes",
                    self.received, self.expected
                ));
            }
            layer.close(h).map_err(|e| format!("{e:?}"))?;
            self.closed = true;
        }
        Ok(())
    }
}

pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const SERVER: SocketAddrV4 = SocketAddrV4::new(SERVER_IP, 5001);

/// What a finished run reports.
#[derive(Debug)]
pub struct Outcome {
    pub virtual_time: Duration,
    pub client_retransmits: u64,
    pub server_retransmits: u64,
    pub packets: u64,
    /// The last counters each side's connection reported before it went away.
    pub client_counters: ConnCounters,
    pub server_counters: ConnCounters,
    /// When the server had read everything the client sent (None if the client sent nothing).
    pub client_data_delivered: Option<Duration>,
    /// Holds of the server's ACKs (see [`AckHold`]).
    pub ack_holds: u64,
}

pub struct Sim {
    pub now: Instant,
    pub client: TcpLayer,
    pub server: TcpLayer,
    pub to_server: Link,
    pub to_client: Link,
    pub listener: ListenerHandle,
    pub client_app: App,
    pub server_app: App,
    retransmits: (u64, u64),
    counters: (ConnCounters, ConnCounters),
    client_data_delivered: Option<Duration>,
    ack_holder: Option<AckHolder>,
}

impl Sim {
    pub fn new(seed: u64, cfg: TcpConfig, up: LinkProfile, down: LinkProfile, bytes: u64) -> Sim {
        let mut client_cfg = cfg.clone();
        client_cfg.secret = seed.to_le_bytes().repeat(2).try_into().unwrap_or([1; 16]);
        let mut server_cfg = cfg;
        server_cfg.secret = (!seed)
            .to_le_bytes()
            .repeat(2)
            .try_into()
            .unwrap_or([2; 16]);
        let mut client = TcpLayer::new(client_cfg);
        client.set_source_address(CLIENT_IP);
        let mut server = TcpLayer::new(server_cfg);
        server.set_source_address(SERVER_IP);
        let opts = server.config().default_socket_options();
        let listener = server.listen(SERVER, 16, opts).expect("listen");
        let now = Instant::from_millis(1);
        let opts = client.config().default_socket_options();
        let handle = client.connect(None, SERVER, opts, now).expect("connect");
        let mut client_app = App::new(seed, bytes, bytes);
        client_app.handle = Some(handle);
        let server_app = App::new(seed ^ 0x5555, bytes, bytes);
        Sim {
            now,
            client,
            server,
            to_server: Link::new(up, seed.wrapping_mul(31).wrapping_add(7)),
            to_client: Link::new(down, seed.wrapping_mul(17).wrapping_add(3)),
            listener,
            client_app,
            server_app,
            retransmits: (0, 0),
            counters: Default::default(),
            client_data_delivered: None,
            ack_holder: None,
        }
    }

    /// Makes the server hold its ACKs as [`AckHold`] describes.
    pub fn hold_server_acks(&mut self, config: AckHold, seed: u64) {
        self.ack_holder = Some(AckHolder {
            config,
            rng: SmallRng::seed_from_u64(seed ^ 0xac4),
            until: None,
            held: None,
            highest_end: None,
            holds: 0,
        });
    }

    fn transmit(&mut self) {
        let now = self.now;
        let up = &mut self.to_server;
        self.client
            .poll_transmit(now, &mut |s, d, b| up.send(now, s, d, b));
        let down = &mut self.to_client;
        let holder = &mut self.ack_holder;
        self.server.poll_transmit(now, &mut |s, d, b| {
            if holder.as_mut().is_none_or(|h| h.pass(now, s, d, b)) {
                down.send(now, s, d, b);
            }
        });
    }

    fn record_retransmits(&mut self) {
        if let Some(info) = self.client_app.handle.and_then(|h| self.client.info(h)) {
            self.retransmits.0 = self.retransmits.0.max(info.counters.retransmits);
            self.counters.0 = info.counters;
        }
        if let Some(info) = self.server_app.handle.and_then(|h| self.server.info(h)) {
            self.retransmits.1 = self.retransmits.1.max(info.counters.retransmits);
            self.counters.1 = info.counters;
        }
        if self.client_data_delivered.is_none()
            && self.client_app.to_send > 0
            && self.server_app.received == self.client_app.to_send
        {
            self.client_data_delivered = Some(self.now.as_duration());
        }
    }

    /// Runs until both sides closed and both layers are empty (TIME-WAIT expired), or fails.
    pub fn run(&mut self, limit: Duration) -> Result<Outcome, String> {
        let deadline = self.now + limit;
        let client_seed = self.client_app.seed;
        let server_seed = self.server_app.seed;
        loop {
            for (src, dst, bytes) in self.to_server.due(self.now) {
                if let Some(holder) = self.ack_holder.as_mut() {
                    holder.on_delivered_to_server(&bytes);
                }
                self.server.receive(self.now, src, dst, &bytes);
            }
            if let Some((src, dst, bytes)) =
                self.ack_holder.as_mut().and_then(|h| h.expire(self.now))
            {
                self.to_client.send(self.now, src, dst, &bytes);
            }
            for (src, dst, bytes) in self.to_client.due(self.now) {
                self.client.receive(self.now, src, dst, &bytes);
            }
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            if self.server_app.handle.is_none() {
                if let Some((h, _)) = self.server.accept(self.listener) {
                    self.server_app.handle = Some(h);
                }
            }
            self.record_retransmits();
            self.client_app
                .run(&mut self.client, server_seed)
                .map_err(|e| format!("client: {e}"))?;
            self.server_app
                .run(&mut self.server, client_seed)
                .map_err(|e| format!("server: {e}"))?;
            self.transmit();
            self.client_app
                .run(&mut self.client, server_seed)
                .map_err(|e| format!("client: {e}"))?;
            self.transmit();

            let done = self.client_app.closed
                && self.server_app.closed
                && self.client.connection_count() == 0
                && self.server.connection_count() == 0;
            if done {
                return Ok(Outcome {
                    virtual_time: self.now.as_duration(),
                    client_retransmits: self.retransmits.0,
                    server_retransmits: self.retransmits.1,
                    packets: self.to_server.sent + self.to_client.sent,
                    client_counters: self.counters.0,
                    server_counters: self.counters.1,
                    client_data_delivered: self.client_data_delivered,
                    ack_holds: self.ack_holder.as_ref().map_or(0, |h| h.holds),
                });
            }
            let next = [
                self.to_server.next_arrival(),
                self.to_client.next_arrival(),
                self.client.poll_at(),
                self.server.poll_at(),
                self.ack_holder.as_ref().and_then(|h| h.until),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at <= deadline => self.now = self.now.max(at),
                _ => return Err(self.stall_report()),
            }
        }
    }

    pub fn stall_report(&self) -> String {
        let describe = |layer: &TcpLayer, app: &App| {
            let conn = app.handle.and_then(|h| layer.connection(h));
            format!(
                "sent {}/{} recv {}/{} shut {} eof {} closed {} state {:?} conns {} info {:?}",
                app.sent,
                app.to_send,
                app.received,
                app.expected,
                app.shut_down,
                app.eof,
                app.closed,
                conn.map(|c| c.state()),
                layer.connection_count(),
                app.handle.and_then(|h| layer.info(h)),
            )
        };
        format!(
            "stalled at {:?}\n client: {}\n server: {}\n server states: {:?}",
            self.now,
            describe(&self.client, &self.client_app),
            describe(&self.server, &self.server_app),
            self.server
                .all_info()
                .iter()
                .map(|i| i.state)
                .collect::<Vec<State>>(),
        )
    }
}
